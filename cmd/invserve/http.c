/*
 * HTTP on libevent's evhttp: the listener, limits, routing, CORS and the
 * same-origin check, errors, and static files from the www directory.
 * evhttp parses every request; this file only decides what to answer.
 */
#include <sys/param.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "addr.h"
#include "invoice.h"
#include "invserve.h"
#include "log.h"
#include "util.h"

#define HEADERS_MAX	8192	/* above: 431 */
#define URI_MAX		4096	/* above: 414 */
#define HEAD_MAX	16384	/* line and headers; above: 414, 431 unparsed */
#define HEAD_LINES_MAX	100	/* header lines, above: 431 unparsed */
#define HEADERS_HARD	65536	/* evhttp's own cut-off, never reached first */
#define READ_MAX	65536	/* read ahead of evhttp, at most */
#define BODY_MAX	16384	/* above: 413 */
#define REQUEST_TIMEOUT_S 10	/* without a byte in or out: closed */
#define REQUEST_S	15	/* a request begun and not whole: 408 */
#define LINGER_S	5	/* after invserve's own 408, 414, 431: freed */

static struct evhttp *http;
static struct evconnlistener *listener;
static struct event *accept_again, *accept_settled;
static int	 accept_paused;		/* out of descriptors, said so */
static unsigned	 accept_pauses;		/* times paused since */

/*
 * Every request on a connection is watched, from its first byte until
 * route() sees it whole. evhttp's timeout is per read, so a client
 * that dribbles a header line every few seconds (slowloris) would hold
 * its descriptor for ever: a request still short of route() REQUEST_S
 * after it began gets a 408. The first request's clock starts at
 * accept, a later one's (keep-alive) at its first byte: a connection
 * that sits idle between requests is evhttp's to close, quietly, after
 * REQUEST_TIMEOUT_S. evhttp also keeps the whole head of a request
 * (line and headers) before route() can measure it, and answers its
 * own 400 past HEADERS_HARD: so an evbuffer callback on the input
 * counts the head's bytes and lines as they are read, and past
 * HEAD_MAX or HEAD_LINES_MAX answers 414 (no line end yet) or 431
 * itself, before evhttp has parsed them, and drops what follows.
 * HEAD_MAX bounds a connection's buffered head at 16 KiB plus one read
 * however much is sent.
 *
 * The watch is a state per connection: READING (a request awaited or
 * coming), ANSWERING (route() has it), SHUT (invserve answered it
 * itself). The answer's end (evhttp_request_set_on_complete_cb()) puts
 * it back to READING and scans what the client has pipelined behind,
 * which evhttp reads while it writes (for close detection) and keeps:
 * a read high-water mark of READ_MAX stops it there. An SSE
 * stream never ends its answer: sse_open() takes the connection out of
 * the watch with http_stream(), which hands the close callback (one
 * per connection) over to sse.c, so a stream pays nothing here.
 *
 * The bufferevent is made in on_new_conn(), before evhttp has made the
 * connection around it, so the watch starts on the fresh list holding
 * a reference; adopt_fresh() runs as soon as evhttp is done (the next
 * turn of the loop, or route() if that comes first), finds the
 * connection as the bufferevent's callback argument, takes its close
 * callback and files the entry under its descriptor. The watch ends,
 * and its reference goes, when the connection closes (on_watched_close(),
 * called by evhttp before it frees the bufferevent) or turns into a
 * stream, so no reference outlives the connection and a descriptor
 * closes when evhttp lets it go. While an entry is filed its reference
 * keeps the descriptor open, so the slot cannot be taken by another
 * connection. The reference also keeps the sweep safe should evhttp
 * ever free a connection without calling its close callback: freeing
 * clears the bufferevent's callbacks, the error callback among them
 * (evhttp clears the read callback alone while it writes).
 *
 * stats.http_no_request counts connections closed with a request begun
 * and not whole (the first counts from accept): refused by evhttp,
 * cut off here, or left by the client; not a keep-alive connection
 * closed idle after its answers.
 */
