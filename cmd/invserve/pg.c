/*
 * PostgreSQL without blocking the event loop: PQconnectStartParams and
 * PQconnectPoll to connect, PQsendQueryParams and the socket's events
 * to query, one query at a time from a bounded queue. A query that
 * takes longer than PG_TIMEOUT_MS, or a connection that breaks, fails
 * every query waiting and reconnects with backoff. While idle the
 * socket is watched, so a server that shuts down is noticed at once.
 */
#include <stdlib.h>
#include <string.h>

#include "invserve.h"
#include "log.h"
#include "util.h"

#define PG_TIMEOUT_MS	5000
#define PG_QUEUE_MAX	1024
#define PG_PARAMS_MAX	4
#define PG_BACKOFF_MIN	100
#define PG_BACKOFF_MAX	5000

struct query {
	TAILQ_ENTRY(query) q_entry;
	const char	*q_sql;
	int		 q_nparams;
	char		*q_params[PG_PARAMS_MAX];
	pg_cb		*q_cb;
	void		*q_arg;
};

enum pg_state { PG_DOWN, PG_CONNECTING, PG_READY };

static const char *url;
static PGconn	*conn;
static enum pg_state state;
static struct event *sock_ev, *timer, *retry;
static TAILQ_HEAD(, query) queue = TAILQ_HEAD_INITIALIZER(queue);
static int	 queued;
static struct query *running;
static PGresult	*result;
static int	 backoff = PG_BACKOFF_MIN, warned, stopping;
static void	 (*ready_hook)(void);

static void	 on_socket(evutil_socket_t, short, void *);
static void	 next_query(void);

static void
query_free(struct query *q)
{
	int i;

	for (i = 0; i < q->q_nparams; i++)
		free(q->q_params[i]);
	free(q);
}

/* libpq's messages end in a newline and may run over several lines. */
static const char *
pg_message(void)
{
	static char buf[512];
	size_t i, n;

	snprintf(buf, sizeof(buf), "%s", conn != NULL ? PQerrorMessage(conn) :
	    "no connection");
	for (i = 0, n = strlen(buf); i < n; i++)
		if (buf[i] == '\n' || buf[i] == '\t')
			buf[i] = ' ';
	while (n > 0 && buf[n - 1] == ' ')
		buf[--n] = '\0';
	return n > 0 ? buf : "connection lost";
}

static void
watch(int what, int timeout)
{
	struct timeval tv = { PG_TIMEOUT_MS / 1000, 0 };

	event_del(sock_ev);
	if (conn != NULL && PQsocket(conn) >= 0) {
		event_assign(sock_ev, base, PQsocket(conn), what | EV_PERSIST,
		    on_socket, NULL);
		event_add(sock_ev, NULL);
	}
	if (timeout)
		evtimer_add(timer, &tv);
	else
		evtimer_del(timer);
}

static void
go_down(const char *why)
{
	struct timeval tv = { backoff / 1000, (backoff % 1000) * 1000 };
	struct query *q;

	if (!stopping && (state == PG_READY || !warned)) {
		inv_warnx("PostgreSQL: %s; reconnecting", why);
		stats.pg_errors++;
		warned = 1;
	}
	event_del(sock_ev);
	evtimer_del(timer);
	PQclear(result);
	result = NULL;
	PQfinish(conn);
	conn = NULL;
	state = PG_DOWN;
	/* Everything waiting fails now rather than waiting for a reconnect. */
	if (running != NULL) {
		q = running;
		running = NULL;
		q->q_cb(NULL, why, q->q_arg);
		query_free(q);
	}
	while ((q = TAILQ_FIRST(&queue)) != NULL) {
		TAILQ_REMOVE(&queue, q, q_entry);
		queued--;
		q->q_cb(NULL, why, q->q_arg);
		query_free(q);
	}
	if (!stopping)
		evtimer_add(retry, &tv);
	backoff = backoff * 2 > PG_BACKOFF_MAX ? PG_BACKOFF_MAX : backoff * 2;
}

static void
connect_poll(void)
{
	switch (PQconnectPoll(conn)) {
	case PGRES_POLLING_READING:
		watch(EV_READ, 1);
		return;
	case PGRES_POLLING_WRITING:
		watch(EV_WRITE, 1);
		return;
	case PGRES_POLLING_OK:
		PQsetnonblocking(conn, 1);
		state = PG_READY;
		backoff = PG_BACKOFF_MIN;
		if (warned)
			inv_warnx("PostgreSQL: connected again");
		warned = 0;
		watch(EV_READ, 0);
		if (ready_hook != NULL)
			ready_hook();
		next_query();
		return;
	default:
		go_down(pg_message());
		return;
	}
}

