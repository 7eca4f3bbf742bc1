/*
 * Server-Sent Events: the clients, the ring of recent invoices, and the
 * broadcast. Each event is formatted once into a reference-counted
 * message that every client's output buffer points at
 * (evbuffer_add_reference), so a broadcast costs a pointer per client,
 * not a copy. Every live client gets the same events in the same order;
 * a client whose unsent queue would pass --client-queue is dropped at
 * once, so it never holds back the others (it reconnects and resumes
 * with Last-Event-ID).
 *
 * A resuming client is replayed what it missed: from the ring when the
 * ring reaches back far enough, else from PostgreSQL (only ids up to
 * ring_base, which were all displayed) and then the ring, a page at a
 * time, each page sent when the one before has been written out. Only
 * then does it join the live list, so it sees nothing twice and misses
 * nothing. When that cannot be done it gets an explicit "event: reset"
 * and the recent invoices.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "invoice.h"
#include "invserve.h"
#include "log.h"
#include "util.h"

#define PAGE		500		/* invoices sent to a client at once */
#define REPLAY_MAX	100000		/* ids further back get a reset */
#define HEARTBEAT_S	15
#define WRITE_TIMEOUT_S	30
#define RETRY_MS	2000
#define DIRECT_BUDGET_NS 20000000	/* of direct writes per broadcast */

enum { CL_CATCHUP, CL_LIVE, CL_GONE };


struct client {
	TAILQ_ENTRY(client) cl_entry;
	struct evhttp_request	 *cl_req;
	struct evhttp_connection *cl_conn;
	int64_t		 cl_last;	/* highest invoice id it has */
	int		 cl_state;
	int		 cl_chunked;	/* HTTP/1.1: events go out as chunks */
	int		 cl_fd;
	int		 cl_querying;	/* a PostgreSQL query points here */
	unsigned	 cl_meta;	/* meta_version of its state and stats */
};

static TAILQ_HEAD(, client) live = TAILQ_HEAD_INITIALIZER(live);
static TAILQ_HEAD(, client) catching = TAILQ_HEAD_INITIALIZER(catching);
static size_t	 nclients;

/* The ring: ring_count messages from ring_head, ids increasing. */
static struct msg **ring;
static size_t	 ring_head, ring_count;
static int64_t	 ring_base;	/* every displayed id > this is in the ring */
static int	 prefilled, prefilling;

static struct evbuffer *tmp;
static struct event *heartbeat;
static struct msg *hb_msg, *state_msg, *stats_msg;
static unsigned	 meta_version;	/* bumped when state or stats change */
/* One timeout shared by every stream: a queue, not a heap, in libevent. */
static const struct timeval *write_timeout;

int64_t	 served;
char	 stats_json[1024];
static char state_json[1024];

static void	 catch_up(struct client *);

/* ---- messages (frame.c makes them) ---- */

static void
msg_cleanup(const void *data, size_t len, void *arg)
{
	msg_unref(arg);
}

/* Queue a reference to m on the evbuffer every send goes through. */
static void
queue_msg(struct msg *m)
{
	if (evbuffer_add_reference(tmp, m->m_data, m->m_len, msg_cleanup,
	    m) == 0)
		m->m_refs++;
}

/* ---- the ring ---- */

static struct msg *
ring_at(size_t i)
{
	return ring[(ring_head + i) % cfg.ring_size];
}

static void
ring_push(struct msg *m)
{
	if (ring_count == (size_t)cfg.ring_size) {
		struct msg *old = ring[ring_head];

		ring_base = old->m_id;
		msg_unref(old);
		ring_head = (ring_head + 1) % cfg.ring_size;
		ring_count--;
	}
	m->m_refs++;
	ring[(ring_head + ring_count) % cfg.ring_size] = m;
	ring_count++;
}

