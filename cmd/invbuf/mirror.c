/*
 * The backlog in Redis, as the contract lays it out: NS:backlog (waiting
 * lines, RPUSH at the tail), NS:backlog:taken (the line being shown),
 * NS:buf (hash and channel) and NS:display (every line shown). Blocking
 * hiredis calls with a timeout; every function returns -1 with a reason
 * in err when Redis fails or answers with an error, and the caller then
 * treats Redis as gone until it reconnects.
 *
 * Ids are compared in Lua as decimal strings (longer is larger, then
 * lexical), since a Lua number is a double and ids may pass 2^53.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "invbuf.h"
#include "rds.h"
#include "util.h"

/* Lines may be up to --max-line long: keep batches small in bytes too. */
#define LOAD_FIRST	8	/* lines in the first LRANGE when loading */
#define LOAD_MAX	1000	/* and the most in one */
#define LOAD_BYTES	(1 << 20)	/* about this much per LRANGE */
#define WRITE_CHUNK	1000	/* commands sent before reading replies */
#define WRITE_BYTES	(1 << 20)	/* or bytes sent before reading */

#define LUA_GT \
	"local function gt(a, b)\n" \
	"  if #a ~= #b then return #a > #b end\n" \
	"  return a > b\n" \
	"end\n"
#define LUA_DEPTH \
	"redis.call('HSET', KEYS[3], 'backlog'," \
	" redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]))\n"

/*
 * Accept one line: KEYS backlog, taken, buf; ARGV id ('' when the line
 * has none), line. A line whose id is not above last_in is skipped (0).
 */
static const char accept_lua[] =
    LUA_GT
    "local id = ARGV[1]\n"
    "if id ~= '' then\n"
    "  if not gt(id, redis.call('HGET', KEYS[3], 'last_in') or '0') then\n"
    "    return 0\n"
    "  end\n"
    "  redis.call('HSET', KEYS[3], 'last_in', id)\n"
    "end\n"
    "redis.call('RPUSH', KEYS[1], ARGV[2])\n"
    LUA_DEPTH
    "return 1\n";

/*
 * Confirm the line just written: KEYS backlog, taken, buf; ARGV line,
 * id or '', the display channel. 0 when taken did not hold that line.
 */
static const char confirm_lua[] =
    LUA_GT
    "local was = redis.call('LPOP', KEYS[2])\n"
    "redis.call('HINCRBY', KEYS[3], 'displayed', 1)\n"
    "if ARGV[2] ~= '' and gt(ARGV[2],"
    " redis.call('HGET', KEYS[3], 'last_out') or '0') then\n"
    "  redis.call('HSET', KEYS[3], 'last_out', ARGV[2])\n"
    "end\n"
    LUA_DEPTH
    "redis.call('PUBLISH', ARGV[3], ARGV[1])\n"
    "if was == ARGV[1] then return 1 end\n"
    "return 0\n";

static char	k_backlog[128], k_taken[128], k_buf[128], k_display[128];
static char	accept_sha[41], confirm_sha[41];

static int
fail(redisContext *c, redisReply *r, char *err, size_t size)
{
	if (r == NULL)
		snprintf(err, size, "%s", c->err ? c->errstr : "no reply");
	else if (r->type == REDIS_REPLY_ERROR)
		snprintf(err, size, "%s", r->str);
	else
		snprintf(err, size, "unexpected reply (type %d)", r->type);
	freeReplyObject(r);
	return -1;
}

static int
load_script(redisContext *c, const char *body, char *sha, char *err,
    size_t size)
{
	redisReply *r = redisCommand(c, "SCRIPT LOAD %s", body);

	if (r == NULL || r->type != REDIS_REPLY_STRING || r->len != 40)
		return fail(c, r, err, size);
	memcpy(sha, r->str, 41);
	freeReplyObject(r);
	return 0;
}

/* On every new connection: the key names and the scripts. */
int
mirror_init(redisContext *c, char *err, size_t size)
{
	inv_key(k_backlog, sizeof(k_backlog), "backlog");
	inv_key(k_taken, sizeof(k_taken), "backlog:taken");
	inv_key(k_buf, sizeof(k_buf), "buf");
	inv_key(k_display, sizeof(k_display), "display");
	if (load_script(c, accept_lua, accept_sha, err, size) < 0 ||
	    load_script(c, confirm_lua, confirm_sha, err, size) < 0)
		return -1;
	return 0;
}

static int64_t
field_int(const redisReply *r)
{
	long long v;
	const char *errstr;

	if (r->type != REDIS_REPLY_STRING ||
	    inv_parse_int(r->str, 0, INT64_MAX, &v, &errstr) < 0)
		return 0;
	return v;
}

