/*
 * START, STOP and status on NS:control, as one Lua script run with
 * EVAL: Redis runs a script atomically, so reading the state, checking
 * that the change is allowed, writing it and publishing it on NS:state
 * cannot interleave with another client doing the same. The script
 * builds the state JSON itself, so every program prints the same bytes.
 *
 * KEYS[1] NS:control, KEYS[2] NS:buf; ARGV: op, the NS:state channel,
 * rate, duration, target, since.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "control.h"
#include "rds.h"
#include "util.h"

static const char script[] =
"local ctl, buf, op = KEYS[1], KEYS[2], ARGV[1]\n"
"local fields = {'state', 'cycle', 'rate', 'duration', 'target',\n"
"    'generated', 'since'}\n"
"local function esc(s)\n"
"  return (string.gsub(s, '[%c\"\\\\]', function(ch)\n"
"    return string.format('\\\\u%04x', string.byte(ch)) end))\n"
"end\n"
"local function int(v) return tonumber(v) or 0 end\n"
"local c = redis.call('HMGET', ctl, unpack(fields))\n"
"local state = c[1] or 'idle'\n"
"local ok, msg = 1, ''\n"
"if op == 'start' then\n"
"  if state == 'idle' or state == 'draining' then\n"
"    redis.call('HINCRBY', ctl, 'cycle', 1)\n"
"    redis.call('HSET', ctl, 'state', 'running', 'rate', ARGV[3],\n"
"        'duration', ARGV[4], 'target', ARGV[5], 'generated', 0,\n"
"        'since', ARGV[6])\n"
"  else\n"
"    ok, msg = 0, 'cannot start: the state is ' .. state ..\n"
"        ' (START is accepted in idle and draining)'\n"
"  end\n"
"elseif op == 'stop' then\n"
"  if state == 'running' then\n"
"    redis.call('HSET', ctl, 'state', 'stopping', 'since', ARGV[6])\n"
"  else\n"
"    ok, msg = 0, 'cannot stop: the state is ' .. state ..\n"
"        ' (STOP is accepted in running)'\n"
"  end\n"
"end\n"
"if ok == 1 and op ~= 'status' then\n"
"  c = redis.call('HMGET', ctl, unpack(fields))\n"
"  state = c[1]\n"
"end\n"
"local b = redis.call('HMGET', buf, 'backlog', 'displayed')\n"
"local rate = c[3] or '0'\n"
"if not (string.match(rate, '^%d+$') or string.match(rate, '^%d+%.%d+$'))\n"
"then rate = '0' end\n"
"local since = 'null'\n"
"if c[7] then since = '\"' .. esc(c[7]) .. '\"' end\n"
"local json = string.format('{\"state\":\"%s\",\"generated\":%d,'\n"
"    .. '\"target\":%d,\"backlog\":%d,\"displayed\":%d,\"cycle\":%d,'\n"
"    .. '\"rate\":%s,\"duration\":%d,\"since\":%s}', esc(state),\n"
"    int(c[6]), int(c[5]), int(b[1]), int(b[2]), int(c[2]), rate,\n"
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
	static const char *const ops[] = { "status", "start", "stop" };
	struct inv_control_args none = { INV_CONTROL_RATE,
	    INV_CONTROL_DURATION, 0 };
	int i;

	if (a == NULL)
		a = &none;
	inv_key(kctl, sizeof(kctl), "control");
	inv_key(kbuf, sizeof(kbuf), "buf");
	inv_key(kstate, sizeof(kstate), "state");
	rate_text(a->rate_milli, cmd->buf[0], sizeof(cmd->buf[0]));
	snprintf(cmd->buf[1], sizeof(cmd->buf[1]), "%" PRId64, a->duration);
	snprintf(cmd->buf[2], sizeof(cmd->buf[2]), "%" PRId64,
	    a->rate_milli * a->duration / 1000);
	inv_time_format(a->now_us, cmd->buf[3], sizeof(cmd->buf[3]));
	cmd->argc = 0;
	cmd->argv[cmd->argc++] = "EVAL";
	cmd->argv[cmd->argc++] = script;
	cmd->argv[cmd->argc++] = "2";
	cmd->argv[cmd->argc++] = kctl;
	cmd->argv[cmd->argc++] = kbuf;
	cmd->argv[cmd->argc++] = ops[op];
	cmd->argv[cmd->argc++] = kstate;
	for (i = 0; i < 4; i++)
		cmd->argv[cmd->argc++] = cmd->buf[i];
	for (i = 0; i < cmd->argc; i++)
		cmd->argvlen[i] = strlen(cmd->argv[i]);
}

/*
 * Read the script's answer: the state JSON into json. Returns 1 when
 * the operation was done (always for status), 0 when the state machine
 * refused it (the reason in err), -1 on an error (in err).
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

/* The same over a blocking connection (invctl). */
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
