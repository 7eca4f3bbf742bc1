/*
 * Redis through hiredis's async API on the event loop: one connection
 * for commands, one subscribed to the channels. hiredis 0.14 has no
 * command timeout, so a watchdog does it: a command unanswered for
 * RDS_TIMEOUT_MS, or a connect that does not complete in that time,
 * drops both connections, and every caller gets a NULL reply. Lost
 * connections come back with exponential backoff.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <adapters/libevent.h>
#include <async.h>

#include "invserve.h"
#include "log.h"
#include "rds.h"
#include "util.h"

#define RDS_TIMEOUT_MS	3000
#define RDS_BACKOFF_MIN	100
#define RDS_BACKOFF_MAX	5000

struct pending {
	TAILQ_ENTRY(pending) p_entry;
	rds_cb		*p_cb;
	void		*p_arg;
	int64_t		 p_sent;
};

struct rconn {
	const char	*rc_name;
	redisAsyncContext *rc_ac;
	int		 rc_ready;
	int		 rc_sub;
	int64_t		 rc_started;
	int		 rc_backoff;
	int		 rc_warned;
	struct event	*rc_retry;
	TAILQ_HEAD(, pending) rc_pending;
};

static struct inv_redis_url url;
static struct rconn cmd = { .rc_name = "commands" };
static struct rconn sub = { .rc_name = "subscriber", .rc_sub = 1 };
static struct event *watchdog;
static int configured, stopping;
static void (*ready_hook)(void);
static void (*message_hook)(const char *, const char *, size_t);

static void	 conn_start(struct rconn *);

static void
conn_lost(struct rconn *rc, const char *why)
{
	struct timeval tv;

	rc->rc_ac = NULL;
	if (!stopping && (rc->rc_ready || !rc->rc_warned)) {
		inv_warnx("Redis (%s connection): %s; reconnecting", rc->rc_name,
		    why);
		rc->rc_warned = 1;
		stats.redis_errors++;
	}
	rc->rc_ready = 0;
	if (stopping)
		return;
	tv.tv_sec = rc->rc_backoff / 1000;
	tv.tv_usec = (rc->rc_backoff % 1000) * 1000;
	evtimer_add(rc->rc_retry, &tv);
	rc->rc_backoff = rc->rc_backoff * 2 > RDS_BACKOFF_MAX ?
	    RDS_BACKOFF_MAX : rc->rc_backoff * 2;
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct rconn *rc = ac->data;

	conn_lost(rc, status == REDIS_OK ? "connection closed" :
	    ac->errstr[0] != '\0' ? ac->errstr : "connection lost");
}

static void
on_auth(redisAsyncContext *ac, void *reply, void *arg)
{
	redisReply *r = reply;

	if (r != NULL && r->type == REDIS_REPLY_ERROR) {
		inv_warnx("Redis refused the password or database: %s", r->str);
		redisAsyncDisconnect(ac);
	}
}

static void
on_message(redisAsyncContext *ac, void *reply, void *arg)
{
	redisReply *r = reply;

	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[1]->type != REDIS_REPLY_STRING)
		return;
	if (strcmp(r->element[0]->str, "subscribe") == 0) {
		/* Subscribed to the last channel: catch up on what was missed. */
		if (r->element[2]->type == REDIS_REPLY_INTEGER &&
		    r->element[2]->integer == (cfg.source_redis ? 4 : 3) &&
		    ready_hook != NULL)
			ready_hook();
		return;
	}
	if (strcmp(r->element[0]->str, "message") == 0 &&
	    r->element[2]->type == REDIS_REPLY_STRING && message_hook != NULL)
		message_hook(r->element[1]->str, r->element[2]->str,
		    r->element[2]->len);
}

static void
on_connect(const redisAsyncContext *cac, int status)
{
	struct rconn *rc = cac->data;
	redisAsyncContext *ac = rc->rc_ac;	/* the same, not const */
	char k1[128], k2[128], k3[128], k4[128];

	if (status != REDIS_OK) {
		/* hiredis frees the context after this callback. */
		conn_lost(rc, cac->errstr[0] != '\0' ? cac->errstr :
		    "cannot connect");
		return;
	}
	if (url.password[0] != '\0') {
		if (url.user[0] != '\0')
			redisAsyncCommand(ac, on_auth, NULL, "AUTH %s %s",
			    url.user, url.password);
		else
			redisAsyncCommand(ac, on_auth, NULL, "AUTH %s",
			    url.password);
	}
	if (url.db != 0)
		redisAsyncCommand(ac, on_auth, NULL, "SELECT %d", url.db);
	if (rc->rc_warned)
		inv_warnx("Redis (%s connection): connected again", rc->rc_name);
	rc->rc_ready = 1;
	rc->rc_warned = 0;
	rc->rc_backoff = RDS_BACKOFF_MIN;
	if (rc->rc_sub) {
		inv_key(k1, sizeof(k1), "stats");
		inv_key(k2, sizeof(k2), "state");
		inv_key(k3, sizeof(k3), "buf");
		inv_key(k4, sizeof(k4), "display");
		if (cfg.source_redis)
			redisAsyncCommand(ac, on_message, NULL,
			    "SUBSCRIBE %s %s %s %s", k1, k2, k3, k4);
		else
			redisAsyncCommand(ac, on_message, NULL,
			    "SUBSCRIBE %s %s %s", k1, k2, k3);
	} else if (ready_hook != NULL)
		ready_hook();
}

