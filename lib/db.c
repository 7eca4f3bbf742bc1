/*
 * PostgreSQL helpers. Errors come back as text in a caller's buffer, with
 * libpq's trailing newline removed; nothing here prints or exits.
 * Connection strings are never copied into a message, so a password in
 * one is never printed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "money.h"
#include "util.h"

static char last_state[6];

/* Keep the SQLSTATE of a failed result, for inv_db_gone(). */
static void
keep_state(PGresult *res)
{
	const char *st = res != NULL ?
	    PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	/* libpq's own errors (a lost connection) carry no SQLSTATE. */
	snprintf(last_state, sizeof(last_state), "%s", st != NULL ? st : "08000");
}

static void
seterr(char *err, size_t size, const char *what, const char *why)
{
	size_t n;

	snprintf(err, size, "%s%s%s", what, why != NULL ? ": " : "",
	    why != NULL ? why : "");
	/* libpq's messages run over several lines: make them one. */
	for (n = 0; err[n] != '\0'; n++) {
		if (err[n] == '\n' || err[n] == '\t') {
			size_t j = n;

			while (err[j] == '\n' || err[j] == '\t' || err[j] == ' ')
				j++;
			err[n] = ' ';
			memmove(err + n + 1, err + j, strlen(err + j) + 1);
		}
	}
	while (n > 0 && err[n - 1] == ' ')
		err[--n] = '\0';
}

/* The --db flag if given, else $DATABASE_URL, else NULL (no database). */
const char *
inv_db_url(const char *flag)
{
	return flag != NULL ? flag : inv_getenv("DATABASE_URL");
}

/* A malformed connection string is a usage error: say so before connecting. */
int
inv_db_url_check(const char *url, char *err, size_t size)
{
	PQconninfoOption *opts;
	char *msg = NULL;

	if ((opts = PQconninfoParse(url, &msg)) == NULL) {
		seterr(err, size, "bad database URL",
		    msg != NULL ? msg : "cannot parse it");
		PQfreemem(msg);
		return -1;
	}
	PQconninfoFree(opts);
	return 0;
}

static void
quiet_notice(void *arg, const char *msg)
{
}

PGconn *
inv_db_connect(const char *url, char *err, size_t size)
{
	const char *keys[] = { "dbname", "connect_timeout",
	    "application_name", NULL };
	const char *vals[] = { url, "10", "inv", NULL };
	PGconn *db;
	PGresult *res;

	db = PQconnectdbParams(keys, vals, 1);
	if (db == NULL) {
		seterr(err, size, "cannot connect to PostgreSQL", "out of memory");
		return NULL;
	}
	if (PQstatus(db) != CONNECTION_OK) {
		seterr(err, size, "cannot connect to PostgreSQL",
		    PQerrorMessage(db));
		PQfinish(db);
		return NULL;
	}
	/* The server's notices (shutdown warnings) are not ours to print. */
	PQsetNoticeProcessor(db, quiet_notice, NULL);
	res = PQexec(db, "SELECT 1 FROM pg_class WHERE relname = 'invoices'"
	    " AND relkind = 'r' AND pg_table_is_visible(oid)");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		seterr(err, size, "cannot query PostgreSQL", PQerrorMessage(db));
		PQclear(res);
		PQfinish(db);
		return NULL;
	}
	if (PQntuples(res) != 1) {
		seterr(err, size, "no invoices table in the database",
		    "apply the migrations first (make migrate, or sql/migrate)");
		PQclear(res);
		PQfinish(db);
		return NULL;
	}
	PQclear(res);
	last_state[0] = '\0';
	return db;
}

/* True when the connection is broken, as opposed to a statement failing. */
int
inv_db_gone(PGconn *db)
{
	/*
	 * Class 08 is a connection exception; 57P01-57P03 are the server
	 * shutting down or starting; 53300 is too many connections. All
	 * pass when the server is back, so they are worth a retry.
	 */
	return db == NULL || PQstatus(db) != CONNECTION_OK ||
	    strncmp(last_state, "08", 2) == 0 ||
	    strncmp(last_state, "57P", 3) == 0 ||
	    strcmp(last_state, "53300") == 0;
}

