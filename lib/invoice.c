/*
 * Format and parse invoice lines. The parser reads exactly the flat
 * object an invoice is (string and number values) and keeps amounts as
 * the decimal text they were written in, so no amount ever passes
 * through a double. Unknown keys with scalar values are ignored, so a
 * newer producer can add fields.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "invoice.h"
#include "money.h"

size_t
inv_json_escape(const char *s, char *out, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	for (; *s != '\0'; s++) {
		unsigned char c = *s;
		char esc = 0;

		switch (c) {
		case '"': esc = '"'; break;
		case '\\': esc = '\\'; break;
		case '\n': esc = 'n'; break;
		case '\r': esc = 'r'; break;
		case '\t': esc = 't'; break;
		case '\b': esc = 'b'; break;
		case '\f': esc = 'f'; break;
		}
		if (esc != 0) {
			if (n + 2 < size) {
				out[n] = '\\';
				out[n + 1] = esc;
			}
			n += 2;
		} else if (c < 0x20) {
			if (n + 6 < size)
				memcpy(out + n, (char[]){'\\', 'u', '0', '0',
				    hex[c >> 4], hex[c & 15]}, 6);
			n += 6;
		} else {
			if (n + 1 < size)
				out[n] = c;
			n++;
		}
	}
	if (size > 0)
		out[n < size ? n : size - 1] = '\0';
	return n;
}

static int
format_escaped(const struct inv_invoice *iv, char *buf, size_t size)
{
	char num[INV_NUMBER_MAX * 6 + 1], seller[INV_NAME_MAX * 24 + 1];
	char buyer[INV_NAME_MAX * 24 + 1];
	char sub[INV_MONEY_BUFSZ], vat[INV_MONEY_BUFSZ], tot[INV_MONEY_BUFSZ];

	inv_json_escape(iv->number, num, sizeof(num));
	inv_json_escape(iv->seller, seller, sizeof(seller));
	inv_json_escape(iv->buyer, buyer, sizeof(buyer));
	return snprintf(buf, size,
	    "{\"id\":%" PRId64 ",\"invoice_number\":\"%s\","
	    "\"invoice_date\":\"%s\",\"seller_name\":\"%s\","
	    "\"buyer_name\":\"%s\",\"subtotal\":%s,\"vat_amount\":%s,"
	    "\"total_amount\":%s}\n",
	    iv->id, num, iv->date, seller, buyer,
	    inv_money_format(iv->subtotal, sub, sizeof(sub)),
	    inv_money_format(iv->vat, vat, sizeof(vat)),
	    inv_money_format(iv->total, tot, sizeof(tot)));
}

/* True when s needs no JSON escaping (the common case: plain names). */
static int
plain(const char *s, size_t *len)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p != '\0'; p++)
		if (*p < 0x20 || *p == '"' || *p == '\\')
			return 0;
	*len = (const char *)p - s;
	return 1;
}

static char *
put_int(char *p, int64_t v)
{
	char tmp[24];
	int i = sizeof(tmp);
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	do {
		tmp[--i] = '0' + u % 10;
		u /= 10;
	} while (u != 0);
	if (v < 0)
		tmp[--i] = '-';
	memcpy(p, tmp + i, sizeof(tmp) - i);
	return p + sizeof(tmp) - i;
}

static char *
put_money(char *p, int64_t cents)
{
	int64_t c = cents < 0 ? -cents : cents;

	if (cents < 0)
		*p++ = '-';
	p = put_int(p, c / 100);
	*p++ = '.';
	*p++ = '0' + (c % 100) / 10;
	*p++ = '0' + c % 10;
	return p;
}

#define PUT(p, lit)	(memcpy((p), (lit), sizeof(lit) - 1), (p) + sizeof(lit) - 1)

/*
 * One invoice line, newline included, into buf; returns its length (or
 * the length it would have had, as snprintf does). Plain strings, the
 * usual case, are copied straight; the general path escapes them.
 */
