/* Money and VAT: cents, half-up rounding, the strict amount parser. */
#include <string.h>

#include "money.h"
#include "tap.h"

static int
parses(const char *s, long long want)
{
	int64_t v = -1;
	const char *why;

	return inv_money_parse(s, strlen(s), &v, &why) == 0 && v == want;
}

static int
rejects(const char *s, const char *reason)
{
	int64_t v;
	const char *why = "";

	return inv_money_parse(s, strlen(s), &v, &why) < 0 &&
	    strcmp(why, reason) == 0;
}

int
main(void)
{
	char buf[INV_MONEY_BUFSZ];
	int64_t c, bad = 0;

	/* Every subtotal whose 15% ends in exactly half a cent rounds up. */
	for (c = 1; c <= 100000; c++) {
		int64_t exact100 = c * 15;	/* VAT in hundredths of a cent */
		int64_t want = exact100 / 100 + (exact100 % 100 >= 50);

		if (inv_vat(c) != want)
			bad++;
	}
	ok(bad == 0, "inv_vat is 15%% half-up for every subtotal to 1000.00");
	ok(inv_vat(10) == 2, "0.10 -> VAT 0.015 rounds up to 0.02");
	ok(inv_vat(30) == 5, "0.30 -> VAT 0.045 rounds up to 0.05");
	ok(inv_vat(50) == 8, "0.50 -> VAT 0.075 rounds up to 0.08");
	ok(inv_vat(70) == 11, "0.70 -> VAT 0.105 rounds up to 0.11");
	ok(inv_vat(90) == 14, "0.90 -> VAT 0.135 rounds up to 0.14");
	ok(inv_vat(123450) == 18518, "1234.50 -> VAT 185.175 rounds to 185.18");
	ok(inv_vat(3) == 0, "0.03 -> VAT 0.0045 rounds down to 0.00");
	ok(inv_vat(4) == 1, "0.04 -> VAT 0.006 rounds up to 0.01");
	ok(inv_vat(999999999999LL) == 150000000000LL,
	    "the largest subtotal does not overflow");
	ok(inv_div_round(5, 2) == 3 && inv_div_round(-5, 2) == -3 &&
	    inv_div_round(4, 3) == 1 && inv_div_round(7, 1) == 7,
	    "inv_div_round rounds half away from zero");

	ok(strcmp(inv_money_format(123450, buf, sizeof(buf)), "1234.50") == 0,
	    "format 1234.50");
	ok(strcmp(inv_money_format(5, buf, sizeof(buf)), "0.05") == 0,
	    "format 0.05");
	ok(strcmp(inv_money_format(0, buf, sizeof(buf)), "0.00") == 0,
	    "format 0.00");
	ok(strcmp(inv_money_format(-199, buf, sizeof(buf)), "-1.99") == 0,
	    "format -1.99");
	ok(strcmp(inv_money_format(999999999999LL, buf, sizeof(buf)),
	    "9999999999.99") == 0, "format the largest amount");

	ok(parses("1234.50", 123450), "parse 1234.50");
	ok(parses("1234.5", 123450), "parse 1234.5");
	ok(parses("1234", 123400), "parse 1234");
	ok(parses("0.01", 1), "parse 0.01");
	ok(parses("0", 0), "parse 0");
	ok(parses("9999999999.99", 999999999999LL), "parse the largest amount");
	ok(rejects("-1.00", "negative amount"), "reject a negative amount");
	ok(rejects("1.005", "amount has more than two decimals"),
	    "reject three decimals");
	ok(rejects("1e3", "amount has an exponent"), "reject an exponent");
	ok(rejects("01.00", "leading zero in amount"), "reject a leading zero");
	ok(rejects("10000000000.00", "amount too large"), "reject 11 digits");
	ok(rejects("99999999999", "amount too large"), "reject 11 digits, no point");
	ok(rejects("1.", "amount is not a number"), "reject a bare point");
	ok(rejects(".5", "amount is not a number"), "reject a missing integer part");
	ok(rejects("12a", "amount is not a number"), "reject trailing junk");
	ok(rejects("", "empty amount"), "reject empty");
	ok(rejects("NaN", "amount is not a number"), "reject NaN");
	return tap_done();
}
