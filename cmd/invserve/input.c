/*
 * The input: invoice lines from standard input or a FIFO (or, with
 * --source redis, from the NS:display channel). A FIFO is opened
 * read-write, so the server holds a writer itself and never sees end of
 * input when the producer exits: a new producer just opens it again.
 * Lines are split at newlines across reads; a line that is not an
 * invoice is counted and reported with its number, never broadcast. A
 * line whose id is not above the highest id broadcast is a duplicate
 * (the pipeline is at-least-once) and is dropped.
 *
 * NS:served holds the highest id broadcast. At start, and when Redis
 * comes back, the lines invbuf showed (NS:buf last_out) beyond it were
 * lost on the way (invserve was down, or they were in the FIFO when it
 * died): they are read from PostgreSQL and broadcast first, in order,
 * with the input paused meanwhile.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "invserve.h"
#include "invoice.h"
#include "log.h"
#include "rds.h"
#include "util.h"

#define READ_MAX	65536
#define RECOVER_WAIT_S	10	/* for PostgreSQL, before giving up */
#define REDIS_WAIT_S	3	/* for Redis at start */
/* The reason invstats gives too, so one message means one thing. */
#define TOO_LONG	"line too long (more than %d bytes)"

static int	 in_fd = -1;
static int	 in_file;		/* a regular file: no readiness events */
static struct event *in_ev;
static struct evbuffer *inbuf;
static uint64_t	 lineno;
static int	 skipping;		/* inside an over-long line */
static int	 paused = 1;		/* until the first recovery is done */
static int	 recovering;		/* 1: asking Redis or waiting for PostgreSQL;
					   2: the query is out */
static int64_t	 recover_deadline;
static struct event *start_timer;
static int	 save_busy;
static int64_t	 saved, save_want;
static int	 input_eof;

static void	 on_read(evutil_socket_t, short, void *);

/* ---- NS:served, written behind the broadcast, one SET at a time ---- */

static void	 served_save(int64_t);

static void
on_saved(redisReply *r, void *arg)
{
	int64_t id = *(int64_t *)arg;

	free(arg);
	save_busy = 0;
	if (r != NULL && r->type != REDIS_REPLY_ERROR && id > saved)
		saved = id;
	if (save_want > saved)
		served_save(save_want);
}

static void
served_save(int64_t id)
{
	char key[128];
	int64_t *arg;

	save_want = id;
	if (save_busy || cfg.source_redis || !rds_ok() ||
	    (arg = malloc(sizeof(*arg))) == NULL)
		return;
	*arg = id;
	save_busy = 1;
	if (rds_command(on_saved, arg, "SET %s %" PRId64,
	    inv_key(key, sizeof(key), "served"), id) < 0) {
		save_busy = 0;
		free(arg);
	}
}

/* ---- lines ---- */

/*
 * One line (without its newline) from the input or the display channel.
 * where names it in messages ("input line 12", "display channel").
 */
void
input_line(const char *line, size_t len, const char *where)
{
	struct inv_invoice iv;
	const char *why;

	stats.input_lines++;
	if (len > INV_LINE_MAX) {
		stats.input_bad++;
		inv_warnx("%s: not an invoice: " TOO_LONG, where, INV_LINE_MAX);
		return;
	}
	/*
	 * Trailing white space, the CR of a CRLF line end included (see
	 * invserve(1)), is not sent on; a line of nothing else is empty.
	 */
	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' ||
	    line[len - 1] == '\t'))
		len--;
	if (inv_invoice_parse(line, len, &iv, &why) < 0) {
		stats.input_bad++;
		inv_warnx("%s: not an invoice: %s", where, why);
		return;
	}
	if (iv.id <= served) {
		stats.input_dup++;
		if (inv_verbose > 1)
			inv_info("%s: invoice %" PRId64 " already sent: dropped",
			    where, iv.id);
		return;
	}
	stats_local_add(iv.subtotal, iv.vat, iv.total);
	sse_invoice(iv.id, line, len);
	served_save(iv.id);
}

