/*
 * invgen: generate random invoices at a steady rate and print them as
 * NDJSON. Invoice k is due at t0 + k/RATE on CLOCK_MONOTONIC, so the
 * schedule never drifts. With a database every invoice is committed
 * before its line is printed: what stdout shows is already in
 * PostgreSQL. Money is integer cents throughout.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "db.h"
#include "invoice.h"
#include "log.h"
#include "money.h"
#include "names.h"
#include "rds.h"
#include "util.h"

#define BATCH_MAX	5000		/* invoices in one COPY on a schedule */
#define FAST_MAX	20000		/* invoices in one COPY at -r 0 */
#define RETRY_FOR_S	60		/* give up on PostgreSQL after this */
#define SCHED_SLICE_NS	100000		/* on a schedule; the kernel's least */

static int64_t	 rate_milli = 5000;	/* invoices per 1000 s */
static long long duration = 300;
static long long count = -1;
static int	 have_seed;
static uint64_t	 seed;
static int	 have_start;
static int64_t	 start_us;
static const char *db_flag;
static int	 no_db;
static int	 retry_for = RETRY_FOR_S;

static PGconn	*db;
static PGconn	*idc;			/* -r 0: reserves ids while db copies */
static const char *db_url;
static struct inv_rng rng;
static volatile sig_atomic_t stopping;
static int	 out_buffered;		/* stdout is a regular file */
static char	 outbuf[1 << 16];
static size_t	 outlen;
static int	 progress;

/* --wait: cycles started and stopped through NS:control in Redis. */
static int	 wait_mode;
static const char *redis_flag;
static struct inv_redis_url redis_url;
static redisContext *rc;
static int	 redis_said;
static int64_t	 redis_retry_at;
static struct inv_control cyc;		/* the cycle being generated */
static char	 cycle_key[160];
static volatile int cycle_stop;		/* STOP asked, or the cycle moved on */
static int64_t	 next_check;
static long long prog_total;		/* for the progress line */
static int64_t	 prog_t0;

static _Noreturn void
usage(int code)
{
	fprintf(code == 0 ? stdout : stderr,
	    "usage: invgen [-qv] [-r rate] [-d seconds] [-n count] [-s seed]\n"
	    "              [--start-time time] [--db url | --no-db]"
	    " [--retry-for seconds]\n"
	    "       invgen --wait [-qv] [--db url | --no-db] [--redis url]\n");
	exit(code);
}

static void
on_signal(int sig)
{
	stopping = 1;
}

/* Generation ends at once on a signal, or when its cycle is stopped. */
static int
halted(void)
{
	return stopping || cycle_stop;
}

static void
out_write(const char *buf, size_t len)
{
	size_t off = 0;
	ssize_t n;

	while (off < len) {
		n = write(STDOUT_FILENO, buf + off, len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EPIPE)
				exit(0);	/* the reader went away: quietly */
			inv_err(EX_IOERR, "cannot write to standard output");
		}
		off += n;
	}
}

static void
out_flush(void)
{
	out_write(outbuf, outlen);
	outlen = 0;
}

/* Lines already committed are printed even when invgen exits on an error. */
static void
out_flush_at_exit(void)
{
	size_t off = 0;
	ssize_t n;

	while (off < outlen && ((n = write(STDOUT_FILENO, outbuf + off,
	    outlen - off)) > 0 || errno == EINTR))
		off += n > 0 ? n : 0;
	outlen = 0;
}

/* One line per write(2) on a pipe or terminal; whole lines to a file. */
static void
out_line(const char *line, size_t len)
{
	if (outlen + len > sizeof(outbuf))
		out_flush();
	memcpy(outbuf + outlen, line, len);
	outlen += len;
	if (!out_buffered)
		out_flush();
}

/* Subtotals spread like a shop's: mostly tens to hundreds, a few large. */
static int64_t
random_subtotal(void)
{
	uint64_t bucket = inv_rng_below(&rng, 100);

	if (bucket < 60)
		return 1000 + (int64_t)inv_rng_below(&rng, 49001);
	if (bucket < 92)
		return 50000 + (int64_t)inv_rng_below(&rng, 450001);
	return 500000 + (int64_t)inv_rng_below(&rng, 4500001);
}

