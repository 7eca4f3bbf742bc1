/*
 * Integer-cent arithmetic and the one strict parser for amounts that come
 * from outside (NDJSON lines, the database's NUMERIC text).
 */
#include <string.h>

#include "money.h"

/* VAT on a subtotal in cents: 15%, rounded half-up to the cent. */
int64_t
inv_vat(int64_t subtotal)
{
	return inv_div_round(subtotal * INV_VAT_PERCENT, 100);
}

/* a / b rounded half away from zero (half-up for the positive amounts we hold). */
int64_t
inv_div_round(int64_t a, int64_t b)
{
	if (b < 0) {
		a = -a;
		b = -b;
	}
	if (b == 0)
		return 0;
	if (a >= 0)
		return (a + b / 2) / b;
	return -((-a + b / 2) / b);
}

char *
inv_money_format(int64_t cents, char *buf, size_t size)
{
	char tmp[INV_MONEY_BUFSZ];
	uint64_t u;
	int i = sizeof(tmp);
	int neg = cents < 0;

	u = neg ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
	tmp[--i] = '\0';
	tmp[--i] = '0' + u % 10; u /= 10;
	tmp[--i] = '0' + u % 10; u /= 10;
	tmp[--i] = '.';
	do {
		tmp[--i] = '0' + u % 10;
		u /= 10;
	} while (u != 0);
	if (neg)
		tmp[--i] = '-';
	if (size > 0) {
		strncpy(buf, tmp + i, size - 1);
		buf[size - 1] = '\0';
	}
	return buf;
}

/*
 * Parse a JSON number that is an amount: digits, then optionally a point
 * and one or two digits. No sign, no exponent, no leading zeros, no more
 * than two decimals, at most INV_MONEY_MAX. On error *why says what is
 * wrong and -1 is returned.
 */
int
inv_money_parse(const char *s, size_t len, int64_t *out, const char **why)
{
	const char *p = s, *end = s + len;
	int64_t v = 0;
	int intdigits = 0, decimals = 0;

	if (len == 0) {
		*why = "empty amount";
		return -1;
	}
	if (*p == '-') {
		*why = "negative amount";
		return -1;
	}
	if (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9') {
		*why = "leading zero in amount";
		return -1;
	}
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		if (++intdigits > 10) {
			*why = "amount too large";
			return -1;
		}
		v = v * 10 + (*p - '0');
	}
	if (intdigits == 0) {
		*why = "amount is not a number";
		return -1;
	}
	if (p < end && *p == '.') {
		p++;
		for (; p < end && *p >= '0' && *p <= '9'; p++) {
			if (++decimals > 2) {
				*why = "amount has more than two decimals";
				return -1;
			}
			v = v * 10 + (*p - '0');
		}
		if (decimals == 0) {
			*why = "amount is not a number";
			return -1;
		}
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		*why = "amount has an exponent";
		return -1;
	}
	if (p != end) {
		*why = "amount is not a number";
		return -1;
	}
	for (; decimals < 2; decimals++)
		v *= 10;
	if (v > INV_MONEY_MAX) {
		*why = "amount too large";
		return -1;
	}
	*out = v;
	return 0;
}
