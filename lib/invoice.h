/*
 * The invoice: one NDJSON line, keys in the order DESIGN.md gives.
 */
#ifndef INV_INVOICE_H
#define INV_INVOICE_H

#include <stddef.h>
#include <stdint.h>

#define INV_NUMBER_MAX	50	/* VARCHAR(50) */
#define INV_NAME_MAX	255	/* VARCHAR(255), in characters */
#define INV_DATE_MAX	40
#define INV_LINE_MAX	4096	/* a formatted invoice always fits */

/*
 * The largest invoice id the programs take, 2^62 - 1, so an id and the
 * next always fit in int64_t. invgen refuses to go past it.
 */
#define INV_ID_MAX	(INT64_MAX / 2)

struct inv_invoice {
	int64_t	 id;
	char	 number[INV_NUMBER_MAX * 4 + 1];
	char	 date[INV_DATE_MAX];
	char	 seller[INV_NAME_MAX * 4 + 1];
	char	 buyer[INV_NAME_MAX * 4 + 1];
	int64_t	 subtotal;
	int64_t	 vat;
	int64_t	 total;
};

int	 inv_invoice_format(const struct inv_invoice *, char *, size_t);
int	 inv_invoice_parse(const char *, size_t, struct inv_invoice *,
	    const char **);
int	 inv_invoice_check(const struct inv_invoice *, const char **);
int	 inv_line_id(const char *, size_t, int64_t *);
size_t	 inv_json_escape(const char *, char *, size_t);
int	 inv_utf8_len(const unsigned char *, const unsigned char *);

#endif
