/*
 * The JSON API: invoices (a keyset page from PostgreSQL), stats (from
 * the NS:stats hash, else a PostgreSQL aggregate), state, START and
 * STOP (the lib/control.c script, as invctl runs it), health and
 * metrics. Answers that wait on Redis or PostgreSQL carry the request
 * to the callback; neither ever blocks the loop.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>

#include "control.h"
#include "invoice.h"
#include "invserve.h"
#include "log.h"
#include "money.h"
#include "rds.h"
#include "util.h"

#define PAGE_DEFAULT	50
#define PAGE_MAX	500

const char invoice_columns[] = "id, invoice_number,"
    " to_char(invoice_date AT TIME ZONE 'UTC',"
    " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), seller_name, buyer_name,"
    " subtotal, vat_amount, total_amount";

static const char stats_sql[] = "SELECT count(*),"
    " coalesce(sum(subtotal * 100), 0)::bigint,"
    " coalesce(sum(vat_amount * 100), 0)::bigint,"
    " coalesce(sum(total_amount * 100), 0)::bigint FROM invoices";

/* Without Redis or PostgreSQL: the sums of what this process broadcast. */
static int64_t	 local_count, local_sub, local_vat, local_total;
static int	 local_dirty;
static int	 stats_polled;	/* the stream's stats come from PostgreSQL */
static struct event *tick;
static unsigned	 ticks;

/*
 * Row i of a SELECT of invoice_columns as an invoice line (no newline)
 * into buf. Returns its length, or -1 when a value does not fit.
 */
int
invoice_json_row(PGresult *res, int i, char *buf, size_t size, int64_t *id)
{
	struct inv_invoice iv;
	const char *why, *v;
	long long n;
	int len;

	memset(&iv, 0, sizeof(iv));
	if (inv_parse_int(PQgetvalue(res, i, 0), 1, INV_ID_MAX, &n,
	    &why) < 0)
		return -1;
	iv.id = n;
	snprintf(iv.number, sizeof(iv.number), "%s", PQgetvalue(res, i, 1));
	snprintf(iv.date, sizeof(iv.date), "%s", PQgetvalue(res, i, 2));
	snprintf(iv.seller, sizeof(iv.seller), "%s", PQgetvalue(res, i, 3));
	snprintf(iv.buyer, sizeof(iv.buyer), "%s", PQgetvalue(res, i, 4));
	v = PQgetvalue(res, i, 5);
	if (inv_money_parse(v, strlen(v), &iv.subtotal, &why) < 0)
		return -1;
	v = PQgetvalue(res, i, 6);
	if (inv_money_parse(v, strlen(v), &iv.vat, &why) < 0)
		return -1;
	v = PQgetvalue(res, i, 7);
	if (inv_money_parse(v, strlen(v), &iv.total, &why) < 0)
		return -1;
	len = inv_invoice_format(&iv, buf, size);
	if (len <= 0 || (size_t)len >= size)
		return -1;
	buf[--len] = '\0';	/* the newline */
	*id = iv.id;
	return len;
}

/* ---- /api/invoices ---- */

static void
on_invoices(PGresult *res, const char *why, void *arg)
{
	struct evhttp_request *req = arg;
	struct evbuffer *body;
	char line[INV_LINE_MAX];
	int64_t id;
	int i, n, len;

	if (res == NULL) {
		http_error(req, 503, "PostgreSQL is unavailable");
		return;
	}
	body = evbuffer_new();
	evbuffer_add(body, "[", 1);
	for (i = 0, n = PQntuples(res); i < n; i++) {
		if ((len = invoice_json_row(res, i, line, sizeof(line), &id)) < 0)
			continue;
		if (i > 0)
			evbuffer_add(body, ",", 1);
		evbuffer_add(body, line, (size_t)len);
	}
	evbuffer_add(body, "]\n", 2);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json");
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Cache-Control", "no-store");
	http_cors(req);
	evhttp_send_reply(req, 200, "OK", body);
	evbuffer_free(body);
}

