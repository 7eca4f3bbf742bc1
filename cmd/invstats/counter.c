/*
 * The counter: a thread that owns the Redis and PostgreSQL connections
 * of the filter, so a slow, hung or absent server can never hold up a
 * line on its way to stdout. The filter hands it the invoices it has
 * passed on; the counter adds them to NS:stats in batches, one Lua
 * script each (idempotent above last_id), keeps NS:fwd, and publishes
 * the stats event at most every PUBLISH_MS.
 *
 * With a database, the hash must equal the database at every moment it
 * is updated from lines: after a (re)connect the counter first catches
 * up from PostgreSQL above last_id (or rebuilds), and what arrives while
 * Redis or PostgreSQL is away is dropped, since the catch-up counts it.
 * Without a database the lines are the only source: they wait in memory
 * (up to PENDING_MAX) until Redis is back.
 *
 * XXX The mark assumes rows commit in id order, which holds for one
 * invgen (it commits a batch before printing it, and batches in order).
 * Several invgen into one database can commit a lower id after a higher
 * one was counted; that row would be missed until `invstats rebuild`.
 * A periodic check of count(*) against the hash would close it.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "invstats.h"
#include "log.h"
#include "rds.h"
#include "stats.h"
#include "util.h"

#define PUBLISH_MS	50		/* a stats event within this of a line */
#define BACKOFF_MIN_MS	100
#define BACKOFF_MAX_MS	2000
#define CHUNK		10000		/* invoices in one script call */
#define PENDING_MAX	(1 << 20)	/* invoices held while Redis is away */

/*
 * Add invoices to NS:stats, each only if its id is above last_id, and
 * raise NS:fwd. KEYS[1] NS:stats, KEYS[2] NS:fwd. ARGV[1] "1" to start
 * an absent hash from zero (no database; with one, an absent hash means
 * Redis lost it and the caller rebuilds); ARGV[2] the highest id written
 * to stdout, or "0"; ARGV[3] n invoices; ARGV[4] "s": ids strictly
 * increasing, first ARGV[5], last ARGV[6], sums ARGV[7..9] (refused with
 * {0} unless all are above last_id); or "l": n quadruples id, subtotal,
 * vat, total from ARGV[5]. Returns {1, fields...}, {0} or {-1}.
 */
static const char update_lua[] =
	"local function gt(a, b)\n"
	"  if #a ~= #b then return #a > #b end\n"
	"  return a > b\n"
	"end\n"
	"local k, f = KEYS[1], KEYS[2]\n"
	"if ARGV[2] ~= '0' then\n"
	"  local cur = redis.call('GET', f)\n"
	"  if not cur or gt(ARGV[2], cur) then redis.call('SET', f, ARGV[2]) end\n"
	"end\n"
	"local last = redis.call('HGET', k, 'last_id')\n"
	"if not last then\n"
	"  if ARGV[1] ~= '1' then return {-1} end\n"
	"  redis.call('DEL', k)\n"
	"  redis.call('HSET', k, 'count', '0', 'subtotal', '0', 'vat', '0',"
	" 'total', '0', 'last_id', '0')\n"
	"  last = '0'\n"
	"end\n"
	"local n = tonumber(ARGV[3])\n"
	"if n > 0 and ARGV[4] == 's' then\n"
	"  if not gt(ARGV[5], last) then return {0} end\n"
	"  redis.call('HINCRBY', k, 'count', ARGV[3])\n"
	"  redis.call('HINCRBY', k, 'subtotal', ARGV[7])\n"
	"  redis.call('HINCRBY', k, 'vat', ARGV[8])\n"
	"  redis.call('HINCRBY', k, 'total', ARGV[9])\n"
	"  redis.call('HSET', k, 'last_id', ARGV[6])\n"
	"elseif n > 0 then\n"
	"  local moved = false\n"
	"  for i = 0, n - 1 do\n"
	"    local b = 5 + i * 4\n"
	"    if gt(ARGV[b], last) then\n"
	"      redis.call('HINCRBY', k, 'count', 1)\n"
	"      redis.call('HINCRBY', k, 'subtotal', ARGV[b + 1])\n"
	"      redis.call('HINCRBY', k, 'vat', ARGV[b + 2])\n"
	"      redis.call('HINCRBY', k, 'total', ARGV[b + 3])\n"
	"      last = ARGV[b]\n"
	"      moved = true\n"
	"    end\n"
	"  end\n"
	"  if moved then redis.call('HSET', k, 'last_id', last) end\n"
	"end\n"
	"local r = redis.call('HMGET', k, 'count', 'subtotal', 'vat', 'total',"
	" 'last_id')\n"
	"return {1, r[1], r[2], r[3], r[4], r[5]}\n";