static void
connect_start(void)
{
	const char *keys[] = { "dbname", "application_name",
	    "connect_timeout", NULL };
	const char *vals[] = { url, "invserve", "5", NULL };

	conn = PQconnectStartParams(keys, vals, 1);
	if (conn == NULL || PQstatus(conn) == CONNECTION_BAD) {
		go_down(pg_message());
		return;
	}
	state = PG_CONNECTING;
	watch(EV_WRITE, 1);
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	connect_start();
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
	go_down(state == PG_CONNECTING ? "connect timed out" :
	    "no answer in time");
}

/* The query in flight is complete: hand its result over. */
static void
finish(void)
{
	struct query *q = running;
	PGresult *res = result;
	ExecStatusType st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;

	running = NULL;
	result = NULL;
	watch(EV_READ, 0);
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		q->q_cb(res, NULL, q->q_arg);
	else {
		char why[512];

		snprintf(why, sizeof(why), "%s", res != NULL ?
		    PQresultErrorMessage(res) : "no result");
		why[strcspn(why, "\n")] = '\0';
		inv_warnx("PostgreSQL: %s", why);
		stats.pg_errors++;
		q->q_cb(NULL, why, q->q_arg);
	}
	PQclear(res);
	query_free(q);
}

static void
on_socket(evutil_socket_t fd, short what, void *arg)
{
	PGresult *res;
	int rv;

	if (state == PG_CONNECTING) {
		connect_poll();
		return;
	}
	if (what & EV_WRITE) {
		if ((rv = PQflush(conn)) < 0) {
			go_down(pg_message());
			return;
		}
		if (rv == 0)
			watch(EV_READ, 1);
		return;
	}
	if (!PQconsumeInput(conn) || PQstatus(conn) != CONNECTION_OK) {
		go_down(pg_message());
		return;
	}
	if (running == NULL)
		return;		/* a notice, or nothing */
	while (!PQisBusy(conn)) {
		if ((res = PQgetResult(conn)) == NULL) {
			finish();
			next_query();
			return;
		}
		/* Keep the first result; a statement sends one. */
		if (result == NULL)
			result = res;
		else
			PQclear(res);
	}
}

static void
next_query(void)
{
	struct query *q;
	int rv;

	if (state != PG_READY || running != NULL ||
	    (q = TAILQ_FIRST(&queue)) == NULL)
		return;
	TAILQ_REMOVE(&queue, q, q_entry);
	queued--;
	running = q;
	if (!PQsendQueryParams(conn, q->q_sql, q->q_nparams, NULL,
	    (const char *const *)q->q_params, NULL, NULL, 0)) {
		go_down(pg_message());
		return;
	}
	if ((rv = PQflush(conn)) < 0) {
		go_down(pg_message());
		return;
	}
	watch(rv == 1 ? EV_WRITE : EV_READ, 1);
}

int
pg_init(const char *u, char *err, size_t size)
{
	url = u;
	sock_ev = event_new(base, -1, 0, on_socket, NULL);
	timer = evtimer_new(base, on_timeout, NULL);
	retry = evtimer_new(base, on_retry, NULL);
	connect_start();
	return 0;
}

int
pg_configured(void)
{
	return url != NULL;
}

int
pg_ok(void)
{
	return state == PG_READY;
}

/*
 * Queue a query with text parameters (copied). Returns -1 when
 * PostgreSQL is not connected or the queue is full (cb is not called);
 * otherwise cb gets the result, or NULL and the reason.
 */
int
pg_query(const char *sql, int nparams, const char *const *params,
    pg_cb *cb, void *arg)
{
	struct query *q;
	int i;

	if (state != PG_READY || queued >= PG_QUEUE_MAX ||
	    nparams > PG_PARAMS_MAX || (q = calloc(1, sizeof(*q))) == NULL)
		return -1;
	q->q_sql = sql;
	q->q_cb = cb;
	q->q_arg = arg;
	for (i = 0; i < nparams; i++) {
		if ((q->q_params[i] = strdup(params[i])) == NULL) {
			q->q_nparams = i;
			query_free(q);
			return -1;
		}
	}
	q->q_nparams = nparams;
	TAILQ_INSERT_TAIL(&queue, q, q_entry);
	queued++;
	next_query();
	return 0;
}

void
pg_on_ready(void (*fn)(void))
{
	ready_hook = fn;
}

void
pg_stop(void)
{
	stopping = 1;
	if (conn != NULL)
		go_down("shutting down");
}