/* The index of the first message with an id above id. */
static size_t
ring_after(int64_t id)
{
	size_t lo = 0, hi = ring_count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ring_at(mid)->m_id <= id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

size_t
sse_ring_count(void)
{
	return ring_count;
}

/*
 * The invoices with ids below before, newest first, at most limit, as
 * JSON objects separated by commas into buf (for /api/invoices without
 * a database). Returns how many.
 */
int
sse_ring_page(int64_t before, int limit, struct evbuffer *buf)
{
	size_t i = ring_after(before - 1);
	int n = 0;

	while (i > 0 && n < limit) {
		struct msg *m = ring_at(--i);
		const char *d = memmem(m->m_data, m->m_len, "data: ", 6);
		const char *e;

		if (d == NULL || (e = memchr(d, '\n', m->m_data + m->m_len -
		    d)) == NULL)
			continue;
		evbuffer_add_printf(buf, "%s%.*s", n > 0 ? "," : "",
		    (int)(e - d - 6), d + 6);
		n++;
	}
	return n;
}

/* What a restart knew was served: nothing at or below it is in the ring. */
void
sse_served_floor(int64_t id)
{
	if (id > served)
		served = id;
	if (ring_count == 0 && id > ring_base)
		ring_base = id;
}

struct prefill {
	int64_t	p_upto;
	int	p_limit;
};

static void
on_prefill(PGresult *res, const char *why, void *arg)
{
	struct prefill *p = arg;
	int64_t upto = p->p_upto, id;
	size_t room = (size_t)cfg.ring_size - ring_count;
	char line[INV_LINE_MAX];
	int i, n, len, limit = p->p_limit;

	free(p);
	prefilling = 0;
	if (res == NULL)
		return;		/* tried again when PostgreSQL is back */
	prefilled = 1;
	if (upto != ring_base)
		return;		/* the ring moved on meanwhile: it is full */
	n = PQntuples(res);
	/* Rows come newest first: prepend each. */
	for (i = 0; i < n && room > 0; i++, room--) {
		struct msg *m;

		if ((len = invoice_json_row(res, i, line, sizeof(line),
		    &id)) < 0 || (m = msg_new(id, "invoice", line,
		    len)) == NULL)
			break;
		ring_head = (ring_head + cfg.ring_size - 1) % cfg.ring_size;
		ring[ring_head] = m;
		ring_count++;
		ring_base = id - 1;
	}
	if (i == n && n < limit)
		ring_base = 0;	/* that was everything displayed */
	if (n > 0 && inv_verbose)
		inv_info("ring: %d recent invoices loaded from PostgreSQL", i);
}

/* Load the ring with the newest invoices displayed before this start. */
void
sse_prefill(void)
{
	static const char sql[] = "SELECT %s FROM invoices WHERE id <= $1"
	    " ORDER BY id DESC LIMIT $2";
	static char q[1024];
	char a[32], b[32];
	const char *params[2] = { a, b };
	struct prefill *p;

	if (prefilled || prefilling || ring_base <= 0 ||
	    ring_count >= (size_t)cfg.ring_size || !pg_ok())
		return;
	if ((p = malloc(sizeof(*p))) == NULL)
		return;
	p->p_upto = ring_base;
	p->p_limit = (int)((size_t)cfg.ring_size - ring_count);
	snprintf(q, sizeof(q), sql, invoice_columns);
	snprintf(a, sizeof(a), "%" PRId64, ring_base);
	snprintf(b, sizeof(b), "%d", p->p_limit);
	prefilling = 1;
	if (pg_query(q, 2, params, on_prefill, p) < 0) {
		prefilling = 0;
		free(p);
	}
}

/* ---- clients ---- */

static struct evbuffer *
out(struct client *cl)
{
	return bufferevent_get_output(evhttp_connection_get_bufferevent(
	    cl->cl_conn));
}

static size_t
pending(struct client *cl)
{
	return evbuffer_get_length(out(cl));
}

/* Take a client off its list; a query may still point at it. */
static void
client_unlink(struct client *cl)
{
	if (cl->cl_state == CL_GONE)
		return;
	if (cl->cl_state == CL_LIVE)
		TAILQ_REMOVE(&live, cl, cl_entry);
	else
		TAILQ_REMOVE(&catching, cl, cl_entry);
	cl->cl_state = CL_GONE;
	cl->cl_req = NULL;
	cl->cl_conn = NULL;
	nclients--;
}

static void
client_free(struct client *cl)
{
	client_unlink(cl);
	if (!cl->cl_querying)
		free(cl);
}

static void
on_close(struct evhttp_connection *conn, void *arg)
{
	struct client *cl = arg;

	/*
	 * When the peer closed, evhttp has detached the request from the
	 * connection and left it to us; when we freed the connection, the
	 * request goes with it.
	 */
	if (evhttp_request_get_connection(cl->cl_req) == NULL)
		evhttp_request_free(cl->cl_req);
	client_free(cl);
}

/* Drop a client: freeing the connection runs on_close, which frees cl. */
static void
client_drop(struct client *cl, const char *why)
{
	if (inv_verbose > 1)
		inv_info("SSE client dropped: %s", why);
	evhttp_connection_free(cl->cl_conn);
}

/* Send what is queued on tmp as one chunk (done_cb: when written out). */
static void
flush_to(struct client *cl, void (*done_cb)(struct evhttp_connection *,
    void *))
{
	if (done_cb != NULL)
		evhttp_send_reply_chunk_with_cb(cl->cl_req, tmp, done_cb, cl);
	else
		evhttp_send_reply_chunk(cl->cl_req, tmp);
}

static void
go_live(struct client *cl)
{
	TAILQ_REMOVE(&catching, cl, cl_entry);
	cl->cl_state = CL_LIVE;
	TAILQ_INSERT_TAIL(&live, cl, cl_entry);
	if (cl->cl_meta != meta_version) {
		/* State or stats changed while it was catching up. */
		if (state_msg != NULL)
			queue_msg(state_msg);
		if (stats_msg != NULL)
			queue_msg(stats_msg);
		flush_to(cl, NULL);
	}
}

/* Queue the newest backfill invoices of the ring. */
static void
queue_backfill(struct client *cl)
{
	size_t i = ring_count > (size_t)cfg.backfill ?
	    ring_count - (size_t)cfg.backfill : 0;

	for (; i < ring_count; i++) {
		queue_msg(ring_at(i));
		stats.events_sent++;
		cl->cl_last = ring_at(i)->m_id;
	}
}

static void
send_reset(struct client *cl, const char *why)
{
	char data[256];
	struct msg *m;

	stats.resets++;
	snprintf(data, sizeof(data), "{\"reason\":\"%s\"}", why);
	if ((m = msg_new(0, "reset", data, strlen(data))) != NULL) {
		queue_msg(m);
		msg_unref(m);
	}
	cl->cl_last = 0;
	queue_backfill(cl);
	flush_to(cl, NULL);
	go_live(cl);
}

/*
 * A page of a catch-up is written out. evhttp keeps calling this after
 * every later write too (broadcasts bypass it): only a client still
 * catching up takes it.
 */
static void
on_drained(struct evhttp_connection *conn, void *arg)
{
	struct client *cl = arg;

	if (cl->cl_state == CL_CATCHUP)
		catch_up(cl);
}

struct replay {
	struct client	*r_cl;
	int64_t		 r_hi;
};

static void
on_replay(PGresult *res, const char *why, void *arg)
{
	struct replay *r = arg;
	struct client *cl = r->r_cl;
	char line[INV_LINE_MAX];
	int64_t id, hi = r->r_hi;
	int i, n, len;

	free(r);
	cl->cl_querying = 0;
	if (cl->cl_state == CL_GONE) {
		free(cl);
		return;
	}
	if (res == NULL) {
		send_reset(cl, "PostgreSQL is unavailable");
		return;
	}
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		struct msg *m;

		if ((len = invoice_json_row(res, i, line, sizeof(line),
		    &id)) < 0 || (m = msg_new(id, "invoice", line,
		    len)) == NULL)
			continue;
		queue_msg(m);
		msg_unref(m);
		stats.events_sent++;
		cl->cl_last = id;
	}
	/* A short page means the range is done, gaps in the ids included. */
	if (n < PAGE)
		cl->cl_last = hi;
	if (evbuffer_get_length(tmp) > 0)
		flush_to(cl, on_drained);
	else
		catch_up(cl);
}