struct watch {
	struct bufferevent	*w_bev;
	struct evhttp_connection *w_conn;	/* NULL while fresh */
	struct evhttp_request	*w_req;	/* while ANSWERING */
	struct evbuffer_cb_entry *w_cb;	/* on the input buffer */
	evutil_socket_t		 w_fd;
	enum { W_READING, W_ANSWERING, W_SHUT } w_state;
	int64_t			 w_since;	/* CLOCK_MONOTONIC ns; 0 idle */
	size_t			 w_head;	/* bytes of the head so far */
	size_t			 w_line;	/* bytes of its current line */
	unsigned		 w_lines;	/* line ends in it */
	unsigned		 w_cr : 1;	/* the line began with CR */
	unsigned		 w_ended : 1;	/* its empty line came */
	TAILQ_ENTRY(watch)	 w_entry;
};
static TAILQ_HEAD(, watch) fresh = TAILQ_HEAD_INITIALIZER(fresh);
static TAILQ_HEAD(, watch) watches = TAILQ_HEAD_INITIALIZER(watches);
static struct watch **watched;	/* by descriptor */
static size_t	 nwatched;
static struct event *sweep_ev, *adopt_ev;

static void	 count_error(int);

uint32_t
jitter(uint32_t n)
{
	return n > 0 ? arc4random_uniform(n) : 0;
}

/* ---- the request watch ---- */

/* The watch is over: the connection goes, or turns into a stream. */
static void
unwatch(struct watch *w, int closing)
{
	if (closing && (w->w_state == W_SHUT ||
	    (w->w_state == W_READING && w->w_since != 0)))
		stats.http_no_request++;
	if (w->w_req != NULL)
		evhttp_request_set_on_complete_cb(w->w_req, NULL, NULL);
	if (w->w_cb != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_input(w->w_bev),
		    w->w_cb);
	if (w->w_conn != NULL) {
		watched[w->w_fd] = NULL;
		TAILQ_REMOVE(&watches, w, w_entry);
	} else
		TAILQ_REMOVE(&fresh, w, w_entry);
	bufferevent_decref(w->w_bev);
	free(w);
}

static void
on_watched_close(struct evhttp_connection *conn, void *arg)
{
	evhttp_connection_set_closecb(conn, NULL, NULL);
	unwatch(arg, 1);
}

/*
 * Answer a request that is not whole straight on the socket, and shut
 * it for writing; what the client sends after is read and dropped (so
 * it reads the answer rather than a reset) until it closes, evhttp's
 * timeout, or LINGER_S. Nothing of evhttp's is on the way out when a
 * request is still being read; should evhttp be answering one itself
 * (its own 400), it is left to that. The answer is one write that may
 * fall short: a client that pipelined past HEAD_MAX behind an answer it
 * has not read, so that the socket is still full, gets what fits and
 * the end of the stream, never a buffer held for it.
 */
static void
cut_off(struct watch *w, int code)
{
	static const struct { int code; const char *line, *error; } ans[] = {
		{ 408, "408 Request Timeout",
		    "the request took too long to come" },
		{ 414, "414 URI Too Long", "URI too long" },
		{ 431, "431 Request Header Fields Too Large",
		    "request headers too large" },
	};
	struct evbuffer *in = bufferevent_get_input(w->w_bev);
	evutil_socket_t fd = bufferevent_getfd(w->w_bev);
	char buf[256];
	size_t i;
	int n;

	if (fd < 0 || evbuffer_get_length(bufferevent_get_output(
	    w->w_bev)) > 0)
		return;
	for (i = 0; i < sizeof(ans) / sizeof(ans[0]) - 1; i++)
		if (ans[i].code == code)
			break;
	n = snprintf(buf, sizeof(buf), "HTTP/1.1 %s\r\n"
	    "Content-Type: application/json\r\nConnection: close\r\n"
	    "Content-Length: %zu\r\n\r\n{\"error\":\"%s\"}\n", ans[i].line,
	    strlen(ans[i].error) + 13, ans[i].error);
	count_error(ans[i].code);
	(void)write(fd, buf, (size_t)n);
	shutdown(fd, SHUT_WR);
	w->w_state = W_SHUT;
	w->w_since = inv_mono_ns();
	evbuffer_drain(in, evbuffer_get_length(in));
}

