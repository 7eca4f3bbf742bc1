/* Invoice lines: formatting, and the strict parser's every reason. */
#include <string.h>

#include "invoice.h"
#include "tap.h"

static const char good[] = "{\"id\":42,\"invoice_number\":"
    "\"INV-20261203-00000042\",\"invoice_date\":"
    "\"2026-12-03T15:32:10.123456Z\",\"seller_name\":"
    "\"Northwind Traders Ltd\",\"buyer_name\":\"Blue Harbor Foods GmbH\","
    "\"subtotal\":1234.50,\"vat_amount\":185.18,\"total_amount\":1419.68}";

static int
rejects(const char *line, const char *reason)
{
	struct inv_invoice iv;
	const char *why = "";
	int r = inv_invoice_parse(line, strlen(line), &iv, &why);

	if (r == 0 || strcmp(why, reason) != 0)
		printf("# got '%s'\n", r == 0 ? "accepted" : why);
	return r < 0 && strcmp(why, reason) == 0;
}

static char *
with(const char *from, const char *to)
{
	static char buf[8192];
	const char *p = strstr(good, from);
	size_t n = p - good;

	memcpy(buf, good, n);
	strcpy(buf + n, to);
	strcat(buf, p + strlen(from));
	return buf;
}

int
main(void)
{
	struct inv_invoice iv;
	const char *why = NULL;
	char line[INV_LINE_MAX];
	int64_t id;
	int n;

	ok(inv_invoice_parse(good, strlen(good), &iv, &why) == 0,
	    "the DESIGN.md example parses");
	ok(iv.id == 42 && iv.subtotal == 123450 && iv.vat == 18518 &&
	    iv.total == 141968, "its id and amounts, in cents");
	ok(strcmp(iv.seller, "Northwind Traders Ltd") == 0 &&
	    strcmp(iv.buyer, "Blue Harbor Foods GmbH") == 0 &&
	    strcmp(iv.number, "INV-20261203-00000042") == 0 &&
	    strcmp(iv.date, "2026-12-03T15:32:10.123456Z") == 0,
	    "its strings");
	n = inv_invoice_format(&iv, line, sizeof(line));
	ok(n == (int)strlen(good) + 1 && memcmp(line, good, n - 1) == 0 &&
	    line[n - 1] == '\n', "formatting it gives back the same line");
	ok(inv_line_id(good, strlen(good), &id) == 0 && id == 42,
	    "inv_line_id reads the leading id");
	ok(inv_line_id("{\"x\":1}", 7, &id) < 0, "inv_line_id needs a leading id");

	strcpy(iv.seller, "Quote \" and \\ and\ttab");
	n = inv_invoice_format(&iv, line, sizeof(line));
	ok(strstr(line, "\"Quote \\\" and \\\\ and\\ttab\"") != NULL,
	    "strings are escaped");
	ok(inv_invoice_parse(line, n - 1, &iv, &why) == 0 &&
	    strcmp(iv.seller, "Quote \" and \\ and\ttab") == 0,
	    "and parse back to the same text");
	ok(inv_invoice_parse(with("Blue", "\\u00c9\\ud83d\\ude00"),
	    strlen(with("Blue", "\\u00c9\\ud83d\\ude00")), &iv, &why) == 0 &&
	    strcmp(iv.buyer, "\xc3\x89\xf0\x9f\x98\x80 Harbor Foods GmbH") == 0,
	    "\\u escapes and surrogate pairs decode to UTF-8");
	ok(inv_invoice_parse(with("{", "{\"extra\":\"x\",\"n\":1,"),
	    strlen(with("{", "{\"extra\":\"x\",\"n\":1,")), &iv, &why) == 0,
	    "unknown scalar keys are ignored");

	ok(rejects("", "empty line"), "empty line");
	ok(rejects("hello", "not a JSON object"), "not JSON");
	ok(rejects("[1,2]", "not a JSON object"), "an array");
	ok(rejects("{\"id\":42,\"invoice_number\":\"INV", "invoice_number: "
	    "unterminated string"), "truncated inside a string");
	ok(rejects("{\"id\":42", "truncated object"), "truncated object");
	ok(rejects(with(",\"buyer_name\":\"Blue Harbor Foods GmbH\"", ""),
	    "missing key buyer_name"), "a missing key");
	ok(rejects(with("\"id\":42", "\"id\":\"42\""), "id is not a number"),
	    "id as a string");
	ok(rejects(with("\"id\":42", "\"id\":-42"), "id is not a positive integer"),
	    "negative id");
	ok(inv_invoice_parse(with("\"id\":42", "\"id\":4611686018427387903"),
	    strlen(good) + 17, &iv, &why) == 0 && iv.id == INV_ID_MAX,
	    "the largest id, 2^62 - 1, 19 digits");
	ok(inv_line_id(with("\"id\":42", "\"id\":72057594037929538"),
	    strlen(good) + 15, &id) == 0 && id == 72057594037929538LL,
	    "an id past 2^53 is read exactly");
	ok(rejects(with("\"id\":42", "\"id\":4611686018427387904"),
	    "id is not a positive integer"), "an id past 2^62 - 1");
	ok(rejects(with("\"id\":42", "\"id\":9999999999999999999"),
	    "id is not a positive integer"), "a 19-digit id past int64");
	ok(rejects(with("1234.50", "\"1234.50\""), "subtotal is not a number"),
	    "amount as a string");
	ok(rejects(with("1234.50", "-1234.50"), "subtotal: negative amount"),
	    "negative subtotal");
	ok(rejects(with("1234.50", "1e308"), "subtotal: amount has an exponent"),
	    "huge number with exponent");
	ok(rejects(with("1234.50", "123456789012345678901234567890"),
	    "subtotal: amount too large"), "huge number");
	ok(rejects(with("185.18", "185.17"), "vat_amount is not 15% of subtotal"),
	    "VAT off by a cent");
	ok(rejects(with("1419.68", "1419.69"),
	    "total_amount is not subtotal + vat_amount"), "total off by a cent");
	ok(rejects(with("1234.50,\"vat_amount\":185.18,\"total_amount\":1419.68",
	    "0,\"vat_amount\":0,\"total_amount\":0"), "amounts must be positive"),
	    "zero amounts");
	ok(rejects(with("Northwind", "North\\u0000wind"),
	    "seller_name: NUL byte in string"), "escaped NUL");
	ok(rejects(with("Northwind", "North\xff" "wind"),
	    "seller_name: invalid UTF-8 in string"), "invalid UTF-8");
	ok(rejects(with("Northwind", "North\xc0\xafwind"),
	    "seller_name: invalid UTF-8 in string"), "overlong UTF-8");
	ok(rejects(with("Northwind", "\\ud83d"),
	    "seller_name: lone surrogate in string"), "lone surrogate");
	ok(rejects(with("2026-12-03T15:32:10.123456Z", "yesterday"),
	    "invoice_date is not an RFC 3339 time"), "bad date");
	ok(rejects(with("}", "}x"), "trailing data after object"),
	    "trailing junk");
	ok(rejects(with("{", "{\"id\":1,"), "duplicate key id"), "duplicate key");
	ok(rejects(with("{", "{\"x\":{\"y\":1},"), "nested value"),
	    "nested object");
	{
		char l2[600];

		snprintf(l2, sizeof(l2), "%s", good);
		ok(rejects(with("Northwind Traders Ltd",
		    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
		    "seller_name: string too long"), "a name over 255 characters");
	}
	ok(inv_invoice_parse(good, strlen(good) - 1, &iv, &why) < 0,
	    "a line cut by one byte is rejected");
	return tap_done();
}