/*
 * One step of a resume: a page from PostgreSQL for ids below the ring,
 * or a page of the ring; the next step runs when that page is written
 * out. The last step joins the live list.
 */
static void
catch_up(struct client *cl)
{
	static char q[1024];
	struct replay *r;
	char a[32], b[32], c[32];
	const char *params[3] = { a, b, c };
	size_t i, n;

	if (cl->cl_last < ring_base) {
		if (ring_base - cl->cl_last > REPLAY_MAX) {
			send_reset(cl, "too far behind");
			return;
		}
		if (!pg_ok() || (r = malloc(sizeof(*r))) == NULL) {
			send_reset(cl, pg_configured() ?
			    "PostgreSQL is unavailable" :
			    "no database to replay from");
			return;
		}
		r->r_cl = cl;
		r->r_hi = ring_base;
		snprintf(q, sizeof(q), "SELECT %s FROM invoices WHERE id > $1"
		    " AND id <= $2 ORDER BY id LIMIT $3", invoice_columns);
		snprintf(a, sizeof(a), "%" PRId64, cl->cl_last);
		snprintf(b, sizeof(b), "%" PRId64, ring_base);
		snprintf(c, sizeof(c), "%d", PAGE);
		cl->cl_querying = 1;
		if (pg_query(q, 3, params, on_replay, r) < 0) {
			cl->cl_querying = 0;
			free(r);
			send_reset(cl, "PostgreSQL is unavailable");
		}
		return;
	}
	i = ring_after(cl->cl_last);
	n = ring_count - i;
	if (n > PAGE)
		n = PAGE;
	for (; n > 0; n--, i++) {
		queue_msg(ring_at(i));
		stats.events_sent++;
		cl->cl_last = ring_at(i)->m_id;
	}
	if (i < ring_count) {
		flush_to(cl, on_drained);
		return;
	}
	if (evbuffer_get_length(tmp) > 0)
		flush_to(cl, NULL);
	go_live(cl);
}

