/*
 * The statistics: JSON from cents, the PostgreSQL aggregate, and the
 * Redis hash NS:stats with the scripts that keep it equal to the
 * database. Every amount is int64 cents; the database sums NUMERIC
 * exactly and hands back cents as bigint, so no double is ever involved.
 * Each change to the hash is one Lua script, hence atomic: count, sums,
 * last_id and the set of ids above the floor always move together, and
 * a kill -9 at any point leaves a hash that a settle makes exact again.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "money.h"
#include "rds.h"
#include "stats.h"
#include "util.h"

#define TRIES		8	/* catch-ups raced by other writers */
#define CHUNK		10000	/* rows in one script call */
#define CHUNK_SQL	"10000"
#define FLOOR_LAG_MS	2000	/* how old an id the floor may rise to */
#define FLOOR_LAG_IDS	50000	/* how far below max(id) a jump may go */
#define REBUILD_TTL_S	"3600"	/* a rebuild's keys, until its swap */
#define FULL_MS		30000	/* between checks below the floor */

/*
 * Invoice ids compared as canonical decimal strings, so ids past 2^53
 * (where Lua's doubles lose digits) still compare exactly.
 */
#define LUA_GT \
	"local function gt(a, b)\n" \
	"  if #a ~= #b then return #a > #b end\n" \
	"  return a > b\n" \
	"end\n"

/*
 * The members of NS:stats:ids: ids padded with zeros to 19 digits, all
 * with score 0, so the set orders them exactly by their bytes and the
 * ids at or below the floor go by ZREMRANGEBYLEX. Scores are doubles,
 * which past 2^53 round an id just above the floor onto it. A rebuild's
 * set holds the placeholder "~" until its swap, above every id.
 */
#define LUA_PAD \
	"local function pad(id) return string.rep('0', 19 - #id) .. id end\n"

/*
 * Count invoices into NS:stats, each at most once, and raise NS:fwd.
 * With a database an invoice is new when its id is above the floor and
 * not in NS:stats:ids, the set of the ids counted above the floor: the
 * rows of several writers commit in any order of their ids, so a mark
 * alone would skip a row that committed after a higher one was counted.
 * Without one the lines are the only source, in id order: an id is new
 * when it is above last_id, and the floor follows last_id.
 * KEYS[1] NS:stats, KEYS[2] NS:stats:ids, KEYS[3] NS:fwd. ARGV[1] "1":
 * no database (an absent hash starts from zero; with a database an
 * absent hash means Redis lost it and the caller rebuilds); ARGV[2] the
 * highest id written to stdout, or "0"; ARGV[3] n invoices; ARGV[4] "s":
 * ids strictly increasing and all above last_id (else {0}), sums
 * ARGV[5..7], the ids from ARGV[8]; or "l": n quadruples id, subtotal,
 * vat, total from ARGV[5]. Returns {1, fields..., low}, {0} or {-1}:
 * low is how many ids were at or below the floor, where a line is
 * normally a repeat, but may be a row that committed after the floor
 * passed it, which only a check below the floor finds.
 */