void
api_invoices(struct evhttp_request *req)
{
	static char sql[1024];
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	long long before = INV_ID_MAX + 1, limit = PAGE_DEFAULT;
	char a[32], b[32], c[32], err[160];
	const char *params[3] = { a, b, c };

	if (uri_query_int(query, "before", 1, INV_ID_MAX + 1, &before, err,
	    sizeof(err)) < 0 || uri_query_int(query, "limit", 1, 1000000,
	    &limit, err, sizeof(err)) < 0) {
		http_error(req, 400, "%s", err);
		return;
	}
	if (limit > PAGE_MAX)
		limit = PAGE_MAX;
	if (!pg_configured()) {
		/* No database: what the ring still holds. */
		struct evbuffer *body = evbuffer_new();

		evbuffer_add(body, "[", 1);
		sse_ring_page(before, (int)limit, body);
		evbuffer_add(body, "]\n", 2);
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Content-Type", "application/json");
		http_cors(req);
		evhttp_send_reply(req, 200, "OK", body);
		evbuffer_free(body);
		return;
	}
	/* Only what was displayed: ids up to the highest broadcast. */
	snprintf(sql, sizeof(sql), "SELECT %s FROM invoices WHERE id < $1"
	    " AND id <= $2 ORDER BY id DESC LIMIT $3", invoice_columns);
	snprintf(a, sizeof(a), "%lld", before);
	snprintf(b, sizeof(b), "%" PRId64, served);
	snprintf(c, sizeof(c), "%lld", limit);
	if (pg_query(sql, 3, params, on_invoices, req) < 0)
		http_error(req, 503, "PostgreSQL is unavailable");
}

/* ---- stats ---- */

static int
stats_format(char *buf, size_t size, int64_t count, int64_t sub,
    int64_t vat, int64_t total, const char *source)
{
	char s[INV_MONEY_BUFSZ], v[INV_MONEY_BUFSZ], t[INV_MONEY_BUFSZ];
	char a[INV_MONEY_BUFSZ];

	return snprintf(buf, size, "{\"count\":%" PRId64 ",\"subtotal\":%s,"
	    "\"vat_amount\":%s,\"total_amount\":%s,\"average_amount\":%s,"
	    "\"source\":\"%s\"}", count,
	    inv_money_format(sub, s, sizeof(s)),
	    inv_money_format(vat, v, sizeof(v)),
	    inv_money_format(total, t, sizeof(t)),
	    inv_money_format(count > 0 ? inv_div_round(total, count) : 0, a,
	    sizeof(a)), source);
}

void
stats_local_add(int64_t sub, int64_t vat, int64_t total)
{
	local_count++;
	local_sub += sub;
	local_vat += vat;
	local_total += total;
	local_dirty = 1;
}

/* Where a stats answer goes: an HTTP request, or the SSE stream. */
struct stats_job {
	struct evhttp_request *sj_req;
};

static void
stats_done(struct stats_job *j, const char *json, int len)
{
	if (j->sj_req == NULL) {
		if (json != NULL)
			sse_stats(json, (size_t)len);
	} else if (json == NULL)
		http_error(j->sj_req, 503, "no statistics: Redis and "
		    "PostgreSQL are unavailable");
	else
		http_json(j->sj_req, 200, json);
	free(j);
}

static int64_t
col_int(PGresult *res, int col)
{
	return strtoll(PQgetvalue(res, 0, col), NULL, 10);
}

static void
on_stats_pg(PGresult *res, const char *why, void *arg)
{
	char json[512];
	int len;

	if (res == NULL) {
		stats_done(arg, NULL, 0);
		return;
	}
	len = stats_format(json, sizeof(json), col_int(res, 0), col_int(res, 1),
	    col_int(res, 2), col_int(res, 3), "postgres");
	if (((struct stats_job *)arg)->sj_req == NULL)
		stats_polled = 1;
	stats_done(arg, json, len);
}

static void
stats_from_pg(struct stats_job *j)
{
	if (pg_query(stats_sql, 0, NULL, on_stats_pg, j) < 0)
		stats_done(j, NULL, 0);
}

static int64_t
elem_int(redisReply *r, size_t i, int *ok)
{
	long long v;
	const char *errstr;

	if (r->element[i]->type != REDIS_REPLY_STRING ||
	    inv_parse_int(r->element[i]->str, 0, INT64_MAX / 2, &v,
	    &errstr) < 0) {
		*ok = 0;
		return 0;
	}
	return v;
}