static void
make_invoice(struct inv_invoice *iv, int64_t id, int64_t date_us)
{
	char *p = iv->number, digits[24];
	int n = 0, width;
	int64_t v = id;

	iv->id = id;
	inv_time_format(date_us, iv->date, sizeof(iv->date));
	/* INV-YYYYMMDD-<id, at least 8 digits> */
	memcpy(p, "INV-", 4);
	memcpy(p + 4, iv->date, 4);
	memcpy(p + 8, iv->date + 5, 2);
	memcpy(p + 10, iv->date + 8, 2);
	p[12] = '-';
	p += 13;
	do {
		digits[n++] = '0' + v % 10;
		v /= 10;
	} while (v > 0);
	for (width = n; width < 8; width++)
		*p++ = '0';
	while (n > 0)
		*p++ = digits[--n];
	*p = '\0';
	inv_name_make(&rng, iv->seller, sizeof(iv->seller));
	do {
		inv_name_make(&rng, iv->buyer, sizeof(iv->buyer));
	} while (strcmp(iv->seller, iv->buyer) == 0);
	iv->subtotal = random_subtotal();
	iv->vat = inv_vat(iv->subtotal);
	iv->total = iv->subtotal + iv->vat;
}

/*
 * Connect (again) in place of old, retrying with backoff for
 * --retry-for seconds. An outage is told once, though both connections
 * of -r 0 go through it.
 */
static PGconn *
connect_to(PGconn *old)
{
	static int outage;	/* told of, and not yet of its end */
	char err[512];
	int64_t delay_ms = 100, deadline = inv_mono_ns() +
	    (int64_t)retry_for * 1000000000;
	PGconn *c;

	PQfinish(old);
	while ((c = inv_db_connect(db_url, err, sizeof(err))) == NULL) {
		if (strstr(err, "no invoices table") != NULL)
			inv_errx(EX_UNAVAILABLE, "%s", err);
		if (inv_mono_ns() > deadline || stopping)
			inv_errx(EX_UNAVAILABLE, "%s; giving up", err);
		if (!outage++)
			inv_warnx("%s; retrying", err);
		usleep(delay_ms * 1000);
		delay_ms = delay_ms * 2 > 5000 ? 5000 : delay_ms * 2;
	}
	if (outage)
		inv_warnx("connected to PostgreSQL again");
	outage = 0;
	return c;
}

static void
connect_db(void)
{
	db = connect_to(db);
}

/*
 * After a failed insert: when the connection broke, reconnect and ask
 * the database whether the batch (known by its ids) committed. Returns
 * 1 if it did, 0 if it must be sent again; any other failure is fatal.
 *
 * A batch sent again can also fail on its own ids: the connection broke
 * while the server was still committing the first copy (a slow fsync, a
 * synchronous replica), the count on the new connection found nothing,
 * and the commit landed after. The second COPY then waits for the first
 * and fails on the primary key; the ids say whether it committed whole.
 */
static int
recover(const char *err, const int64_t *ids, int n)
{
	char err2[512];
	int found, again;

	if ((again = inv_db_duplicate(db)) == 0) {
		if (!inv_db_gone(db))
			inv_errx(EX_SOFTWARE, "%s", err);
		inv_warnx("%s", err);
	}
	for (;;) {
		if (!again)
			connect_db();
		found = inv_db_count_ids(db, ids, n, err2, sizeof(err2));
		if (again && found >= 0 && found != n)
			inv_errx(EX_SOFTWARE, "%s", err);
		again = 0;
		if (found >= 0)
			break;
		if (!inv_db_gone(db))
			inv_errx(EX_SOFTWARE, "%s", err2);
	}
	if (found != 0 && found != n)
		inv_errx(EX_SOFTWARE, "a batch of %d invoices half committed "
		    "(%d rows): cannot happen", n, found);
	return found == n;
}