int
inv_invoice_format(const struct inv_invoice *iv, char *buf, size_t size)
{
	size_t ln, ld, ls, lb;
	char *p = buf;

	if (plain(iv->number, &ln) && plain(iv->date, &ld) &&
	    plain(iv->seller, &ls) && plain(iv->buyer, &lb) &&
	    size >= ln + ld + ls + lb + 256) {
		p = PUT(p, "{\"id\":");
		p = put_int(p, iv->id);
		p = PUT(p, ",\"invoice_number\":\"");
		memcpy(p, iv->number, ln); p += ln;
		p = PUT(p, "\",\"invoice_date\":\"");
		memcpy(p, iv->date, ld); p += ld;
		p = PUT(p, "\",\"seller_name\":\"");
		memcpy(p, iv->seller, ls); p += ls;
		p = PUT(p, "\",\"buyer_name\":\"");
		memcpy(p, iv->buyer, lb); p += lb;
		p = PUT(p, "\",\"subtotal\":");
		p = put_money(p, iv->subtotal);
		p = PUT(p, ",\"vat_amount\":");
		p = put_money(p, iv->vat);
		p = PUT(p, ",\"total_amount\":");
		p = put_money(p, iv->total);
		p = PUT(p, "}\n");
		*p = '\0';
		return (int)(p - buf);
	}
	return format_escaped(iv, buf, size);
}

/* The business rules, the same ones the database's CHECKs enforce. */
int
inv_invoice_check(const struct inv_invoice *iv, const char **why)
{
	if (iv->subtotal <= 0 || iv->vat <= 0 || iv->total <= 0) {
		*why = "amounts must be positive";
		return -1;
	}
	if (iv->vat != inv_vat(iv->subtotal)) {
		*why = "vat_amount is not 15% of subtotal";
		return -1;
	}
	if (iv->total != iv->subtotal + iv->vat) {
		*why = "total_amount is not subtotal + vat_amount";
		return -1;
	}
	if (iv->total > INV_MONEY_MAX) {
		*why = "total_amount too large";
		return -1;
	}
	return 0;
}

/* ---- a strict reader for one flat JSON object ---- */

struct rd {
	const char	*p;
	const char	*end;
	const char	*why;
};