static void
process(int at_eof)
{
	char where[48], *line;
	size_t len;
	struct evbuffer_ptr eol;

	while (!paused) {
		eol = evbuffer_search_eol(inbuf, NULL, NULL, EVBUFFER_EOL_LF);
		if (eol.pos < 0) {
			len = evbuffer_get_length(inbuf);
			if (len > INV_LINE_MAX) {
				/* Too long to be an invoice: skip to its end. */
				if (!skipping) {
					lineno++;
					stats.input_lines++;
					stats.input_bad++;
					inv_warnx("input line %" PRIu64 ": not an "
					    "invoice: " TOO_LONG, lineno,
					    INV_LINE_MAX);
				}
				skipping = 1;
				evbuffer_drain(inbuf, len);
				return;
			}
			if (!at_eof || len == 0)
				return;
			eol.pos = (ssize_t)len;	/* a last line without newline */
		}
		if (skipping) {
			evbuffer_drain(inbuf, eol.pos + 1);
			skipping = 0;
			continue;
		}
		len = (size_t)eol.pos;
		line = (char *)evbuffer_pullup(inbuf, (ssize_t)len + 1);
		if (line == NULL)
			line = (char *)evbuffer_pullup(inbuf, (ssize_t)len);
		lineno++;
		snprintf(where, sizeof(where), "input line %" PRIu64, lineno);
		input_line(line, len, where);
		evbuffer_drain(inbuf, len + 1);
	}
}

static void
schedule_read(void)
{
	struct timeval now = { 0, 0 };

	if (in_ev == NULL || paused || input_eof)
		return;
	if (in_file)
		evtimer_add(in_ev, &now);	/* read again on the next turn */
	else
		event_add(in_ev, NULL);
}

static void
on_read(evutil_socket_t fd, short what, void *arg)
{
	int n;

	n = evbuffer_read(inbuf, in_fd, READ_MAX);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		inv_warn("cannot read the input");
		n = 0;
	}
	if (n == 0) {
		process(1);
		input_eof = 1;
		event_del(in_ev);
		inv_info("end of input after %" PRIu64 " lines; still serving",
		    lineno);
		return;
	}
	process(0);
	if (in_file)
		schedule_read();
}

int
input_open(const char *path, char *err, size_t size)
{
	struct stat st;
	int fifo = 0;

	if ((inbuf = evbuffer_new()) == NULL) {
		snprintf(err, size, "out of memory");
		return -1;
	}
	if (path == NULL || strcmp(path, "-") == 0) {
		in_fd = STDIN_FILENO;
	} else {
		if (stat(path, &st) < 0 && errno == ENOENT) {
			if (mkfifo(path, 0600) < 0) {
				snprintf(err, size, "cannot create FIFO %s: %s",
				    path, strerror(errno));
				return -1;
			}
			inv_info("created FIFO %s", path);
		}
		if (stat(path, &st) == 0 && S_ISFIFO(st.st_mode))
			fifo = 1;
		/* Read-write: our own writer keeps the FIFO from ending. */
		in_fd = open(path, (fifo ? O_RDWR : O_RDONLY) | O_NONBLOCK |
		    O_CLOEXEC);
		if (in_fd < 0) {
			snprintf(err, size, "cannot open %s: %s", path,
			    strerror(errno));
			return -1;
		}
	}
	if (fstat(in_fd, &st) < 0) {
		snprintf(err, size, "cannot read the input: %s", strerror(errno));
		return -1;
	}
	/* epoll refuses regular files and /dev/null: read those on timers. */
	in_file = S_ISREG(st.st_mode) || (S_ISCHR(st.st_mode) &&
	    !isatty(in_fd));
	if (!in_file)
		(void)fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK);
	in_ev = in_file ? evtimer_new(base, on_read, NULL) :
	    event_new(base, in_fd, EV_READ | EV_PERSIST, on_read, NULL);
	if (in_ev == NULL) {
		snprintf(err, size, "out of memory");
		return -1;
	}
	return 0;
}

void
input_resume(void)
{
	if (!paused)
		return;
	paused = 0;
	if (start_timer != NULL)
		evtimer_del(start_timer);
	process(input_eof);
	schedule_read();
}

static void
pause_input(void)
{
	paused = 1;
	if (in_ev != NULL)
		event_del(in_ev);
}

/* ---- recovery ---- */

static void
recover_done(void)
{
	recovering = 0;
	input_resume();
}

static void
on_recovered(PGresult *res, const char *why, void *arg)
{
	char line[INV_LINE_MAX];
	int64_t id;
	int i, n, len;

	if (res == NULL) {
		inv_warnx("cannot recover the invoices shown while invserve "
		    "was away: %s", why);
		recover_done();
		return;
	}
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		if ((len = invoice_json_row(res, i, line, sizeof(line),
		    &id)) < 0 || id <= served)
			continue;
		stats.recovered++;
		sse_invoice(id, line, (size_t)len);
	}
	if (n > 0) {
		inv_info("recovered %d invoices from PostgreSQL (shown while "
		    "invserve was away)", n);
		served_save(served);
	}
	recover_done();
}

