/*
 * invbuf: copy lines from stdin to stdout, in order, one whole line per
 * write(2), consecutive lines at least 1/RATE apart on CLOCK_MONOTONIC
 * (a token bucket of one: never a burst, not even after an idle spell).
 * Input is read as fast as it comes, so the producer is never slowed;
 * what waits is the backlog, and at end of input it is shown at RATE
 * before invbuf exits 0.
 *
 * Design: one libevent loop (stdin read events, a timer for the pacing,
 * stdout write readiness, signals). The backlog always lives here, in a
 * queue that keeps a bounded part in memory and spills the rest to a
 * temporary file (queue.c), so the display never waits on Redis. With
 * Redis, NS:backlog is a copy of that queue kept in step with blocking
 * hiredis calls under a timeout (mirror.c): a line is accepted with a
 * script (dedup on last_in, RPUSH), taken with LMOVE into
 * NS:backlog:taken as soon as it is next in line, and confirmed by a
 * script once written, so kill -9 and a restart, which loads the backlog
 * back from Redis, lose nothing and show nothing twice but, at most, the
 * one line that was being written. On a healthy server a call is a
 * fraction of a millisecond, the calls for a burst of input are
 * pipelined (one round trip per read), and none stands between the
 * pacing timer and the write, so the pacing stays exact; a hung server
 * costs one timeout, then invbuf carries on alone. When Redis comes back it is
 * rewritten from the local queue in one transaction, which is right
 * whether it kept its data, lost it, or came back from an old snapshot.
 * The async API would add its own timeouts and a callback chain per
 * line for no gain here.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "invbuf.h"
#include "invoice.h"
#include "log.h"
#include "rds.h"
#include "util.h"

#define REDIS_TIMEOUT_MS	500	/* connect and each command */
#define RETRY_FIRST_MS		100	/* reconnect backoff, doubling */
#define RETRY_MAX_MS		5000
#define PACE_GUARD_NS		500000	/* see main() */
#define STATUS_EVERY_NS		100000000	/* NS:buf channel: <= 10/s */
#define CHECK_EVERY_S		2	/* is Redis there and our copy in it */
#define ACCEPT_PIPELINE		1000	/* accept calls before the replies, */
#define ACCEPT_BYTES		(1 << 20)	/* or bytes of lines */
#define READ_SIZE		65536
#define SCHED_SLICE_NS		100000	/* the kernel's least time slice */

static int64_t	 rate_milli = 2000;	/* lines per 1000 s */
static size_t	 max_line = 1 << 20;
static long long mem_lines = 10000;
static long long mem_bytes = 4 << 20;
static const char *redis_flag;
static int	 no_redis;

static struct event_base *base;
static struct event *ev_in, *ev_out, *ev_pace, *ev_status, *ev_retry;
static int	 in_manual;		/* stdin cannot be polled: just read */
static int	 in_eof, in_error;
static int	 stopping;

static struct queue *q;
static struct bufstate st;
static int64_t	 period_ns;
static int64_t	 next_due;		/* the next line may go at this time */
static size_t	 woff;			/* bytes of the head line written */

/* The line being assembled from stdin. */
static char	*part;
static size_t	 partlen, partcap;
static int	 cutting;		/* skipping the rest of a long line */
static long long lineno, ncut, ndup;
static int	 said_dup;

/* Redis, when configured. */
static struct inv_redis_url rurl;
static int	 use_redis;
static redisContext *rc;
static int	 loaded;		/* an earlier run's backlog is in q */
static size_t	 taken;			/* head lines that are in taken */
static int	 pending;		/* accept replies not yet read */
static size_t	 pending_bytes;
static int	 said_down;
static int64_t	 retry_ms = RETRY_FIRST_MS;
static int64_t	 last_pub;
static char	 k_buf[128];		/* NS:buf, for messages */

static void	 schedule(void);

