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
#define HEADERS_HARD	65536	/* above: evhttp cuts the request off */
#define URI_MAX		4096	/* above: 414 */
#define BODY_MAX	16384	/* above: 413 */
#define REQUEST_TIMEOUT_S 10	/* without a byte in or out: closed */
#define FIRST_REQUEST_S	15	/* from accept to a whole request: 408 */

static struct evhttp *http;
static struct evconnlistener *listener;
static struct event *accept_again, *accept_settled;
static int	 accept_paused;		/* out of descriptors, said so */
static unsigned	 accept_pauses;		/* times paused since */

/*
 * A connection whose first request is not whole yet. evhttp's timeout
 * is per read, so a client that dribbles a header line every few
 * seconds (slowloris) would hold its descriptor for ever: each new
 * connection is watched until its first request reaches route(), and
 * one still short of it after FIRST_REQUEST_S gets a 408 and is shut.
 *
 * The bufferevent is made in on_new_conn(), before evhttp has made the
 * connection around it, so the watch starts on the fresh list holding
 * a reference; adopt_fresh() runs as soon as evhttp is done (the next
 * turn of the loop, or route() if that comes first), finds the
 * connection as the bufferevent's callback argument, asks for its
 * close callback and files the entry under its descriptor. The watch
 * ends, and its reference goes, when route() sees the first request
 * or when the connection closes (on_watched_close(), called by evhttp
 * before it frees the bufferevent), so no reference outlives the
 * connection and a descriptor closes when evhttp lets it go. While an
 * entry is filed its reference keeps the descriptor open, so the slot
 * cannot be taken by another connection. The reference also keeps
 * the sweep safe should evhttp ever free a connection without calling
 * its close callback: freeing clears the bufferevent's callbacks, the
 * error callback among them (evhttp clears the read callback alone
 * while it writes).
 *
 * A keep-alive connection's later requests are not watched. libevent
 * 2.1 can tell when a reply is wholly written
 * (evhttp_request_set_on_complete_cb()), so a watch could start again
 * there; it would then have to share the close callback with sse.c's
 * and tell a keep-alive connection's ordinary end from one that never
 * sent, which the counter below does not count.
 */
struct newconn {
	struct bufferevent	*nc_bev;
	struct evhttp_connection *nc_conn;	/* NULL while fresh */
	evutil_socket_t		 nc_fd;
	int64_t			 nc_since;	/* CLOCK_MONOTONIC ns */
	int			 nc_shut;
	TAILQ_ENTRY(newconn)	 nc_entry;
};
static TAILQ_HEAD(, newconn) freshconns = TAILQ_HEAD_INITIALIZER(freshconns);
static TAILQ_HEAD(, newconn) newconns = TAILQ_HEAD_INITIALIZER(newconns);
static struct newconn **watched;	/* by descriptor */
static size_t	 nwatched;
static struct event *sweep_ev, *adopt_ev;

uint32_t
jitter(uint32_t n)
{
	return n > 0 ? arc4random_uniform(n) : 0;
}

/* ---- the first-request watch ---- */

/* The watch is over: the request came, or the connection goes. */
static void
unwatch(struct newconn *nc, int counted)
{
	if (counted)
		stats.http_no_request++;
	if (nc->nc_conn != NULL) {
		watched[nc->nc_fd] = NULL;
		TAILQ_REMOVE(&newconns, nc, nc_entry);
	} else
		TAILQ_REMOVE(&freshconns, nc, nc_entry);
	bufferevent_decref(nc->nc_bev);
	free(nc);
}

static void
on_watched_close(struct evhttp_connection *conn, void *arg)
{
	evhttp_connection_set_closecb(conn, NULL, NULL);
	unwatch(arg, 1);
}

