/*
 * The statistics: JSON from cents, the PostgreSQL aggregate, and the
 * Redis hash NS:stats with the scripts that keep it equal to the
 * database. Every amount is int64 cents; the database sums NUMERIC
 * exactly and hands back cents as bigint, so no double is ever involved.
 * Each change to the hash is one Lua script, hence atomic: count, sums
 * and last_id always move together, and a kill -9 at any point leaves a
 * hash that a catch-up above last_id makes exact again.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "money.h"
#include "rds.h"
#include "stats.h"
#include "util.h"

#define TRIES	8	/* catch-ups or rebuilds raced by other writers */

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
 * Catch-up: add an aggregate of the rows above the mark the caller read,
 * only if the mark is still that one (another writer may have moved it).
 * KEYS[1] NS:stats; ARGV expected last_id, count, subtotal, vat, total,
 * new last_id. Returns {1, fields...}, {0} on a moved mark, {-1} when
 * the hash is gone.
 */
static const char catchup_lua[] =
	"local k = KEYS[1]\n"
	"if redis.call('EXISTS', k) == 0 then return {-1} end\n"
	"if redis.call('HGET', k, 'last_id') ~= ARGV[1] then return {0} end\n"
	"redis.call('HINCRBY', k, 'count', ARGV[2])\n"
	"redis.call('HINCRBY', k, 'subtotal', ARGV[3])\n"
	"redis.call('HINCRBY', k, 'vat', ARGV[4])\n"
	"redis.call('HINCRBY', k, 'total', ARGV[5])\n"
	"redis.call('HSET', k, 'last_id', ARGV[6])\n"
	"local r = redis.call('HMGET', k, 'count', 'subtotal', 'vat', 'total',"
	" 'last_id')\n"
	"return {1, r[1], r[2], r[3], r[4], r[5]}\n";

/*
 * Rebuild: the aggregate of the whole table is built aside in a temp key
 * and RENAMEd over NS:stats, unless a filter has meanwhile counted past
 * the aggregate's mark (then the aggregate is stale: take a new one) and
 * the caller does not force it (a hash ahead of a fresh aggregate came
 * from another database or a truncated table, and is simply wrong).
 * KEYS[1] temp key, KEYS[2] NS:stats; ARGV count, subtotal, vat, total,
 * last_id, force. Returns {1, fields...} or {0, the hash's last_id}.
 */
static const char rebuild_lua[] =
	LUA_GT
	"local cur = redis.call('HGET', KEYS[2], 'last_id')\n"
	"if cur and ARGV[6] ~= '1' and gt(cur, ARGV[5]) then\n"
	"  return {0, cur}\n"
	"end\n"
	"redis.call('DEL', KEYS[1])\n"
	"redis.call('HSET', KEYS[1], 'count', ARGV[1], 'subtotal', ARGV[2],"
	" 'vat', ARGV[3], 'total', ARGV[4], 'last_id', ARGV[5])\n"
	"redis.call('RENAME', KEYS[1], KEYS[2])\n"
	"return {1, ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]}\n";

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
 * Reply of one of the scripts above: 1 with the fields in st, or the
 * script's status (0, -1) with a refused rebuild's last_id in *cur;
 * -2 for a reply of the wrong shape.
 */
static int
script_reply(const redisReply *r, struct inv_stats *st, int64_t *cur)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER)
		return -2;
	if (r->element[0]->integer != 1) {
		if (cur != NULL && (r->elements != 2 ||
		    r->element[1]->type != REDIS_REPLY_STRING ||
		    parse_count(r->element[1]->str, cur) < 0))
			return -2;
		return (int)r->element[0]->integer;
	}
	if (r->elements != 6 || parse_fields(r->element + 1, st) < 0)
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

/*
 * The aggregate of the invoices with id > above, in one statement (one
 * snapshot): count and sums in st, st_last_id = their max(id) (or above
 * when there are none). If chk is not NULL, chk[0] is the highest id in
 * the whole table and chk[1] the number of rows with id <= above: what
 * a hash with mark `above` must have counted, to notice one that is
 * ahead of the database or missed a row (one that committed late).
 */