/* Between the filter and the counter, under mu. */
static pthread_mutex_t	 mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 cv;
static struct counted	*inq;
static size_t		 inq_len, inq_cap;
static int64_t		 in_fwd;	/* highest id written to stdout */
static int		 in_eof;
static size_t		 in_lost;	/* dropped: the queue overflowed */

/* The counter's own. */
static pthread_t	 thread;
static int		 running;
static const struct config *cf;
static redisContext	*rc;
static PGconn		*db;
static int		 synced;	/* the hash equals the database */
static struct counted	*work;		/* taken from inq, not yet counted */
static size_t		 work_len, work_cap;
static int64_t		 fwd_done;	/* NS:fwd as last written */
static struct inv_stats	 cur;
static int		 dirty;		/* cur not yet published */
static int64_t		 pub_at;	/* last publish, mono ns */
static struct retry {
	int64_t	r_at;			/* next attempt, mono ns */
	int	r_backoff;		/* ms */
	int	r_said;			/* the loss was said */
}			 rds = { 0, BACKOFF_MIN_MS, 0 }, pg = { 0, BACKOFF_MIN_MS, 0 };
static int		 lost_said;
static char		 k_stats[128], k_fwd[128];

static int64_t
ms(int64_t n)
{
	return n * 1000000;
}

/* Append n items to a growable array; returns -1 when out of memory. */
static int
append(struct counted **a, size_t *len, size_t *cap,
    const struct counted *items, size_t n)
{
	if (n == 0)
		return 0;	/* items may be NULL then: memcpy must not see it */
	if (*len + n > *cap) {
		size_t ncap = *cap > 0 ? *cap : 1024;
		struct counted *p;

		while (ncap < *len + n)
			ncap *= 2;
		if ((p = realloc(*a, ncap * sizeof(**a))) == NULL)
			return -1;
		*a = p;
		*cap = ncap;
	}
	memcpy(*a + *len, items, n * sizeof(*items));
	*len += n;
	return 0;
}

/* From the filter: invoices it has passed on (or skipped as already sent). */
void
counter_add(const struct counted *items, size_t n)
{
	if (!running || n == 0)
		return;
	pthread_mutex_lock(&mu);
	if (inq_len + n > PENDING_MAX ||
	    append(&inq, &inq_len, &inq_cap, items, n) < 0) {
		in_lost += inq_len + n;
		inq_len = 0;
	}
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
}

/* From the filter: the highest invoice id it has written to stdout. */
void
counter_written(int64_t id)
{
	if (!running)
		return;
	pthread_mutex_lock(&mu);
	if (id > in_fwd) {
		in_fwd = id;
		pthread_cond_signal(&cv);
	}
	pthread_mutex_unlock(&mu);
}

/* Next attempt after a failure, with a doubling delay; 1 on the first. */
static int
retry_later(struct retry *r)
{
	r->r_at = inv_mono_ns() + ms(r->r_backoff);
	r->r_backoff = r->r_backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS :
	    r->r_backoff * 2;
	return r->r_said++ == 0;
}

/* Connected again: reset the delay, and say so if the loss was said. */
static void
retry_done(struct retry *r, const char *what)
{
	r->r_backoff = BACKOFF_MIN_MS;
	if (r->r_said) {
		inv_info("%s is back", what);
		r->r_said = 0;
	}
}

static void
redis_lost(const char *err)
{
	redisFree(rc);
	rc = NULL;
	synced = 0;
	if (retry_later(&rds))
		inv_warnx("%s; passing lines on, statistics catch up when "
		    "Redis is back", err);
}

static void
db_lost(const char *err)
{
	PQfinish(db);
	db = NULL;
	synced = 0;
	if (retry_later(&pg))
		inv_warnx("%s; statistics wait for PostgreSQL", err);
}