/*
 * Count the head in bytes from..end of the input, line by line as
 * evhttp reads it (LF or CRLF ends a line; an empty one ends the
 * head), and cut the request off past the limits.
 */
static void
scan_head(struct watch *w, struct evbuffer *in, size_t from)
{
	struct evbuffer_iovec v[4];
	struct evbuffer_ptr at;
	size_t len = evbuffer_get_length(in), seg;
	const char *p, *end, *nl;
	int i, n;

	while (from < len && !w->w_ended && w->w_state == W_READING) {
		if (evbuffer_ptr_set(in, &at, from, EVBUFFER_PTR_SET) < 0)
			return;
		n = evbuffer_peek(in, (ev_ssize_t)(len - from), &at, v, 4);
		for (i = 0; i < n && i < 4 && from < len && !w->w_ended;
		    i++) {
			p = v[i].iov_base;
			end = p + MIN(v[i].iov_len, len - from);
			from += (size_t)(end - p);
			while (p < end) {
				nl = memchr(p, '\n', (size_t)(end - p));
				seg = (size_t)((nl != NULL ? nl : end) - p);
				if (w->w_line == 0 && seg > 0)
					w->w_cr = *p == '\r';
				w->w_line += seg;
				w->w_head += seg;
				if (nl == NULL)
					break;
				w->w_head++;
				if (w->w_lines > 0 && (w->w_line == 0 ||
				    (w->w_line == 1 && w->w_cr))) {
					w->w_ended = 1;
					break;
				}
				w->w_lines++;
				w->w_line = 0;
				p = nl + 1;
			}
		}
		if (w->w_head > HEAD_MAX || w->w_lines > HEAD_LINES_MAX + 1)
			cut_off(w, w->w_lines == 0 ? 414 : 431);
	}
}

/* The input buffer changed: bytes of a request, or of what follows. */
static void
on_input(struct evbuffer *in, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct watch *w = arg;

	if (info->n_added == 0)
		return;
	switch (w->w_state) {
	case W_SHUT:
		evbuffer_drain(in, evbuffer_get_length(in));
		break;
	case W_READING:
		if (w->w_since == 0)
			w->w_since = inv_mono_ns();
		scan_head(w, in, evbuffer_get_length(in) - info->n_added);
		break;
	case W_ANSWERING:
		break;
	}
}

/* The next request on the connection: its head counted afresh. */
static void
watch_next(struct watch *w)
{
	struct evbuffer *in = bufferevent_get_input(w->w_bev);

	w->w_state = W_READING;
	w->w_req = NULL;
	w->w_head = w->w_line = 0;
	w->w_lines = 0;
	w->w_cr = w->w_ended = 0;
	w->w_since = 0;
	if (evbuffer_get_length(in) > 0) {
		/* Pipelined behind the last one. */
		w->w_since = inv_mono_ns();
		scan_head(w, in, 0);
	}
}

/* An answer is wholly written: the connection reads again. */
static void
on_answered(struct evhttp_request *req, void *arg)
{
	watch_next(arg);
}

/* File the connections evhttp has made since; see the comment above. */
static void
adopt_fresh(void)
{
	struct watch *w, **grown;
	bufferevent_event_cb ecb;
	void *conn;
	size_t n;

	while ((w = TAILQ_FIRST(&fresh)) != NULL) {
		/* evhttp's error callback is set while the connection lives. */
		bufferevent_getcb(w->w_bev, NULL, NULL, &ecb, &conn);
		w->w_fd = bufferevent_getfd(w->w_bev);
		if (ecb == NULL || conn == NULL || w->w_fd < 0) {
			/* evhttp has let it go already, without a request. */
			unwatch(w, 1);
			continue;
		}
		if ((size_t)w->w_fd >= nwatched) {
			n = MAX((size_t)w->w_fd + 1, nwatched * 2);
			if ((grown = reallocarray(watched, n,
			    sizeof(*grown))) == NULL) {
				unwatch(w, 0);
				continue;
			}
			memset(grown + nwatched, 0,
			    (n - nwatched) * sizeof(*grown));
			watched = grown;
			nwatched = n;
		}
		TAILQ_REMOVE(&fresh, w, w_entry);
		w->w_conn = conn;
		watched[w->w_fd] = w;
		TAILQ_INSERT_TAIL(&watches, w, w_entry);
		evhttp_connection_set_closecb(conn, on_watched_close, w);
	}
}