/* The id a client says it has, from Last-Event-ID or ?last_event_id=. */
static int
last_event_id(struct evhttp_request *req, int64_t *id)
{
	const char *v = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Last-Event-ID"), *errstr;
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	struct evkeyvalq params;
	long long n;
	int rv = 0;

	TAILQ_INIT(&params);
	if ((v == NULL || *v == '\0') && query != NULL &&
	    evhttp_parse_query_str(query, &params) == 0)
		v = evhttp_find_header(&params, "last_event_id");
	if (v != NULL && *v != '\0') {
		rv = inv_parse_int(v, 0, INV_ID_MAX, &n, &errstr) < 0 ? -1 : 1;
		*id = n;
	}
	evhttp_clear_headers(&params);
	return rv;
}

static void
shed(struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *body = evbuffer_new();

	stats.clients_shed++;
	evhttp_add_header(h, "Content-Type", "text/event-stream");
	evhttp_add_header(h, "Cache-Control", "no-cache");
	evhttp_add_header(h, "Connection", "close");
	http_cors(req);
	/* Come back in 10 to 30 s, not all at the same moment. */
	evbuffer_add_printf(body, "retry: %u\n\n", 10000 + jitter(20000));
	evhttp_send_reply(req, 200, "OK", body);
	evbuffer_free(body);
}

/*
 * An open stream's request headers, and its response headers once
 * sent, are read no more, yet would stay for as long as it is open (a
 * browser sends 0.5-1 KiB of them). Only what evhttp reads when a stream
 * ends is kept: whether the connection closes after it.
 */
static void
headers_prune(struct evkeyvalq *h)
{
	struct evkeyval *kv, *next;

	for (kv = TAILQ_FIRST(h); kv != NULL; kv = next) {
		next = TAILQ_NEXT(kv, next);
		/* Earlier headers of the same name went already: this is kv. */
		if (strcasecmp(kv->key, "Connection") != 0 &&
		    strcasecmp(kv->key, "Proxy-Connection") != 0)
			evhttp_remove_header(h, kv->key);
	}
}