static int
redis_ready(int final)
{
	char err[512];

	if (rc != NULL)
		return 1;
	if (!final && inv_mono_ns() < rds.r_at)
		return 0;
	if ((rc = inv_redis_connect(&cf->cf_ru, REDIS_TIMEOUT_MS, err,
	    sizeof(err))) == NULL) {
		redis_lost(err);
		return 0;
	}
	fwd_done = 0;		/* an emptied Redis lost NS:fwd: write it again */
	retry_done(&rds, "Redis");
	return 1;
}

static int
db_ready(int final)
{
	char err[512];

	if (db != NULL)
		return 1;
	if (!final && inv_mono_ns() < pg.r_at)
		return 0;
	if ((db = inv_db_connect(cf->cf_db, err, sizeof(err))) == NULL) {
		db_lost(err);
		return 0;
	}
	retry_done(&pg, "PostgreSQL");
	return 1;
}

/* With a database: make the hash equal to it before counting lines. */
static int
sync_ready(int final)
{
	char err[512];
	int64_t added;
	int rv;

	if (cf->cf_db == NULL || synced)
		return 1;
	if (!redis_ready(final) || !db_ready(final))
		return 0;
	rv = inv_stats_sync(rc, db, &cur, &added, err, sizeof(err));
	if (rv == INV_STATS_EREDIS) {
		redis_lost(err);
		return 0;
	}
	if (rv == INV_STATS_EDB) {
		db_lost(err);
		return 0;
	}
	if (added < 0)
		inv_info("statistics rebuilt from PostgreSQL: %" PRId64
		    " invoices", cur.st_count);
	else if (inv_verbose)
		inv_info("statistics caught up from PostgreSQL: %" PRId64
		    " invoices added, last id %" PRId64, added, cur.st_last_id);
	synced = 1;
	dirty = 1;
	return 1;
}

/*
 * One script call for items[0..n) (n may be 0, to write NS:fwd alone).
 * Returns 1 done, 0 the hash is gone (rebuild first), -1 Redis failed.
 */
static int
update(const struct counted *items, size_t n, int64_t fwd)
{
	static const char **argv;
	static char (*num)[24];
	static size_t argv_cap;
	size_t argc = 0, need = 16 + 4 * n, i, j;
	int64_t sum[3] = { 0, 0, 0 };
	int monotone = 1, list = 0, rv;
	redisReply *r;
	char err[512];

again:
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
			redis_lost("cannot update statistics: out of memory");
			return -1;
		}
		argv_cap = need;
	}
	argc = 0;