/* File the connections evhttp has made since; see the comment above. */
static void
adopt_fresh(void)
{
	struct newconn *nc, **w;
	bufferevent_event_cb ecb;
	void *conn;
	size_t n;

	while ((nc = TAILQ_FIRST(&freshconns)) != NULL) {
		/* evhttp's error callback is set while the connection lives. */
		bufferevent_getcb(nc->nc_bev, NULL, NULL, &ecb, &conn);
		nc->nc_fd = bufferevent_getfd(nc->nc_bev);
		if (ecb == NULL || conn == NULL || nc->nc_fd < 0) {
			/* evhttp has let it go already, without a request. */
			unwatch(nc, 1);
			continue;
		}
		if ((size_t)nc->nc_fd >= nwatched) {
			n = MAX((size_t)nc->nc_fd + 1, nwatched * 2);
			if ((w = reallocarray(watched, n, sizeof(*w))) == NULL) {
				unwatch(nc, 0);
				continue;
			}
			memset(w + nwatched, 0, (n - nwatched) * sizeof(*w));
			watched = w;
			nwatched = n;
		}
		TAILQ_REMOVE(&freshconns, nc, nc_entry);
		nc->nc_conn = conn;
		watched[nc->nc_fd] = nc;
		TAILQ_INSERT_TAIL(&newconns, nc, nc_entry);
		evhttp_connection_set_closecb(conn, on_watched_close, nc);
	}
}

static void
on_adopt(evutil_socket_t fd, short what, void *arg)
{
	adopt_fresh();
}

/* A request reached route(): its connection, if watched, is no more. */
static void
watch_routed(struct evhttp_request *req)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(
	    evhttp_request_get_connection(req));
	evutil_socket_t fd;

	adopt_fresh();
	if (bev == NULL || (fd = bufferevent_getfd(bev)) < 0 ||
	    (size_t)fd >= nwatched || watched[fd] == NULL ||
	    watched[fd]->nc_bev != bev)
		return;
	evhttp_connection_set_closecb(watched[fd]->nc_conn, NULL, NULL);
	unwatch(watched[fd], 0);
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
	/* What evhttp makes itself, watched until its first request. */
	struct bufferevent *bev = bufferevent_socket_new(b, -1,
	    BEV_OPT_CLOSE_ON_FREE);
	struct newconn *nc;

	if (bev != NULL && (nc = calloc(1, sizeof(*nc))) != NULL) {
		bufferevent_incref(bev);
		nc->nc_bev = bev;
		nc->nc_since = inv_mono_ns();
		TAILQ_INSERT_TAIL(&freshconns, nc, nc_entry);
		event_active(adopt_ev, EV_TIMEOUT, 0);
	}
	return bev;
}

static void
on_sweep(evutil_socket_t fd0, short what, void *arg)
{
	static const char timeout[] = "HTTP/1.1 408 Request Timeout\r\n"
	    "Content-Type: application/json\r\nConnection: close\r\n"
	    "Content-Length: 46\r\n\r\n"
	    "{\"error\":\"the request took too long to come\"}\n";
	struct newconn *nc, *next;
	bufferevent_event_cb ecb;
	int64_t now = inv_mono_ns();

	adopt_fresh();
	for (nc = TAILQ_FIRST(&newconns); nc != NULL; nc = next) {
		next = TAILQ_NEXT(nc, nc_entry);
		bufferevent_getcb(nc->nc_bev, NULL, NULL, &ecb, NULL);
		if (ecb == NULL) {
			/* Freed by evhttp without its close callback. */
			unwatch(nc, 1);
			continue;
		}
		if (nc->nc_shut || now - nc->nc_since <
		    (int64_t)FIRST_REQUEST_S * 1000000000)
			continue;
		/*
		 * evhttp has written nothing on it yet, so the answer can go
		 * straight to the socket; shutting it down makes evhttp read
		 * end of file and free the connection, which ends the watch.
		 */
		count_error(408);
		(void)write(nc->nc_fd, timeout, sizeof(timeout) - 1);
		shutdown(nc->nc_fd, SHUT_RDWR);
		nc->nc_shut = 1;
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
	struct newconn *nc;

	if (http != NULL)
		evhttp_free(http);
	http = NULL;
	/* Freeing evhttp closed the filed ones; these it had not made. */
	while ((nc = TAILQ_FIRST(&freshconns)) != NULL)
		unwatch(nc, 0);
	free(watched);
	watched = NULL;
	nwatched = 0;
}