static const char count_lua[] =
	LUA_GT LUA_PAD
	"local k, z, f = KEYS[1], KEYS[2], KEYS[3]\n"
	"local only = ARGV[1] == '1'\n"
	"if ARGV[2] ~= '0' then\n"
	"  local cur = redis.call('GET', f)\n"
	"  if not cur or gt(ARGV[2], cur) then redis.call('SET', f, ARGV[2]) end\n"
	"end\n"
	"local h = redis.call('HMGET', k, 'last_id', 'floor')\n"
	"local last, floor = h[1], h[2] or h[1]\n"
	"if not last then\n"
	"  if not only then return {-1} end\n"
	"  redis.call('DEL', k, z)\n"
	"  redis.call('HSET', k, 'count', '0', 'subtotal', '0', 'vat', '0',"
	" 'total', '0', 'last_id', '0', 'floor', '0')\n"
	"  last, floor = '0', '0'\n"
	"end\n"
	"local n, low = tonumber(ARGV[3]), 0\n"
	"if n > 0 and ARGV[4] == 's' then\n"
	"  if not gt(ARGV[8], last) then return {0} end\n"
	"  redis.call('HINCRBY', k, 'count', n)\n"
	"  redis.call('HINCRBY', k, 'subtotal', ARGV[5])\n"
	"  redis.call('HINCRBY', k, 'vat', ARGV[6])\n"
	"  redis.call('HINCRBY', k, 'total', ARGV[7])\n"
	"  last = ARGV[7 + n]\n"
	"  if not only then\n"
	"    local t = {}\n"
	"    for i = 8, 7 + n do\n"
	"      t[#t + 1] = 0\n"
	"      t[#t + 1] = pad(ARGV[i])\n"
	"      if #t >= 1000 then redis.call('ZADD', z, unpack(t)); t = {} end\n"
	"    end\n"
	"    if #t > 0 then redis.call('ZADD', z, unpack(t)) end\n"
	"  end\n"
	"elseif n > 0 then\n"
	"  for i = 0, n - 1 do\n"
	"    local b = 5 + i * 4\n"
	"    local id, new = ARGV[b]\n"
	"    if only then new = gt(id, last)\n"
	"    elseif gt(id, floor) then new = not redis.call('ZSCORE', z, pad(id))\n"
	"    else low = low + 1 end\n"
	"    if new then\n"
	"      redis.call('HINCRBY', k, 'count', 1)\n"
	"      redis.call('HINCRBY', k, 'subtotal', ARGV[b + 1])\n"
	"      redis.call('HINCRBY', k, 'vat', ARGV[b + 2])\n"
	"      redis.call('HINCRBY', k, 'total', ARGV[b + 3])\n"
	"      if not only then redis.call('ZADD', z, 0, pad(id)) end\n"
	"      if gt(id, last) then last = id end\n"
	"    end\n"
	"  end\n"
	"end\n"
	"redis.call('HSET', k, 'last_id', last)\n"
	"if only then redis.call('HSET', k, 'floor', last) end\n"
	"local r = redis.call('HMGET', k, 'count', 'subtotal', 'vat', 'total',"
	" 'last_id')\n"
	"return {1, r[1], r[2], r[3], r[4], r[5], low}\n";

/*
 * The hash and the size of the set, in one snapshot. KEYS[1] NS:stats,
 * KEYS[2] NS:stats:ids. Returns {count, subtotal, vat, total, last_id,
 * floor, ids counted above the floor}, or {} without a complete hash.
 * A hash from before the floor existed has its floor at last_id. A set
 * from before the ids were padded (each id its own score) is no
 * complete hash either: its members are not found by their padded
 * names, so its ids would be counted again; it is rebuilt.
 */
static const char read_lua[] =
	"local r = redis.call('HMGET', KEYS[1], 'count', 'subtotal', 'vat',"
	" 'total', 'last_id', 'floor')\n"
	"for i = 1, 5 do if not r[i] then return {} end end\n"
	"local n = redis.call('ZCARD', KEYS[2])\n"
	"if redis.call('ZCOUNT', KEYS[2], 0, 0) ~= n then return {} end\n"
	"return {r[1], r[2], r[3], r[4], r[5], r[6] or r[5], tostring(n)}\n";

/*
 * Catch-up with nothing counted above the floor: add the aggregate of
 * rows above it in one step, and move the floor and last_id to their
 * highest id, only if the floor is still the one the caller read and the
 * set still empty (another writer may have counted meanwhile). KEYS[1]
 * NS:stats, KEYS[2] NS:stats:ids; ARGV expected floor, count, subtotal,
 * vat, total, their highest id. Returns {1, fields...}, {0} when
 * something moved, {-1} when the hash is gone.
 */
static const char catchup_lua[] =
	"local k = KEYS[1]\n"
	"local h = redis.call('HMGET', k, 'last_id', 'floor')\n"
	"if not h[1] then return {-1} end\n"
	"if (h[2] or h[1]) ~= ARGV[1] or redis.call('EXISTS', KEYS[2]) == 1"
	" then return {0} end\n"
	"redis.call('HINCRBY', k, 'count', ARGV[2])\n"
	"redis.call('HINCRBY', k, 'subtotal', ARGV[3])\n"
	"redis.call('HINCRBY', k, 'vat', ARGV[4])\n"
	"redis.call('HINCRBY', k, 'total', ARGV[5])\n"
	"redis.call('HSET', k, 'last_id', ARGV[6], 'floor', ARGV[6])\n"
	"local r = redis.call('HMGET', k, 'count', 'subtotal', 'vat', 'total',"
	" 'last_id')\n"
	"return {1, r[1], r[2], r[3], r[4], r[5]}\n";

/*
 * Raise the floor to ARGV[2] and forget the ids at or below it, if the
 * floor is still ARGV[1] and ARGV[2] not above last_id (the floor never
 * passes what was counted). KEYS[1] NS:stats, KEYS[2] NS:stats:ids.
 * Returns {1}, {0} when the floor moved meanwhile, {-1} without a hash.
 */
