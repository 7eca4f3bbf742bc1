/*
 * The counter: a thread that owns the Redis and PostgreSQL connections
 * of the filter, so a slow, hung or absent server can never hold up a
 * line on its way to stdout. The filter hands it the invoices it has
 * passed on; the counter adds them to NS:stats in batches, one Lua
 * script each (idempotent above last_id), keeps NS:fwd, and publishes
 * the stats event at most every PUBLISH_MS.
 *
 * With a database, the hash must equal the database at every moment it
 * is updated from lines: after a (re)connect the counter first settles
 * it against PostgreSQL (inv_stats_settle: a catch-up above the floor,
 * a check below it, a rebuild when that fails), and what arrives while
 * Redis or PostgreSQL is away is dropped, since the catch-up counts it.
 * While lines come, and once more after, it settles again every
 * SETTLE_MS: several writers into one database commit rows in any order
 * of their ids, and a row this filter never sees (another pipeline's,
 * or one committed late) is counted from the database, each row once.
 * Without a database the lines are the only source: they wait in memory
 * (up to PENDING_MAX) until Redis is back.
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
#define SETTLE_MS	1000		/* between checks against the database */
#define BACKOFF_MIN_MS	100
#define BACKOFF_MAX_MS	2000
#define CHUNK		10000		/* invoices in one script call */
#define PENDING_MAX	(1 << 20)	/* invoices held while Redis is away */

/* Between the filter and the counter, under mu. */
static pthread_mutex_t	 mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 cv;
static struct inv_counted *inq;
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
static struct inv_settle settle_st;
static int64_t		 settle_at;	/* the next settle, mono ns; 0: none */
static struct inv_counted *work;	/* taken from inq, not yet counted */
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

static int64_t
ms(int64_t n)
{
	return n * 1000000;
}

/* Append n items to a growable array; returns -1 when out of memory. */
static int
append(struct inv_counted **a, size_t *len, size_t *cap,
    const struct inv_counted *items, size_t n)
{
	if (n == 0)
		return 0;	/* items may be NULL then: memcpy must not see it */
	if (*len + n > *cap) {
		size_t ncap = *cap > 0 ? *cap : 1024;
		struct inv_counted *p;

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
counter_add(const struct inv_counted *items, size_t n)
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

/*
 * Check the hash against the database and count what it lacks (full:
 * below the floor too). Returns 1 done, 0 a server failed.
 */
static int
settle(int full)
{
	char err[512];
	struct inv_stats was = cur;
	int64_t added;
	int rv;

	rv = inv_stats_settle(rc, db, &settle_st, full, &cur, &added, err,
	    sizeof(err));
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
	else if (inv_verbose && added > 0)
		inv_info("statistics caught up from PostgreSQL: %" PRId64
		    " invoices added, last id %" PRId64, added, cur.st_last_id);
	if (memcmp(&was, &cur, sizeof(cur)) != 0)
		dirty = 1;
	settle_at = settle_st.se_open ? inv_mono_ns() + ms(SETTLE_MS) : 0;
	return 1;
}

/* With a database: make the hash equal to it before counting lines. */
static int
sync_ready(int final)
{
	if (cf->cf_db == NULL || synced)
		return 1;
	if (!redis_ready(final) || !db_ready(final))
		return 0;
	if (!settle(1))
		return 0;
	synced = 1;
	dirty = 1;		/* say it once after each (re)connect */
	return 1;
}

/*
 * One script call for items[0..n) (n may be 0, to write NS:fwd alone).
 * Returns 1 done, 0 the hash is gone (rebuild first), -1 Redis failed.
 */
static int
update(const struct inv_counted *items, size_t n, int64_t fwd)
{
	char err[512];
	int rv;

	rv = inv_stats_count(rc, items, n, cf->cf_db == NULL, fwd, &cur, err,
	    sizeof(err));
	if (rv < 0) {
		redis_lost(err);
		return -1;
	}
	if (rv >= 1) {
		dirty = 1;
		fwd_done = fwd;
		if (n > 0 && cf->cf_db != NULL && settle_at == 0)
			settle_at = inv_mono_ns() + ms(SETTLE_MS);
	}
	if (rv == 2) {
		/*
		 * A line at or below the floor: a repeat, or a row another
		 * writer committed after the floor passed it. Only the
		 * check below the floor tells; have the next settle do it.
		 */
		settle_st.se_full_at = 0;
		settle_at = inv_mono_ns();
		rv = 1;
	}
	return rv;
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

/*
 * Wait for work or the next timer: a publish due, a settle due, a
 * reconnect due.
 */
static void
wait_work(void)
{
	int64_t deadline = INT64_MAX;
	struct timespec ts;

	if (dirty && rc != NULL)
		deadline = pub_at + ms(PUBLISH_MS);
	if (synced && rc != NULL && db != NULL && settle_at != 0 &&
	    settle_at < deadline)
		deadline = settle_at;
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
		/* At the end, settle once more, below the floor too. */
		if (synced && rc != NULL && db != NULL && (eof ||
		    (settle_at != 0 && inv_mono_ns() >= settle_at)))
			(void)settle(eof);
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
