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

/*
 * The COPY in flight: its rows go to libpq a piece at a time, as the
 * socket takes them. Handed over whole, they would sit in libpq's
 * output buffer, which moves what is left to its front after every
 * partial send: megabytes copied again and again per batch.
 */
#define COPY_PIECE	65536
static struct {
	PGconn		*conn;
	const char	*buf;
	size_t		 len;
	size_t		 off;
	int		 failed;
} copy;

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

/*
 * True when a statement failed on a unique key (SQLSTATE 23505). For
 * invgen, whose ids all come from the sequence, that is a batch sent
 * again meeting its own rows.
 */
int
inv_db_duplicate(PGconn *db)
{
	return db != NULL && strcmp(last_state, "23505") == 0;
}

/*
 * Take n ids from the invoices sequence, in increasing order. The
 * request is sent here and its answer read by inv_db_reserve_recv, so
 * a second connection can reserve the ids of a batch while the first
 * one copies another. The answer is the runs of consecutive ids, not
 * each id: one row, unless another session took ids meanwhile. Ids
 * that share v - g (g counting the calls) form a run; a run is taken
 * only when it holds every id from its least to its greatest, which
 * distinct ids in that many calls always do.
 */
int
inv_db_reserve_send(PGconn *db, int n, char *err, size_t size)
{
	char nbuf[16];
	const char *params[1] = { nbuf };

	snprintf(nbuf, sizeof(nbuf), "%d", n);
	if (!PQsendQueryParams(db, "SELECT min(v), max(v), count(*) FROM"
	    " (SELECT nextval('invoices_id_seq') AS v, g"
	    " FROM generate_series(1, $1::int) AS g) AS s"
	    " GROUP BY v - g ORDER BY 1", 1, NULL, params, NULL, NULL, 0)) {
		seterr(err, size, "cannot reserve invoice ids",
		    PQerrorMessage(db));
		keep_state(NULL);
		return -1;
	}
	return 0;
}

/*
 * The ids asked for by inv_db_reserve_send. While the answer is on its
 * way, the COPY queued on pump (if not NULL) is kept moving. Every
 * result is read, up to the end of the statement's transaction: only
 * then is the sequence's advance durable, so no id taken here can be
 * handed out again after a crash.
 */
/* The runs of the answer as n ids; -1 if they are not n ids in runs. */
static int
runs_to_ids(PGresult *res, int n, int64_t *ids)
{
	int64_t lo, hi, cnt, v;
	int i, k = 0;

	for (i = 0; i < PQntuples(res); i++) {
		lo = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		hi = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		cnt = strtoll(PQgetvalue(res, i, 2), NULL, 10);
		if (cnt < 1 || hi - lo + 1 != cnt || cnt > n - k)
			return -1;
		for (v = lo; v <= hi; v++)
			ids[k++] = v;
	}
	return k == n ? 0 : -1;
}

int
inv_db_reserve_recv(PGconn *db, int n, int64_t *ids, PGconn *pump, char *err,
    size_t size)
{
	PGresult *res;
	int got = 0, ok = 1;

	for (;;) {
		while (PQisBusy(db)) {
			struct pollfd pfd[2] = {
				{ PQsocket(db), POLLIN, 0 },
				{ pump != NULL ? PQsocket(pump) : -1, POLLOUT, 0 }
			};

			if (pump == NULL || !PQisnonblocking(pump) ||
			    PQflush(pump) <= 0)
				pfd[1].fd = -1;
			(void)poll(pfd, 2, 1000);
			if (!PQconsumeInput(db))
				break;
		}
		if ((res = PQgetResult(db)) == NULL)
			break;
		if (PQresultStatus(res) == PGRES_TUPLES_OK && !got &&
		    runs_to_ids(res, n, ids) == 0) {
			got = 1;
		} else if (ok) {
			ok = 0;
			keep_state(res);
		}
		PQclear(res);
	}
	if (!ok || !got || PQstatus(db) != CONNECTION_OK) {
		if (ok)
			keep_state(NULL);
		seterr(err, size, "cannot reserve invoice ids",
		    PQerrorMessage(db));
		return -1;
	}
	if (ids[n - 1] > INV_ID_MAX) {
		snprintf(err, size, "invoices_id_seq has passed %" PRId64
		    ", the largest invoice id the programs take (it gave %"
		    PRId64 ")", (int64_t)INV_ID_MAX, ids[n - 1]);
		return -2;
	}
	return 0;
}

