/*
 * Money is int64_t cents everywhere. No floating point on any path that
 * ends in a printed or stored amount.
 */
#ifndef INV_MONEY_H
#define INV_MONEY_H

#include <stddef.h>
#include <stdint.h>

#define INV_VAT_PERCENT		15
#define INV_MONEY_MAX		999999999999LL	/* NUMERIC(12,2): 9,999,999,999.99 */
#define INV_MONEY_BUFSZ		32

int64_t	 inv_vat(int64_t);
int64_t	 inv_div_round(int64_t, int64_t);
char	*inv_money_format(int64_t, char *, size_t);
int	 inv_money_parse(const char *, size_t, int64_t *, const char **);

#endif