static void
on_stats_redis(redisReply *r, void *arg)
{
	struct stats_job *j = arg;
	char json[512];
	int ok = 1, len;
	int64_t count, sub, vat, total;

	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
		stats_from_pg(j);
		return;
	}
	count = elem_int(r, 0, &ok);
	sub = elem_int(r, 1, &ok);
	vat = elem_int(r, 2, &ok);
	total = elem_int(r, 3, &ok);
	if (!ok) {
		/* No counters yet (no invstats): the database knows. */
		stats_from_pg(j);
		return;
	}
	len = stats_format(json, sizeof(json), count, sub, vat, total, "redis");
	if (j->sj_req == NULL)
		stats_polled = 0;
	stats_done(j, json, len);
}

static void
stats_fetch(struct evhttp_request *req)
{
	struct stats_job *j;
	char key[128], json[512];
	int len;

	if ((j = calloc(1, sizeof(*j))) == NULL) {
		if (req != NULL)
			http_error(req, 503, "out of memory");
		return;
	}
	j->sj_req = req;
	if (!rds_configured() && !pg_configured()) {
		len = stats_format(json, sizeof(json), local_count, local_sub,
		    local_vat, local_total, "invserve");
		stats_done(j, json, len);
		return;
	}
	if (rds_ok() && rds_command(on_stats_redis, j,
	    "HMGET %s count subtotal vat total",
	    inv_key(key, sizeof(key), "stats")) == 0)
		return;
	stats_from_pg(j);
}

void
api_stats(struct evhttp_request *req)
{
	stats_fetch(req);
}

/* New stats for the stream (on connect, or polling while Redis is away). */
void
api_stats_refresh(void)
{
	stats_fetch(NULL);
}

/* ---- state and control ---- */

static int	 state_busy, state_again;

static void
on_state(redisReply *r, void *arg)
{
	struct evhttp_request *req = arg;
	char json[INV_CONTROL_JSON_MAX], err[256];

	if (inv_control_reply(r, json, sizeof(json), err, sizeof(err)) < 0) {
		if (req != NULL)
			http_error(req, 503, "%s", err);
	} else if (req != NULL)
		http_json(req, 200, json);
	else
		sse_state(json, strlen(json));
	if (req == NULL) {
		state_busy = 0;
		if (state_again) {
			state_again = 0;
			api_state_refresh();
		}
	}
}

static int
state_fetch(struct evhttp_request *req)
{
	struct inv_control_cmd cmd;

	inv_control_cmd(&cmd, INV_CONTROL_STATUS, NULL);
	return rds_command_argv(on_state, req, cmd.argc, cmd.argv,
	    cmd.argvlen);
}

void
api_state(struct evhttp_request *req)
{
	if (!rds_configured())
		http_json(req, 200, INV_CONTROL_IDLE_JSON);
	else if (state_fetch(req) < 0)
		http_error(req, 503, "Redis is unavailable");
}

/* Fetch the state for the stream; at most one fetch in flight. */
void
api_state_refresh(void)
{
	if (!rds_configured()) {
		sse_state(INV_CONTROL_IDLE_JSON, strlen(INV_CONTROL_IDLE_JSON));
		return;
	}
	if (state_busy) {
		state_again = 1;
		return;
	}
	if (state_fetch(NULL) == 0)
		state_busy = 1;
}

static void
on_control(redisReply *r, void *arg)
{
	struct evhttp_request *req = arg;
	char json[INV_CONTROL_JSON_MAX], err[256];
	int rv;

	rv = inv_control_reply(r, json, sizeof(json), err, sizeof(err));
	if (rv < 0)
		http_error(req, 503, "%s", err);
	else if (rv == 0) {
		char esc[512];

		inv_json_escape(err, esc, sizeof(esc));
		http_jsonf(req, 409, "{\"error\":\"%s\",\"state\":%s}", esc, json);
	} else
		http_json(req, 200, json);
}