static int64_t
reply_int(redisReply *r)
{
	long long v;
	const char *errstr;

	if (r == NULL || r->type != REDIS_REPLY_STRING ||
	    inv_parse_int(r->str, 0, INT64_MAX / 2, &v, &errstr) < 0)
		return 0;
	return v;
}

static void
recover_query(int64_t from, int64_t to)
{
	static char q[1024];
	char a[32], b[32];
	const char *params[2] = { a, b };

	/* No more than the ring holds: older lines go to no one. */
	if (to - from > cfg.ring_size)
		from = to - cfg.ring_size;
	snprintf(q, sizeof(q), "SELECT %s FROM invoices WHERE id > $1"
	    " AND id <= $2 ORDER BY id", invoice_columns);
	snprintf(a, sizeof(a), "%" PRId64, from);
	snprintf(b, sizeof(b), "%" PRId64, to);
	if (pg_query(q, 2, params, on_recovered, NULL) < 0) {
		inv_warnx("cannot recover the invoices shown while invserve "
		    "was away: PostgreSQL is unavailable");
		recover_done();
	}
}

static int64_t last_out;

static void
on_last_out(redisReply *r, void *arg)
{
	if (r == NULL) {
		recover_done();
		return;
	}
	last_out = reply_int(r);
	if (last_out <= served) {
		recover_done();
		return;
	}
	if (!pg_configured()) {
		inv_warnx("invoices %" PRId64 " to %" PRId64 " were shown while "
		    "invserve was away; without a database they cannot be "
		    "recovered", served + 1, last_out);
		recover_done();
		return;
	}
	if (!pg_ok() && inv_mono_ns() < recover_deadline)
		return;		/* input_recover() again when it connects */
	recover_query(served, last_out);
}

static void
on_served(redisReply *r, void *arg)
{
	if (r != NULL && r->type != REDIS_REPLY_ERROR)
		sse_served_floor(reply_int(r));
	sse_prefill();
}

/*
 * Called when Redis or PostgreSQL (re)connects: broadcast what was shown
 * beyond NS:served, input paused until done.
 */
void
input_recover(void)
{
	char k1[128], k2[128];

	if (!rds_ok()) {
		sse_prefill();
		return;
	}
	if (cfg.source_redis) {
		/* What the FIFO reader sent: where replays from PostgreSQL end. */
		if (rds_command(on_served, NULL, "GET %s",
		    inv_key(k1, sizeof(k1), "served")) < 0)
			sse_prefill();
		return;
	}
	if (recovering) {
		/* Waiting for PostgreSQL, which is here now. */
		if (last_out > served && pg_ok()) {
			recovering = 2;
			recover_query(served, last_out);
		}
		return;
	}
	recovering = 1;
	last_out = 0;
	pause_input();
	if (rds_command(on_served, NULL, "GET %s",
	    inv_key(k1, sizeof(k1), "served")) < 0 ||
	    rds_command(on_last_out, NULL, "HGET %s last_out",
	    inv_key(k2, sizeof(k2), "buf")) < 0)
		recover_done();
}

static void
on_start_timer(evutil_socket_t fd, short what, void *arg)
{
	struct timeval tv = { 1, 0 };

	if (recovering == 1 && last_out > served && !pg_ok()) {
		if (inv_mono_ns() < recover_deadline) {
			evtimer_add(start_timer, &tv);
			return;
		}
		inv_warnx("cannot recover invoices %" PRId64 " to %" PRId64
		    ": PostgreSQL is unavailable", served + 1, last_out);
		recover_done();
		return;
	}
	if (paused && !recovering) {
		inv_warnx("Redis is unavailable: serving without knowing what "
		    "was sent before this start");
		input_resume();
	}
}

/* Start reading: after the recovery when Redis is there, else soon. */
void
input_start(void)
{
	struct timeval tv = { REDIS_WAIT_S, 0 };

	recover_deadline = inv_mono_ns() + (int64_t)RECOVER_WAIT_S * 1000000000;
	if (cfg.source_redis || !rds_configured()) {
		input_resume();
		return;
	}
	start_timer = evtimer_new(base, on_start_timer, NULL);
	evtimer_add(start_timer, &tv);
}
