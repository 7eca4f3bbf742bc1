/*
 * Fuzz the NDJSON invoice parser: any bytes, no crash and no read past
 * the line; a line it accepts passes the business rules, formats into
 * INV_LINE_MAX, and the formatted line parses back to the same invoice
 * and formats to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "invoice.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
same(const struct inv_invoice *a, const struct inv_invoice *b)
{
	return a->id == b->id && strcmp(a->number, b->number) == 0 &&
	    strcmp(a->date, b->date) == 0 && strcmp(a->seller, b->seller) == 0 &&
	    strcmp(a->buyer, b->buyer) == 0 && a->subtotal == b->subtotal &&
	    a->vat == b->vat && a->total == b->total;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct inv_invoice iv, again;
	static char line[INV_LINE_MAX], line2[INV_LINE_MAX];
	const char *why = NULL;
	int64_t id;
	int n, n2;

	(void)inv_line_id((const char *)data, size, &id);
	if (inv_invoice_parse((const char *)data, size, &iv, &why) < 0) {
		if (why == NULL || *why == '\0')
			abort();
		return 0;
	}
	if (inv_invoice_check(&iv, &why) < 0)
		abort();
	n = inv_invoice_format(&iv, line, sizeof(line));
	if (n <= 0 || (size_t)n >= sizeof(line) || line[n - 1] != '\n')
		abort();
	if (inv_invoice_parse(line, (size_t)n - 1, &again, &why) < 0)
		abort();
	if (!same(&iv, &again))
		abort();
	n2 = inv_invoice_format(&again, line2, sizeof(line2));
	if (n2 != n || memcmp(line, line2, (size_t)n) != 0)
		abort();
	if (inv_line_id(line, (size_t)n, &id) < 0 || id != iv.id)
		abort();
	return 0;
}