static void
on_adopt(evutil_socket_t fd, short what, void *arg)
{
	adopt_fresh();
}

/* The watch of the connection a request came on, if any. */
static struct watch *
watch_of(struct evhttp_request *req)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(
	    evhttp_request_get_connection(req));
	evutil_socket_t fd;

	adopt_fresh();
	if (bev == NULL || (fd = bufferevent_getfd(bev)) < 0 ||
	    (size_t)fd >= nwatched || watched[fd] == NULL ||
	    watched[fd]->w_bev != bev)
		return NULL;
	return watched[fd];
}

/* A request reached route(): its clock stops until it is answered. */
static void
watch_routed(struct evhttp_request *req)
{
	struct watch *w = watch_of(req);

	if (w == NULL)
		return;
	w->w_state = W_ANSWERING;
	w->w_req = req;
	evhttp_request_set_on_complete_cb(req, on_answered, w);
}

/*
 * The answer to req is a stream that never ends: the connection leaves
 * the watch, and its close callback is cb's from now on.
 */
void
http_stream(struct evhttp_request *req,
    void (*cb)(struct evhttp_connection *, void *), void *arg)
{
	struct watch *w = watch_of(req);

	if (w != NULL)
		unwatch(w, 0);
	evhttp_connection_set_closecb(evhttp_request_get_connection(req), cb,
	    arg);
}

/* ---- answers ---- */

static void
count_error(int code)
{
	static const int codes[] = { 400, 401, 403, 404, 405 };
	size_t i;

	if (code < 400)
		return;
	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i] == code)
			break;
	stats.http_errors[i]++;
}

static const char *
reason(int code)
{
	switch (code) {
	case 200: return "OK";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return NULL;
	}
}

void
http_json(struct evhttp_request *req, int code, const char *json)
{
	struct evbuffer *b = evbuffer_new();

	count_error(code);
	evbuffer_add_printf(b, "%s\n", json);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json");
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Cache-Control", "no-store");
	http_cors(req);
	evhttp_send_reply(req, code, reason(code), b);
	evbuffer_free(b);
}

void
http_jsonf(struct evhttp_request *req, int code, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	http_json(req, code, buf);
}

/* {"error":"..."} with the status code. */
void
http_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
	char msg[512], esc[1024];
	va_list ap;

	unsigned char *p, *end;
	int n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/*
	 * A message may echo what the client sent ("bad before '%ff'"), or
	 * be cut inside a character: each byte that is not valid UTF-8
	 * becomes '?', so the answer is always JSON.
	 */
	end = (unsigned char *)msg + strlen(msg);
	for (p = (unsigned char *)msg; p < end; p += n)
		if ((n = inv_utf8_len(p, end)) == 0) {
			*p = '?';
			n = 1;
		}
	inv_json_escape(msg, esc, sizeof(esc));
	http_jsonf(req, code, "{\"error\":\"%s\"}", esc);
}

/* ---- origins ---- */

static const char *
header(struct evhttp_request *req, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(req), name);
}

static const char *
allowed_origin(struct evhttp_request *req)
{
	const char *origin = header(req, "Origin");
	int i;

	if (origin == NULL)
		return NULL;
	for (i = 0; i < cfg.norigins; i++)
		if (strcmp(origin, cfg.origins[i]) == 0)
			return cfg.origins[i];
	return NULL;
}

