/*
 * NS:control, the stack's state machine. Every transition is one Lua
 * script, so two controllers (invctl and a browser's START, say) can
 * never both win, and a transition that does not apply in the current
 * state changes nothing. Times are wall-clock microseconds so that any
 * process on any machine can follow a cycle's schedule.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rds.h"
#include "state.h"
#include "util.h"

static const char transition_lua[] =
"local c, b = KEYS[1], KEYS[2]\n"
"local st = redis.call('HGET', c, 'state') or 'idle'\n"
"local cyc = tonumber(redis.call('HGET', c, 'cycle') or '0')\n"
"local op, now = ARGV[1], ARGV[2]\n"
"if op == 'start' then\n"
"  if st ~= 'idle' and st ~= 'draining' then return 0 end\n"
"  local base = redis.call('HGET', b, 'displayed') or '0'\n"
"  redis.call('HSET', c, 'state', 'running', 'cycle', cyc + 1,\n"
"    'rate_milli', ARGV[4], 'duration', ARGV[5], 'target', ARGV[6],\n"
"    'started_us', now, 'since_us', now, 'generated', 0, 'last_id', 0,\n"
"    'displayed_base', base)\n"
"  return 1\n"
"elseif op == 'stop' then\n"
"  if st ~= 'running' then return 0 end\n"
"  redis.call('HSET', c, 'state', 'stopping', 'since_us', now)\n"
"  return 1\n"
"elseif op == 'ack' then\n"
"  if st ~= 'stopping' or cyc ~= tonumber(ARGV[3]) then return 0 end\n"
"  redis.call('HSET', c, 'state', 'draining', 'since_us', now)\n"
"  return 1\n"
"elseif op == 'finish' then\n"
"  if (st ~= 'running' and st ~= 'stopping') or cyc ~= tonumber(ARGV[3])\n"
"    then return 0 end\n"
"  redis.call('HSET', c, 'state', 'draining', 'since_us', now)\n"
"  return 1\n"
"elseif op == 'idle' then\n"
"  if st ~= 'draining' then return 0 end\n"
"  local backlog = tonumber(redis.call('HGET', b, 'backlog') or '0')\n"
"  local lo = tonumber(redis.call('HGET', b, 'last_out') or '-1')\n"
"  local li = tonumber(redis.call('HGET', c, 'last_id') or '0')\n"
"  if backlog > 0 or (lo >= 0 and lo < li) then return 0 end\n"
"  redis.call('HSET', c, 'state', 'idle', 'since_us', now)\n"
"  return 1\n"
"end\n"
"return redis.error_reply('unknown transition')\n";

static const char progress_lua[] =
"if tonumber(redis.call('HGET', KEYS[1], 'cycle') or '0') ~= tonumber(ARGV[1])\n"
"  then return 0 end\n"
"redis.call('HSET', KEYS[1], 'generated', ARGV[2], 'last_id', ARGV[3])\n"
"return 1\n";

static const char restore_lua[] =
"if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
"redis.call('HSET', KEYS[1], 'state', ARGV[1], 'cycle', ARGV[2],\n"
"  'rate_milli', ARGV[3], 'duration', ARGV[4], 'target', ARGV[5],\n"
"  'started_us', ARGV[6], 'since_us', ARGV[7], 'generated', ARGV[8],\n"
"  'last_id', ARGV[9], 'displayed_base', 0)\n"
"return 1\n";

static int
rerr(redisContext *c, redisReply *r, char *err, size_t size)
{
	snprintf(err, size, "Redis: %s", r != NULL && r->type ==
	    REDIS_REPLY_ERROR ? r->str : c->errstr[0] != '\0' ? c->errstr :
	    "unexpected reply");
	freeReplyObject(r);
	return -1;
}

static int64_t
num(const char *s)
{
	return s != NULL ? strtoll(s, NULL, 10) : 0;
}

/* Read NS:control and NS:buf into ctl; a missing hash reads as idle. */
int
inv_control_get(redisContext *c, struct inv_control *ctl, char *err,
    size_t size)
{
	char kc[128], kb[128];
	redisReply *r[2];
	size_t i, j;

	memset(ctl, 0, sizeof(*ctl));
	snprintf(ctl->state, sizeof(ctl->state), "idle");
	redisAppendCommand(c, "HGETALL %s", inv_key(kc, sizeof(kc), "control"));
	redisAppendCommand(c, "HGETALL %s", inv_key(kb, sizeof(kb), "buf"));
	for (i = 0; i < 2; i++) {
		if (redisGetReply(c, (void **)&r[i]) != REDIS_OK ||
		    r[i]->type != REDIS_REPLY_ARRAY) {
			if (i == 1)
				freeReplyObject(r[0]);
			return rerr(c, c->err ? NULL : r[i], err, size);
		}
	}
	for (j = 0; j + 1 < r[0]->elements; j += 2) {
		const char *k = r[0]->element[j]->str;
		const char *v = r[0]->element[j + 1]->str;

		if (strcmp(k, "state") == 0)
			snprintf(ctl->state, sizeof(ctl->state), "%s", v);
		else if (strcmp(k, "cycle") == 0) ctl->cycle = num(v);
		else if (strcmp(k, "rate_milli") == 0) ctl->rate_milli = num(v);
		else if (strcmp(k, "duration") == 0) ctl->duration = num(v);
		else if (strcmp(k, "target") == 0) ctl->target = num(v);
		else if (strcmp(k, "started_us") == 0) ctl->started_us = num(v);
		else if (strcmp(k, "generated") == 0) ctl->generated = num(v);
		else if (strcmp(k, "last_id") == 0) ctl->last_id = num(v);
		else if (strcmp(k, "since_us") == 0) ctl->since_us = num(v);
		else if (strcmp(k, "displayed_base") == 0)
			ctl->displayed_base = num(v);
	}
	ctl->have_buf = r[1]->elements > 0;
	for (j = 0; j + 1 < r[1]->elements; j += 2) {
		const char *k = r[1]->element[j]->str;
		const char *v = r[1]->element[j + 1]->str;

		if (strcmp(k, "backlog") == 0) ctl->backlog = num(v);
		else if (strcmp(k, "displayed") == 0) ctl->displayed = num(v);
		else if (strcmp(k, "last_out") == 0) ctl->last_out = num(v);
	}
	freeReplyObject(r[0]);
	freeReplyObject(r[1]);
	return 0;
}