void
sse_open(struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	struct bufferevent *bev = evhttp_connection_get_bufferevent(conn);
	struct client *cl;
	int one = 1;
	int64_t last = 0;
	int resume;
	char retry[32];

	if (shutting_down()) {
		http_error(req, 503, "shutting down");
		return;
	}
	if (nclients >= (size_t)cfg.max_clients) {
		shed(req);
		return;
	}
	if ((cl = calloc(1, sizeof(*cl))) == NULL) {
		http_error(req, 503, "out of memory");
		return;
	}
	resume = last_event_id(req, &last);
	cl->cl_req = req;
	cl->cl_conn = conn;
	cl->cl_state = CL_CATCHUP;
	cl->cl_meta = meta_version;
	TAILQ_INSERT_TAIL(&catching, cl, cl_entry);
	nclients++;
	stats.clients_total++;

	evhttp_add_header(h, "Content-Type", "text/event-stream");
	evhttp_add_header(h, "Cache-Control", "no-cache");
	evhttp_add_header(h, "X-Accel-Buffering", "no");
	http_cors(req);
	evhttp_send_reply_start(req, 200, "OK");
	cl->cl_chunked = evhttp_find_header(h, "Transfer-Encoding") != NULL;
	headers_prune(h);
	headers_prune(evhttp_request_get_input_headers(req));
	http_stream(req, on_close, cl);
	/*
	 * Watch for the peer closing (evhttp stopped reading when the
	 * request arrived) without a read timeout, which would end an
	 * idle stream; a write that makes no progress for
	 * WRITE_TIMEOUT_S ends a stalled one. A client that talks while
	 * it listens is not read past a few KiB.
	 */
	bufferevent_set_timeouts(bev, NULL, write_timeout);
	/*
	 * Each event is a small write: without this, Nagle holds one back
	 * until the client's delayed ACK of the one before (tens of ms).
	 */
	cl->cl_fd = bufferevent_getfd(bev);
	(void)setsockopt(cl->cl_fd, IPPROTO_TCP, TCP_NODELAY, &one,
	    sizeof(one));
	bufferevent_setwatermark(bev, EV_READ, 0, 4096);
	bufferevent_enable(bev, EV_READ);

	snprintf(retry, sizeof(retry), "retry: %u\n\n", RETRY_MS + jitter(1000));
	evbuffer_add(tmp, retry, strlen(retry));
	if (state_msg != NULL)
		queue_msg(state_msg);
	if (stats_msg != NULL)
		queue_msg(stats_msg);
	if (resume < 0) {
		send_reset(cl, "bad Last-Event-ID");
		return;
	}
	if (resume == 0) {
		queue_backfill(cl);
		flush_to(cl, NULL);
		go_live(cl);
		return;
	}
	stats.resumes++;
	cl->cl_last = last;
	if (last >= served) {
		/* Up to date (or ahead: it only gets newer ids). */
		flush_to(cl, NULL);
		go_live(cl);
		return;
	}
	catch_up(cl);
}

/*
 * Write m to a live client, framed once for everyone. With direct set
 * and nothing queued, the socket takes it at once; what it does not
 * take is queued by reference, in order, for the loop to write.
 */
static int
client_write(struct client *cl, struct msg *m, int direct)
{
	struct evbuffer *o = out(cl);
	const char *p = cl->cl_chunked ? m->m_frame : m->m_data;
	size_t len = cl->cl_chunked ? m->m_flen : m->m_len;
	ssize_t n = 0;

	if (direct && evbuffer_get_length(o) == 0 &&
	    (n = send(cl->cl_fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL)) < 0)
		n = 0;	/* queued: libevent sees any error and closes */
	if ((size_t)n == len)
		return 0;
	if (evbuffer_add_reference(o, p + n, len - (size_t)n, msg_cleanup,
	    m) < 0)
		return -1;
	m->m_refs++;
	return 0;
}

/*
 * Send m to every live client; drop the ones that cannot keep up.
 * Writing to each socket at once is cheapest while there are few
 * clients; with many, a loop of writes would hold up everything else,
 * so after DIRECT_BUDGET_NS the rest is queued and written by the
 * event loop in batches between other work.
 */