static _Noreturn void
usage(int code)
{
	fprintf(code == 0 ? stdout : stderr,
	    "usage: invbuf [-qv] [-r rate] [--redis url | --no-redis]"
	    " [--max-line bytes]\n"
	    "              [--mem-lines count] [--mem-bytes bytes]\n");
	exit(code);
}

static struct timeval
tv_of(int64_t ns)
{
	struct timeval tv;

	if (ns < 0)
		ns = 0;
	tv.tv_sec = ns / 1000000000;
	tv.tv_usec = (ns % 1000000000 + 999) / 1000;
	if (tv.tv_usec == 1000000) {
		tv.tv_sec++;
		tv.tv_usec = 0;
	}
	return tv;
}

/*
 * The id of an invoice line, or 0: only a whole invoice has an id to
 * drop later lines by. A truncated or malformed line that starts like
 * one ({"id":999999999,"inv...) would otherwise raise last_in, and with
 * it drop every good line after it, in Redis for good.
 */
static int64_t
id_of(const char *line, size_t len)
{
	struct inv_invoice iv;
	const char *why;
	int64_t id;

	if (inv_line_id(line, len, &id) < 0 || len > INV_LINE_MAX ||
	    inv_invoice_parse(line, len, &iv, &why) < 0)
		return 0;
	return iv.id;
}

/*
 * Redis failed: carry on with the local queue alone, say so once per
 * outage, and try again with backoff. Redis is rewritten on reconnect.
 */
static void
redis_lost(const char *why)
{
	struct timeval tv;

	if (rc != NULL)
		redisFree(rc);
	rc = NULL;
	pending = 0;
	pending_bytes = 0;
	taken = 0;
	if (!said_down)
		inv_info("Redis unavailable: %s; the backlog is kept here "
		    "until it is back", why);
	said_down = 1;
	tv = tv_of(retry_ms * 1000000);
	evtimer_add(ev_retry, &tv);
	retry_ms = retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : retry_ms * 2;
}

static void
redis_back(void)
{
	inv_info("Redis is back: the backlog (%zu lines) is in Redis again",
	    queue_len(q));
	said_down = 0;
}

/* Redis must hold exactly the local backlog again. */
static void
resync(void)
{
	char err[512];

	if (rc == NULL)
		return;
	if (mirror_rewrite(rc, q, &st, err, sizeof(err)) < 0)
		redis_lost(err);
	else
		taken = 0;
}

/*
 * First contact: what an earlier run left in Redis goes first, then
 * whatever was read while Redis was away, less the ids Redis had
 * already accepted.
 */
static int
load(char *err, size_t size)
{
	struct queue *nq;
	struct bufstate rs;
	struct line *l;
	size_t t;
	int64_t id;
	int alone = queue_len(q) > 0 || st.displayed > 0 || st.last_in > 0 ||
	    st.eof;		/* this run went on without Redis so far */

	if ((nq = malloc(sizeof(*nq))) == NULL)
		inv_errx(EX_OSERR, "out of memory");
	queue_init(nq, mem_lines, mem_bytes);
	memset(&rs, 0, sizeof(rs));
	if (mirror_load(rc, nq, &t, &rs, err, size) < 0) {
		queue_free(nq);
		free(nq);
		return -1;
	}
	if (inv_verbose && queue_len(nq) > 0)
		inv_warnx("%zu lines left by an earlier run are shown first",
		    queue_len(nq));
	while ((l = queue_peek(q)) != NULL) {
		id = id_of(l->l_data, l->l_len - 1);
		if (id > 0 && id <= rs.last_in)
			ndup++;
		else if (queue_push(nq, l->l_data, l->l_len - 1) < 0)
			inv_errx(EX_OSERR, "out of memory");
		queue_pop(q);
	}
	if (queue_len(q) > 0)
		inv_errx(EX_IOERR, "the spill file is unreadable");
	queue_free(q);
	free(q);
	q = nq;
	rs.displayed += st.displayed;
	if (st.last_in > rs.last_in)
		rs.last_in = st.last_in;
	if (st.last_out > rs.last_out)
		rs.last_out = st.last_out;
	rs.eof = st.eof;
	st = rs;
	taken = t;
	loaded = 1;
	if (alone) {
		/* Lines and counts of ours to add: the simplest right thing
		 * is to write the whole backlog back. */
		if (mirror_rewrite(rc, q, &st, err, size) < 0)
			return -1;
		taken = 0;
	}
	return 0;
}