/*
 * Commit n invoices whose ids are set. A broken connection is retried
 * with backoff; after reconnecting, the ids tell whether the COPY that
 * was in flight committed, so nothing is lost and nothing doubled.
 */
static void
persist(const struct inv_copybuf *rows, const int64_t *ids, int n,
    const char *then)
{
	char err[512];

	while (inv_db_copy(db, rows, then, err, sizeof(err)) < 0)
		if (recover(err, ids, n))
			return;
}

/* In a cycle, the statement that moves the cycle's count with a batch. */
static const char *
then_for(int slot, const int64_t *ids, int n)
{
	static char buf[3][512];

	if (!wait_mode || db == NULL || n == 0)
		return NULL;
	return inv_db_cycle_then(db, cycle_key, n, ids[n - 1], buf[slot],
	    sizeof(buf[slot]));
}

static void
reserve(int64_t *ids, int n)
{
	char err[512];
	int rv;

	while ((rv = inv_db_reserve_ids(db, n, ids, err, sizeof(err))) < 0) {
		if (rv == -2)
			inv_errx(EX_DATAERR, "%s", err);
		if (!inv_db_gone(db))
			inv_errx(EX_SOFTWARE, "%s", err);
		inv_warnx("%s", err);
		connect_db();
	}
}

static void
show_progress(long long done, long long total, int64_t t0, int final)
{
	static int64_t last;
	int64_t now = inv_mono_ns();
	double el = (now - t0) / 1e9, r = el > 0 ? done / el : 0;
	double eta = r > 0 ? (total - done) / r : 0;
	char line[160];
	int n;

	if (!progress || (!final && now - last < 250000000))
		return;
	last = now;
	n = snprintf(line, sizeof(line), "\rinvgen: %lld/%lld  %.1f/s  "
	    "%d:%02d elapsed  ETA %d:%02d  ", done, total, r,
	    (int)el / 60, (int)el % 60, (int)eta / 60, (int)eta % 60);
	if (final && n < (int)sizeof(line) - 1)
		line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
}

static void check_control(void);
static void after_batch(long long, int64_t);

/* Sleep until ns on CLOCK_MONOTONIC; in a cycle, watch for STOP meanwhile. */
static void
sleep_until(int64_t ns)
{
	struct timespec ts;
	int64_t slice;

	while (!halted()) {
		slice = ns;
		if (wait_mode && slice > inv_mono_ns() + 50000000)
			slice = inv_mono_ns() + 50000000;
		ts.tv_sec = slice / 1000000000;
		ts.tv_nsec = slice % 1000000000;
		if (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts,
		    NULL) == EINTR)
			continue;
		if (wait_mode)
			check_control();
		if (slice >= ns)
			break;
	}
}

static void
print_batch(const struct inv_invoice *iv, int n)
{
	char line[INV_LINE_MAX];
	int i, len;

	for (i = 0; i < n; i++) {
		len = inv_invoice_format(&iv[i], line, sizeof(line));
		out_line(line, len);
	}
}

/*
 * A batch of -r 0, made while the one before it is committed: its ids,
 * its COPY rows, and its lines, printed once it is committed.
 */
struct batch {
	int		 b_n;
	long long	 b_first;	/* index of its first invoice */
	int64_t		 b_ids[FAST_MAX];
	int		 b_asked;	/* its ids are asked of idc */
	struct inv_copybuf b_rows;
	char		*b_lines;
	size_t		 b_len;
	size_t		 b_cap;
	int		 b_sent;	/* its COPY is on its way */
	char		 b_err[512];
};

/* Keep the COPY in flight and the ids on their way moving. */
static void
pump(void)
{
	inv_db_pump(db);
	inv_db_pump(idc);
}

static void
take(struct batch *bt, long long *next, long long total)
{
	bt->b_n = halted() ? 0 : (int)(total - *next < FAST_MAX ?
	    total - *next : FAST_MAX);
	bt->b_first = *next;
	*next += bt->b_n;
}