int
inv_db_reserve_ids(PGconn *db, int n, int64_t *ids, char *err, size_t size)
{
	if (inv_db_reserve_send(db, n, err, size) < 0)
		return -1;
	return inv_db_reserve_recv(db, n, ids, NULL, err, size);
}

/*
 * COPY's binary format, so the server parses no numeric or timestamp
 * text: a signature, flags and header extension length, then per row a
 * field count and each field as its length and bytes, big-endian.
 */
static const char copy_header[19] = "PGCOPY\n\377\r\n\0"
    "\0\0\0\0" "\0\0\0\0";
static const char copy_trailer[2] = "\377\377";

#define PG_EPOCH_US	INT64_C(946684800000000)	/* 2000-01-01 UTC */
#define NUMERIC_NBASE	10000
#define NUMERIC_NEG	0x4000

static char *
put16(char *p, uint16_t v)
{
	p[0] = (char)(v >> 8);
	p[1] = (char)v;
	return p + 2;
}

static char *
put32(char *p, uint32_t v)
{
	p = put16(p, (uint16_t)(v >> 16));
	return put16(p, (uint16_t)v);
}

static char *
put64(char *p, uint64_t v)
{
	p = put32(p, (uint32_t)(v >> 32));
	return put32(p, (uint32_t)v);
}

static char *
put_text(char *p, const char *s)
{
	size_t len = strlen(s);

	p = put32(p, (uint32_t)len);
	memcpy(p, s, len);
	return p + len;
}

/*
 * An amount in cents as a binary NUMERIC with scale 2: base-10000 digits,
 * the weight of the first (its power of 10000), sign, display scale.
 * The integer part takes whole digits, the cents the first fractional
 * digit (cents * 100); zero digits at the end are left out.
 */
char *
inv_db_put_numeric(char *p, int64_t cents)
{
	uint64_t u = cents < 0 ? (uint64_t)0 - (uint64_t)cents :
	    (uint64_t)cents;
	uint64_t whole = u / 100;
	uint16_t group[8], digit[8];
	int ngroup = 0, n = 0, i;

	for (; whole > 0; whole /= NUMERIC_NBASE)
		group[ngroup++] = (uint16_t)(whole % NUMERIC_NBASE);
	for (i = ngroup - 1; i >= 0; i--)
		digit[n++] = group[i];
	digit[n++] = (uint16_t)(u % 100 * 100);
	while (n > 0 && digit[n - 1] == 0)
		n--;
	p = put32(p, 8 + 2 * (uint32_t)n);
	p = put16(p, (uint16_t)n);
	p = put16(p, (uint16_t)(int16_t)(n == 0 ? 0 : ngroup - 1));
	p = put16(p, cents < 0 ? NUMERIC_NEG : 0);
	p = put16(p, 2);
	for (i = 0; i < n; i++)
		p = put16(p, digit[i]);
	return p;
}

/*
 * An invoice's date in microseconds since the epoch. Its text is
 * RFC 3339; the whole seconds of the last one are kept, since one
 * second holds many invoices.
 */
static int
date_us(const char *date, int64_t *us)
{
	static __thread char last[20];
	static __thread int64_t last_us;
	const char *p = date + 20;
	int64_t frac = 0;

	if (strlen(date) == 27 && date[19] == '.' && date[26] == 'Z' &&
	    memcmp(date, last, 19) == 0) {
		for (; *p >= '0' && *p <= '9'; p++)
			frac = frac * 10 + (*p - '0');
		if (p == date + 26) {
			*us = last_us + frac;
			return 0;
		}
	}
	if (inv_time_parse(date, us) < 0)
		return -1;
	if (strlen(date) == 27 && date[19] == '.' && date[26] == 'Z') {
		memcpy(last, date, 19);
		last_us = *us - *us % 1000000;
		if (*us % 1000000 < 0)
			last_us -= 1000000;
	}
	return 0;
}

/*
 * Append one invoice as a row of COPY's binary format (the header
 * first, when the buffer is empty). -1 when out of memory or the date
 * is not RFC 3339.
 */