static int
redis_connect(char *err, size_t size)
{
	rc = inv_redis_connect(&rurl, REDIS_TIMEOUT_MS, err, size);
	if (rc == NULL)
		return -1;
	if (mirror_init(rc, err, size) < 0)
		goto fail;
	if (!loaded) {
		if (load(err, size) < 0)
			goto fail;
	} else {
		if (mirror_rewrite(rc, q, &st, err, size) < 0)
			goto fail;
		taken = 0;
	}
	return 0;
fail:
	redisFree(rc);
	rc = NULL;
	return -1;
}

static void
status_changed(void)
{
	struct timeval tv;

	if (rc == NULL || evtimer_pending(ev_status, NULL))
		return;
	tv = tv_of(last_pub + STATUS_EVERY_NS - inv_mono_ns());
	evtimer_add(ev_status, &tv);
}

static void
on_status(evutil_socket_t fd, short what, void *arg)
{
	char err[512];

	if (rc == NULL)
		return;
	last_pub = inv_mono_ns();
	if (mirror_publish(rc, queue_len(q), st.displayed, st.eof, err,
	    sizeof(err)) < 0)
		redis_lost(err);
}

/*
 * Every few seconds: is Redis still there, and does it still hold our
 * copy? A Redis that restarted empty while nothing happened here would
 * otherwise lack NS:buf until the next line.
 */
static void
on_check(evutil_socket_t fd, short what, void *arg)
{
	char err[512];
	int r;

	if (rc == NULL)
		return;
	if ((r = mirror_check(rc, err, sizeof(err))) < 0)
		redis_lost(err);
	else if (r == 0) {
		inv_info("Redis lost its copy of the backlog (%s is gone): "
		    "writing it again", k_buf);
		resync();
	}
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	char err[512];
	struct timeval tv = { 0, 10000 };

	if (woff > 0 && !loaded) {
		/* Loading puts older lines in front of the one half
		 * written: finish that one first. */
		evtimer_add(ev_retry, &tv);
		return;
	}
	if (redis_connect(err, sizeof(err)) < 0) {
		redis_lost(err);
		return;
	}
	redis_back();
	retry_ms = RETRY_FIRST_MS;
	status_changed();
	schedule();
}

/* Read the accept replies sent so far. */
static void
accept_flush(void)
{
	char err[512];
	int pushed, n = pending;

	if (rc == NULL || n == 0)
		return;
	pending = 0;
	pending_bytes = 0;
	if (mirror_accept_finish(rc, n, &pushed, err, sizeof(err)) < 0)
		redis_lost(err);
	else if (pushed != n)
		resync();	/* Redis's last_in disagreed with ours */
}

/* A whole input line (without its newline). */
static void
line_in(const char *p, size_t len)
{
	int64_t id = id_of(p, len);

	lineno++;
	if (id > 0) {
		if (id <= st.last_in) {
			/* With Redis the mark may come from an earlier
			 * stream: say so once, or a new stream whose ids
			 * start again at 1 would vanish without a word. */
			ndup++;
			if (!said_dup++ && use_redis && !inv_verbose)
				inv_info("dropping lines whose id is not above "
				    "%" PRId64 ", the highest accepted (%s "
				    "last_in); -v lists them", st.last_in,
				    k_buf);
			if (inv_verbose)
				inv_warnx("line %lld: id %" PRId64 " is not "
				    "above %" PRId64 ": dropped as a duplicate",
				    lineno, id, st.last_in);
			return;
		}
		st.last_in = id;
	}
	if (queue_push(q, p, len) < 0)
		inv_errx(EX_OSERR, "out of memory");
	if (rc != NULL) {
		if (mirror_accept_append(rc, id, p, len) < 0)
			inv_errx(EX_OSERR, "out of memory");
		pending_bytes += len;
		if (++pending >= ACCEPT_PIPELINE ||
		    pending_bytes >= ACCEPT_BYTES)
			accept_flush();
	}
	status_changed();
}