static const char floor_lua[] =
	LUA_GT LUA_PAD
	"local h = redis.call('HMGET', KEYS[1], 'last_id', 'floor')\n"
	"if not h[1] then return {-1} end\n"
	"if (h[2] or h[1]) ~= ARGV[1] or gt(ARGV[2], h[1]) then return {0} end\n"
	"redis.call('HSET', KEYS[1], 'floor', ARGV[2])\n"
	"redis.call('ZREMRANGEBYLEX', KEYS[2], '-', '[' .. pad(ARGV[2]))\n"
	"return {1}\n";

/*
 * Rebuild, the first step: a temp hash holding the aggregate of the
 * table up to FLOOR_LAG_IDS below its highest id, with the floor and
 * last_id at the highest id it holds, and a temp set holding only the
 * placeholder "~" (above every padded id). Both expire after REBUILD_TTL_S,
 * so a rebuild killed before its swap leaves nothing behind for long;
 * ZADD keeps the expiry as the rows are counted. KEYS[1] temp hash,
 * KEYS[2] temp set; ARGV count, subtotal, vat, total, last_id, ttl.
 */
static const char rebuild_lua[] =
	"redis.call('DEL', KEYS[1], KEYS[2])\n"
	"redis.call('HSET', KEYS[1], 'count', ARGV[1], 'subtotal', ARGV[2],"
	" 'vat', ARGV[3], 'total', ARGV[4], 'last_id', ARGV[5],"
	" 'floor', ARGV[5])\n"
	"redis.call('ZADD', KEYS[2], 0, '~')\n"
	"redis.call('EXPIRE', KEYS[1], ARGV[6])\n"
	"redis.call('EXPIRE', KEYS[2], ARGV[6])\n"
	"return {1}\n";

/*
 * Rebuild, the last step: the temp hash and set, complete, take the
 * place of NS:stats and NS:stats:ids together, for good (an empty set
 * is no key, so none replaces the old one). KEYS[1] temp hash, KEYS[2]
 * temp set, KEYS[3] NS:stats, KEYS[4] NS:stats:ids. Returns {1,
 * fields...}.
 */
static const char swap_lua[] =
	"redis.call('RENAME', KEYS[1], KEYS[3])\n"
	"redis.call('PERSIST', KEYS[3])\n"
	"redis.call('ZREM', KEYS[2], '~')\n"
	"if redis.call('EXISTS', KEYS[2]) == 1 then\n"
	"  redis.call('RENAME', KEYS[2], KEYS[4])\n"
	"  redis.call('PERSIST', KEYS[4])\n"
	"else redis.call('DEL', KEYS[4]) end\n"
	"local r = redis.call('HMGET', KEYS[3], 'count', 'subtotal', 'vat',"
	" 'total', 'last_id')\n"
	"return {1, r[1], r[2], r[3], r[4], r[5]}\n";

/* Mean of total_amount in cents, rounded half-up; 0 with no invoices. */
int64_t
inv_stats_average(const struct inv_stats *st)
{
	return st->st_count > 0 ? inv_div_round(st->st_total, st->st_count) : 0;
}

int
inv_stats_json(const struct inv_stats *st, const char *source, char *buf,
    size_t size)
{
	char tot[INV_MONEY_BUFSZ], vat[INV_MONEY_BUFSZ], avg[INV_MONEY_BUFSZ];

	return snprintf(buf, size, "{\"count\":%" PRId64 ",\"total_amount\":%s,"
	    "\"vat_amount\":%s,\"average_amount\":%s,\"source\":\"%s\"}",
	    st->st_count, inv_money_format(st->st_total, tot, sizeof(tot)),
	    inv_money_format(st->st_vat, vat, sizeof(vat)),
	    inv_money_format(inv_stats_average(st), avg, sizeof(avg)), source);
}

/* A non-negative decimal integer, all of the string. */
static int
parse_count(const char *s, int64_t *out)
{
	const char *errstr;
	long long v;

	if (s == NULL || inv_parse_int(s, 0, LLONG_MAX, &v, &errstr) < 0)
		return -1;
	*out = v;
	return 0;
}

/* Five bulk strings: count, subtotal, vat, total, last_id. */
static int
parse_fields(redisReply *const *el, struct inv_stats *st)
{
	int64_t *dst[5] = { &st->st_count, &st->st_subtotal, &st->st_vat,
	    &st->st_total, &st->st_last_id };
	int i;

	for (i = 0; i < 5; i++) {
		if (el[i]->type != REDIS_REPLY_STRING ||
		    parse_count(el[i]->str, dst[i]) < 0)
			return -1;
	}
	return 0;
}

/*
 * The reply to HMGET NS:stats INV_STATS_HMGET_FIELDS. Returns 0, or -1
 * when it does not hold complete statistics (no hash, a field missing or
 * not a number): the caller then asks PostgreSQL or rebuilds.
 */