/* Ask idc for the batch's ids; they are read by ids_take. */
static void
ids_ask(struct batch *bt, char *err, size_t size)
{
	bt->b_asked = bt->b_n > 0 &&
	    inv_db_reserve_send(idc, bt->b_n, err, size) == 0;
}

/*
 * The batch's ids, keeping db's COPY moving meanwhile. When idc broke,
 * it reconnects and asks again.
 */
static void
ids_take(struct batch *bt)
{
	char err[512] = "cannot reserve invoice ids";
	int rv = -1;

	if (bt->b_n == 0)
		return;
	while (!bt->b_asked || (rv = inv_db_reserve_recv(idc, bt->b_n,
	    bt->b_ids, db, err, sizeof(err))) < 0) {
		if (rv == -2)
			inv_errx(EX_DATAERR, "%s", err);
		if (!inv_db_gone(idc))
			inv_errx(EX_SOFTWARE, "%s", err);
		idc = connect_to(idc);
		ids_ask(bt, err, sizeof(err));
	}
	bt->b_asked = 0;
}

static void
fill_batch(struct batch *bt)
{
	static struct inv_invoice iv;
	int i;

	bt->b_rows.len = 0;
	bt->b_len = 0;
	for (i = 0; i < bt->b_n; i++) {
		make_invoice(&iv, bt->b_ids[i], have_start ?
		    start_us + (bt->b_first + i) * 1000 : inv_real_us());
		if (bt->b_cap - bt->b_len < INV_LINE_MAX) {
			size_t cap = bt->b_cap == 0 ? 1 << 22 : bt->b_cap * 2;
			char *p = realloc(bt->b_lines, cap);

			if (p == NULL)
				inv_errx(EX_OSERR, "out of memory");
			bt->b_lines = p;
			bt->b_cap = cap;
		}
		bt->b_len += inv_invoice_format(&iv, bt->b_lines + bt->b_len,
		    bt->b_cap - bt->b_len);
		if (inv_db_copy_add(&bt->b_rows, &iv) < 0)
			inv_errx(EX_OSERR, "out of memory");
		if (i % 128 == 0)
			pump();
	}
}

static void
batch_send(struct batch *bt, int slot)
{
	bt->b_sent = inv_db_copy_send(db, &bt->b_rows, then_for(slot,
	    bt->b_ids, bt->b_n), bt->b_err, sizeof(bt->b_err)) == 0;
}

/* Wait for the batch's commit; a broken connection is recovered. */
static void
batch_wait(struct batch *bt, int slot)
{
	if (bt->b_sent && inv_db_insert_wait(db, bt->b_err,
	    sizeof(bt->b_err)) == 0)
		return;
	if (!recover(bt->b_err, bt->b_ids, bt->b_n))
		persist(&bt->b_rows, bt->b_ids, bt->b_n, then_for(slot,
		    bt->b_ids, bt->b_n));
}

/* Committed lines: one write each on a pipe, in one block to a file. */
static void
batch_print(const struct batch *bt)
{
	const char *p = bt->b_lines, *end = p + bt->b_len, *nl;
	int i = 0;

	if (out_buffered) {
		out_flush();
		out_write(p, bt->b_len);
		return;
	}
	out_flush();
	for (; p < end; p = nl + 1) {
		nl = memchr(p, '\n', end - p);
		out_write(p, nl + 1 - p);
		if (++i % 128 == 0)
			pump();
	}
}

/*
 * -r 0 into PostgreSQL: three batches in turn. While the server inserts
 * and commits one, invgen prints the one before it (already committed)
 * and makes the one after it, whose ids a second connection reserves
 * meanwhile; the next COPY is sent the moment one commits. So the
 * server goes from one COPY to the next without waiting on invgen.
 */