static void
part_add(const char *p, size_t len)
{
	if (partlen + len > partcap) {
		size_t cap = partcap ? partcap : 4096;

		while (cap < partlen + len)
			cap *= 2;
		if (cap > max_line)
			cap = max_line;
		if ((part = realloc(part, cap)) == NULL)
			inv_errx(EX_OSERR, "out of memory");
		partcap = cap;
	}
	memcpy(part + partlen, p, len);
	partlen += len;
}

/*
 * Split what was read into lines. A line longer than max_line is cut:
 * its first max_line bytes go on as the line, the rest up to the
 * newline is skipped, so memory stays bounded and every input line is
 * still one output line.
 */
static void
split(const char *p, size_t n)
{
	const char *end = p + n, *nl;
	size_t seg;

	while (p < end) {
		nl = memchr(p, '\n', end - p);
		seg = (nl != NULL ? nl : end) - p;
		if (cutting) {
			if (nl == NULL)
				return;
			cutting = 0;
		} else if (partlen == 0 && nl != NULL && seg <= max_line)
			line_in(p, seg);
		else if (seg > max_line - partlen) {
			part_add(p, max_line - partlen);
			if (ncut++ == 0)
				inv_warnx("line %lld is longer than %zu bytes: "
				    "cut to its first %zu (--max-line)",
				    lineno + 1, max_line, max_line);
			line_in(part, partlen);
			partlen = 0;
			cutting = nl == NULL;
		} else {
			part_add(p, seg);
			if (nl != NULL) {
				line_in(part, partlen);
				partlen = 0;
			}
		}
		p = nl != NULL ? nl + 1 : end;
	}
}

static void
maybe_done(void)
{
	if (in_eof && queue_len(q) == 0 && woff == 0)
		event_base_loopexit(base, NULL);
}

static void
input_end(void)
{
	char err[512];

	event_del(ev_in);
	in_eof = 1;
	if (!cutting && partlen > 0)
		line_in(part, partlen);		/* a last line without '\n' */
	partlen = 0;
	accept_flush();
	st.eof = 1;
	if (rc != NULL && mirror_set_eof(rc, 1, err, sizeof(err)) < 0)
		redis_lost(err);
	status_changed();
	schedule();
	maybe_done();
}

static void
on_input(evutil_socket_t fd, short what, void *arg)
{
	static char buf[READ_SIZE];
	ssize_t n;

	n = read(STDIN_FILENO, buf, sizeof(buf));
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return;
		inv_warn("cannot read standard input");
		in_error = 1;
		n = 0;
	}
	if (n == 0) {
		input_end();
		return;
	}
	split(buf, n);
	accept_flush();
	schedule();
	if (in_manual)
		event_active(ev_in, EV_READ, 1);
}

/* Would a write to stdout go through now? Files always can. */
static int
out_ready(void)
{
	struct pollfd pfd = { STDOUT_FILENO, POLLOUT, 0 };

	return poll(&pfd, 1, 0) != 0;
}

/* Take the head line in Redis (LMOVE) unless it is there already. */
static void
take_head(const struct line *l)
{
	char err[512];
	int r, tries;

	for (tries = 0; rc != NULL && taken == 0; tries++) {
		r = mirror_take(rc, l->l_data, l->l_len - 1, err, sizeof(err));
		if (r < 0)
			redis_lost(err);
		else if (r == 1)
			taken = 1;
		else if (tries == 0)
			resync();	/* Redis's head was not ours */
		else
			redis_lost("NS:backlog changed under invbuf");
	}
}