#define NUM(v) (snprintf(num[argc], 24, "%" PRId64, (int64_t)(v)), num[argc])
	argv[argc++] = "EVAL";
	argv[argc++] = update_lua;
	argv[argc++] = "2";
	argv[argc++] = k_stats;
	argv[argc++] = k_fwd;
	argv[argc] = cf->cf_db != NULL ? "0" : "1"; argc++;
	argv[argc] = NUM(fwd); argc++;
	argv[argc] = NUM(n); argc++;
	for (i = 0; i < n; i++) {
		if (i > 0 && items[i].c_id <= items[i - 1].c_id)
			monotone = 0;
		sum[0] += items[i].c_subtotal;
		sum[1] += items[i].c_vat;
		sum[2] += items[i].c_total;
	}
	if (n > 0 && monotone && !list) {
		argv[argc++] = "s";
		argv[argc] = NUM(items[0].c_id); argc++;
		argv[argc] = NUM(items[n - 1].c_id); argc++;
		for (j = 0; j < 3; j++) {
			argv[argc] = NUM(sum[j]);
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
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER) {
		snprintf(err, sizeof(err), "cannot update statistics in "
		    "Redis: %s", r == NULL ? (rc->errstr[0] != '\0' ?
		    rc->errstr : "connection lost") : r->type ==
		    REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		freeReplyObject(r);
		redis_lost(err);
		return -1;
	}
	rv = (int)r->element[0]->integer;
	if (rv == 0 && !list) {
		/* Some ids are not above last_id: count one by one. */
		freeReplyObject(r);
		list = 1;
		goto again;
	}
	if (rv == 1) {
		if (inv_stats_reply(&(redisReply){ .type = REDIS_REPLY_ARRAY,
		    .elements = 5, .element = r->element + 1 }, &cur) == 0)
			dirty = 1;
		fwd_done = fwd;
	}
	freeReplyObject(r);
	return rv == 1 ? 1 : 0;
}

/* Count what the filter handed over, as far as the servers allow. */
static void
step(int64_t fwd, int final)
{
	size_t off = 0, n;
	int rv, rebuilds = 0;

	if (!redis_ready(final) || !sync_ready(final)) {
		if (cf->cf_db != NULL)
			work_len = 0;	/* the catch-up will count them */
		return;
	}
	do {
		n = work_len - off > CHUNK ? CHUNK : work_len - off;
		if (n == 0 && fwd == fwd_done)
			break;
		/* work is NULL before the first line: no offset from it */
		rv = update(n > 0 ? work + off : NULL, n, fwd);
		if (rv < 0)
			break;
		if (rv == 0) {
			/* Redis lost the hash (restarted empty): rebuild. */
			synced = 0;
			if (++rebuilds > 3 || !sync_ready(1))
				break;
			continue;	/* and count the same chunk again */
		}
		off += n;
	} while (off < work_len);
	if (off > 0) {
		memmove(work, work + off, (work_len - off) * sizeof(*work));
		work_len -= off;
	}
	if (cf->cf_db != NULL && rc == NULL)
		work_len = 0;
}

static void
publish(int final)
{
	char err[512];

	if (!dirty || rc == NULL)
		return;
	if (!final && inv_mono_ns() < pub_at + ms(PUBLISH_MS))
		return;
	if (inv_stats_publish(rc, &cur, err, sizeof(err)) < 0) {
		redis_lost(err);
		return;
	}
	dirty = 0;
	pub_at = inv_mono_ns();
}

/* Wait for work or the next timer: a publish due, a reconnect due. */
static void
wait_work(void)
{
	int64_t deadline = INT64_MAX;
	struct timespec ts;

	if (dirty && rc != NULL)
		deadline = pub_at + ms(PUBLISH_MS);
	if (rc == NULL && rds.r_at < deadline)
		deadline = rds.r_at;
	else if (cf->cf_db != NULL && !synced) {
		int64_t t = db == NULL ? pg.r_at : rds.r_at;

		if (t < deadline)
			deadline = t;
	}
	while (inq_len == 0 && !in_eof && in_lost == 0 &&
	    (in_fwd == fwd_done || rc == NULL) &&
	    inv_mono_ns() < deadline) {
		if (deadline == INT64_MAX)
			pthread_cond_wait(&cv, &mu);
		else {
			ts.tv_sec = deadline / 1000000000;
			ts.tv_nsec = deadline % 1000000000;
			pthread_cond_timedwait(&cv, &mu, &ts);
		}
	}
}

static void *
counter_main(void *arg)
{
	size_t lost;
	int64_t fwd;
	int eof;

	for (;;) {
		pthread_mutex_lock(&mu);
		wait_work();
		if (cf->cf_db != NULL || work_len + inq_len <= PENDING_MAX) {
			if (append(&work, &work_len, &work_cap, inq,
			    inq_len) < 0)
				in_lost += inq_len;
		} else
			in_lost += inq_len;
		inq_len = 0;
		lost = in_lost;
		in_lost = 0;
		fwd = in_fwd;
		eof = in_eof;
		pthread_mutex_unlock(&mu);

		if (lost > 0) {
			if (cf->cf_db != NULL)
				synced = 0;	/* catch up from the database */
			else if (!lost_said++)
				inv_warnx("statistics miss %zu invoices: Redis "
				    "was away too long and there is no "
				    "database to catch up from", lost);
		}
		step(fwd, eof);
		publish(eof);
		if (eof)
			break;
	}
	redisFree(rc);
	PQfinish(db);
	return NULL;
}

/* Start the counter thread; signals stay with the filter's thread. */
int
counter_start(const struct config *config)
{
	pthread_condattr_t ca;
	sigset_t all, old;

	cf = config;
	inv_key(k_stats, sizeof(k_stats), "stats");
	inv_key(k_fwd, sizeof(k_fwd), "fwd");
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&cv, &ca);
	pthread_condattr_destroy(&ca);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (pthread_create(&thread, NULL, counter_main, NULL) != 0) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		return -1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	running = 1;
	return 0;
}

/* Input ended: count what is left (one more try at the servers), stop. */
void
counter_stop(void)
{
	if (!running)
		return;
	pthread_mutex_lock(&mu);
	in_eof = 1;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
	pthread_join(thread, NULL);
	running = 0;
}
