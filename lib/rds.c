/*
 * REDIS_URL parsing and connecting. The accepted forms are
 *   redis://[[user]:password@]host[:port][/db]
 *   unix:///path/to/redis.sock[?db=N]
 * A password is kept for AUTH and never copied into a message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rds.h"
#include "util.h"

const char *
inv_redis_url(const char *flag)
{
	return flag != NULL ? flag : inv_getenv("REDIS_URL");
}

static int
bad(char *err, size_t size, const char *why)
{
	snprintf(err, size, "bad Redis URL: %s", why);
	return -1;
}

int
inv_redis_url_parse(const char *url, struct inv_redis_url *u, char *err,
    size_t size)
{
	const char *p, *at, *slash, *colon, *q;
	long long v;
	const char *errstr;
	char num[32];

	memset(u, 0, sizeof(*u));
	u->port = 6379;
	if (strncmp(url, "unix://", 7) == 0) {
		p = url + 7;
		if (*p != '/')
			return bad(err, size, "unix:// needs an absolute path");
		q = strchr(p, '?');
		if ((size_t)(q != NULL ? q - p : (long)strlen(p)) >= sizeof(u->path))
			return bad(err, size, "socket path too long");
		snprintf(u->path, sizeof(u->path), "%.*s",
		    (int)(q != NULL ? q - p : (long)strlen(p)), p);
		if (q != NULL) {
			if (strncmp(q, "?db=", 4) != 0 ||
			    inv_parse_int(q + 4, 0, 1000000, &v, &errstr) < 0)
				return bad(err, size, "expected ?db=N after the path");
			u->db = (int)v;
		}
		return 0;
	}
	if (strncmp(url, "redis://", 8) != 0)
		return bad(err, size, "expected redis:// or unix://");
	p = url + 8;
	slash = strchr(p, '/');
	at = strrchr(p, '@');
	if (at != NULL && (slash == NULL || at < slash)) {
		colon = memchr(p, ':', at - p);
		if (colon == NULL)
			return bad(err, size, "expected user:password@ or :password@");
		if ((size_t)(colon - p) >= sizeof(u->user) ||
		    (size_t)(at - colon - 1) >= sizeof(u->password))
			return bad(err, size, "credentials too long");
		snprintf(u->user, sizeof(u->user), "%.*s", (int)(colon - p), p);
		snprintf(u->password, sizeof(u->password), "%.*s",
		    (int)(at - colon - 1), colon + 1);
		p = at + 1;
	}
	slash = strchr(p, '/');
	q = slash != NULL ? slash : p + strlen(p);
	if (*p == '[') {
		const char *rb = memchr(p, ']', q - p);

		if (rb == NULL)
			return bad(err, size, "unterminated [IPv6] host");
		snprintf(u->host, sizeof(u->host), "%.*s", (int)(rb - p - 1), p + 1);
		colon = rb + 1 < q && rb[1] == ':' ? rb + 1 : NULL;
		if (colon == NULL && rb + 1 != q)
			return bad(err, size, "junk after [IPv6] host");
	} else {
		colon = memchr(p, ':', q - p);
		if ((size_t)((colon != NULL ? colon : q) - p) >= sizeof(u->host))
			return bad(err, size, "host name too long");
		snprintf(u->host, sizeof(u->host), "%.*s",
		    (int)((colon != NULL ? colon : q) - p), p);
	}
	if (u->host[0] == '\0')
		return bad(err, size, "no host");
	if (colon != NULL) {
		snprintf(num, sizeof(num), "%.*s", (int)(q - colon - 1), colon + 1);
		if (q - colon - 1 >= (long)sizeof(num) ||
		    inv_parse_int(num, 1, 65535, &v, &errstr) < 0)
			return bad(err, size, "port is not a number from 1 to 65535");
		u->port = (int)v;
	}
	if (slash != NULL && slash[1] != '\0') {
		if (inv_parse_int(slash + 1, 0, 1000000, &v, &errstr) < 0)
			return bad(err, size, "database is not a number");
		u->db = (int)v;
	}
	return 0;
}

/* AUTH and SELECT on a fresh connection. */
int
inv_redis_auth(redisContext *c, const struct inv_redis_url *u, char *err,
    size_t size)
{
	redisReply *r;

	if (u->password[0] != '\0') {
		if (u->user[0] != '\0')
			r = redisCommand(c, "AUTH %s %s", u->user, u->password);
		else
			r = redisCommand(c, "AUTH %s", u->password);
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			snprintf(err, size, "Redis refused the password: %s",
			    r != NULL ? r->str : c->errstr);
			freeReplyObject(r);
			return -1;
		}
		freeReplyObject(r);
	}
	if (u->db != 0) {
		r = redisCommand(c, "SELECT %d", u->db);
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			snprintf(err, size, "cannot select Redis database %d: %s",
			    u->db, r != NULL ? r->str : c->errstr);
			freeReplyObject(r);
			return -1;
		}
		freeReplyObject(r);
	}
	return 0;
}

/*
 * A blocking connection whose connect and every command time out after
 * timeout_ms, so a hung server cannot hang the caller.
 */
redisContext *
inv_redis_connect(const struct inv_redis_url *u, int timeout_ms, char *err,
    size_t size)
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	redisContext *c;

	if (u->path[0] != '\0')
		c = redisConnectUnixWithTimeout(u->path, tv);
	else
		c = redisConnectWithTimeout(u->host, u->port, tv);
	if (c == NULL || c->err) {
		snprintf(err, size, "cannot connect to Redis: %s",
		    c != NULL ? c->errstr : "out of memory");
		redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	if (inv_redis_auth(c, u, err, size) < 0) {
		redisFree(c);
		return NULL;
	}
	return c;
}

/* Every key and channel starts with this, "inv" unless INV_NAMESPACE says. */
const char *
inv_ns(void)
{
	const char *ns = inv_getenv("INV_NAMESPACE");

	return ns != NULL ? ns : "inv";
}

/* A namespace is 1-64 characters of [A-Za-z0-9_.-]. */
int
inv_ns_check(const char *ns)
{
	size_t n = strlen(ns);

	if (n == 0 || n > 64 || strspn(ns, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789_.-") != n)
		return -1;
	return 0;
}

/* "<namespace>:<name>" into buf. */
char *
inv_key(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s:%s", inv_ns(), name);
	return buf;
}