static long long
run_fast(long long k, long long total)
{
	static struct batch bt[3];
	char err[512];
	long long next = k;	/* the first invoice in no batch yet */
	PGresult *res;
	int b, nb, nbb;

	if (idc == NULL)
		idc = connect_to(NULL);
	take(&bt[0], &next, total);
	ids_ask(&bt[0], err, sizeof(err));
	ids_take(&bt[0]);
	take(&bt[1], &next, total);
	ids_ask(&bt[1], err, sizeof(err));
	fill_batch(&bt[0]);
	if (bt[0].b_n > 0)
		batch_send(&bt[0], 0);
	ids_take(&bt[1]);
	take(&bt[2], &next, total);
	ids_ask(&bt[2], err, sizeof(err));
	fill_batch(&bt[1]);
	for (b = 0; bt[b].b_n > 0; b = nb) {
		nb = (b + 1) % 3;
		nbb = (b + 2) % 3;
		batch_wait(&bt[b], b);
		if (wait_mode && inv_mono_ns() >= next_check)
			check_control();
		if (halted())
			bt[nb].b_n = bt[nbb].b_n = 0;	/* never committed */
		if (bt[nb].b_n > 0)
			batch_send(&bt[nb], nb);
		batch_print(&bt[b]);
		k += bt[b].b_n;
		after_batch(k, bt[b].b_ids[bt[b].b_n - 1]);
		ids_take(&bt[nbb]);
		take(&bt[b], &next, total);
		ids_ask(&bt[b], err, sizeof(err));
		fill_batch(&bt[nbb]);
	}
	/* Ids asked for a batch that a halt dropped: let them go. */
	while ((res = PQgetResult(idc)) != NULL)
		PQclear(res);
	for (b = 0; b < 3; b++)
		bt[b].b_asked = 0;
	return k;
}

/* When invoice k is due, on CLOCK_MONOTONIC. */
static int64_t
due_at(int64_t t0, long long k)
{
	return t0 + (int64_t)((__int128)k * 1000000000000LL / rate_milli);
}

/*
 * Generate invoices [k, total) on the schedule that started at t0 (and
 * at base_us on the wall clock, for the dates). With a database each
 * batch is committed a little ahead of its time, then each line is
 * printed when it falls due, so the commit's latency does not show in
 * the schedule. Returns the index after the last invoice printed.
 */
static long long
run(long long k, long long total, int64_t t0, int64_t base_us)
{
	static struct inv_invoice iv[BATCH_MAX];
	static int64_t ids[BATCH_MAX];
	static struct inv_copybuf rows;
	int64_t period, lead = 0, now;
	int i, n;

	/*
	 * On a schedule, short time slices: a busy machine then delays the
	 * wake-ups less. As fast as possible, the kernel's own.
	 */
	(void)inv_sched_slice(rate_milli > 0 ? SCHED_SLICE_NS : 0);
	if (rate_milli == 0 && db != NULL)
		return run_fast(k, total);
	if (rate_milli == 0) {
		while (k < total && !halted()) {
			n = total - k < BATCH_MAX ? (int)(total - k) : BATCH_MAX;
			for (i = 0; i < n; i++)
				make_invoice(&iv[i], k + i + 1, have_start ?
				    base_us + (k + i) * 1000 : inv_real_us());
			print_batch(iv, n);
			k += n;
			after_batch(k, k);
		}
		return k;
	}
	period = (int64_t)(1000000000000LL / rate_milli);
	if (db != NULL)
		lead = period / 2 < 50000000 ? period / 2 : 50000000;
	while (k < total && !halted()) {
		sleep_until(due_at(t0, k) - lead);
		if (halted())
			break;
		/* Everything due by now (plus the lead) goes in one commit. */
		now = inv_mono_ns();
		for (n = 1; n < BATCH_MAX && k + n < total &&
		    due_at(t0, k + n) <= now + lead; n++)
			;
		if (db != NULL)
			reserve(ids, n);
		for (i = 0; i < n; i++)
			make_invoice(&iv[i], db != NULL ? ids[i] : k + i + 1,
			    base_us + (int64_t)((__int128)(k + i) *
			    1000000000LL / rate_milli));
		if (db != NULL) {
			rows.len = 0;
			for (i = 0; i < n; i++)
				if (inv_db_copy_add(&rows, &iv[i]) < 0)
					inv_errx(EX_OSERR, "out of memory");
			persist(&rows, ids, n, then_for(0, ids, n));
		}
		/* Committed: each is printed, on time or, if halted, now. */
		for (i = 0; i < n; i++) {
			sleep_until(due_at(t0, k + i));
			print_batch(&iv[i], 1);
		}
		k += n;
		after_batch(k, iv[n - 1].id);
	}
	return k;
}