/*
 * Apply a transition. Returns 1 when it applied, 0 when the current
 * state refuses it (ctl, if given, then holds that state), -1 on error.
 * For INV_START, rate_milli and duration describe the cycle; for ACK and
 * FINISH, cycle names the cycle the generator ran.
 */
int
inv_control_apply(redisContext *c, enum inv_transition t, int64_t cycle,
    int64_t rate_milli, int64_t duration, struct inv_control *ctl,
    char *err, size_t size)
{
	static const char *const ops[] = { "start", "stop", "ack", "finish",
	    "idle" };
	char kc[128], kb[128], now[24], cyc[24], rate[24], dur[24], tgt[24];
	redisReply *r;
	int applied;

	snprintf(now, sizeof(now), "%" PRId64, inv_real_us());
	snprintf(cyc, sizeof(cyc), "%" PRId64, cycle);
	snprintf(rate, sizeof(rate), "%" PRId64, rate_milli);
	snprintf(dur, sizeof(dur), "%" PRId64, duration);
	snprintf(tgt, sizeof(tgt), "%" PRId64, rate_milli * duration / 1000);
	r = redisCommand(c, "EVAL %s 2 %s %s %s %s %s %s %s %s", transition_lua,
	    inv_key(kc, sizeof(kc), "control"), inv_key(kb, sizeof(kb), "buf"),
	    ops[t], now, cyc, rate, dur, tgt);
	if (r == NULL || r->type != REDIS_REPLY_INTEGER)
		return rerr(c, r, err, size);
	applied = r->integer == 1;
	freeReplyObject(r);
	if (ctl != NULL && inv_control_get(c, ctl, err, size) < 0)
		return -1;
	if (applied)
		(void)inv_control_publish(c, err, size);
	return applied;
}