/* Show the head line now: take, write, confirm. */
static void
show(void)
{
	struct line *l;
	ssize_t n;
	int64_t id;
	char err[512];
	int r = 1;

	if ((l = queue_peek(q)) == NULL) {
		if (queue_len(q) > 0)
			inv_errx(EX_IOERR, "the spill file is unreadable: "
			    "%zu lines lost", queue_len(q));
		return;
	}
	if (woff == 0) {
		if (!out_ready()) {
			event_add(ev_out, NULL);
			return;
		}
		take_head(l);
	}
	while (woff < l->l_len) {
		n = write(STDOUT_FILENO, l->l_data + woff, l->l_len - woff);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				event_add(ev_out, NULL);
				return;
			}
			/* The reader went away: quietly. With Redis the line
			 * stays in taken and is shown first next time. */
			if (errno == EPIPE)
				exit(0);
			inv_err(EX_IOERR, "cannot write to standard output");
		}
		woff += n;
	}
	woff = 0;
	next_due = inv_mono_ns() + period_ns;
	id = id_of(l->l_data, l->l_len - 1);
	st.displayed++;
	if (id > st.last_out)
		st.last_out = id;
	if (rc != NULL && (r = mirror_confirm(rc, l->l_data, l->l_len - 1,
	    id, err, sizeof(err))) < 0)
		redis_lost(err);
	queue_pop(q);
	if (taken > 0)
		taken--;
	if (r == 0)
		resync();	/* taken held something else */
	status_changed();
	schedule();
	maybe_done();
}

static void
on_out(evutil_socket_t fd, short what, void *arg)
{
	show();
}

static void
on_pace(evutil_socket_t fd, short what, void *arg)
{
	int64_t now = inv_mono_ns();
	struct timeval tv;

	if (now < next_due) {
		tv = tv_of(next_due - now);
		evtimer_add(ev_pace, &tv);
		return;
	}
	show();
}

/*
 * Arm the pacing timer for the head line, if there is one, and take
 * that line in Redis now rather than when it is due, so no round trip
 * to Redis stands between the timer and the write.
 */
static void
schedule(void)
{
	struct timeval tv;
	struct line *l;

	if (stopping || queue_len(q) == 0 || woff > 0 ||
	    evtimer_pending(ev_pace, NULL) || event_pending(ev_out, EV_WRITE,
	    NULL))
		return;
	if (rc != NULL && taken == 0 && (l = queue_peek(q)) != NULL)
		take_head(l);
	tv = tv_of(next_due - inv_mono_ns());
	evtimer_add(ev_pace, &tv);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	stopping = 1;
	event_base_loopbreak(base);
}

static void
on_evlog(int severity, const char *msg)
{
	if (inv_verbose)
		inv_warnx("libevent: %s", msg);
}

static long long
size_arg(const char *s, long long min, long long max, const char *what)
{
	long long v;
	const char *errstr;

	if (inv_parse_int(s, min, max, &v, &errstr) < 0)
		inv_errx(EX_USAGE, "bad %s '%s': %s (%lld to %lld)", what, s,
		    errstr, min, max);
	return v;
}

static void
setup_input(void)
{
	struct stat sb;

	/*
	 * Pipes, sockets and terminals are polled; a file or /dev/null is
	 * simply read, a chunk per turn of the loop. stdin is not made
	 * O_NONBLOCK: that flag belongs to a file description shared with
	 * whoever else holds it (the shell, on a terminal). One read(2) per
	 * readiness never blocks anyway: a readable pipe returns what it has.
	 */
	if (fstat(STDIN_FILENO, &sb) == 0 && (S_ISFIFO(sb.st_mode) ||
	    S_ISSOCK(sb.st_mode) || isatty(STDIN_FILENO))) {
		ev_in = event_new(base, STDIN_FILENO, EV_READ | EV_PERSIST,
		    on_input, NULL);
		if (ev_in != NULL && event_add(ev_in, NULL) == 0) {
			event_priority_set(ev_in, 1);
			return;
		}
		event_free(ev_in);
	}
	in_manual = 1;
	ev_in = event_new(base, -1, 0, on_input, NULL);
	event_priority_set(ev_in, 1);
	event_active(ev_in, EV_READ, 1);
}