/* CORS headers for an origin given with --allow-origin; none otherwise. */
void
http_cors(struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	const char *origin = allowed_origin(req);

	if (cfg.norigins > 0)
		evhttp_add_header(h, "Vary", "Origin");
	if (origin != NULL)
		evhttp_add_header(h, "Access-Control-Allow-Origin", origin);
}

/*
 * May this request change something? Browsers send Sec-Fetch-Site, and
 * Origin on every cross-origin POST; a request with neither is not from
 * a page (curl, invctl-like tools), so it cannot be a forgery.
 */
int
http_same_origin(struct evhttp_request *req)
{
	const char *site = header(req, "Sec-Fetch-Site");
	const char *origin = header(req, "Origin");
	const char *host = header(req, "Host"), *p;

	if (site != NULL && strcmp(site, "same-origin") != 0 &&
	    strcmp(site, "none") != 0)
		return 0;
	if (origin == NULL)
		return 1;
	if (host == NULL)
		return 0;
	if ((p = strstr(origin, "://")) == NULL)
		return 0;	/* "null", an opaque origin */
	return strcasecmp(p + 3, host) == 0;
}

/* ---- static files ---- */

static const char *
content_type(const char *path)
{
	static const struct { const char *ext, *type; } types[] = {
		{ ".html", "text/html; charset=utf-8" },
		{ ".css", "text/css; charset=utf-8" },
		{ ".js", "text/javascript; charset=utf-8" },
		{ ".mjs", "text/javascript; charset=utf-8" },
		{ ".json", "application/json" },
		{ ".svg", "image/svg+xml" },
		{ ".png", "image/png" },
		{ ".ico", "image/x-icon" },
		{ ".txt", "text/plain; charset=utf-8" },
		{ ".woff2", "font/woff2" },
		{ ".webmanifest", "application/manifest+json" },
	};
	const char *dot = strrchr(path, '.');
	size_t i;

	for (i = 0; dot != NULL && i < sizeof(types) / sizeof(types[0]); i++)
		if (strcasecmp(dot, types[i].ext) == 0)
			return types[i].type;
	return "application/octet-stream";
}

/*
 * A file under the www directory. The path is decoded, refused if any
 * segment is "..", and its real path must still be under the directory
 * (a symlink out is refused too).
 */