/*
 * Append the list at key to q, a chunk per LRANGE. A chunk starts
 * small and grows or shrinks to about LOAD_BYTES by the lengths seen so
 * far, so a backlog of long lines does not come in one huge reply.
 */
static int
push_all(redisContext *c, const char *key, struct queue *q, char *err,
    size_t size)
{
	redisReply *r;
	size_t i, j, n = LOAD_FIRST, bytes;
	int last;

	for (i = 0;;) {
		r = redisCommand(c, "LRANGE %s %lld %lld", key, (long long)i,
		    (long long)(i + n - 1));
		if (r == NULL || r->type != REDIS_REPLY_ARRAY)
			return fail(c, r, err, size);
		for (j = 0, bytes = 0; j < r->elements; j++) {
			if (r->element[j]->type != REDIS_REPLY_STRING) {
				freeReplyObject(r);
				snprintf(err, size, "%s holds a non-string", key);
				return -1;
			}
			if (queue_push(q, r->element[j]->str,
			    r->element[j]->len) < 0) {
				freeReplyObject(r);
				snprintf(err, size, "out of memory");
				return -1;
			}
			bytes += r->element[j]->len + 1;
		}
		last = r->elements < n;
		freeReplyObject(r);
		if (last)
			return 0;
		i += n;
		n = LOAD_BYTES / (bytes / n + 1);
		n = n < 1 ? 1 : n > LOAD_MAX ? LOAD_MAX : n;
	}
}

/*
 * What an earlier run left: the taken lines (shown first) and the
 * backlog, appended to q, and the NS:buf counters. Sets eof back to 0.
 */
int
mirror_load(redisContext *c, struct queue *q, size_t *taken,
    struct bufstate *st, char *err, size_t size)
{
	redisReply *r;
	size_t before = queue_len(q);

	r = redisCommand(c, "HMGET %s last_in last_out displayed", k_buf);
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 3)
		return fail(c, r, err, size);
	st->last_in = field_int(r->element[0]);
	st->last_out = field_int(r->element[1]);
	st->displayed = field_int(r->element[2]);
	freeReplyObject(r);
	if (push_all(c, k_taken, q, err, size) < 0)
		return -1;
	*taken = queue_len(q) - before;
	if (push_all(c, k_backlog, q, err, size) < 0)
		return -1;
	return mirror_set_eof(c, 0, err, size);
}

struct rewrite {
	redisContext	*rw_c;
	int		 rw_pending;	/* replies not read yet */
	size_t		 rw_bytes;	/* bytes sent since the last read */
	int		 rw_failed;
};

static int
drain_replies(struct rewrite *rw)
{
	redisReply *r;

	rw->rw_bytes = 0;
	for (; rw->rw_pending > 0; rw->rw_pending--) {
		if (redisGetReply(rw->rw_c, (void **)&r) != REDIS_OK)
			return -1;
		/* Inside MULTI a bad command answers with an error now and
		 * makes EXEC fail; remember it, read the rest. */
		if (r->type == REDIS_REPLY_ERROR)
			rw->rw_failed = 1;
		freeReplyObject(r);
	}
	return 0;
}

static int
rewrite_line(void *arg, const char *data, size_t len)
{
	struct rewrite *rw = arg;
	const char *argv[3] = { "RPUSH", k_backlog, data };
	size_t argvlen[3] = { 5, strlen(k_backlog), len - 1 };

	if (redisAppendCommandArgv(rw->rw_c, 3, argv, argvlen) != REDIS_OK)
		return -1;
	rw->rw_bytes += len;
	if (++rw->rw_pending >= WRITE_CHUNK || rw->rw_bytes >= WRITE_BYTES)
		return drain_replies(rw);
	return 0;
}

/*
 * Make Redis hold exactly the local backlog and counters, in one
 * transaction: after an outage Redis may have kept its data, lost it,
 * or come back from an older snapshot, and this is right for all three.
 */
int
mirror_rewrite(redisContext *c, struct queue *q, const struct bufstate *st,
    char *err, size_t size)
{
	struct rewrite rw = { c, 0, 0, 0 };
	redisReply *r;

	redisAppendCommand(c, "MULTI");
	redisAppendCommand(c, "DEL %s %s", k_backlog, k_taken);
	rw.rw_pending = 2;
	if (queue_walk(q, rewrite_line, &rw) != 0 || drain_replies(&rw) < 0)
		goto lost;
	redisAppendCommand(c, "HSET %s backlog %lld displayed %lld last_in %lld"
	    " last_out %lld eof %d", k_buf, (long long)queue_len(q),
	    (long long)st->displayed, (long long)st->last_in,
	    (long long)st->last_out, st->eof);
	rw.rw_pending = 1;
	if (drain_replies(&rw) < 0)
		goto lost;
	r = redisCommand(c, "EXEC");
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || rw.rw_failed)
		return fail(c, r, err, size);
	freeReplyObject(r);
	return 0;