int
inv_db_copy_add(struct inv_copybuf *cb, const struct inv_invoice *iv)
{
	int64_t us;
	char *p;

	if (cb->len + INV_LINE_MAX * 2 > cb->cap) {
		size_t cap = cb->cap == 0 ? 1 << 20 : cb->cap * 2;

		if ((p = realloc(cb->buf, cap)) == NULL)
			return -1;
		cb->buf = p;
		cb->cap = cap;
	}
	if (date_us(iv->date, &us) < 0)
		return -1;
	p = cb->buf + cb->len;
	if (cb->len == 0) {
		memcpy(p, copy_header, sizeof(copy_header));
		p += sizeof(copy_header);
	}
	p = put16(p, 8);
	p = put32(p, 8);
	p = put64(p, (uint64_t)iv->id);
	p = put_text(p, iv->number);
	p = put32(p, 8);
	p = put64(p, (uint64_t)(us - PG_EPOCH_US));
	p = put_text(p, iv->seller);
	p = put_text(p, iv->buyer);
	p = inv_db_put_numeric(p, iv->subtotal);
	p = inv_db_put_numeric(p, iv->vat);
	p = inv_db_put_numeric(p, iv->total);
	cb->len = p - cb->buf;
	return 0;
}

static int copy_feed(PGconn *);

/*
 * Insert the rows of cb (inv_db_copy_add, ids already set) with one
 * COPY. Without a "then" statement the COPY is its own transaction;
 * with one, the COPY and that statement commit together. Either every
 * row is committed or none is. inv_db_copy_send starts it and returns
 * while the server works, so the caller can prepare the next batch;
 * inv_db_insert_wait collects the outcome.
 */
int
inv_db_copy_send(PGconn *db, const struct inv_copybuf *cb, const char *then,
    char *err, size_t size)
{
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
	    " FROM STDIN (FORMAT binary)");
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		seterr(err, size, "cannot insert invoices", PQerrorMessage(db));
		keep_state(res);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	/*
	 * Send the rows without waiting for the server to take them:
	 * inv_db_pump moves them on while the caller works, and
	 * inv_db_insert_wait sends the rest.
	 */
	PQsetnonblocking(db, 1);
	copy.conn = db;
	copy.buf = cb->buf;
	copy.len = cb->len;
	copy.off = 0;
	copy.failed = 0;
	copy_feed(db);
	return 0;
}

/*
 * Give libpq the next pieces of the COPY's rows while the socket takes
 * them without blocking; 1 once all are given (trailer and end too).
 */
static int
copy_feed(PGconn *db)
{
	size_t n;
	int r;

	if (db != copy.conn || copy.failed)
		return 1;
	while (copy.off < copy.len) {
		if ((r = PQflush(db)) != 0) {
			copy.failed = r < 0;
			return copy.failed;
		}
		n = copy.len - copy.off < COPY_PIECE ? copy.len - copy.off :
		    COPY_PIECE;
		if ((r = PQputCopyData(db, copy.buf + copy.off, (int)n)) != 1) {
			copy.failed = r < 0;
			return copy.failed;
		}
		copy.off += n;
	}
	if (PQputCopyData(db, copy_trailer, sizeof(copy_trailer)) != 1 ||
	    PQputCopyEnd(db, NULL) != 1)
		copy.failed = 1;
	copy.conn = NULL;
	return 1;
}

/*
 * Without blocking: send what is queued, as far as the socket takes it,
 * and take in what the server has sent for a statement in progress. A
 * large result would otherwise fill the socket, and the server would
 * wait for it to be read before finishing the statement.
 */
void
inv_db_pump(PGconn *db)
{
	if (db == NULL)
		return;
	if (db == copy.conn)
		(void)copy_feed(db);
	else if (PQisnonblocking(db))
		(void)PQflush(db);
	if (PQisBusy(db))
		(void)PQconsumeInput(db);
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

	while (!copy_feed(db) || (PQisnonblocking(db) &&
	    (r = PQflush(db)) > 0)) {
		struct pollfd pfd = { PQsocket(db), POLLOUT, 0 };

		(void)poll(&pfd, 1, 1000);
	}
	copy.conn = NULL;
	PQsetnonblocking(db, 0);
	while ((res = PQgetResult(db)) != NULL) {
		/* Rows that could not all be sent: the COPY fails whole. */
		if (PQresultStatus(res) == PGRES_COPY_IN)
			(void)PQputCopyEnd(db, "not every row could be sent");
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

/* Send and wait: the rows are committed, or -1 and none of them is. */
int
inv_db_copy(PGconn *db, const struct inv_copybuf *cb, const char *then,
    char *err, size_t size)
{
	if (inv_db_copy_send(db, cb, then, err, size) < 0) {
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