static void
serve_file(struct evhttp_request *req, const char *uripath)
{
	char path[PATH_MAX], real[PATH_MAX];
	size_t wlen = cfg.www != NULL ? strlen(cfg.www) : 0;
	struct evbuffer *b;
	struct stat st;
	int fd, rv;

	if (cfg.www == NULL) {
		http_error(req, 404, "not found");
		return;
	}
	if ((rv = uri_file_path(cfg.www, uripath, path, sizeof(path))) == -1) {
		http_error(req, 400, "bad path");
		return;
	}
	if (rv < 0 || realpath(path, real) == NULL ||
	    strncmp(real, cfg.www, wlen) != 0 || (real[wlen] != '/' &&
	    real[wlen] != '\0')) {
		http_error(req, 404, "not found");
		return;
	}
	if (stat(real, &st) == 0 && S_ISDIR(st.st_mode)) {
		/* A directory: its index, through a redirect so links work. */
		char loc[PATH_MAX];

		snprintf(loc, sizeof(loc), "%s/", uripath);
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Location", loc);
		evhttp_send_reply(req, 301, "Moved Permanently", NULL);
		return;
	}
	if ((fd = open(real, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0 ||
	    fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		http_error(req, 404, "not found");
		return;
	}
	b = evbuffer_new();
	if (evbuffer_add_file(b, fd, 0, st.st_size) < 0) {
		evbuffer_free(b);
		http_error(req, 500, "cannot read file");
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", content_type(real));
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Cache-Control", "no-cache");
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "X-Content-Type-Options", "nosniff");
	/* The control buttons must not be framed (clickjacking). */
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Security-Policy", "frame-ancestors 'none'");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

/* ---- routing ---- */

static size_t
headers_size(struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	struct evkeyval *kv;
	size_t n = 0;

	TAILQ_FOREACH(kv, h, next)
		n += strlen(kv->key) + strlen(kv->value) + 4;
	return n;
}

/*
 * Two Content-Lengths, or one beside Transfer-Encoding: evhttp frames
 * the body one way, a proxy in front may frame it another and pass on
 * what evhttp takes for a second request (request smuggling).
 */
static int
framing_ambiguous(struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	struct evkeyval *kv;
	int cl = 0, te = 0;

	TAILQ_FOREACH(kv, h, next) {
		if (strcasecmp(kv->key, "Content-Length") == 0)
			cl++;
		else if (strcasecmp(kv->key, "Transfer-Encoding") == 0)
			te++;
	}
	return cl > 1 || te > 1 || (cl > 0 && te > 0);
}

/*
 * The name of a query parameter given twice (read one way here and
 * another by a proxy in front), or "" when there are too many to
 * compare; NULL when the query is fine or not parsed at all (a handler
 * says what is wrong with it).
 */
static const char *
query_repeated(struct evhttp_request *req, char *name, size_t size)
{
	const char *query = evhttp_uri_get_query(
	    evhttp_request_get_evhttp_uri(req));
	struct evkeyvalq q;
	struct evkeyval *kv, *kw;
	const char *rv = NULL;
	int n = 0;

	TAILQ_INIT(&q);
	if (query == NULL || evhttp_parse_query_str(query, &q) < 0) {
		evhttp_clear_headers(&q);
		return NULL;
	}
	TAILQ_FOREACH(kv, &q, next) {
		if (++n > 64) {
			rv = "";
			break;
		}
		for (kw = TAILQ_NEXT(kv, next); kw != NULL && rv == NULL;
		    kw = TAILQ_NEXT(kw, next))
			if (strcmp(kv->key, kw->key) == 0) {
				snprintf(name, size, "%s", kv->key);
				rv = name;
			}
		if (rv != NULL)
			break;
	}
	evhttp_clear_headers(&q);
	return rv;
}

static void
not_allowed(struct evhttp_request *req, const char *allow)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
	    allow);
	http_error(req, 405, "method not allowed (allowed: %s)", allow);
}

/* OPTIONS: a CORS preflight for the GET endpoints (Last-Event-ID). */
static void
preflight(struct evhttp_request *req, const char *allow)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Allow", allow);
	if (allowed_origin(req) != NULL) {
		http_cors(req);
		evhttp_add_header(h, "Access-Control-Allow-Methods", "GET, HEAD");
		evhttp_add_header(h, "Access-Control-Allow-Headers",
		    "Last-Event-ID, Cache-Control");
		evhttp_add_header(h, "Access-Control-Max-Age", "600");
	} else if (cfg.norigins > 0)
		evhttp_add_header(h, "Vary", "Origin");
	evhttp_send_reply(req, 204, "No Content", NULL);
}