static void
conn_start(struct rconn *rc)
{
	redisAsyncContext *ac;

	if (url.path[0] != '\0')
		ac = redisAsyncConnectUnix(url.path);
	else
		ac = redisAsyncConnect(url.host, url.port);
	if (ac == NULL) {
		conn_lost(rc, "out of memory");
		return;
	}
	if (ac->err) {
		char why[256];

		snprintf(why, sizeof(why), "%s", ac->errstr);
		redisAsyncFree(ac);
		conn_lost(rc, why);
		return;
	}
	ac->data = rc;
	rc->rc_ac = ac;
	rc->rc_started = inv_mono_ns();
	redisLibeventAttach(ac, base);
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	conn_start(arg);
}

/* Drop a connection that hangs; its disconnect callback reconnects. */
static void
conn_kill(struct rconn *rc, const char *why)
{
	redisAsyncContext *ac = rc->rc_ac;

	if (ac == NULL)
		return;
	inv_warnx("Redis (%s connection): %s", rc->rc_name, why);
	rc->rc_warned = 1;
	rc->rc_ready = 0;	/* no second message from the callback */
	redisAsyncFree(ac);
	if (rc->rc_ac == ac)	/* not connected yet: no callback ran */
		conn_lost(rc, why);
}

static void
on_pong(redisReply *r, void *arg)
{
}

static void
on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	int64_t now = inv_mono_ns(), limit = (int64_t)RDS_TIMEOUT_MS * 1000000;
	struct pending *p = TAILQ_FIRST(&cmd.rc_pending);
	struct rconn *rcs[2] = { &cmd, &sub };
	int i;

	for (i = 0; i < 2; i++) {
		if (rcs[i]->rc_ac != NULL && !rcs[i]->rc_ready &&
		    now - rcs[i]->rc_started > limit)
			conn_kill(rcs[i], "connect timed out");
	}
	if (p != NULL && now - p->p_sent > limit) {
		conn_kill(&cmd, "no answer in time");
		conn_kill(&sub, "no answer in time on the other connection");
	} else if (p == NULL && cmd.rc_ready)
		rds_command(on_pong, NULL, "PING");
}

int
rds_init(const char *u, char *err, size_t size)
{
	struct timeval tv = { 1, 0 };

	if (inv_redis_url_parse(u, &url, err, size) < 0)
		return -1;
	configured = 1;
	TAILQ_INIT(&cmd.rc_pending);
	TAILQ_INIT(&sub.rc_pending);
	cmd.rc_backoff = sub.rc_backoff = RDS_BACKOFF_MIN;
	cmd.rc_retry = evtimer_new(base, on_retry, &cmd);
	sub.rc_retry = evtimer_new(base, on_retry, &sub);
	watchdog = event_new(base, -1, EV_PERSIST, on_watchdog, NULL);
	evtimer_add(watchdog, &tv);
	conn_start(&cmd);
	conn_start(&sub);
	return 0;
}

int
rds_configured(void)
{
	return configured;
}

int
rds_ok(void)
{
	return cmd.rc_ready;
}

static void
on_reply(redisAsyncContext *ac, void *reply, void *arg)
{
	struct pending *p = arg;
	redisReply *r = reply;

	TAILQ_REMOVE(&cmd.rc_pending, p, p_entry);
	if (r != NULL && r->type == REDIS_REPLY_ERROR) {
		inv_warnx("Redis: %s", r->str);
		stats.redis_errors++;
	}
	if (p->p_cb != NULL)
		p->p_cb(r, p->p_arg);
	free(p);
}

static struct pending *
pending_new(rds_cb *cb, void *arg)
{
	struct pending *p;

	if (!cmd.rc_ready || (p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->p_cb = cb;
	p->p_arg = arg;
	p->p_sent = inv_mono_ns();
	return p;
}

/*
 * Send a command. Returns -1 when Redis is not connected (cb is not
 * called); otherwise cb gets the reply, or NULL if the connection is
 * lost first.
 */
int
rds_command(rds_cb *cb, void *arg, const char *fmt, ...)
{
	struct pending *p;
	va_list ap;
	int rv;

	if ((p = pending_new(cb, arg)) == NULL)
		return -1;
	va_start(ap, fmt);
	rv = redisvAsyncCommand(cmd.rc_ac, on_reply, p, fmt, ap);
	va_end(ap);
	if (rv != REDIS_OK) {
		free(p);
		return -1;
	}
	TAILQ_INSERT_TAIL(&cmd.rc_pending, p, p_entry);
	return 0;
}

int
rds_command_argv(rds_cb *cb, void *arg, int argc, const char **argv,
    const size_t *argvlen)
{
	struct pending *p;

	if ((p = pending_new(cb, arg)) == NULL)
		return -1;
	if (redisAsyncCommandArgv(cmd.rc_ac, on_reply, p, argc, argv,
	    argvlen) != REDIS_OK) {
		free(p);
		return -1;
	}
	TAILQ_INSERT_TAIL(&cmd.rc_pending, p, p_entry);
	return 0;
}

void
rds_on_ready(void (*fn)(void))
{
	ready_hook = fn;
}

void
rds_on_message(void (*fn)(const char *, const char *, size_t))
{
	message_hook = fn;
}

void
rds_stop(void)
{
	stopping = 1;
	if (watchdog != NULL)
		event_del(watchdog);
	if (cmd.rc_ac != NULL)
		redisAsyncFree(cmd.rc_ac);
	if (sub.rc_ac != NULL)
		redisAsyncFree(sub.rc_ac);
	cmd.rc_ac = sub.rc_ac = NULL;
}
