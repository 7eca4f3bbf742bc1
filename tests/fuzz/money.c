/*
 * Fuzz inv_money_parse: it must accept exactly the amounts the NDJSON
 * contract allows (digits without a leading zero, at most two decimals,
 * at most INV_MONEY_MAX), and what it accepts must format and parse
 * back to the same cents.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "money.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* The grammar again, written apart from the parser: -1 or the cents. */
static int64_t
expect(const char *s, size_t len)
{
	size_t i = 0, ndig, ndec = 0;
	int64_t v = 0;

	while (i < len && s[i] >= '0' && s[i] <= '9' && i < 11)
		v = v * 10 + (s[i++] - '0');
	ndig = i;
	if (ndig == 0 || ndig > 10 || (ndig > 1 && s[0] == '0'))
		return -1;
	if (i < len && s[i] == '.') {
		for (i++; i < len && s[i] >= '0' && s[i] <= '9' && ndec < 3;
		    i++, ndec++)
			v = v * 10 + (s[i] - '0');
		if (ndec == 0 || ndec > 2)
			return -1;
	}
	if (i != len)
		return -1;
	for (; ndec < 2; ndec++)
		v *= 10;
	return v > INV_MONEY_MAX ? -1 : v;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data, *why = NULL;
	char buf[INV_MONEY_BUFSZ];
	int64_t v = -1, w = -1, want = expect(s, size);

	if (inv_money_parse(s, size, &v, &why) < 0) {
		if (why == NULL || want >= 0)
			abort();
		return 0;
	}
	if (v != want || v < 0 || v > INV_MONEY_MAX)
		abort();
	inv_money_format(v, buf, sizeof(buf));
	if (inv_money_parse(buf, strlen(buf), &w, &why) < 0 || w != v)
		abort();
	if (inv_vat(v) < 0 || inv_vat(v) > v)
		abort();
	return 0;
}