static void
route(struct evhttp_request *req, void *arg)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	int get = m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD;
	const char *dup;
	char dupname[64];

	watch_routed(req);
	stats.http_requests++;
	if (inv_verbose > 2)
		inv_info("%s", evhttp_request_get_uri(req));
	if (strlen(evhttp_request_get_uri(req)) > URI_MAX) {
		http_error(req, 414, "URI too long");
		return;
	}
	if (headers_size(req) > HEADERS_MAX) {
		http_error(req, 431, "request headers too large");
		return;
	}
	if (path == NULL || path[0] != '/') {
		http_error(req, 400, "bad request target");
		return;
	}
	if ((dup = query_repeated(req, dupname, sizeof(dupname))) != NULL) {
		if (*dup == '\0')
			http_error(req, 400, "more than 64 query parameters");
		else
			http_error(req, 400, "query parameter '%.40s' is given "
			    "more than once", dup);
		return;
	}
	if (framing_ambiguous(req)) {
		/* What follows on this connection cannot be trusted either. */
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Connection", "close");
		http_error(req, 400, "ambiguous body length (Content-Length "
		    "twice, or with Transfer-Encoding)");
		return;
	}
	if (strcmp(path, "/events") == 0) {
		if (m == EVHTTP_REQ_GET)
			sse_open(req);
		else if (m == EVHTTP_REQ_OPTIONS)
			preflight(req, "GET, OPTIONS");
		else
			not_allowed(req, "GET, OPTIONS");
	} else if (strcmp(path, "/api/invoices") == 0 ||
	    strcmp(path, "/api/stats") == 0 || strcmp(path, "/api/state") == 0) {
		if (m == EVHTTP_REQ_OPTIONS)
			preflight(req, "GET, HEAD, OPTIONS");
		else if (!get)
			not_allowed(req, "GET, HEAD, OPTIONS");
		else if (strcmp(path, "/api/invoices") == 0)
			api_invoices(req);
		else if (strcmp(path, "/api/stats") == 0)
			api_stats(req);
		else
			api_state(req);
	} else if (strcmp(path, "/api/start") == 0 ||
	    strcmp(path, "/api/stop") == 0) {
		if (m != EVHTTP_REQ_POST)
			not_allowed(req, "POST");
		else
			api_control(req, strcmp(path, "/api/start") == 0);
	} else if (strcmp(path, "/healthz") == 0 || strcmp(path, "/metrics") == 0) {
		if (!get)
			not_allowed(req, "GET, HEAD");
		else if (strcmp(path, "/healthz") == 0)
			api_healthz(req);
		else
			api_metrics(req);
	} else if (strncmp(path, "/api/", 5) == 0 || strcmp(path, "/api") == 0) {
		http_error(req, 404, "no such endpoint");
	} else if (!get) {
		not_allowed(req, "GET, HEAD");
	} else
		serve_file(req, path);
}

/* ---- listening ---- */

static struct bufferevent *
on_new_conn(struct event_base *b, void *arg)
{
	/* What evhttp makes itself, watched from the start. */
	struct bufferevent *bev = bufferevent_socket_new(b, -1,
	    BEV_OPT_CLOSE_ON_FREE);
	struct watch *w;

	if (bev != NULL && (w = calloc(1, sizeof(*w))) != NULL) {
		bufferevent_incref(bev);
		w->w_bev = bev;
		w->w_state = W_READING;
		w->w_since = inv_mono_ns();
		w->w_cb = evbuffer_add_cb(bufferevent_get_input(bev),
		    on_input, w);
		/* See the comment above struct watch. */
		bufferevent_setwatermark(bev, EV_READ, 0, READ_MAX);
		TAILQ_INSERT_TAIL(&fresh, w, w_entry);
		event_active(adopt_ev, EV_TIMEOUT, 0);
	}
	return bev;
}

static void
on_sweep(evutil_socket_t fd0, short what, void *arg)
{
	struct watch *w, *next;
	bufferevent_event_cb ecb;
	int64_t now = inv_mono_ns();

	adopt_fresh();
	for (w = TAILQ_FIRST(&watches); w != NULL; w = next) {
		next = TAILQ_NEXT(w, w_entry);
		bufferevent_getcb(w->w_bev, NULL, NULL, &ecb, NULL);
		if (ecb == NULL) {
			/*
			 * Freed by evhttp without its close callback, and
			 * with it any request it was answering.
			 */
			w->w_req = NULL;
			unwatch(w, 1);
			continue;
		}
		if (w->w_state == W_READING && w->w_since != 0 &&
		    now - w->w_since >= (int64_t)REQUEST_S * 1000000000)
			cut_off(w, 408);
		else if (w->w_state == W_SHUT &&
		    now - w->w_since >= (int64_t)LINGER_S * 1000000000)
			/* Runs on_watched_close(), which frees w. */
			evhttp_connection_free(w->w_conn);
	}
}

/*
 * Out of descriptors, accept pauses instead of spinning, and tries again
 * every 200 ms once a descriptor is free. Clients leave one at a time,
 * so accepting may stop and start many times before there is room
 * again: the pause is said once, and the end of it once accepting has
 * gone on for a second without running out.
 */
