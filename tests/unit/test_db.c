/*
 * COPY's binary rows. The expected bytes are what PostgreSQL's own
 * numeric_send, timestamptz_send and int8send give for the same values
 * (SELECT numeric_send(12345.67::numeric(12,2)) and so on).
 */
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "tap.h"

static int
hexval(char c)
{
	return c <= '9' ? c - '0' : c - 'a' + 10;
}

/* The bytes of hex (PostgreSQL's \x output, without the \x) into out. */
static size_t
unhex(const char *hex, char *out)
{
	size_t n = 0;

	for (; hex[0] != '\0' && hex[1] != '\0'; hex += 2)
		out[n++] = (char)(hexval(hex[0]) << 4 | hexval(hex[1]));
	return n;
}

/* inv_db_put_numeric writes a length word, then numeric_send's bytes. */
static int
numeric_is(int64_t cents, const char *hex)
{
	char got[64], want[64];
	size_t len = (size_t)(inv_db_put_numeric(got, cents) - got);
	size_t wlen = unhex(hex, want);

	return len == wlen + 4 && got[0] == 0 && got[1] == 0 &&
	    got[2] == 0 && (size_t)(unsigned char)got[3] == wlen &&
	    memcmp(got + 4, want, wlen) == 0;
}

static unsigned
get16(const char *p)
{
	return (unsigned)(unsigned char)p[0] << 8 | (unsigned char)p[1];
}

/* A binary NUMERIC of scale 2 read back into cents; -1 if malformed. */
static int64_t
numeric_cents(const char *p)
{
	int n = (int)get16(p + 4), weight = (int16_t)get16(p + 6), i, j;
	int64_t cents = 0, d;

	if (get16(p + 8) != 0 || get16(p + 10) != 2 ||
	    (n > 0 && get16(p + 12) == 0) ||
	    (n > 0 && get16(p + 12 + 2 * (n - 1)) == 0))
		return -1;	/* sign, scale, or zero digits at either end */
	for (i = 0; i < n; i++) {
		d = get16(p + 12 + 2 * i);
		if (weight - i >= 0) {
			for (j = 0; j < weight - i; j++)
				d *= 10000;
			cents += d * 100;
		} else if (weight - i == -1 && d % 100 == 0)
			cents += d / 100;
		else
			return -1;
	}
	return cents;
}

/* Find needle (hex) in the row: a field's length word and bytes. */
static int
has_field(const struct inv_copybuf *cb, const char *hex)
{
	char want[64];
	size_t wlen = unhex(hex, want + 4), i;

	want[0] = want[1] = want[2] = 0;
	want[3] = (char)wlen;
	for (i = 0; i + wlen + 4 <= cb->len; i++)
		if (memcmp(cb->buf + i, want, wlen + 4) == 0)
			return 1;
	return 0;
}

int
main(void)
{
	static const struct {
		int64_t cents;
		const char *hex;
	} num[] = {
		{ 5, "0001ffff0000000201f4" },		/* 0.05 */
		{ 10, "0001ffff0000000203e8" },		/* 0.10 */
		{ 100, "00010000000000020001" },	/* 1.00 */
		{ 1003, "0002000000000002000a012c" },	/* 10.03 */
		{ 10000, "00010000000000020064" },	/* 100.00 */
		{ 1000000, "00010001000000020001" },	/* 10000.00 */
		{ 1234567, "0003000100000002000109291a2c" },
		{ 9999999999, "0003000100000002270f270f26ac" },
		{ 999999999999, "00040002000000020063270f270f26ac" },
		{ 12345678901, "0004000200000002000109291a850064" },
		{ 0, "0000000000000002" },
		{ -750, "000200004000000200071388" },	/* -7.50 */
	};
	struct inv_invoice iv = { .id = 42, .subtotal = 123450, .vat = 18518,
	    .total = 141968 };
	struct inv_copybuf cb = { NULL, 0, 0 };
	size_t i, first;
	int r;

	{
		char buf[64];
		int64_t c, bad = 0;

		for (c = 0; c <= 2000000; c++) {
			inv_db_put_numeric(buf, c);
			if (numeric_cents(buf) != c)
				bad++;
		}
		for (c = 1; c <= 999999999999; c = c * 3 + 1) {
			inv_db_put_numeric(buf, c);
			if (numeric_cents(buf) != c)
				bad++;
		}
		ok(bad == 0, "every amount to 20000.00, and larger ones, reads "
		    "back as the cents it was");
	}
	for (i = 0; i < sizeof(num) / sizeof(num[0]); i++)
		ok(numeric_is(num[i].cents, num[i].hex),
		    "%lld cents is numeric_send's %s", (long long)num[i].cents,
		    num[i].hex);

	strcpy(iv.number, "INV-20261203-00000042");
	strcpy(iv.date, "2026-12-03T15:32:10.123456Z");
	strcpy(iv.seller, "Northwind Traders Ltd");
	strcpy(iv.buyer, "Blue Harbor Foods GmbH");
	/* ok() evaluates its condition twice: add outside it. */
	r = inv_db_copy_add(&cb, &iv);
	ok(r == 0, "a row is added");
	ok(cb.len > 19 && memcmp(cb.buf, "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0\0",
	    19) == 0, "the first row comes after COPY's binary header");
	ok(cb.buf[19] == 0 && cb.buf[20] == 8, "a row has 8 fields");
	ok(has_field(&cb, "000000000000002a"), "the id is int8send's");
	ok(has_field(&cb, "000304bb3b4854c0"),
	    "the date is timestamptz_send's (microseconds since 2000)");
	ok(has_field(&cb, "000200000000000204d21388"), "the subtotal 1234.50");
	first = cb.len;
	strcpy(iv.date, "2026-12-03T15:32:11.000001Z");
	r = inv_db_copy_add(&cb, &iv);
	ok(r == 0 && cb.len == 2 * first - 19, "a second row has no header");
	ok(has_field(&cb, "000304bb3b55b4c1"),
	    "the next second's date, after the cached one");
	strcpy(iv.date, "2026-12-03T15:32:11.000001+01:00");
	r = inv_db_copy_add(&cb, &iv);
	ok(r == 0 && has_field(&cb, "000304ba64c210c1"),
	    "another RFC 3339 form of a date is read too");
	strcpy(iv.date, "yesterday");
	r = inv_db_copy_add(&cb, &iv);
	ok(r < 0, "a date that is not RFC 3339 fails");
	free(cb.buf);
	return tap_done();
}