/*
 * The loop is over: input drained, or a signal. With Redis away, one
 * last try to bring its copy up to date, so that lines kept here are
 * not lost and lines already shown are not shown again next time.
 */
static void
finish(void)
{
	char err[512];
	size_t left = queue_len(q);

	accept_flush();
	if (use_redis && rc == NULL) {
		if (redis_connect(err, sizeof(err)) == 0)
			redis_back();
		else if (stopping && left > 0)
			inv_warnx("stopped with %zu lines not shown; Redis is "
			    "unavailable (%s): they are lost", left, err);
		else
			inv_warnx("Redis is still unavailable (%s): its copy "
			    "of the backlog is out of date", err);
	} else if (stopping && left > 0 && !use_redis)
		inv_warnx("stopped with %zu lines not shown", left);
	if (rc != NULL) {
		if (stopping && inv_verbose)
			inv_warnx("stopped: %zu lines wait in Redis for the "
			    "next start", left);
		if (mirror_publish(rc, left, st.displayed, st.eof, err,
		    sizeof(err)) < 0)
			inv_warnx("cannot publish the status: %s", err);
	}
	if (ncut > 1)
		inv_warnx("%lld lines were cut to %zu bytes", ncut, max_line);
	if (ndup > 0 && (inv_verbose || use_redis))
		inv_info("%lld duplicate lines dropped", ndup);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "rate",	required_argument, NULL, 'r' },
		{ "redis",	required_argument, NULL, 'R' },
		{ "no-redis",	no_argument,	   NULL, 'N' },
		{ "max-line",	required_argument, NULL, 'L' },
		{ "mem-lines",	required_argument, NULL, 'M' },
		{ "mem-bytes",	required_argument, NULL, 'B' },
		{ "quiet",	no_argument,	   NULL, 'q' },
		{ "verbose",	no_argument,	   NULL, 'v' },
		{ "help",	no_argument,	   NULL, 'h' },
		{ "version",	no_argument,	   NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct event_config *cfg;
	struct event *ev_int, *ev_term, *ev_check;
	struct timeval check_every = { CHECK_EVERY_S, 0 };
	const char *url;
	char err[512];
	int ch;

	static char progname[] = "invbuf";

	inv_setprogname(argv[0]);
	argv[0] = progname;		/* getopt's messages say "invbuf:" */
	while ((ch = getopt_long(argc, argv, "r:qvh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			if (inv_parse_rate(optarg, &rate_milli) < 0 ||
			    rate_milli > 1000000000)
				inv_errx(EX_USAGE, "bad rate '%s': expected "
				    "lines per second from 0 to 1000000, up to "
				    "three decimals", optarg);
			break;
		case 'R':
			redis_flag = optarg;
			break;
		case 'N':
			no_redis = 1;
			break;
		case 'L':
			max_line = (size_t)size_arg(optarg, 1, 256 << 20,
			    "line limit");
			break;
		case 'M':
			mem_lines = size_arg(optarg, 1, 1000000000,
			    "memory line bound");
			break;
		case 'B':
			mem_bytes = size_arg(optarg, 1, 1LL << 40,
			    "memory byte bound");
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
			printf("invbuf %s\n", INV_VERSION);
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
	if (redis_flag != NULL && no_redis)
		inv_errx(EX_USAGE, "--redis and --no-redis exclude each other");
	url = no_redis ? NULL : inv_redis_url(redis_flag);
	if (url != NULL) {
		if (inv_redis_url_parse(url, &rurl, err, sizeof(err)) < 0)
			inv_errx(EX_USAGE, "%s", err);
		if (inv_ns_check(inv_ns()) < 0)
			inv_errx(EX_USAGE, "bad INV_NAMESPACE '%s': expected 1 "
			    "to 64 of A-Z a-z 0-9 _ . -", inv_ns());
		use_redis = 1;
	}
	/*
	 * 1/RATE, plus a guard of 0.5 ms (at most 1% of it): the reader of
	 * our output is woken a little late now and then, and without a
	 * guard two lines exactly 1/RATE apart can look closer to it, three
	 * lines fit a second it measures. The guard keeps "at most RATE
	 * lines in any second" true as seen from the other end of the pipe.
	 */
	period_ns = rate_milli > 0 ? 1000000000000LL / rate_milli : 0;
	period_ns += period_ns / 100 < PACE_GUARD_NS ? period_ns / 100 :
	    PACE_GUARD_NS;

	signal(SIGPIPE, SIG_IGN);
	event_set_log_callback(on_evlog);
	if ((cfg = event_config_new()) == NULL)
		inv_errx(EX_OSERR, "out of memory");
	/* Timers to the microsecond on CLOCK_MONOTONIC (timerfd), not the
	 * coarse clock libevent uses by default, and from the time of the
	 * call rather than the loop's cached time, which would set a timer
	 * armed late in a turn early (on_pace would catch it, one wakeup
	 * later). */
	event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER |
	    EVENT_BASE_FLAG_NO_CACHE_TIME);
	if ((base = event_base_new_with_config(cfg)) == NULL)
		inv_errx(EX_OSERR, "cannot start the event loop");
	event_config_free(cfg);
	event_base_priority_init(base, 2);	/* 0: output, 1: input */
	ev_out = event_new(base, STDOUT_FILENO, EV_WRITE, on_out, NULL);
	ev_pace = evtimer_new(base, on_pace, NULL);
	ev_status = evtimer_new(base, on_status, NULL);
	ev_retry = evtimer_new(base, on_retry, NULL);
	ev_check = event_new(base, -1, EV_PERSIST, on_check, NULL);
	ev_int = evsignal_new(base, SIGINT, on_signal, NULL);
	ev_term = evsignal_new(base, SIGTERM, on_signal, NULL);
	if (ev_out == NULL || ev_pace == NULL || ev_status == NULL ||
	    ev_retry == NULL || ev_check == NULL || ev_int == NULL ||
	    ev_term == NULL)
		inv_errx(EX_OSERR, "out of memory");
	event_priority_set(ev_out, 0);
	event_priority_set(ev_pace, 0);
	event_add(ev_int, NULL);
	event_add(ev_term, NULL);
	inv_key(k_buf, sizeof(k_buf), "buf");

	if ((q = malloc(sizeof(*q))) == NULL)
		inv_errx(EX_OSERR, "out of memory");
	queue_init(q, mem_lines, mem_bytes);
	next_due = inv_mono_ns();
	if (use_redis) {
		event_add(ev_check, &check_every);
		if (redis_connect(err, sizeof(err)) < 0)
			redis_lost(err);
		else
			status_changed();
	} else if (inv_verbose)
		inv_warnx("no Redis (REDIS_URL unset or --no-redis): the "
		    "backlog lives in this process, in memory up to %lld lines "
		    "or %lld bytes, then in a file in $TMPDIR", mem_lines,
		    mem_bytes);
	setup_input();
	/*
	 * A line is due at an exact time: ask for the scheduler's shortest
	 * slices (Linux 6.12 and later; elsewhere nothing changes), as
	 * invgen does, so a busy machine delays the wake-up less.
	 */
	(void)inv_sched_slice(SCHED_SLICE_NS);
	schedule();

	event_base_dispatch(base);
	finish();
	if (rc != NULL)
		redisFree(rc);
	/* ev_check has no other reference once it is off the loop */
	event_free(ev_check);
	event_free(ev_int);
	event_free(ev_term);
	return in_error ? EX_IOERR : 0;
}