static void
on_accept_again(evutil_socket_t fd, short what, void *arg)
{
	struct timeval tv = { 0, 200000 }, settle = { 1, 0 };
	int probe;

	if ((probe = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		evtimer_add(accept_again, &tv);
		return;
	}
	close(probe);
	evconnlistener_enable(listener);
	evtimer_add(accept_settled, &settle);
}

static void
on_accept_settled(evutil_socket_t fd, short what, void *arg)
{
	inv_warnx("accepting connections again (paused %u times)",
	    accept_pauses);
	accept_paused = 0;
	accept_pauses = 0;
}

static void
on_accept_error(struct evconnlistener *l, void *arg)
{
	struct timeval tv = { 0, 200000 };
	int e = EVUTIL_SOCKET_ERROR();

	if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
		if (!accept_paused)
			inv_warnx("cannot accept: %s; pausing until a "
			    "descriptor is free",
			    evutil_socket_error_to_string(e));
		accept_paused = 1;
		accept_pauses++;
		stats.accept_pauses++;
		evconnlistener_disable(l);
		evtimer_del(accept_settled);
		evtimer_add(accept_again, &tv);
	}
}

int
http_start(const char *addr, char *err, size_t size)
{
	struct sockaddr_storage ss;
	struct timeval sweep_tv = { 1, 0 };
	int sslen;
	char host[INET6_ADDRSTRLEN];
	int port;

	if (inv_listen_parse(addr, &ss, &sslen, err, size) < 0)
		return -1;
	listener = evconnlistener_new_bind(base, NULL, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE,
	    4096, (struct sockaddr *)&ss, sslen);
	if (listener == NULL) {
		snprintf(err, size, "cannot listen on %s: %s", addr,
		    strerror(errno));
		return -1;
	}
	evconnlistener_set_error_cb(listener, on_accept_error);
	accept_again = evtimer_new(base, on_accept_again, NULL);
	accept_settled = evtimer_new(base, on_accept_settled, NULL);
	if ((http = evhttp_new(base)) == NULL ||
	    evhttp_bind_listener(http, listener) == NULL) {
		snprintf(err, size, "cannot start the HTTP server");
		return -1;
	}
	evhttp_set_max_headers_size(http, HEADERS_HARD);
	evhttp_set_max_body_size(http, BODY_MAX);
	evhttp_set_timeout(http, REQUEST_TIMEOUT_S);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
	    EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(http, route, NULL);
	evhttp_set_bevcb(http, on_new_conn, NULL);
	sweep_ev = event_new(base, -1, EV_PERSIST, on_sweep, NULL);
	adopt_ev = event_new(base, -1, 0, on_adopt, NULL);
	evtimer_add(sweep_ev, &sweep_tv);

	sslen = sizeof(ss);
	if (getsockname(evconnlistener_get_fd(listener), (struct sockaddr *)&ss,
	    (socklen_t *)&sslen) == 0) {
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
			port = ntohs(s6->sin6_port);
			if (inv_verbose)
				inv_info("listening on http://[%s]:%d/", host, port);
		} else {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
			port = ntohs(s4->sin_port);
			if (inv_verbose)
				inv_info("listening on http://%s:%d/", host, port);
		}
	}
	return 0;
}

/* Stop accepting; connections already open carry on. */
void
http_stop_accepting(void)
{
	if (listener != NULL)
		evconnlistener_disable(listener);
	if (accept_again != NULL)
		evtimer_del(accept_again);
	if (accept_settled != NULL)
		evtimer_del(accept_settled);
}

void
http_stop(void)
{
	struct watch *w;

	if (http != NULL)
		evhttp_free(http);
	http = NULL;
	/* Freeing evhttp closed the filed ones; these it had not made. */
	while ((w = TAILQ_FIRST(&fresh)) != NULL)
		unwatch(w, 0);
	free(watched);
	watched = NULL;
	nwatched = 0;
}
