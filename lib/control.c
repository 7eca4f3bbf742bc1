/*
 * NS:control through one Lua script run with EVAL: Redis runs a script
 * atomically, so reading the state, checking that the change is
 * allowed, writing it and publishing it on NS:state cannot interleave
 * with another client doing the same. Times are wall-clock
 * microseconds, so any process on any machine can follow a cycle's
 * schedule; "since" is also kept as the text the status shows.
 *
 * KEYS[1] NS:control, KEYS[2] NS:buf. ARGV: op, the NS:state channel,
 * now_us, now (RFC 3339), cycle, rate_milli, duration, target,
 * generated, last_id, state, started_us, rate (decimal text).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "rds.h"
#include "util.h"

static const char script[] =
"local ctl, buf, op = KEYS[1], KEYS[2], ARGV[1]\n"
"local fields = {'state', 'cycle', 'rate', 'duration', 'target',\n"
"    'generated', 'since', 'last_id', 'displayed_base'}\n"
"local function esc(s)\n"
"  return (string.gsub(s, '[%c\"\\\\]', function(ch)\n"
"    return string.format('\\\\u%04x', string.byte(ch)) end))\n"
"end\n"
"local function int(v) return tonumber(v) or 0 end\n"
"local c = redis.call('HMGET', ctl, unpack(fields))\n"
"local state, cyc = c[1] or 'idle', int(c[2])\n"
"local ok, msg, now = 1, '', ARGV[3]\n"
"local function to(s) redis.call('HSET', ctl, 'state', s, 'since_us', now,\n"
"    'since', ARGV[4]) end\n"
"if op == 'start' then\n"
"  if state == 'idle' or state == 'draining' then\n"
"    redis.call('HSET', ctl, 'cycle', cyc + 1, 'rate_milli', ARGV[6],\n"
"        'rate', ARGV[13], 'duration', ARGV[7], 'target', ARGV[8],\n"
"        'started_us', now, 'generated', 0, 'last_id', 0,\n"
"        'displayed_base', redis.call('HGET', buf, 'displayed') or 0)\n"
"    to('running')\n"
"  else\n"
"    ok, msg = 0, 'cannot start: the state is ' .. state ..\n"
"        ' (START is accepted when idle or draining)'\n"
"  end\n"
"elseif op == 'stop' then\n"
"  if state == 'running' then to('stopping') else\n"
"    ok, msg = 0, 'cannot stop: the state is ' .. state ..\n"
"        ' (STOP is accepted while running)'\n"
"  end\n"
"elseif op == 'ack' then\n"
"  if state == 'stopping' and cyc == int(ARGV[5]) then to('draining')\n"
"  else ok = 0 end\n"
"elseif op == 'finish' then\n"
"  if (state == 'running' or state == 'stopping') and cyc == int(ARGV[5])\n"
"  then to('draining') else ok = 0 end\n"
"elseif op == 'idle' then\n"
"  -- idle once the display has shown the cycle's last invoice\n"
"  local b = redis.call('HMGET', buf, 'backlog', 'last_out')\n"
"  if state == 'draining' and int(b[1]) == 0 and\n"
"      (b[2] == false or int(b[2]) >= int(c[8])) then to('idle')\n"
"  else ok = 0 end\n"
"elseif op == 'progress' then\n"
"  if cyc == int(ARGV[5]) then\n"
"    redis.call('HSET', ctl, 'generated', ARGV[9], 'last_id', ARGV[10])\n"
"  else ok = 0 end\n"
"elseif op == 'restore' then\n"
"  if redis.call('EXISTS', ctl) == 0 then\n"
"    redis.call('HSET', ctl, 'state', ARGV[11], 'cycle', ARGV[5],\n"
"        'rate_milli', ARGV[6], 'rate', ARGV[13], 'duration', ARGV[7],\n"
"        'target', ARGV[8], 'generated', ARGV[9], 'last_id', ARGV[10],\n"
"        'started_us', ARGV[12], 'since_us', now, 'since', ARGV[4],\n"
"        'displayed_base', 0)\n"
"  else ok = 0 end\n"
"end\n"
"if ok == 1 and op ~= 'status' then\n"
"  c = redis.call('HMGET', ctl, unpack(fields))\n"
"  state = c[1] or 'idle'\n"
"end\n"
"local b = redis.call('HMGET', buf, 'backlog', 'displayed')\n"
"local rate = c[3] or '0'\n"
"if not (string.match(rate, '^%d+$') or string.match(rate, '^%d+%.%d+$'))\n"
"then rate = '0' end\n"
"local since = 'null'\n"
"if c[7] then since = '\"' .. esc(c[7]) .. '\"' end\n"
"local shown = int(b[2]) - int(c[9])\n"
"if shown < 0 then shown = 0 end\n"
"local json = string.format('{\"state\":\"%s\",\"generated\":%d,'\n"
"    .. '\"target\":%d,\"backlog\":%d,\"displayed\":%d,\"cycle\":%d,'\n"
"    .. '\"rate\":%s,\"duration\":%d,\"since\":%s}', esc(state),\n"
"    int(c[6]), int(c[5]), int(b[1]), shown, int(c[2]), rate,\n"
"    int(c[4]), since)\n"
"if ok == 1 and op ~= 'status' then\n"
"  redis.call('PUBLISH', ARGV[2], json)\n"
"end\n"
"return {ok, json, msg}\n";

/* A rate in thousandths as the shortest decimal: 5000 -> "5", 2500 -> "2.5". */
static void
rate_text(int64_t milli, char *buf, size_t size)
{
	int n;

	n = snprintf(buf, size, "%" PRId64 ".%03" PRId64, milli / 1000,
	    milli % 1000);
	while (n > 0 && buf[n - 1] == '0')
		buf[--n] = '\0';
	if (n > 0 && buf[n - 1] == '.')
		buf[--n] = '\0';
}