/* ---- --wait: cycles through NS:control ---- */

/* A Redis connection, or NULL while it is down (retried with backoff). */
static redisContext *
redis(void)
{
	char err[512];

	if (rc != NULL && rc->err) {
		redisFree(rc);
		rc = NULL;
	}
	if (rc != NULL || inv_mono_ns() < redis_retry_at)
		return rc;
	rc = inv_redis_connect(&redis_url, 2000, err, sizeof(err));
	if (rc == NULL) {
		if (!redis_said++)
			inv_warnx("%s; retrying", err);
		redis_retry_at = inv_mono_ns() + 1000000000;
	} else if (redis_said) {
		inv_warnx("connected to Redis again");
		redis_said = 0;
	}
	return rc;
}

static void
redis_failed(const char *err)
{
	if (!redis_said++)
		inv_warnx("%s", err);
	if (rc != NULL) {
		redisFree(rc);
		rc = NULL;
	}
	redis_retry_at = inv_mono_ns() + 1000000000;
}

/* One transition of NS:control; -1 (and Redis dropped) on an error. */
static int
control(enum inv_control_op op, int64_t cycle, int64_t generated,
    int64_t last_id)
{
	struct inv_control_args a = { .cycle = cycle, .generated = generated,
	    .last_id = last_id };
	char json[INV_CONTROL_JSON_MAX], err[512];
	int r;

	if (redis() == NULL)
		return -1;
	if ((r = inv_control_exec(rc, op, &a, json, sizeof(json), err,
	    sizeof(err))) < 0)
		redis_failed(err);
	return r;
}

/*
 * During a cycle: has STOP been asked, or has the cycle moved on? When
 * Redis has lost NS:control (restarted empty), put it back from what
 * this generator knows, so the state survives.
 */
static void
check_control(void)
{
	struct inv_control ctl;
	char err[512];

	next_check = inv_mono_ns() + 50000000;
	if (redis() == NULL)
		return;
	if (inv_control_get(rc, &ctl, err, sizeof(err)) < 0) {
		redis_failed(err);
		return;
	}
	if (ctl.cycle == 0 && cyc.cycle != 0) {
		struct inv_control_args a = { .rate_milli = cyc.rate_milli,
		    .duration = cyc.duration, .cycle = cyc.cycle,
		    .generated = cyc.generated, .last_id = cyc.last_id,
		    .target = cyc.target, .started_us = cyc.started_us,
		    .state = "running" };
		char json[INV_CONTROL_JSON_MAX];

		if (inv_control_exec(rc, INV_CONTROL_RESTORE, &a, json,
		    sizeof(json), err, sizeof(err)) < 0)
			redis_failed(err);
		else
			inv_warnx("Redis had lost the control state; restored "
			    "cycle %lld", (long long)cyc.cycle);
		return;
	}
	if (ctl.cycle != cyc.cycle || strcmp(ctl.state, "running") != 0)
		cycle_stop = 1;
}

/* After a batch is printed: progress, and the cycle's count in Redis. */
static void
after_batch(long long k, int64_t last_id)
{
	show_progress(k, prog_total, prog_t0, 0);
	if (!wait_mode)
		return;
	cyc.generated = k;
	cyc.last_id = last_id;
	(void)control(INV_CONTROL_PROGRESS, cyc.cycle, k, last_id);
}