/* The optional body of START: {"rate": 5, "duration": 300}. */
static int
control_args(struct evhttp_request *req, struct inv_control_args *a)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	json_error_t jerr;
	json_t *root, *v;
	const char *errstr;
	char text[64];
	long long d;

	memset(a, 0, sizeof(*a));
	a->rate_milli = INV_CONTROL_RATE;
	a->duration = INV_CONTROL_DURATION;
	a->now_us = inv_real_us();
	if (len == 0)
		return 0;
	root = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, &jerr);
	if (root == NULL || !json_is_object(root)) {
		http_error(req, 400, "the body is not a JSON object");
		json_decref(root);
		return -1;
	}
	if ((v = json_object_get(root, "rate")) != NULL) {
		if (json_is_integer(v))
			snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT,
			    json_integer_value(v));
		else if (json_is_real(v))
			snprintf(text, sizeof(text), "%.3f", json_real_value(v));
		else
			text[0] = '\0';
		if (inv_parse_rate(text, &a->rate_milli) < 0 ||
		    a->rate_milli <= 0 || a->rate_milli > 1000000000) {
			http_error(req, 400, "bad rate: expected invoices per "
			    "second, more than 0 and at most 1000000");
			json_decref(root);
			return -1;
		}
	}
	if ((v = json_object_get(root, "duration")) != NULL) {
		snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT,
		    json_is_integer(v) ? json_integer_value(v) : -1);
		if (inv_parse_int(text, 1, 31536000, &d, &errstr) < 0) {
			http_error(req, 400, "bad duration: expected seconds, "
			    "1 to 31536000");
			json_decref(root);
			return -1;
		}
		a->duration = d;
	}
	json_decref(root);
	return 0;
}

/* Compare without an early exit, so the time taken tells nothing. */
static int
token_ok(const char *given, const char *want)
{
	size_t n = strlen(want), i;
	unsigned char diff = strlen(given) != n;

	for (i = 0; i < n; i++)
		diff |= (unsigned char)(given[i] ^ want[i]);
	return diff == 0;
}

void
api_control(struct evhttp_request *req, int start)
{
	struct inv_control_cmd cmd;
	struct inv_control_args a;
	const char *auth;

	if (!http_same_origin(req)) {
		http_error(req, 403, "cross-origin request refused");
		return;
	}
	if (cfg.token != NULL) {
		auth = evhttp_find_header(evhttp_request_get_input_headers(req),
		    "Authorization");
		if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0 ||
		    strlen(auth + 7) != strlen(cfg.token) ||
		    !token_ok(auth + 7, cfg.token)) {
			evhttp_add_header(evhttp_request_get_output_headers(req),
			    "WWW-Authenticate", "Bearer");
			http_error(req, 401, "a valid bearer token is required");
			return;
		}
	}
	if (control_args(req, &a) < 0)
		return;
	if (!rds_configured()) {
		http_error(req, 503, "control needs Redis (REDIS_URL)");
		return;
	}
	inv_control_cmd(&cmd, start ? INV_CONTROL_START : INV_CONTROL_STOP, &a);
	if (rds_command_argv(on_control, req, cmd.argc, cmd.argv,
	    cmd.argvlen) < 0)
		http_error(req, 503, "Redis is unavailable");
}

/* ---- health and metrics ---- */

static const char *
status_of(int configured, int ok)
{
	return !configured ? "off" : ok ? "ok" : "down";
}

void
api_healthz(struct evhttp_request *req)
{
	int pg_down = pg_configured() && !pg_ok();
	int redis_down = rds_configured() && !rds_ok();
	int code = 200;

	/*
	 * Without PostgreSQL the API cannot answer; without Redis the
	 * stream goes on (from the FIFO, stats from PostgreSQL) unless the
	 * stream itself comes from Redis.
	 */
	if (pg_down || (redis_down && (cfg.source_redis || !pg_configured())))
		code = 503;
	http_jsonf(req, code, "{\"postgres\":\"%s\",\"redis\":\"%s\"}",
	    status_of(pg_configured(), pg_ok()),
	    status_of(rds_configured(), rds_ok()));
}

