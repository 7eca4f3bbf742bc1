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

#include "db.h"
#include "invoice.h"
#include "log.h"
#include "money.h"
#include "names.h"
#include "util.h"

#define BATCH_MAX	1000		/* invoices in one COPY */
#define RETRY_FOR_S	60		/* give up on PostgreSQL after this */

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
static const char *db_url;
static struct inv_rng rng;
static volatile sig_atomic_t stopping;
static int	 out_buffered;		/* stdout is a regular file */
static char	 outbuf[1 << 16];
static size_t	 outlen;
static int	 progress;

static _Noreturn void
usage(int code)
{
	fprintf(code == 0 ? stdout : stderr,
	    "usage: invgen [-qv] [-r rate] [-d seconds] [-n count] [-s seed]\n"
	    "              [--start-time time] [--db url | --no-db]"
	    " [--retry-for seconds]\n");
	exit(code);
}

static void
on_signal(int sig)
{
	stopping = 1;
}

static void
out_flush(void)
{
	size_t off = 0;
	ssize_t n;

	while (off < outlen) {
		n = write(STDOUT_FILENO, outbuf + off, outlen - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EPIPE)
				exit(0);	/* the reader went away: quietly */
			inv_err(EX_IOERR, "cannot write to standard output");
		}
		off += n;
	}
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
	char day[16];

	iv->id = id;
	inv_time_format(date_us, iv->date, sizeof(iv->date));
	snprintf(day, sizeof(day), "%.4s%.2s%.2s", iv->date, iv->date + 5,
	    iv->date + 8);
	snprintf(iv->number, sizeof(iv->number), "INV-%s-%08" PRId64, day, id);
	inv_name_make(&rng, iv->seller, sizeof(iv->seller));
	do {
		inv_name_make(&rng, iv->buyer, sizeof(iv->buyer));
	} while (strcmp(iv->seller, iv->buyer) == 0);
	iv->subtotal = random_subtotal();
	iv->vat = inv_vat(iv->subtotal);
	iv->total = iv->subtotal + iv->vat;
}

static void
connect_db(void)
{
	char err[512];
	int64_t delay_ms = 100, deadline = inv_mono_ns() +
	    (int64_t)retry_for * 1000000000;
	int said = 0;

	PQfinish(db);
	while ((db = inv_db_connect(db_url, err, sizeof(err))) == NULL) {
		if (strstr(err, "no invoices table") != NULL)
			inv_errx(EX_UNAVAILABLE, "%s", err);
		if (inv_mono_ns() > deadline || stopping)
			inv_errx(EX_UNAVAILABLE, "%s; giving up", err);
		if (!said++)
			inv_warnx("%s; retrying", err);
		usleep(delay_ms * 1000);
		delay_ms = delay_ms * 2 > 5000 ? 5000 : delay_ms * 2;
	}
	if (said)
		inv_warnx("connected to PostgreSQL again");
}

/*
 * Commit n invoices whose ids are set. A broken connection is retried
 * with backoff; after reconnecting, the ids tell whether the COPY that
 * was in flight committed, so nothing is lost and nothing doubled.
 */
static void
persist(struct inv_invoice *iv, int n, int64_t *ids)
{
	char err[512];
	int found;

	for (;;) {
		if (inv_db_insert(db, iv, n, err, sizeof(err)) == 0)
			return;
		if (!inv_db_gone(db))
			inv_errx(EX_SOFTWARE, "%s", err);
		inv_warnx("%s", err);
		for (;;) {
			connect_db();
			found = inv_db_count_ids(db, ids, n, err, sizeof(err));
			if (found >= 0)
				break;
			if (!inv_db_gone(db))
				inv_errx(EX_SOFTWARE, "%s", err);
		}
		if (found == n)
			return;		/* it committed before the line broke */
		if (found != 0)
			inv_errx(EX_SOFTWARE, "a batch of %d invoices half "
			    "committed (%d rows): cannot happen", n, found);
	}
}

static void
reserve(int64_t *ids, int n)
{
	char err[512];

	while (inv_db_reserve_ids(db, n, ids, err, sizeof(err)) < 0) {
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

static void
sleep_until(int64_t ns)
{
	struct timespec ts = { ns / 1000000000, ns % 1000000000 };

	while (!stopping && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME,
	    &ts, NULL) == EINTR)
		;
}

/* Generate invoices [0, total) on the schedule; returns how many printed. */
static long long
run(long long total)
{
	static struct inv_invoice iv[BATCH_MAX];
	static int64_t ids[BATCH_MAX];
	char line[INV_LINE_MAX];
	int64_t t0 = inv_mono_ns(), period = 0, base_us;
	long long k = 0;
	int i, n, len;

	if (rate_milli > 0)
		period = (int64_t)(1000000000000LL / rate_milli);
	base_us = have_start ? start_us : inv_real_us();
	while (k < total && !stopping) {
		if (rate_milli > 0) {
			int64_t due = t0 + (int64_t)((__int128)k *
			    1000000000000LL / rate_milli);

			sleep_until(due);
			if (stopping)
				break;
			/* Everything already due goes in one commit. */
			n = (int)((inv_mono_ns() - t0) / (period > 0 ? period : 1)
			    - k + 1);
			if (n < 1)
				n = 1;
		} else
			n = BATCH_MAX;
		if (n > BATCH_MAX)
			n = BATCH_MAX;
		if (n > total - k)
			n = (int)(total - k);
		if (db != NULL)
			reserve(ids, n);
		for (i = 0; i < n; i++) {
			int64_t date;

			if (rate_milli > 0)
				date = base_us + (int64_t)((__int128)(k + i) *
				    1000000000LL / rate_milli);
			else
				date = have_start ? base_us + (k + i) * 1000 :
				    inv_real_us();
			make_invoice(&iv[i], db != NULL ? ids[i] : k + i + 1,
			    date);
		}
		if (db != NULL)
			persist(iv, n, ids);
		for (i = 0; i < n; i++) {
			len = inv_invoice_format(&iv[i], line, sizeof(line));
			out_line(line, len);
		}
		k += n;
		show_progress(k, total, t0, 0);
	}
	out_flush();
	show_progress(k, total, t0, 1);
	return k;
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
	long long v;
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
	run(count);
	PQfinish(db);
	return 0;
}