/* Run (or resume) the cycle that NS:control describes. */
static void
run_cycle(const struct inv_control *ctl)
{
	char err[512];
	int64_t k0, t0;
	long long done;

	cyc = *ctl;
	cycle_stop = 0;
	rate_milli = ctl->rate_milli;
	snprintf(cycle_key, sizeof(cycle_key), "%s:%lld:%lld", inv_ns(),
	    (long long)ctl->cycle, (long long)ctl->started_us);
	if (db != NULL) {
		while ((k0 = inv_db_cycle_begin(db, cycle_key, ctl->target,
		    ctl->started_us, err, sizeof(err))) < 0) {
			if (!inv_db_gone(db))
				inv_errx(EX_SOFTWARE, "%s", err);
			inv_warnx("%s", err);
			connect_db();
		}
	} else
		k0 = ctl->generated;
	if (k0 > 0 && k0 < ctl->target)
		inv_info("resuming cycle %lld at invoice %lld of %lld",
		    (long long)ctl->cycle, (long long)k0, (long long)ctl->target);
	/* The cycle's schedule began at started_us, whoever started it. */
	t0 = inv_mono_ns() - (inv_real_us() - ctl->started_us) * 1000;
	prog_total = ctl->target;
	prog_t0 = t0;
	done = run(k0, ctl->target, t0, ctl->started_us);
	out_flush();
	show_progress(done, ctl->target, t0, 1);
	if (stopping)
		return;			/* SIGTERM: the cycle resumes later */
	if (redis() == NULL)
		return;			/* finished when Redis is back */
	(void)control(cycle_stop ? INV_CONTROL_ACK : INV_CONTROL_FINISH,
	    ctl->cycle, 0, 0);
}

/*
 * Idle until NS:control says running, run that cycle, and again, until
 * SIGINT or SIGTERM. While draining, move to idle once the display has
 * shown the cycle's last invoice.
 */