/*
 * Fill *cmd with the EVAL that performs op. The words point into cmd
 * itself and into static storage, so cmd must outlive the call that
 * sends it (hiredis copies the words when it formats the command).
 */
void
inv_control_cmd(struct inv_control_cmd *cmd, enum inv_control_op op,
    const struct inv_control_args *a)
{
	static char kctl[128], kbuf[128], kstate[128];
	static const char *const ops[] = { "status", "start", "stop", "ack",
	    "finish", "idle", "progress", "restore" };
	struct inv_control_args none = { INV_CONTROL_RATE,
	    INV_CONTROL_DURATION, 0, 0, 0, 0, 0, 0, NULL };
	int64_t now, target;
	int i;

	if (a == NULL)
		a = &none;
	now = a->now_us != 0 ? a->now_us : inv_real_us();
	target = op == INV_CONTROL_START ?
	    a->rate_milli * a->duration / 1000 : a->target;
	inv_key(kctl, sizeof(kctl), "control");
	inv_key(kbuf, sizeof(kbuf), "buf");
	inv_key(kstate, sizeof(kstate), "state");
	snprintf(cmd->buf[0], sizeof(cmd->buf[0]), "%" PRId64, now);
	inv_time_format(now, cmd->buf[1], sizeof(cmd->buf[1]));
	snprintf(cmd->buf[2], sizeof(cmd->buf[2]), "%" PRId64, a->cycle);
	snprintf(cmd->buf[3], sizeof(cmd->buf[3]), "%" PRId64, a->rate_milli);
	snprintf(cmd->buf[4], sizeof(cmd->buf[4]), "%" PRId64, a->duration);
	snprintf(cmd->buf[5], sizeof(cmd->buf[5]), "%" PRId64, target);
	snprintf(cmd->buf[6], sizeof(cmd->buf[6]), "%" PRId64, a->generated);
	snprintf(cmd->buf[7], sizeof(cmd->buf[7]), "%" PRId64, a->last_id);
	snprintf(cmd->buf[8], sizeof(cmd->buf[8]), "%s",
	    a->state != NULL ? a->state : "idle");
	snprintf(cmd->buf[9], sizeof(cmd->buf[9]), "%" PRId64, a->started_us);
	rate_text(a->rate_milli, cmd->buf[10], sizeof(cmd->buf[10]));
	cmd->argc = 0;
	cmd->argv[cmd->argc++] = "EVAL";
	cmd->argv[cmd->argc++] = script;
	cmd->argv[cmd->argc++] = "2";
	cmd->argv[cmd->argc++] = kctl;
	cmd->argv[cmd->argc++] = kbuf;
	cmd->argv[cmd->argc++] = ops[op];
	cmd->argv[cmd->argc++] = kstate;
	for (i = 0; i < 11; i++)
		cmd->argv[cmd->argc++] = cmd->buf[i];
	for (i = 0; i < cmd->argc; i++)
		cmd->argvlen[i] = strlen(cmd->argv[i]);
}

/*
 * Read the script's answer: the status JSON into json. Returns 1 when
 * the operation was done (always for status), 0 when the state machine
 * refused it (the reason, if any, in err), -1 on an error (in err).
 */
int
inv_control_reply(const redisReply *r, char *json, size_t size, char *err,
    size_t errsize)
{
	if (r == NULL) {
		snprintf(err, errsize, "no answer from Redis");
		return -1;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		snprintf(err, errsize, "Redis: %s", r->str);
		return -1;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER ||
	    r->element[1]->type != REDIS_REPLY_STRING ||
	    r->element[2]->type != REDIS_REPLY_STRING ||
	    r->element[1]->len >= size) {
		snprintf(err, errsize, "unexpected answer from the control "
		    "script");
		return -1;
	}
	memcpy(json, r->element[1]->str, r->element[1]->len);
	json[r->element[1]->len] = '\0';
	if (r->element[0]->integer == 1)
		return 1;
	snprintf(err, errsize, "%s", r->element[2]->str);
	return 0;
}

/* The same over a blocking connection (invctl, invgen). */
int
inv_control_exec(redisContext *c, enum inv_control_op op,
    const struct inv_control_args *a, char *json, size_t size, char *err,
    size_t errsize)
{
	struct inv_control_cmd cmd;
	redisReply *r;
	int rv;

	inv_control_cmd(&cmd, op, a);
	r = redisCommandArgv(c, cmd.argc, cmd.argv, cmd.argvlen);
	if (r == NULL) {
		snprintf(err, errsize, "Redis: %s", c->errstr);
		return -1;
	}
	rv = inv_control_reply(r, json, size, err, errsize);
	freeReplyObject(r);
	return rv;
}

static int64_t
num(const char *s)
{
	return s != NULL ? strtoll(s, NULL, 10) : 0;
}

/* Read NS:control into ctl; a missing hash reads as idle, cycle 0. */
int
inv_control_get(redisContext *c, struct inv_control *ctl, char *err,
    size_t size)
{
	char kc[128];
	redisReply *r;
	size_t j;

	memset(ctl, 0, sizeof(*ctl));
	snprintf(ctl->state, sizeof(ctl->state), "idle");
	r = redisCommand(c, "HGETALL %s", inv_key(kc, sizeof(kc), "control"));
	if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
		snprintf(err, size, "Redis: %s", r != NULL && r->type ==
		    REDIS_REPLY_ERROR ? r->str : c->errstr);
		freeReplyObject(r);
		return -1;
	}
	for (j = 0; j + 1 < r->elements; j += 2) {
		const char *k = r->element[j]->str;
		const char *v = r->element[j + 1]->str;

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
	}
	freeReplyObject(r);
	return 0;
}