int
inv_stats_db(PGconn *db, int64_t above, struct inv_stats *st,
    int64_t *chk, char *err, size_t size)
{
	char abuf[24];
	const char *params[1] = { abuf };
	int64_t *dst[7], all, upto;
	PGresult *res;
	int i;

	snprintf(abuf, sizeof(abuf), "%" PRId64, above);
	res = PQexecParams(db, "SELECT count(*),"
	    " (coalesce(sum(subtotal), 0) * 100)::bigint,"
	    " (coalesce(sum(vat_amount), 0) * 100)::bigint,"
	    " (coalesce(sum(total_amount), 0) * 100)::bigint,"
	    " coalesce(max(id), $1::bigint),"
	    " (SELECT coalesce(max(id), 0) FROM invoices),"
	    " (SELECT count(*) FROM invoices WHERE id <= $1::bigint)"
	    " FROM invoices WHERE id > $1::bigint",
	    1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
	    PQnfields(res) != 7) {
		inv_db_failed(db, res, "cannot aggregate invoices", err, size);
		PQclear(res);
		return INV_STATS_EDB;
	}
	dst[0] = &st->st_count;
	dst[1] = &st->st_subtotal;
	dst[2] = &st->st_vat;
	dst[3] = &st->st_total;
	dst[4] = &st->st_last_id;
	dst[5] = &all;
	dst[6] = &upto;
	for (i = 0; i < 7; i++) {
		if (parse_count(PQgetvalue(res, 0, i), dst[i]) < 0) {
			snprintf(err, size, "cannot aggregate invoices: "
			    "unexpected value '%s'", PQgetvalue(res, 0, i));
			PQclear(res);
			return INV_STATS_EDB;
		}
	}
	PQclear(res);
	if (chk != NULL) {
		chk[0] = all;
		chk[1] = upto;
	}
	return 0;
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

/*
 * Recompute NS:stats from the whole table, atomically: readers see the
 * old hash or the new one, never a half-built one. On return st holds
 * what is now in Redis.
 */
int
inv_stats_rebuild(redisContext *rc, PGconn *db, struct inv_stats *st,
    char *err, size_t size)
{
	static const char what[] = "cannot rebuild statistics in Redis";
	char keys[2][128], tmpname[64], buf[5][24];
	const char *kv[2] = { keys[0], keys[1] }, *args[6];
	struct inv_stats agg;
	redisReply *r;
	int64_t refused = -1;
	int rv, tries;

	snprintf(tmpname, sizeof(tmpname), "stats:rebuild:%ld", (long)getpid());
	inv_key(keys[0], sizeof(keys[0]), tmpname);
	inv_key(keys[1], sizeof(keys[1]), "stats");
	for (tries = 0; tries < TRIES; tries++) {
		if ((rv = inv_stats_db(db, 0, &agg, NULL, err, size)) < 0)
			return rv;
		stats_args(&agg, buf, args);
		/*
		 * A filter counts only committed rows, so a mark that
		 * refused the last aggregate and is still above a newer one
		 * was not counted from this database.
		 */
		args[5] = refused > agg.st_last_id ? "1" : "0";
		r = eval(rc, rebuild_lua, 2, kv, 6, args);
		if (r == NULL || r->type == REDIS_REPLY_ERROR)
			return redis_failed(rc, r, what, err, size);
		rv = script_reply(r, st, &refused);
		freeReplyObject(r);
		if (rv == 1)
			return 0;
		if (rv != 0)
			return bad_reply(what, err, size);
	}
	snprintf(err, size, "%s: other writers keep moving the statistics "
	    "(%d tries)", what, TRIES);
	return INV_STATS_EREDIS;
}

/*
 * Make NS:stats equal to the database: when the hash exists and has
 * counted exactly the rows at or below its last_id, add the rows above
 * it in one script (checked against a concurrent move of the mark);
 * when it does not exist, or disagrees with the database, rebuild. *added (if not NULL) says how many invoices were added, or
 * -1 for a rebuild. On return st holds what is now in Redis.
 */
int
inv_stats_sync(redisContext *rc, PGconn *db, struct inv_stats *st,
    int64_t *added, char *err, size_t size)
{
	char key[128], expect[24], buf[5][24];
	const char *kv[1] = { key }, *args[6];
	struct inv_stats cur, agg;
	redisReply *r;
	int64_t chk[2];
	int rv, tries;

	inv_key(key, sizeof(key), "stats");
	if (added != NULL)
		*added = 0;
	for (tries = 0; tries < TRIES; tries++) {
		if ((rv = inv_stats_redis(rc, &cur, err, size)) < 0)
			return rv;
		if (rv == 0)
			break;
		if ((rv = inv_stats_db(db, cur.st_last_id, &agg, chk, err,
		    size)) < 0)
			return rv;
		if (cur.st_last_id > chk[0] || cur.st_count != chk[1])
			break;
		if (agg.st_count == 0) {
			*st = cur;
			return 0;
		}
		snprintf(expect, sizeof(expect), "%" PRId64, cur.st_last_id);
		args[0] = expect;
		stats_args(&agg, buf, args + 1);
		r = eval(rc, catchup_lua, 1, kv, 6, args);
		if (r == NULL || r->type == REDIS_REPLY_ERROR)
			return redis_failed(rc, r, "cannot catch up statistics "
			    "in Redis", err, size);
		rv = script_reply(r, st, NULL);
		freeReplyObject(r);
		if (rv == 1) {
			if (added != NULL)
				*added = agg.st_count;
			return 0;
		}
		if (rv == -1)
			break;
		if (rv != 0)
			return bad_reply("cannot catch up statistics in Redis",
			    err, size);
	}
	if (added != NULL)
		*added = -1;
	return inv_stats_rebuild(rc, db, st, err, size);
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
