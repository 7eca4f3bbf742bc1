/*
 * PostgreSQL helpers. Errors come back as text in a caller's buffer, with
 * libpq's trailing newline removed; nothing here prints or exits.
 * Connection strings are never copied into a message, so a password in
 * one is never printed.
 */
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "money.h"
#include "util.h"

static char last_state[6];
static const char *pending_then;

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

/*
 * Why a value libpq would refuse only when connecting is malformed, or
 * NULL. A port is a comma-separated list (one per host), each empty or
 * 1 to 65535; the timeouts and keepalive settings are whole numbers.
 */
static const char *
bad_option(const char *key, const char *val)
{
	static const char *const ints[] = { "connect_timeout", "keepalives",
	    "keepalives_idle", "keepalives_interval", "keepalives_count",
	    "tcp_user_timeout" };
	static const char *const sslmodes[] = { "disable", "allow", "prefer",
	    "require", "verify-ca", "verify-full" };
	static char msg[64];
	const char *p, *errstr;
	char one[16];
	long long v;
	size_t i, n;

	if (strcmp(key, "port") == 0) {
		for (p = val; ; p += n + 1) {
			n = strcspn(p, ",");
			snprintf(one, sizeof(one), "%.*s", (int)n, p);
			if (n > 0 && (n >= sizeof(one) ||
			    inv_parse_int(one, 1, 65535, &v, &errstr) < 0))
				return "port is not a number from 1 to 65535";
			if (p[n] == '\0')
				return NULL;
		}
	}
	for (i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
		if (strcmp(key, ints[i]) == 0 && *val != '\0' &&
		    inv_parse_int(val, 0, INT32_MAX, &v, &errstr) < 0) {
			snprintf(msg, sizeof(msg), "%s is not a whole number",
			    key);
			return msg;
		}
	if (strcmp(key, "sslmode") == 0 && *val != '\0') {
		for (i = 0; i < sizeof(sslmodes) / sizeof(sslmodes[0]); i++)
			if (strcmp(val, sslmodes[i]) == 0)
				return NULL;
		return "sslmode is not disable, allow, prefer, require, "
		    "verify-ca or verify-full";
	}
	return NULL;
}

/*
 * A malformed connection string is a usage error: say so before
 * connecting, also for the values libpq checks only when it connects
 * (which would otherwise look like a server that is down, and be
 * retried for ever).
 */
int
inv_db_url_check(const char *url, char *err, size_t size)
{
	PQconninfoOption *opts, *o;
	const char *why = NULL;
	char *msg = NULL;

	if ((opts = PQconninfoParse(url, &msg)) == NULL) {
		seterr(err, size, "bad database URL",
		    msg != NULL ? msg : "cannot parse it");
		PQfreemem(msg);
		return -1;
	}
	for (o = opts; o->keyword != NULL && why == NULL; o++)
		if (o->val != NULL)
			why = bad_option(o->keyword, o->val);
	PQconninfoFree(opts);
	if (why != NULL) {
		seterr(err, size, "bad database URL", why);
		return -1;
	}
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
 * Insert n invoices (ids already set) with one COPY. Without a "then"
 * statement the COPY is its own transaction; with one, the COPY and that
 * statement commit together. Either every row is committed or none is.
 * inv_db_insert_send starts it and returns while the server works, so
 * the caller can prepare the next batch; inv_db_insert_wait collects
 * the outcome.
 */
/* Append one invoice as a row of COPY's text format. */
int
inv_db_copy_add(struct inv_copybuf *cb, const struct inv_invoice *iv)
{
	char a[INV_MONEY_BUFSZ], b[INV_MONEY_BUFSZ], c[INV_MONEY_BUFSZ];
	size_t len;

	if (cb->len + INV_LINE_MAX * 2 > cb->cap) {
		size_t cap = cb->cap == 0 ? 1 << 20 : cb->cap * 2;
		char *p = realloc(cb->buf, cap);

		if (p == NULL)
			return -1;
		cb->buf = p;
		cb->cap = cap;
	}
	len = cb->len;
	len += sprintf(cb->buf + len, "%" PRId64 "\t", iv->id);
	len += copy_escape(iv->number, cb->buf + len);
	cb->buf[len++] = '\t';
	len += copy_escape(iv->date, cb->buf + len);
	cb->buf[len++] = '\t';
	len += copy_escape(iv->seller, cb->buf + len);
	cb->buf[len++] = '\t';
	len += copy_escape(iv->buyer, cb->buf + len);
	len += sprintf(cb->buf + len, "\t%s\t%s\t%s\n",
	    inv_money_format(iv->subtotal, a, sizeof(a)),
	    inv_money_format(iv->vat, b, sizeof(b)),
	    inv_money_format(iv->total, c, sizeof(c)));
	cb->len = len;
	return 0;
}

int
inv_db_insert_send(PGconn *db, const struct inv_invoice *iv, int n,
    const char *then, char *err, size_t size)
{
	static struct inv_copybuf cb;
	int i;

	cb.len = 0;
	for (i = 0; i < n; i++) {
		if (inv_db_copy_add(&cb, &iv[i]) < 0) {
			seterr(err, size, "cannot insert invoices", "out of memory");
			return -1;
		}
	}
	return inv_db_copy_send(db, &cb, then, err, size);
}

/* Start the COPY of rows already formatted (inv_db_copy_add). */
int
inv_db_copy_send(PGconn *db, const struct inv_copybuf *cb, const char *then,
    char *err, size_t size)
{
	const char *buf = cb->buf;
	size_t len = cb->len;
	PGresult *res;

	last_state[0] = '\0';
	pending_then = then;
	if (then != NULL) {
		res = PQexec(db, "BEGIN");
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			seterr(err, size, "cannot insert invoices",
			    PQerrorMessage(db));
			keep_state(res);
			PQclear(res);
			return -1;
		}
		PQclear(res);
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
	/*
	 * Queue the rows without waiting for the server to take them:
	 * inv_db_pump moves them on while the caller works, and
	 * inv_db_insert_wait sends the rest.
	 */
	PQsetnonblocking(db, 1);
	if (PQputCopyData(db, buf, (int)len) != 1 ||
	    PQputCopyEnd(db, NULL) != 1) {
		PQsetnonblocking(db, 0);
		seterr(err, size, "cannot insert invoices", PQerrorMessage(db));
		keep_state(NULL);
		return -1;
	}
	return 0;
}

/* Send what is queued, as far as the socket takes it without blocking. */
void
inv_db_pump(PGconn *db)
{
	if (PQisnonblocking(db))
		(void)PQflush(db);
}

static int
exec_ok(PGconn *db, const char *sql)
{
	PGresult *res = PQexec(db, sql);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	if (!ok)
		keep_state(res);
	PQclear(res);
	return ok;
}

int
inv_db_insert_wait(PGconn *db, char *err, size_t size)
{
	PGresult *res;
	int ok = 1, r;

	while (PQisnonblocking(db) && (r = PQflush(db)) != 0) {
		struct pollfd pfd = { PQsocket(db), POLLOUT, 0 };

		if (r < 0)
			break;
		(void)poll(&pfd, 1, 1000);
	}
	PQsetnonblocking(db, 0);
	while ((res = PQgetResult(db)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			ok = 0;
			keep_state(res);
		}
		PQclear(res);
	}
	if (ok && pending_then != NULL)
		ok = exec_ok(db, pending_then) && exec_ok(db, "COMMIT");
	if (!ok) {
		seterr(err, size, "cannot insert invoices", PQerrorMessage(db));
		if (pending_then != NULL && !inv_db_gone(db))
			PQclear(PQexec(db, "ROLLBACK"));
		return -1;
	}
	return 0;
}

int
inv_db_insert(PGconn *db, const struct inv_invoice *iv, int n,
    const char *then, char *err, size_t size)
{
	if (inv_db_insert_send(db, iv, n, then, err, size) < 0) {
		if (then != NULL && !inv_db_gone(db))
			PQclear(PQexec(db, "ROLLBACK"));
		return -1;
	}
	return inv_db_insert_wait(db, err, size);
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
 * Register a generation cycle (once) and return how many invoices it
 * already has in the database: a generator restarted mid-cycle resumes
 * from there. Returns that count, or -1 with err set.
 */
int64_t
inv_db_cycle_begin(PGconn *db, const char *key, int64_t target,
    int64_t started_us, char *err, size_t size)
{
	char t[24], st[24];
	const char *params[3] = { key, t, st };
	PGresult *res;
	int64_t generated;

	snprintf(t, sizeof(t), "%" PRId64, target);
	snprintf(st, sizeof(st), "%" PRId64, started_us);
	res = PQexecParams(db, "INSERT INTO generation_cycles (cycle_key,"
	    " target, started_at) VALUES ($1, $2::bigint,"
	    " to_timestamp($3::bigint / 1e6)) ON CONFLICT (cycle_key) DO NOTHING",
	    3, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		seterr(err, size, "cannot record the cycle", PQerrorMessage(db));
		keep_state(res);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	res = PQexecParams(db, "SELECT generated FROM generation_cycles"
	    " WHERE cycle_key = $1", 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		seterr(err, size, "cannot read the cycle", PQerrorMessage(db));
		keep_state(res);
		PQclear(res);
		return -1;
	}
	generated = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return generated;
}

/*
 * The statement that commits with a batch of a cycle: the cycle's count
 * moves with its rows, in one transaction. key is escaped here.
 */
char *
inv_db_cycle_then(PGconn *db, const char *key, int n, int64_t last_id,
    char *buf, size_t size)
{
	char *lit = PQescapeLiteral(db, key, strlen(key));

	if (lit == NULL)
		return NULL;
	snprintf(buf, size, "UPDATE generation_cycles SET generated ="
	    " generated + %d, last_id = GREATEST(coalesce(last_id, 0), %"
	    PRId64 "), updated_at = now() WHERE cycle_key = %s", n, last_id,
	    lit);
	PQfreemem(lit);
	return buf;
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