static void
skipws(struct rd *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' ||
	    *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

static int
put_utf8(char *out, size_t size, size_t *n, uint32_t cp)
{
	unsigned char b[4];
	int len, i;

	if (cp < 0x80) {
		b[0] = cp; len = 1;
	} else if (cp < 0x800) {
		b[0] = 0xc0 | cp >> 6; b[1] = 0x80 | (cp & 0x3f); len = 2;
	} else if (cp < 0x10000) {
		b[0] = 0xe0 | cp >> 12; b[1] = 0x80 | ((cp >> 6) & 0x3f);
		b[2] = 0x80 | (cp & 0x3f); len = 3;
	} else {
		b[0] = 0xf0 | cp >> 18; b[1] = 0x80 | ((cp >> 12) & 0x3f);
		b[2] = 0x80 | ((cp >> 6) & 0x3f); b[3] = 0x80 | (cp & 0x3f);
		len = 4;
	}
	if (*n + len >= size)
		return -1;
	for (i = 0; i < len; i++)
		out[(*n)++] = b[i];
	return 0;
}

static int
hex4(const char *p, uint32_t *v)
{
	int i;

	*v = 0;
	for (i = 0; i < 4; i++) {
		char c = p[i];
		*v <<= 4;
		if (c >= '0' && c <= '9') *v |= c - '0';
		else if (c >= 'a' && c <= 'f') *v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F') *v |= c - 'A' + 10;
		else return -1;
	}
	return 0;
}

/* Length of the valid UTF-8 sequence at p (p < end), or 0. */
int
inv_utf8_len(const unsigned char *p, const unsigned char *end)
{
	int len, i;
	uint32_t cp;

	if (p[0] < 0x80) return 1;
	if ((p[0] & 0xe0) == 0xc0) { len = 2; cp = p[0] & 0x1f; }
	else if ((p[0] & 0xf0) == 0xe0) { len = 3; cp = p[0] & 0x0f; }
	else if ((p[0] & 0xf8) == 0xf0) { len = 4; cp = p[0] & 0x07; }
	else return 0;
	if (end - p < len) return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80) return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/*
 * Read a JSON string into out (NUL-terminated, at most maxchars
 * characters); out may be NULL to skip it. Rejects control characters,
 * NUL (also as \u0000), invalid UTF-8 and lone surrogates.
 */
static int
read_string(struct rd *r, char *out, size_t size, size_t maxchars)
{
	size_t n = 0, chars = 0;
	char dummy[8];

	if (out == NULL) {
		out = dummy;
		size = sizeof(dummy);
		maxchars = SIZE_MAX;
	}
	if (r->p >= r->end || *r->p != '"') {
		r->why = "expected a string";
		return -1;
	}
	r->p++;
	for (;;) {
		unsigned char c;
		uint32_t cp;

		if (r->p >= r->end) {
			r->why = "unterminated string";
			return -1;
		}
		c = *r->p;
		if (c == '"') {
			r->p++;
			break;
		}
		if (c < 0x20) {
			r->why = c == 0 ? "NUL byte in string" :
			    "control character in string";
			return -1;
		}
		if (c == '\\') {
			if (r->end - r->p < 2) {
				r->why = "unterminated string";
				return -1;
			}
			switch (r->p[1]) {
			case '"': cp = '"'; break;
			case '\\': cp = '\\'; break;
			case '/': cp = '/'; break;
			case 'b': cp = '\b'; break;
			case 'f': cp = '\f'; break;
			case 'n': cp = '\n'; break;
			case 'r': cp = '\r'; break;
			case 't': cp = '\t'; break;
			case 'u':
				if (r->end - r->p < 6 || hex4(r->p + 2, &cp) < 0) {
					r->why = "bad \\u escape";
					return -1;
				}
				if (cp >= 0xd800 && cp <= 0xdbff) {
					uint32_t lo;

					if (r->end - r->p < 12 || r->p[6] != '\\' ||
					    r->p[7] != 'u' ||
					    hex4(r->p + 8, &lo) < 0 ||
					    lo < 0xdc00 || lo > 0xdfff) {
						r->why = "lone surrogate in string";
						return -1;
					}
					cp = 0x10000 + ((cp - 0xd800) << 10) +
					    (lo - 0xdc00);
					r->p += 6;
				} else if (cp >= 0xdc00 && cp <= 0xdfff) {
					r->why = "lone surrogate in string";
					return -1;
				}
				if (cp == 0) {
					r->why = "NUL byte in string";
					return -1;
				}
				r->p += 4;
				break;
			default:
				r->why = "bad escape in string";
				return -1;
			}
			r->p += 2;
			if (out != dummy && put_utf8(out, size, &n, cp) < 0) {
				r->why = "string too long";
				return -1;
			}
		} else {
			int len = inv_utf8_len((const unsigned char *)r->p,
			    (const unsigned char *)r->end);

			if (len == 0) {
				r->why = "invalid UTF-8 in string";
				return -1;
			}
			if (out != dummy) {
				if (n + len >= size) {
					r->why = "string too long";
					return -1;
				}
				memcpy(out + n, r->p, len);
				n += len;
			}
			r->p += len;
		}
		if (++chars > maxchars) {
			r->why = "string too long";
			return -1;
		}
	}
	if (out != dummy)
		out[n] = '\0';
	return 0;
}

/* The raw text of a JSON scalar that is not a string. */
static int
read_scalar(struct rd *r, const char **tok, size_t *len)
{
	const char *s = r->p;

	while (r->p < r->end && *r->p != ',' && *r->p != '}' &&
	    *r->p != ' ' && *r->p != '\t' && *r->p != '\r' && *r->p != '\n') {
		if (*r->p == '{' || *r->p == '[' || *r->p == '"') {
			r->why = "nested value";
			return -1;
		}
		r->p++;
	}
	if (r->p == s) {
		r->why = "missing value";
		return -1;
	}
	*tok = s;
	*len = r->p - s;
	return 0;
}

static int
parse_id(const char *s, size_t len, int64_t *out)
{
	int64_t v = 0;
	size_t i;

	if (len == 0 || len > 19 || (s[0] == '0' && len > 1))
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9' ||
		    v > (INV_ID_MAX - (s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return v > 0 ? 0 : -1;
}

/* RFC 3339: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM) */
static int
check_date(const char *d)
{
	const char *shape = "dddd-dd-ddTdd:dd:dd";
	size_t i;

	for (i = 0; shape[i] != '\0'; i++) {
		if (shape[i] == 'd' ? (d[i] < '0' || d[i] > '9') :
		    d[i] != shape[i])
			return -1;
	}
	d += i;
	if (*d == '.') {
		if (d[1] < '0' || d[1] > '9')
			return -1;
		for (d++; *d >= '0' && *d <= '9'; d++)
			;
	}
	if (*d == 'Z' && d[1] == '\0')
		return 0;
	if ((*d == '+' || *d == '-') && d[1] >= '0' && d[1] <= '9' &&
	    d[2] >= '0' && d[2] <= '9' && d[3] == ':' && d[4] >= '0' &&
	    d[4] <= '9' && d[5] >= '0' && d[5] <= '9' && d[6] == '\0')
		return 0;
	return -1;
}

enum { K_ID, K_NUMBER, K_DATE, K_SELLER, K_BUYER, K_SUB, K_VAT, K_TOTAL,
	K_NKEYS };
static const char *const keys[K_NKEYS] = { "id", "invoice_number",
	"invoice_date", "seller_name", "buyer_name", "subtotal",
	"vat_amount", "total_amount" };

/*
 * Parse one invoice line (without its newline) and check the business
 * rules. Returns 0, or -1 with *why set to a reason fit for a message.
 */
int
inv_invoice_parse(const char *line, size_t len, struct inv_invoice *iv,
    const char **why)
{
	static char msg[96];
	struct rd r = { line, line + len, NULL };
	unsigned seen = 0;
	int k;

	memset(iv, 0, sizeof(*iv));
	skipws(&r);
	if (r.p >= r.end || *r.p != '{') {
		*why = r.p >= r.end ? "empty line" : "not a JSON object";
		return -1;
	}
	r.p++;
	skipws(&r);
	if (r.p < r.end && *r.p == '}') {
		r.p++;
		goto done;
	}
	for (;;) {
		char key[32];
		const char *tok;
		size_t toklen;

		skipws(&r);
		if (r.p < r.end && *r.p == '"') {
			struct rd save = r;

			if (read_string(&r, key, sizeof(key), 31) < 0) {
				r = save;
				key[0] = '\0';
				if (read_string(&r, NULL, 0, 0) < 0)
					goto bad;
			}
		} else {
			r.why = "expected a key";
			goto bad;
		}
		skipws(&r);
		if (r.p >= r.end || *r.p != ':') {
			r.why = "expected ':'";
			goto bad;
		}
		r.p++;
		skipws(&r);
		for (k = 0; k < K_NKEYS; k++)
			if (strcmp(key, keys[k]) == 0)
				break;
		if (k < K_NKEYS && (seen & 1u << k)) {
			snprintf(msg, sizeof(msg), "duplicate key %s", keys[k]);
			*why = msg;
			return -1;
		}
		switch (k) {
		case K_NUMBER: case K_DATE: case K_SELLER: case K_BUYER: {
			char *dst = k == K_NUMBER ? iv->number :
			    k == K_DATE ? iv->date :
			    k == K_SELLER ? iv->seller : iv->buyer;
			size_t dsz = k == K_NUMBER ? sizeof(iv->number) :
			    k == K_DATE ? sizeof(iv->date) :
			    k == K_SELLER ? sizeof(iv->seller) : sizeof(iv->buyer);
			size_t maxc = k == K_NUMBER ? INV_NUMBER_MAX :
			    k == K_DATE ? INV_DATE_MAX - 1 : INV_NAME_MAX;

			if (r.p < r.end && *r.p != '"') {
				snprintf(msg, sizeof(msg), "%s is not a string",
				    keys[k]);
				*why = msg;
				return -1;
			}
			if (read_string(&r, dst, dsz, maxc) < 0) {
				snprintf(msg, sizeof(msg), "%s: %s", keys[k],
				    r.why);
				*why = msg;
				return -1;
			}
			if (dst[0] == '\0') {
				snprintf(msg, sizeof(msg), "%s is empty", keys[k]);
				*why = msg;
				return -1;
			}
			break;
		}
		case K_ID: case K_SUB: case K_VAT: case K_TOTAL:
			if (r.p < r.end && *r.p == '"') {
				snprintf(msg, sizeof(msg), "%s is not a number",
				    keys[k]);
				*why = msg;
				return -1;
			}
			if (read_scalar(&r, &tok, &toklen) < 0)
				goto bad;
			if (k == K_ID) {
				if (parse_id(tok, toklen, &iv->id) < 0) {
					*why = "id is not a positive integer";
					return -1;
				}
			} else {
				const char *mwhy;
				int64_t *dst = k == K_SUB ? &iv->subtotal :
				    k == K_VAT ? &iv->vat : &iv->total;

				if (inv_money_parse(tok, toklen, dst, &mwhy) < 0) {
					snprintf(msg, sizeof(msg), "%s: %s",
					    keys[k], mwhy);
					*why = msg;
					return -1;
				}
			}
			break;
		default:
			/* An unknown key: skip a scalar or string value. */
			if (r.p < r.end && *r.p == '"') {
				if (read_string(&r, NULL, 0, 0) < 0)
					goto bad;
			} else if (read_scalar(&r, &tok, &toklen) < 0)
				goto bad;
			break;
		}
		if (k < K_NKEYS)
			seen |= 1u << k;
		skipws(&r);
		if (r.p < r.end && *r.p == ',') {
			r.p++;
			continue;
		}
		if (r.p < r.end && *r.p == '}') {
			r.p++;
			break;
		}
		r.why = r.p >= r.end ? "truncated object" : "expected ',' or '}'";
		goto bad;
	}
done:
	skipws(&r);
	if (r.p != r.end) {
		*why = "trailing data after object";
		return -1;
	}
	for (k = 0; k < K_NKEYS; k++) {
		if (!(seen & 1u << k)) {
			snprintf(msg, sizeof(msg), "missing key %s", keys[k]);
			*why = msg;
			return -1;
		}
	}
	if (check_date(iv->date) < 0) {
		*why = "invoice_date is not an RFC 3339 time";
		return -1;
	}
	return inv_invoice_check(iv, why);
bad:
	*why = r.why != NULL ? r.why : "malformed JSON";
	return -1;
}

/*
 * The id of a line without a full parse: the value of a leading "id" key,
 * as invgen writes it. Returns -1 when the line does not start that way.
 */
int
inv_line_id(const char *line, size_t len, int64_t *id)
{
	static const char pfx[] = "{\"id\":";
	size_t i = sizeof(pfx) - 1, s;

	if (len < i || memcmp(line, pfx, i) != 0)
		return -1;
	s = i;
	while (i < len && line[i] >= '0' && line[i] <= '9')
		i++;
	return parse_id(line + s, i - s, id);
}