int
inv_stats_reply(const redisReply *r, struct inv_stats *st)
{
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 5)
		return -1;
	return parse_fields(r->element, st);
}

/*
 * Reply of one of the scripts above: 1 with the fields in st (if not
 * NULL), or the script's status (0, -1); -2 for a reply of the wrong
 * shape.
 */
static int
script_reply(const redisReply *r, struct inv_stats *st)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER)
		return -2;
	if (r->element[0]->integer != 1 || st == NULL)
		return (int)r->element[0]->integer;
	/* The count script adds how many ids were below the floor. */
	if (r->elements < 6 || r->elements > 7 ||
	    parse_fields(r->element + 1, st) < 0)
		return -2;
	return 1;
}

static int
bad_reply(const char *what, char *err, size_t size)
{
	snprintf(err, size, "%s: unexpected reply from the script", what);
	return INV_STATS_EREDIS;
}

static int
redis_failed(redisContext *rc, redisReply *r, const char *what, char *err,
    size_t size)
{
	if (r == NULL)
		snprintf(err, size, "%s: %s", what, rc->errstr[0] != '\0' ?
		    rc->errstr : "connection lost");
	else
		snprintf(err, size, "%s: %s", what,
		    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
	freeReplyObject(r);
	return INV_STATS_EREDIS;
}

/* One row of numbers from PostgreSQL, each a non-negative integer. */
static int
db_numbers(PGresult *res, int row, int64_t **dst, int n, char *err,
    size_t size)
{
	int i;

	for (i = 0; i < n; i++) {
		if (parse_count(PQgetvalue(res, row, i), dst[i]) < 0) {
			snprintf(err, size, "cannot aggregate invoices: "
			    "unexpected value '%s'", PQgetvalue(res, row, i));
			return INV_STATS_EDB;
		}
	}
	return 0;
}

/* A statement that answers one row of n numbers, into dst. */
static int
db_row(PGconn *db, const char *sql, int nparams, const char **params,
    int64_t **dst, int n, const char *what, char *err, size_t size)
{
	PGresult *res;
	int rv;

	res = PQexecParams(db, sql, nparams, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
	    PQnfields(res) != n) {
		inv_db_failed(db, res, what, err, size);
		PQclear(res);
		return INV_STATS_EDB;
	}
	rv = db_numbers(res, 0, dst, n, err, size);
	PQclear(res);
	return rv;
}

/*
 * The aggregate of the invoices with id > above and id <= *upto, in one
 * statement (one snapshot), where *upto is set to lag below the highest
 * id (but not below above): count and sums in st, st_last_id = their
 * max(id) (or above when there are none).
 */
static int
db_aggregate(PGconn *db, int64_t above, int64_t lag, struct inv_stats *st,
    int64_t *upto, char *err, size_t size)
{
	char abuf[24], lbuf[24];
	const char *params[2] = { abuf, lbuf };
	int64_t *dst[6] = { &st->st_count, &st->st_subtotal, &st->st_vat,
	    &st->st_total, &st->st_last_id, upto };

	snprintf(abuf, sizeof(abuf), "%" PRId64, above);
	snprintf(lbuf, sizeof(lbuf), "%" PRId64, lag);
	return db_row(db, "WITH m AS (SELECT greatest($1::bigint,"
	    " coalesce(max(id), 0) - $2::bigint) AS upto FROM invoices)"
	    " SELECT count(*),"
	    " (coalesce(sum(subtotal), 0) * 100)::bigint,"
	    " (coalesce(sum(vat_amount), 0) * 100)::bigint,"
	    " (coalesce(sum(total_amount), 0) * 100)::bigint,"
	    " coalesce(max(id), $1::bigint), (SELECT upto FROM m)"
	    " FROM invoices WHERE id > $1::bigint"
	    " AND id <= (SELECT upto FROM m)", 2, params, dst, 6,
	    "cannot aggregate invoices", err, size);
}

/* The aggregate of the invoices with id > above (see db_aggregate). */
int
inv_stats_db(PGconn *db, int64_t above, struct inv_stats *st, char *err,
    size_t size)
{
	int64_t upto;

	return db_aggregate(db, above, 0, st, &upto, err, size);
}

/*
 * The hash NS:stats. Returns 1 with st filled, 0 when there is no
 * complete hash, INV_STATS_EREDIS with err set.
 */
int
inv_stats_redis(redisContext *rc, struct inv_stats *st, char *err,
    size_t size)
{
	char key[128];
	redisReply *r;
	int ok;

	inv_key(key, sizeof(key), "stats");
	r = redisCommand(rc, "HMGET %s " INV_STATS_HMGET_FIELDS, key);
	if (r == NULL || r->type == REDIS_REPLY_ERROR)
		return redis_failed(rc, r, "cannot read statistics from Redis",
		    err, size);
	ok = inv_stats_reply(r, st) == 0;
	freeReplyObject(r);
	return ok ? 1 : 0;
}

static redisReply *
eval(redisContext *rc, const char *script, int nkeys, const char **keys,
    int nargs, const char **args)
{
	const char *argv[16];
	char nk[8];
	int i, n = 0;

	snprintf(nk, sizeof(nk), "%d", nkeys);
	argv[n++] = "EVAL";
	argv[n++] = script;
	argv[n++] = nk;
	for (i = 0; i < nkeys; i++)
		argv[n++] = keys[i];
	for (i = 0; i < nargs; i++)
		argv[n++] = args[i];
	return redisCommandArgv(rc, n, argv, NULL);
}

/* Decimal text of the five numbers, for a script's ARGV. */
static void
stats_args(const struct inv_stats *st, char buf[5][24], const char **args)
{
	int64_t v[5] = { st->st_count, st->st_subtotal, st->st_vat,
	    st->st_total, st->st_last_id };
	int i;

	for (i = 0; i < 5; i++) {
		snprintf(buf[i], 24, "%" PRId64, v[i]);
		args[i] = buf[i];
	}
}

/* NS:stats and NS:stats:ids, the keys every script takes first. */
static void
stats_keys(char keys[2][128])
{
	inv_key(keys[0], sizeof(keys[0]), "stats");
	inv_key(keys[1], sizeof(keys[1]), "stats:ids");
}

/*
 * Count items[0..n) into the hash keys[0] with the set keys[1], each at
 * most once (count_lua); n may be 0, to raise NS:fwd (keys[2]) alone.
 * only: there is no database, the items are the only source. fwd: the
 * highest id written downstream, or 0.
 * Returns 1 with st (if not NULL) as the hash is now, 2 the same but
 * some ids were at or below the floor and not counted (repeats, or rows
 * that committed late: the caller checks below the floor), 0 when the
 * hash is gone (rebuild first), INV_STATS_EREDIS with err set.
 */
static int
count_into(redisContext *rc, char keys[3][128],
    const struct inv_counted *items, size_t n, int only, int64_t fwd,
    struct inv_stats *st, char *err, size_t size)
{
	static const char what[] = "cannot update statistics in Redis";
	static const char **argv;
	static char (*num)[24];
	static size_t argv_cap;
	size_t argc, need = 16 + 4 * n, i, j;
	int64_t sum[3] = { 0, 0, 0 };
	int monotone = 1, list = 0, low, rv;
	redisReply *r;

	if (need > argv_cap) {
		free(argv);
		free(num);
		argv = malloc(need * sizeof(*argv));
		num = malloc(need * sizeof(*num));
		if (argv == NULL || num == NULL) {
			free(argv);
			free(num);
			argv = NULL;
			num = NULL;
			argv_cap = 0;
			snprintf(err, size, "%s: out of memory", what);
			return INV_STATS_EREDIS;
		}
		argv_cap = need;
	}
	for (i = 0; i < n; i++) {
		if (i > 0 && items[i].c_id <= items[i - 1].c_id)
			monotone = 0;
		sum[0] += items[i].c_subtotal;
		sum[1] += items[i].c_vat;
		sum[2] += items[i].c_total;
	}
again:
	argc = 0;
#define NUM(v) (snprintf(num[argc], 24, "%" PRId64, (int64_t)(v)), num[argc])
	argv[argc++] = "EVAL";
	argv[argc++] = count_lua;
	argv[argc++] = "3";
	for (j = 0; j < 3; j++)
		argv[argc++] = keys[j];
	argv[argc++] = only ? "1" : "0";
	argv[argc] = NUM(fwd); argc++;
	argv[argc] = NUM(n); argc++;
	if (n > 0 && monotone && !list) {
		argv[argc++] = "s";
		for (j = 0; j < 3; j++) {
			argv[argc] = NUM(sum[j]);
			argc++;
		}
		for (i = 0; i < n; i++) {
			argv[argc] = NUM(items[i].c_id);
			argc++;
		}
	} else {
		argv[argc++] = "l";
		for (i = 0; i < n; i++) {
			argv[argc] = NUM(items[i].c_id); argc++;
			argv[argc] = NUM(items[i].c_subtotal); argc++;
			argv[argc] = NUM(items[i].c_vat); argc++;
			argv[argc] = NUM(items[i].c_total); argc++;
		}
	}
#undef NUM
	r = redisCommandArgv(rc, (int)argc, argv, NULL);
	if (r == NULL || r->type == REDIS_REPLY_ERROR)
		return redis_failed(rc, r, what, err, size);
	rv = script_reply(r, st != NULL ? st : &(struct inv_stats){ 0 });
	low = rv == 1 && r->elements == 7 &&
	    r->element[6]->type == REDIS_REPLY_INTEGER &&
	    r->element[6]->integer > 0;
	freeReplyObject(r);
	if (rv == 0 && !list) {
		/* Some ids are not above last_id: count one by one. */
		list = 1;
		goto again;
	}
	if (rv == 1)
		return low ? 2 : 1;
	if (rv == -1)
		return 0;
	return bad_reply(what, err, size);
}

/* count_into NS:stats, NS:stats:ids and NS:fwd. */
int
inv_stats_count(redisContext *rc, const struct inv_counted *items,
    size_t n, int only, int64_t fwd, struct inv_stats *st, char *err,
    size_t size)
{
	char keys[3][128];

	stats_keys(keys);
	inv_key(keys[2], sizeof(keys[2]), "fwd");
	return count_into(rc, keys, items, n, only, fwd, st, err, size);
}

/* The hash and the set's size (read_lua): 1, 0 without a hash, or < 0. */
static int
read_hash(redisContext *rc, char keys[2][128], struct inv_stats *st,
    int64_t *floor, int64_t *above, char *err, size_t size)
{
	static const char what[] = "cannot read statistics from Redis";
	const char *kv[2] = { keys[0], keys[1] };
	int64_t *dst[7] = { &st->st_count, &st->st_subtotal, &st->st_vat,
	    &st->st_total, &st->st_last_id, floor, above };
	redisReply *r;
	size_t i;

	r = eval(rc, read_lua, 2, kv, 0, NULL);
	if (r == NULL || r->type != REDIS_REPLY_ARRAY)
		return redis_failed(rc, r, what, err, size);
	if (r->elements != 0 && r->elements != 7) {
		freeReplyObject(r);
		return bad_reply(what, err, size);
	}
	for (i = 0; i < r->elements; i++) {
		if (r->element[i]->type != REDIS_REPLY_STRING ||
		    parse_count(r->element[i]->str, dst[i]) < 0) {
			/* A field that is not a number: no statistics. */
			freeReplyObject(r);
			return 0;
		}
	}
	i = r->elements;
	freeReplyObject(r);
	return i == 7;
}

/*
 * What the database holds against a hash with the given floor, in one
 * snapshot: w[0] the rows above the floor, w[1] the highest id, and if
 * full, w[2] the rows at or below the floor.
 */
static int
db_window(PGconn *db, int64_t floor, int full, int64_t w[3], char *err,
    size_t size)
{
	char fbuf[24];
	const char *params[2] = { fbuf, full ? "t" : "f" };
	int64_t *dst[3] = { &w[0], &w[1], &w[2] };

	snprintf(fbuf, sizeof(fbuf), "%" PRId64, floor);
	return db_row(db, "SELECT"
	    " (SELECT count(*) FROM invoices WHERE id > $1::bigint),"
	    " (SELECT coalesce(max(id), 0) FROM invoices),"
	    " CASE WHEN $2::boolean THEN (SELECT count(*) FROM invoices"
	    " WHERE id <= $1::bigint) ELSE 0 END", 2, params, dst, 3,
	    "cannot count invoices", err, size);
}

/*
 * Count the rows above the floor one by one into the hash keys[0] and
 * set keys[1] (count_into), CHUNK at a time in id order: each is added
 * only if no writer has counted it.
 */
static int
count_rows(redisContext *rc, PGconn *db, char keys[3][128], int64_t floor,
    char *err, size_t size)
{
	static struct inv_counted rows[CHUNK];
	char abuf[24];
	const char *params[1] = { abuf };
	int64_t after_id = floor, *dst[4];
	PGresult *res;
	int i, n, rv;

	do {
		snprintf(abuf, sizeof(abuf), "%" PRId64, after_id);
		res = PQexecParams(db, "SELECT id, (subtotal * 100)::bigint,"
		    " (vat_amount * 100)::bigint, (total_amount * 100)::bigint"
		    " FROM invoices WHERE id > $1::bigint ORDER BY id"
		    " LIMIT " CHUNK_SQL, 1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK ||
		    PQnfields(res) != 4) {
			inv_db_failed(db, res, "cannot read invoices", err,
			    size);
			PQclear(res);
			return INV_STATS_EDB;
		}
		n = PQntuples(res);
		for (i = 0; i < n; i++) {
			dst[0] = &rows[i].c_id;
			dst[1] = &rows[i].c_subtotal;
			dst[2] = &rows[i].c_vat;
			dst[3] = &rows[i].c_total;
			if ((rv = db_numbers(res, i, dst, 4, err, size)) < 0) {
				PQclear(res);
				return rv;
			}
		}
		PQclear(res);
		if (n == 0)
			break;
		after_id = rows[n - 1].c_id;
		rv = count_into(rc, keys, rows, (size_t)n, 0, 0, NULL, err,
		    size);
		if (rv < 0)
			return rv;
		if (rv == 0) {
			snprintf(err, size, "cannot catch up statistics in "
			    "Redis: the hash is gone");
			return INV_STATS_EREDIS;
		}
	} while (n == CHUNK);
	return 0;
}

/*
 * Recompute NS:stats from the whole table, atomically: readers see the
 * old hash or the new one, never a half-built one. The new hash and set
 * are built aside, the aggregate up to FLOOR_LAG_IDS below the highest
 * id in one step and the newer rows one by one, so a writer still
 * committing among them is counted by a settle later, not lost; then
 * both take the place of the old ones in one script. On return st holds
 * what is now in Redis.
 */
int
inv_stats_rebuild(redisContext *rc, PGconn *db, struct inv_stats *st,
    char *err, size_t size)
{
	static const char what[] = "cannot rebuild statistics in Redis";
	char keys[5][128], tmpname[64], buf[5][24];
	const char *kv[4] = { keys[0], keys[1], keys[3], keys[4] }, *args[6];
	struct inv_stats agg;
	int64_t upto;
	redisReply *r;
	int rv;

	snprintf(tmpname, sizeof(tmpname), "stats:rebuild:%ld", (long)getpid());
	inv_key(keys[0], sizeof(keys[0]), tmpname);
	snprintf(tmpname, sizeof(tmpname), "stats:rebuild:%ld:ids",
	    (long)getpid());
	inv_key(keys[1], sizeof(keys[1]), tmpname);
	inv_key(keys[2], sizeof(keys[2]), "fwd");
	stats_keys(keys + 3);
	if ((rv = db_aggregate(db, 0, FLOOR_LAG_IDS, &agg, &upto, err,
	    size)) < 0)
		return rv;
	stats_args(&agg, buf, args);
	args[5] = REBUILD_TTL_S;
	r = eval(rc, rebuild_lua, 2, kv, 6, args);
	if (r == NULL || r->type == REDIS_REPLY_ERROR)
		return redis_failed(rc, r, what, err, size);
	freeReplyObject(r);
	if ((rv = count_rows(rc, db, keys, agg.st_last_id, err, size)) < 0)
		return rv;
	r = eval(rc, swap_lua, 4, kv, 0, NULL);
	if (r == NULL || r->type == REDIS_REPLY_ERROR)
		return redis_failed(rc, r, what, err, size);
	rv = script_reply(r, st);
	freeReplyObject(r);
	return rv == 1 ? 0 : bad_reply(what, err, size);
}

/*
 * Make NS:stats equal to the database, as far as one look can tell, and
 * move its floor up. The checks, from the cheap to the thorough:
 *
 * - Above the floor (every call): the rows the database holds there
 *   against the ids the set holds. The counted ids are committed rows,
 *   so equal numbers mean every row above the floor is counted; else
 *   the missing ones are counted row by row against the set. When the
 *   set is empty (a start), the rows up to FLOOR_LAG_IDS
 *   below the highest id go first, as one aggregate, and the floor
 *   jumps to the highest of them.
 *   Fewer rows than ids, or a last_id above the highest id, is a hash
 *   ahead of the database (rows deleted, a truncated table, a hash from
 *   another database): it is rebuilt.
 * - At or below the floor (full, or when se says it is due): the rows
 *   there against count minus the set. A row that committed below the
 *   floor after it was raised, or a hash ahead of the database, differ,
 *   and the hash is rebuilt.
 *
 * Otherwise the floor rises to the highest id the database held
 * FLOOR_LAG_MS before, never to a fresh one: a row reserved below it and
 * committed later than that is what the check below the floor finds.
 * *added (if not NULL) says how many invoices were added, or -1 for a
 * rebuild. On return st holds what is now in Redis.
 */
int
inv_stats_settle(redisContext *rc, PGconn *db, struct inv_settle *se,
    int full, struct inv_stats *st, int64_t *added, char *err, size_t size)
{
	char keys[3][128], expect[24], to[24], buf[5][24];
	const char *kv[2] = { keys[0], keys[1] }, *args[6];
	struct inv_stats cur, agg;
	int64_t floor, above, upto, w[3] = { 0, 0, 0 }, now = inv_mono_ns();
	int64_t before = -1;
	redisReply *r;
	int have, rv, tries, rebuilt = 0;

	stats_keys(keys);
	inv_key(keys[2], sizeof(keys[2]), "fwd");
	if (se->se_full_at <= now)
		full = 1;
	for (tries = 0; tries < TRIES; tries++) {
		if ((have = read_hash(rc, keys, &cur, &floor, &above, err,
		    size)) < 0)
			return have;
		if (have && (rv = db_window(db, floor, full, w, err,
		    size)) < 0)
			return rv;
		if (!have || cur.st_last_id > w[1] || w[0] < above ||
		    (full && w[2] != cur.st_count - above)) {
			if ((rv = inv_stats_rebuild(rc, db, &cur, err,
			    size)) < 0)
				return rv;
			rebuilt = 1;
			full = 0;	/* exact below its mark */
			continue;	/* and count what committed since */
		}
		if (before < 0)
			before = cur.st_count;
		if (full)
			se->se_full_at = now + (int64_t)FULL_MS * 1000000;
		if (w[0] == above)
			break;
		if (above > 0 || w[1] - FLOOR_LAG_IDS <= floor) {
			if ((rv = count_rows(rc, db, keys, floor, err,
			    size)) < 0)
				return rv;
			break;
		}
		/*
		 * Nothing counted above the floor (a start): the
		 * bulk of the rows in one aggregate up to FLOOR_LAG_IDS below
		 * the highest id, and the rest one by one, next round.
		 */
		if ((rv = db_aggregate(db, floor, FLOOR_LAG_IDS, &agg, &upto,
		    err, size)) < 0)
			return rv;
		if (agg.st_count == 0) {
			if ((rv = count_rows(rc, db, keys, floor, err,
			    size)) < 0)
				return rv;
			break;
		}
		snprintf(expect, sizeof(expect), "%" PRId64, floor);
		args[0] = expect;
		stats_args(&agg, buf, args + 1);
		r = eval(rc, catchup_lua, 2, kv, 6, args);
		if (r == NULL || r->type == REDIS_REPLY_ERROR)
			return redis_failed(rc, r, "cannot catch up statistics "
			    "in Redis", err, size);
		rv = script_reply(r, NULL);
		freeReplyObject(r);
		if (rv == 1) {
			/*
			 * The floor jumped to a fresh id: look below it
			 * soon, for a row another writer commits late.
			 */
			se->se_cand = 0;
			se->se_full_at = now + (int64_t)FLOOR_LAG_MS * 1000000;
		} else if (rv != 0 && rv != -1)
			return bad_reply("cannot catch up statistics in Redis",
			    err, size);
	}
	if (tries == TRIES) {
		snprintf(err, size, "cannot catch up statistics in Redis: "
		    "other writers keep moving them (%d tries)", TRIES);
		return INV_STATS_EREDIS;
	}
	if (se->se_cand > floor && now - se->se_cand_at >=
	    (int64_t)FLOOR_LAG_MS * 1000000) {
		snprintf(expect, sizeof(expect), "%" PRId64, floor);
		snprintf(to, sizeof(to), "%" PRId64, se->se_cand);
		args[0] = expect;
		args[1] = to;
		r = eval(rc, floor_lua, 2, kv, 2, args);
		if (r == NULL || r->type == REDIS_REPLY_ERROR)
			return redis_failed(rc, r, "cannot raise the floor of "
			    "the statistics", err, size);
		freeReplyObject(r);
		se->se_cand = 0;
	} else if (se->se_cand <= floor)
		se->se_cand = 0;
	if (se->se_cand == 0) {
		se->se_cand = w[1];
		se->se_cand_at = now;
	}
	if ((rv = read_hash(rc, keys, st, &floor, &above, err, size)) < 0)
		return rv;
	se->se_open = rv == 1 && above > 0;
	if (added != NULL)
		*added = rebuilt ? -1 : st->st_count - before;
	return 0;
}

/* The stats event on the channel NS:stats. */
int
inv_stats_publish(redisContext *rc, const struct inv_stats *st, char *err,
    size_t size)
{
	char chan[128], json[INV_STATS_JSON_MAX];
	redisReply *r;

	inv_key(chan, sizeof(chan), "stats");
	inv_stats_json(st, "redis", json, sizeof(json));
	r = redisCommand(rc, "PUBLISH %s %s", chan, json);
	if (r == NULL || r->type == REDIS_REPLY_ERROR)
		return redis_failed(rc, r, "cannot publish statistics", err,
		    size);
	freeReplyObject(r);
	return 0;
}