static void
broadcast(struct msg *m)
{
	struct client *cl, *next;
	int64_t t0 = inv_mono_ns();
	unsigned sent = 0;
	int direct = 1;

	stats.broadcasts++;
	TAILQ_FOREACH_SAFE(cl, &live, cl_entry, next) {
		if (m->m_id > 0 && m->m_id <= cl->cl_last)
			continue;	/* it has this one already */
		if (pending(cl) + m->m_flen > (size_t)cfg.client_queue) {
			stats.clients_dropped++;
			client_drop(cl, "its queue is full");
			continue;
		}
		if (client_write(cl, m, direct) < 0) {
			client_drop(cl, "out of memory");
			continue;
		}
		/* Past the budget, the rest is left to the loop to write. */
		if (direct && (++sent & 63) == 0 &&
		    inv_mono_ns() - t0 > DIRECT_BUDGET_NS)
			direct = 0;
		stats.events_sent++;
		if (m->m_id > 0)
			cl->cl_last = m->m_id;
	}
}

void
sse_invoice(int64_t id, const char *line, size_t len)
{
	struct msg *m;

	if ((m = msg_new(id, "invoice", line, len)) == NULL) {
		inv_warnx("out of memory: invoice %" PRId64 " not sent", id);
		return;
	}
	if (id > served)
		served = id;
	ring_push(m);
	broadcast(m);
	msg_unref(m);
}

/* A new stats or state event; the last one is what new clients get first. */
static void
replace(struct msg **slot, char *copy, size_t copysize, const char *event,
    const char *json, size_t len)
{
	struct msg *m;

	if (len < copysize && strlen(copy) == len &&
	    memcmp(copy, json, len) == 0)
		return;		/* nothing changed */
	if ((m = msg_new(0, event, json, len)) == NULL)
		return;
	snprintf(copy, copysize, "%.*s", (int)len, json);
	msg_unref(*slot);
	*slot = m;
	meta_version++;
	broadcast(m);
}

void
sse_stats(const char *json, size_t len)
{
	replace(&stats_msg, stats_json, sizeof(stats_json), "stats", json, len);
}

void
sse_state(const char *json, size_t len)
{
	replace(&state_msg, state_json, sizeof(state_json), "state", json, len);
}

static void
on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	broadcast(hb_msg);
}

void
sse_init(void)
{
	struct timeval tv = { HEARTBEAT_S, 0 };
	struct timeval wtv = { WRITE_TIMEOUT_S, 0 };

	if ((ring = calloc((size_t)cfg.ring_size, sizeof(*ring))) == NULL ||
	    (tmp = evbuffer_new()) == NULL ||
	    (hb_msg = msg_text(": heartbeat\n\n")) == NULL)
		inv_err(EX_OSERR, "cannot start");
	write_timeout = event_base_init_common_timeout(base, &wtv);
	heartbeat = event_new(base, -1, EV_PERSIST, on_heartbeat, NULL);
	evtimer_add(heartbeat, &tv);
}

size_t
sse_clients(void)
{
	return nclients;
}

/*
 * SIGTERM: tell every client to come back after a jittered delay, spread
 * wider the more clients there are, and end its stream.
 */
void
sse_shutdown(void)
{
	struct client *cl;
	uint32_t spread = 1000 + (uint32_t)(nclients / 200) * 1000;
	char retry[32];

	if (spread > 30000)
		spread = 30000;
	event_del(heartbeat);
	while ((cl = TAILQ_FIRST(&live)) != NULL ||
	    (cl = TAILQ_FIRST(&catching)) != NULL) {
		snprintf(retry, sizeof(retry), "retry: %u\n\n",
		    1000 + jitter(spread));
		evbuffer_add(tmp, retry, strlen(retry));
		evhttp_connection_set_closecb(cl->cl_conn, NULL, NULL);
		flush_to(cl, NULL);
		evhttp_send_reply_end(cl->cl_req);
		client_free(cl);
	}
}