/* Take n ids from the invoices sequence, in increasing order. */
int
inv_db_reserve_ids(PGconn *db, int n, int64_t *ids, char *err, size_t size)
{
	char nbuf[16];
	const char *params[1] = { nbuf };
	PGresult *res;
	int i;

	snprintf(nbuf, sizeof(nbuf), "%d", n);
	res = PQexecParams(db, "SELECT nextval('invoices_id_seq')"
	    " FROM generate_series(1, $1::int)", 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != n) {
		seterr(err, size, "cannot reserve invoice ids",
		    PQerrorMessage(db));
		keep_state(res);
		PQclear(res);
		return -1;
	}
	for (i = 0; i < n; i++)
		ids[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	PQclear(res);
	return 0;
}

/* COPY text format: escape backslash, tab, newline, carriage return. */
static size_t
copy_escape(const char *s, char *out)
{
	size_t n = 0;

	for (; *s != '\0'; s++) {
		switch (*s) {
		case '\\': out[n++] = '\\'; out[n++] = '\\'; break;
		case '\t': out[n++] = '\\'; out[n++] = 't'; break;
		case '\n': out[n++] = '\\'; out[n++] = 'n'; break;
		case '\r': out[n++] = '\\'; out[n++] = 'r'; break;
		default: out[n++] = *s;
		}
	}
	return n;
}

/*
 * Insert n invoices (ids already set) in one COPY, which is one
 * transaction: either every row is committed or none is.
 */
int
inv_db_insert(PGconn *db, const struct inv_invoice *iv, int n, char *err,
    size_t size)
{
	static char *buf;
	static size_t cap;
	size_t need = (size_t)n * (INV_LINE_MAX * 2), len = 0;
	PGresult *res;
	int i, ok;

	if (need > cap) {
		free(buf);
		if ((buf = malloc(need)) == NULL) {
			cap = 0;
			seterr(err, size, "cannot insert invoices", "out of memory");
			return -1;
		}
		cap = need;
	}
	for (i = 0; i < n; i++) {
		char a[INV_MONEY_BUFSZ], b[INV_MONEY_BUFSZ], c[INV_MONEY_BUFSZ];

		len += sprintf(buf + len, "%" PRId64 "\t", iv[i].id);
		len += copy_escape(iv[i].number, buf + len);
		buf[len++] = '\t';
		len += copy_escape(iv[i].date, buf + len);
		buf[len++] = '\t';
		len += copy_escape(iv[i].seller, buf + len);
		buf[len++] = '\t';
		len += copy_escape(iv[i].buyer, buf + len);
		len += sprintf(buf + len, "\t%s\t%s\t%s\n",
		    inv_money_format(iv[i].subtotal, a, sizeof(a)),
		    inv_money_format(iv[i].vat, b, sizeof(b)),
		    inv_money_format(iv[i].total, c, sizeof(c)));
	}
	res = PQexec(db, "COPY invoices (id, invoice_number, invoice_date,"
	    " seller_name, buyer_name, subtotal, vat_amount, total_amount)"
	    " FROM STDIN");
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		seterr(err, size, "cannot insert invoices", PQerrorMessage(db));
		keep_state(res);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	ok = PQputCopyData(db, buf, (int)len) == 1;
	if (PQputCopyEnd(db, ok ? NULL : "client error") != 1)
		ok = 0;
	last_state[0] = '\0';
	while ((res = PQgetResult(db)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			ok = 0;
			keep_state(res);
		}
		PQclear(res);
	}
	if (!ok) {
		seterr(err, size, "cannot insert invoices", PQerrorMessage(db));
		return -1;
	}
	return 0;
}

/*
 * How many of the given ids are in the table: after a connection broke
 * during a COPY, this tells whether that COPY committed (all) or not (0).
 */
int
inv_db_count_ids(PGconn *db, const int64_t *ids, int n, char *err,
    size_t size)
{
	char *arr, *p;
	const char *params[1];
	PGresult *res;
	int i, count;

	if ((arr = malloc((size_t)n * 21 + 3)) == NULL) {
		seterr(err, size, "cannot check invoices", "out of memory");
		return -1;
	}
	p = arr;
	*p++ = '{';
	for (i = 0; i < n; i++)
		p += sprintf(p, "%s%" PRId64, i > 0 ? "," : "", ids[i]);
	*p++ = '}';
	*p = '\0';
	params[0] = arr;
	res = PQexecParams(db, "SELECT count(*) FROM invoices"
	    " WHERE id = ANY($1::bigint[])", 1, NULL, params, NULL, NULL, 0);
	free(arr);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		seterr(err, size, "cannot check invoices", PQerrorMessage(db));
		keep_state(res);
		PQclear(res);
		return -1;
	}
	count = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return count;
}

/*
 * For callers running their own statements: keep the SQLSTATE of a
 * failed result for inv_db_gone(), and put "what: libpq's reason" in err
 * on one line.
 */
void
inv_db_failed(PGconn *db, PGresult *res, const char *what, char *err,
    size_t size)
{
	keep_state(res);
	seterr(err, size, what, PQerrorMessage(db));
}