lost:
	if (c->err)
		return fail(c, NULL, err, size);
	snprintf(err, size, "cannot read the local backlog to copy it");
	return -1;
}

/* Pipelined: send the accept script for one line, reply read later. */
int
mirror_accept_append(redisContext *c, int64_t id, const char *line,
    size_t len)
{
	char ids[24] = "";
	const char *argv[8] = { "EVALSHA", accept_sha, "3", k_backlog,
	    k_taken, k_buf, ids, line };
	size_t argvlen[8];
	int i;

	if (id > 0)
		snprintf(ids, sizeof(ids), "%" PRId64, id);
	for (i = 0; i < 7; i++)
		argvlen[i] = strlen(argv[i]);
	argvlen[7] = len;
	return redisAppendCommandArgv(c, 8, argv, argvlen) == REDIS_OK ?
	    0 : -1;
}

/* Read n accept replies; *pushed says how many lines Redis took. */
int
mirror_accept_finish(redisContext *c, int n, int *pushed, char *err,
    size_t size)
{
	redisReply *r;
	int i, failed = 0;

	*pushed = 0;
	for (i = 0; i < n; i++) {
		if (redisGetReply(c, (void **)&r) != REDIS_OK)
			return fail(c, NULL, err, size);
		if (r->type == REDIS_REPLY_INTEGER) {
			*pushed += (int)r->integer;
			freeReplyObject(r);
		} else if (!failed++)
			fail(c, r, err, size);
		else
			freeReplyObject(r);
	}
	return failed ? -1 : 0;
}

/*
 * Move the head of NS:backlog to NS:backlog:taken before showing it.
 * 1 when it was the line expected, 0 when Redis held something else.
 */
int
mirror_take(redisContext *c, const char *line, size_t len, char *err,
    size_t size)
{
	redisReply *r = redisCommand(c, "LMOVE %s %s LEFT RIGHT", k_backlog,
	    k_taken);
	int same;

	if (r == NULL || (r->type != REDIS_REPLY_STRING &&
	    r->type != REDIS_REPLY_NIL))
		return fail(c, r, err, size);
	same = r->type == REDIS_REPLY_STRING && r->len == len &&
	    memcmp(r->str, line, len) == 0;
	freeReplyObject(r);
	return same;
}

/*
 * The line is written: drop it from taken, count it, move last_out,
 * publish it on NS:display, all in one script. 0 when taken did not
 * hold it (the counters still moved).
 */
int
mirror_confirm(redisContext *c, const char *line, size_t len, int64_t id,
    char *err, size_t size)
{
	char ids[24] = "";
	const char *argv[9] = { "EVALSHA", confirm_sha, "3", k_backlog,
	    k_taken, k_buf, line, ids, k_display };
	size_t argvlen[9];
	redisReply *r;
	int i, same;

	if (id > 0)
		snprintf(ids, sizeof(ids), "%" PRId64, id);
	for (i = 0; i < 9; i++)
		argvlen[i] = i == 6 ? len : strlen(argv[i]);
	r = redisCommandArgv(c, 9, argv, argvlen);
	if (r == NULL || r->type != REDIS_REPLY_INTEGER)
		return fail(c, r, err, size);
	same = r->integer == 1;
	freeReplyObject(r);
	return same;
}

/* 1 when NS:buf exists, 0 when Redis lost it (and so the backlog). */
int
mirror_check(redisContext *c, char *err, size_t size)
{
	redisReply *r = redisCommand(c, "EXISTS %s", k_buf);
	int there;

	if (r == NULL || r->type != REDIS_REPLY_INTEGER)
		return fail(c, r, err, size);
	there = r->integer == 1;
	freeReplyObject(r);
	return there;
}

int
mirror_set_eof(redisContext *c, int eof, char *err, size_t size)
{
	redisReply *r = redisCommand(c, "HSET %s eof %d", k_buf, eof);

	if (r == NULL || r->type != REDIS_REPLY_INTEGER)
		return fail(c, r, err, size);
	freeReplyObject(r);
	return 0;
}

/* The status on the NS:buf channel, as the contract gives it. */
int
mirror_publish(redisContext *c, size_t backlog, int64_t displayed, int eof,
    char *err, size_t size)
{
	redisReply *r;
	char msg[128];

	snprintf(msg, sizeof(msg), "{\"backlog\":%zu,\"displayed\":%" PRId64
	    ",\"eof\":%s}", backlog, displayed, eof ? "true" : "false");
	r = redisCommand(c, "PUBLISH %s %s", k_buf, msg);
	if (r == NULL || r->type != REDIS_REPLY_INTEGER)
		return fail(c, r, err, size);
	freeReplyObject(r);
	return 0;
}