/* The generator's count for its cycle (ignored if the cycle moved on). */
int
inv_control_progress(redisContext *c, int64_t cycle, int64_t generated,
    int64_t last_id, char *err, size_t size)
{
	char kc[128];
	redisReply *r;

	r = redisCommand(c, "EVAL %s 1 %s %" PRId64 " %" PRId64 " %" PRId64,
	    progress_lua, inv_key(kc, sizeof(kc), "control"), cycle,
	    generated, last_id);
	if (r == NULL || r->type != REDIS_REPLY_INTEGER)
		return rerr(c, r, err, size);
	freeReplyObject(r);
	return 0;
}

/* Put back NS:control after Redis lost it, from what a generator knows. */
int
inv_control_restore(redisContext *c, const struct inv_control *ctl,
    char *err, size_t size)
{
	char kc[128];
	redisReply *r;
	int applied;

	r = redisCommand(c, "EVAL %s 1 %s %s %" PRId64 " %" PRId64 " %" PRId64
	    " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64,
	    restore_lua, inv_key(kc, sizeof(kc), "control"), ctl->state,
	    ctl->cycle, ctl->rate_milli, ctl->duration, ctl->target,
	    ctl->started_us, ctl->since_us, ctl->generated, ctl->last_id);
	if (r == NULL || r->type != REDIS_REPLY_INTEGER)
		return rerr(c, r, err, size);
	applied = r->integer == 1;
	freeReplyObject(r);
	return applied;
}

/* The status object, as invctl status prints it and NS:state carries it. */
int
inv_control_json(const struct inv_control *ctl, char *buf, size_t size)
{
	char since[48], rate[32];
	int64_t shown = ctl->displayed - ctl->displayed_base;

	if (shown < 0)
		shown = 0;
	if (ctl->rate_milli % 1000 == 0)
		snprintf(rate, sizeof(rate), "%" PRId64, ctl->rate_milli / 1000);
	else {
		int n = snprintf(rate, sizeof(rate), "%" PRId64 ".%03" PRId64,
		    ctl->rate_milli / 1000, ctl->rate_milli % 1000);

		while (n > 0 && rate[n - 1] == '0')
			rate[--n] = '\0';
	}
	if (ctl->since_us > 0) {
		char ts[32];

		snprintf(since, sizeof(since), "\"%s\"",
		    inv_time_format(ctl->since_us, ts, sizeof(ts)));
	} else
		snprintf(since, sizeof(since), "null");
	return snprintf(buf, size, "{\"state\":\"%s\",\"generated\":%" PRId64
	    ",\"target\":%" PRId64 ",\"backlog\":%" PRId64 ",\"displayed\":%"
	    PRId64 ",\"cycle\":%" PRId64 ",\"rate\":%s,\"duration\":%" PRId64
	    ",\"since\":%s}", ctl->state, ctl->generated, ctl->target,
	    ctl->backlog, shown, ctl->cycle, rate, ctl->duration, since);
}

/* Tell subscribers of NS:state what the status is now. */
int
inv_control_publish(redisContext *c, char *err, size_t size)
{
	struct inv_control ctl;
	char json[512], ks[128];
	redisReply *r;

	if (inv_control_get(c, &ctl, err, size) < 0)
		return -1;
	inv_control_json(&ctl, json, sizeof(json));
	r = redisCommand(c, "PUBLISH %s %s", inv_key(ks, sizeof(ks), "state"),
	    json);
	if (r == NULL || r->type == REDIS_REPLY_ERROR)
		return rerr(c, r, err, size);
	freeReplyObject(r);
	return 0;
}