static void
metric(struct evbuffer *b, const char *name, const char *type,
    const char *help, uint64_t v)
{
	evbuffer_add_printf(b, "# HELP invserve_%s %s\n# TYPE invserve_%s %s\n"
	    "invserve_%s %" PRIu64 "\n", name, help, name, type, name, v);
}

void
api_metrics(struct evhttp_request *req)
{
	static const char *const codes[] = { "400", "401", "403", "404", "405",
	    "other" };
	struct evbuffer *b = evbuffer_new();
	size_t i;

	metric(b, "clients", "gauge", "SSE clients connected.",
	    sse_clients());
	metric(b, "clients_total", "counter", "SSE clients accepted.",
	    stats.clients_total);
	metric(b, "clients_dropped_total", "counter",
	    "SSE clients dropped because their queue overflowed.",
	    stats.clients_dropped);
	metric(b, "clients_shed_total", "counter",
	    "SSE clients turned away past --max-clients.", stats.clients_shed);
	metric(b, "accept_pauses_total", "counter",
	    "Times accepting paused, out of descriptors.", stats.accept_pauses);
	metric(b, "events_sent_total", "counter",
	    "SSE events queued to clients.", stats.events_sent);
	metric(b, "broadcasts_total", "counter", "Events broadcast.",
	    stats.broadcasts);
	metric(b, "resumes_total", "counter",
	    "SSE clients that resumed with Last-Event-ID.", stats.resumes);
	metric(b, "resets_total", "counter",
	    "SSE clients sent a reset event.", stats.resets);
	metric(b, "ring_size", "gauge", "Invoices in the ring.",
	    sse_ring_count());
	metric(b, "last_id", "gauge", "Highest invoice id broadcast.",
	    (uint64_t)served);
	metric(b, "input_lines_total", "counter", "Input lines read.",
	    stats.input_lines);
	metric(b, "input_bad_lines_total", "counter",
	    "Input lines that are not invoices.", stats.input_bad);
	metric(b, "input_duplicates_total", "counter",
	    "Input lines dropped as already broadcast.", stats.input_dup);
	metric(b, "recovered_total", "counter",
	    "Invoices recovered from PostgreSQL at start.", stats.recovered);
	metric(b, "http_requests_total", "counter", "HTTP requests.",
	    stats.http_requests);
	metric(b, "http_no_request_total", "counter", "Connections closed "
	    "with a request begun and not whole, or before their first: "
	    "refused by evhttp (malformed, an unknown method), cut off (408, "
	    "or 414 and 431 past 16 KiB or 100 header lines), or left.",
	    stats.http_no_request);
	evbuffer_add_printf(b, "# HELP invserve_http_errors_total HTTP error "
	    "answers.\n# TYPE invserve_http_errors_total counter\n");
	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		evbuffer_add_printf(b, "invserve_http_errors_total{code=\"%s\"} %"
		    PRIu64 "\n", codes[i], stats.http_errors[i]);
	evbuffer_add_printf(b, "# HELP invserve_backend_errors_total Redis and "
	    "PostgreSQL errors.\n# TYPE invserve_backend_errors_total counter\n"
	    "invserve_backend_errors_total{backend=\"redis\"} %" PRIu64 "\n"
	    "invserve_backend_errors_total{backend=\"postgres\"} %" PRIu64 "\n",
	    stats.redis_errors, stats.pg_errors);
	metric(b, "up", "gauge", "Backends reachable (bit 0 Redis, bit 1 "
	    "PostgreSQL).", (uint64_t)(rds_ok() | pg_ok() << 1));
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

/* ---- every second ---- */

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	/*
	 * Redis away, or no counters in it (no invstats): the stream's
	 * stats come from PostgreSQL meanwhile, polled every second.
	 */
	if (++ticks % 10 == 0 && pg_ok() && ((rds_configured() && !rds_ok()) ||
	    stats_polled || stats_json[0] == '\0'))
		api_stats_refresh();
	if (!rds_configured() && !pg_configured() && local_dirty &&
	    ticks % 5 == 0) {
		local_dirty = 0;
		api_stats_refresh();
	}
}

void
api_init(void)
{
	struct timeval tv = { 0, 100000 };

	tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
	evtimer_add(tick, &tv);
}