static void
wait_loop(void)
{
	struct inv_control ctl;
	char err[512];
	int64_t done_cycle = 0;

	while (!stopping) {
		if (redis() != NULL &&
		    inv_control_get(rc, &ctl, err, sizeof(err)) < 0)
			redis_failed(err);
		else if (rc != NULL) {
			int active = strcmp(ctl.state, "running") == 0 ||
			    strcmp(ctl.state, "stopping") == 0;

			if (active && ctl.cycle != done_cycle) {
				if (strcmp(ctl.state, "running") == 0) {
					run_cycle(&ctl);
				} else
					(void)control(INV_CONTROL_ACK,
					    ctl.cycle, 0, 0);
				if (!stopping && rc != NULL)
					done_cycle = ctl.cycle;
				continue;
			}
			if (strcmp(ctl.state, "draining") == 0)
				(void)control(INV_CONTROL_IDLE, ctl.cycle, 0, 0);
		}
		usleep(100000);
	}
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "rate",	required_argument, NULL, 'r' },
		{ "duration",	required_argument, NULL, 'd' },
		{ "count",	required_argument, NULL, 'n' },
		{ "seed",	required_argument, NULL, 's' },
		{ "start-time",	required_argument, NULL, 'T' },
		{ "db",		required_argument, NULL, 'D' },
		{ "no-db",	no_argument,	   NULL, 'N' },
		{ "retry-for",	required_argument, NULL, 'R' },
		{ "wait",	no_argument,	   NULL, 'W' },
		{ "redis",	required_argument, NULL, 'S' },
		{ "quiet",	no_argument,	   NULL, 'q' },
		{ "verbose",	no_argument,	   NULL, 'v' },
		{ "help",	no_argument,	   NULL, 'h' },
		{ "version",	no_argument,	   NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct sigaction sa;
	struct stat st;
	const char *errstr, *why;
	char err[512];
	long long v, done;
	int64_t t0;
	int ch;

	static char progname[] = "invgen";

	inv_setprogname(argv[0]);
	argv[0] = progname;		/* getopt's messages say "invgen:" */
	while ((ch = getopt_long(argc, argv, "r:d:n:s:qvh", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'r':
			if (inv_parse_rate(optarg, &rate_milli) < 0 ||
			    rate_milli > 1000000000)
				inv_errx(EX_USAGE, "bad rate '%s': expected "
				    "invoices per second from 0 to 1000000, "
				    "up to three decimals", optarg);
			break;
		case 'd':
			if (inv_parse_int(optarg, 1, 31536000, &duration,
			    &errstr) < 0)
				inv_errx(EX_USAGE, "bad duration '%s': %s "
				    "(seconds, 1 to 31536000)", optarg, errstr);
			break;
		case 'n':
			if (inv_parse_int(optarg, 0, 1000000000000LL, &count,
			    &errstr) < 0)
				inv_errx(EX_USAGE, "bad count '%s': %s",
				    optarg, errstr);
			break;
		case 's':
			if (inv_parse_int(optarg, 0, LLONG_MAX, &v,
			    &errstr) < 0)
				inv_errx(EX_USAGE, "bad seed '%s': %s", optarg,
				    errstr);
			seed = (uint64_t)v;
			have_seed = 1;
			break;
		case 'T':
			if (inv_time_parse(optarg, &start_us) < 0)
				inv_errx(EX_USAGE, "bad start time '%s': expected"
				    " RFC 3339 (2026-12-03T15:00:00Z) or "
				    "@seconds", optarg);
			have_start = 1;
			break;
		case 'D':
			db_flag = optarg;
			break;
		case 'N':
			no_db = 1;
			break;
		case 'R':
			if (inv_parse_int(optarg, 0, 86400, &v, &errstr) < 0)
				inv_errx(EX_USAGE, "bad retry time '%s': %s",
				    optarg, errstr);
			retry_for = (int)v;
			break;
		case 'W':
			wait_mode = 1;
			break;
		case 'S':
			redis_flag = optarg;
			break;
		case 'q':
			inv_quiet = 1;
			break;
		case 'v':
			inv_verbose++;
			break;
		case 'h':
			usage(0);
		case 'V':
			printf("invgen %s\n", INV_VERSION);
			return 0;
		default:
			usage(EX_USAGE);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 0) {
		inv_warnx("unexpected argument '%s'", argv[0]);
		usage(EX_USAGE);
	}
	if (db_flag != NULL && no_db)
		inv_errx(EX_USAGE, "--db and --no-db exclude each other");
	if (count < 0)
		count = rate_milli > 0 ? rate_milli * duration / 1000 : 1500;
	if (wait_mode) {
		const char *u = inv_redis_url(redis_flag);

		if (u == NULL)
			inv_errx(EX_USAGE, "--wait takes its orders from Redis: "
			    "set REDIS_URL or --redis");
		if (inv_redis_url_parse(u, &redis_url, err, sizeof(err)) < 0)
			inv_errx(EX_USAGE, "%s", err);
		if (inv_ns_check(inv_ns()) < 0)
			inv_errx(EX_USAGE, "bad INV_NAMESPACE '%s': expected 1 to 64 of "
			    "A-Z a-z 0-9 _ . -", inv_ns());
	}

	db_url = no_db ? NULL : inv_db_url(db_flag);
	if (db_url != NULL && inv_db_url_check(db_url, err, sizeof(err)) < 0)
		inv_errx(EX_USAGE, "%s", err);
	if (inv_names_load(NULL, &why) < 0)
		inv_errx(EX_UNAVAILABLE, "cannot load word lists: %s", why);
	if (!have_seed)
		seed = (uint64_t)arc4random() << 32 | arc4random();
	inv_rng_seed(&rng, seed);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: sleeps end at once */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (fstat(STDOUT_FILENO, &st) == 0 && S_ISREG(st.st_mode))
		out_buffered = 1;
	atexit(out_flush_at_exit);
	progress = inv_verbose > 0 && isatty(STDERR_FILENO);

	if (db_url != NULL)
		connect_db();
	else
		inv_info("no database (DATABASE_URL unset or --no-db): nothing "
		    "is persisted, and invoice numbers are unique only within "
		    "this run");
	if (wait_mode) {
		wait_loop();
		out_flush();
		PQfinish(db);
		PQfinish(idc);
		redisFree(rc);
		return 0;
	}
	t0 = inv_mono_ns();
	prog_total = count;
	prog_t0 = t0;
	done = run(0, count, t0, have_start ? start_us : inv_real_us());
	out_flush();
	show_progress(done, count, t0, 1);
	PQfinish(db);
	PQfinish(idc);
	return 0;
}
