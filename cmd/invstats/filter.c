/*
 * The filter: invoice lines from stdin to stdout unchanged, each checked
 * by inv_invoice_parse and handed to the counter thread after it is
 * written. A bad line is reported with its number and reason and not
 * passed on. On a pipe or terminal every line is one write(2); into a
 * regular file whole lines go in large writes.
 *
 * --resume (the supervisor's): before reading stdin, write the rows
 * committed above NS:fwd that no stage downstream has seen, as invgen
 * prints them, and from then on never write an id at or below the
 * highest already written.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"
#include "invoice.h"
#include "invstats.h"
#include "log.h"
#include "rds.h"
#include "util.h"

#define IN_BUFSZ	(1 << 16)
#define BATCH		1024		/* invoices handed over at once */
#define RESUME_PAGE	"1000"		/* rows per query when re-emitting */

static volatile sig_atomic_t stopping;
static int	 broken_pipe;
static int	 resuming;		/* --resume in force */
static int64_t	 written;		/* highest id written (--resume) */

static char	 inbuf[IN_BUFSZ + 1];	/* + room for a missing last newline */
static char	 outbuf[IN_BUFSZ];
static size_t	 outlen;
static int	 out_buffered;		/* stdout is a regular file */
static int64_t	 out_pending;		/* highest id in outbuf */

static struct inv_counted batch[BATCH];
static size_t	 batch_len;

static void
on_signal(int sig)
{
	stopping = 1;
}

/* All of p, or -1 when the reader has gone (then stop, quietly). */
static int
out_write(const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(STDOUT_FILENO, p, n)) < 0) {
			if (errno == EINTR)
				continue;	/* finish the line */
			if (errno == EPIPE) {
				broken_pipe = 1;
				return -1;
			}
			inv_err(EX_IOERR, "cannot write to standard output");
		}
		p += w;
		n -= w;
	}
	return 0;
}

static void
note_written(int64_t id)
{
	if (resuming && id > written) {
		written = id;
		counter_written(id);
	}
}

static int
out_flush(void)
{
	if (outlen == 0)
		return 0;
	if (out_write(outbuf, outlen) < 0)
		return -1;
	outlen = 0;
	note_written(out_pending);
	return 0;
}

/* One line, newline included. */
static int
out_line(const char *line, size_t len, int64_t id)
{
	if (!out_buffered) {
		if (out_write(line, len) < 0)
			return -1;
		note_written(id);
		return 0;
	}
	if (outlen + len > sizeof(outbuf) && out_flush() < 0)
		return -1;
	memcpy(outbuf + outlen, line, len);
	outlen += len;
	if (id > out_pending)
		out_pending = id;
	return 0;
}

static void
batch_flush(void)
{
	counter_add(batch, batch_len);
	batch_len = 0;
}

/*
 * One line of input, its newline at line[len] (always there). Returns -1
 * when stdout has gone.
 */
static int
one_line(char *line, size_t len, long long lineno, long long *rejected)
{
	struct inv_invoice iv;
	const char *why;

	if (len > INV_LINE_MAX) {
		inv_warnx("line %lld: line too long (more than %d bytes)",
		    lineno, INV_LINE_MAX);
		++*rejected;
		return 0;
	}
	if (inv_invoice_parse(line, len, &iv, &why) < 0) {
		inv_warnx("line %lld: %s", lineno, why);
		++*rejected;
		return 0;
	}
	/* Already written by --resume (or before): count, do not repeat. */
	if (!resuming || iv.id > written) {
		if (out_line(line, len + 1, iv.id) < 0)
			return -1;
	} else if (inv_verbose)
		inv_info("line %lld: invoice %" PRId64 " already written",
		    lineno, iv.id);
	batch[batch_len++] = (struct inv_counted){ iv.id, iv.subtotal, iv.vat,
	    iv.total };
	if (batch_len == BATCH)
		batch_flush();
	return 0;
}

/* Write rows id > after from the database, in id order. */
static int
reemit(PGconn *db, redisContext *rc, const char *kfwd, int64_t after,
    int64_t *count)
{
	char abuf[24], line[INV_LINE_MAX];
	const char *params[1] = { abuf };
	struct inv_invoice iv;
	PGresult *res;
	redisReply *r;
	int i, n, len;

	*count = 0;
	while (!stopping) {
		snprintf(abuf, sizeof(abuf), "%" PRId64, after);
		res = PQexecParams(db, "SELECT id, invoice_number,"
		    " (extract(epoch FROM invoice_date) * 1000000)::bigint,"
		    " seller_name, buyer_name, (subtotal * 100)::bigint,"
		    " (vat_amount * 100)::bigint, (total_amount * 100)::bigint"
		    " FROM invoices WHERE id > $1::bigint ORDER BY id"
		    " LIMIT " RESUME_PAGE, 1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			inv_warnx("cannot resume: cannot read invoices: %s",
			    PQresultErrorMessage(res));
			PQclear(res);
			return -1;
		}
		if ((n = PQntuples(res)) == 0) {
			PQclear(res);
			break;
		}
		for (i = 0; i < n && !stopping; i++) {
			memset(&iv, 0, sizeof(iv));
			iv.id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
			snprintf(iv.number, sizeof(iv.number), "%s",
			    PQgetvalue(res, i, 1));
			inv_time_format(strtoll(PQgetvalue(res, i, 2), NULL,
			    10), iv.date, sizeof(iv.date));
			snprintf(iv.seller, sizeof(iv.seller), "%s",
			    PQgetvalue(res, i, 3));
			snprintf(iv.buyer, sizeof(iv.buyer), "%s",
			    PQgetvalue(res, i, 4));
			iv.subtotal = strtoll(PQgetvalue(res, i, 5), NULL, 10);
			iv.vat = strtoll(PQgetvalue(res, i, 6), NULL, 10);
			iv.total = strtoll(PQgetvalue(res, i, 7), NULL, 10);
			len = inv_invoice_format(&iv, line, sizeof(line));
			if (len < 0 || len >= (int)sizeof(line)) {
				inv_warnx("cannot resume: invoice %" PRId64
				    " does not fit in a line", iv.id);
				PQclear(res);
				return -1;
			}
			if (out_line(line, len, iv.id) < 0 || out_flush() < 0) {
				PQclear(res);
				return -1;
			}
			after = iv.id;
			++*count;
		}
		PQclear(res);
		/* What is written is what NS:fwd says, page by page. */
		r = redisCommand(rc, "SET %s %" PRId64, kfwd, after);
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			inv_warnx("cannot resume: cannot set %s in Redis: %s",
			    kfwd, r != NULL ? r->str : rc->errstr);
			freeReplyObject(r);
			return -1;
		}
		freeReplyObject(r);
	}
	return 0;
}

/*
 * --resume: read NS:fwd (or start it at max(id) on a first start), then
 * re-emit what lies above it. Without either server there is nothing to
 * resume from; say so and go on as a plain filter.
 */
static void
resume(const struct config *cf)
{
	char err[512], kfwd[128], kbuf[128];
	const char *errstr;
	redisContext *rc = NULL;
	PGconn *db = NULL;
	PGresult *res = NULL;
	redisReply *r = NULL;
	long long v;
	int64_t mark, count;

	if (cf->cf_db == NULL || cf->cf_redis == NULL) {
		inv_warnx("cannot resume without %s: nothing re-emitted",
		    cf->cf_db == NULL ? "a database" : "Redis");
		return;
	}
	inv_key(kfwd, sizeof(kfwd), "fwd");
	if ((rc = inv_redis_connect(&cf->cf_ru, REDIS_TIMEOUT_MS, err,
	    sizeof(err))) == NULL ||
	    (db = inv_db_connect(cf->cf_db, err, sizeof(err))) == NULL) {
		inv_warnx("cannot resume: %s: nothing re-emitted", err);
		goto out;
	}
	r = redisCommand(rc, "GET %s", kfwd);
	if (r == NULL || (r->type != REDIS_REPLY_STRING &&
	    r->type != REDIS_REPLY_NIL)) {
		inv_warnx("cannot resume: cannot read %s from Redis: %s", kfwd,
		    r == NULL ? rc->errstr : r->type == REDIS_REPLY_ERROR ?
		    r->str : "unexpected reply");
		goto out;
	}
	if (r->type == REDIS_REPLY_STRING) {
		if (inv_parse_int(r->str, 0, INT64_MAX, &v, &errstr) < 0) {
			inv_warnx("cannot resume: %s in Redis is not an id: %s",
			    kfwd, errstr);
			goto out;
		}
		mark = v;
	} else {
		/* First start: everything committed so far counts as sent. */
		res = PQexec(db, "SELECT coalesce(max(id), 0) FROM invoices");
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			inv_warnx("cannot resume: cannot read invoices: %s",
			    PQresultErrorMessage(res));
			goto out;
		}
		freeReplyObject(r);
		r = redisCommand(rc, "SET %s %s", kfwd, PQgetvalue(res, 0, 0));
		if (r == NULL || r->type == REDIS_REPLY_ERROR)
			inv_warnx("cannot resume: cannot set %s in Redis: %s",
			    kfwd, r != NULL ? r->str : rc->errstr);
		else if (inv_verbose)
			inv_info("first start: %s set to %s, nothing to "
			    "re-emit", kfwd, PQgetvalue(res, 0, 0));
		goto out;
	}
	/*
	 * What invstats wrote into the pipe to invbuf and invbuf never
	 * took into NS:backlog died with the pipe: resume from invbuf's
	 * last_in when it is lower. invbuf drops what it already has.
	 */
	freeReplyObject(r);
	inv_key(kbuf, sizeof(kbuf), "buf");
	r = redisCommand(rc, "HGET %s last_in", kbuf);
	if (r != NULL && r->type == REDIS_REPLY_STRING &&
	    inv_parse_int(r->str, 0, INT64_MAX, &v, &errstr) == 0 &&
	    v < mark) {
		if (inv_verbose)
			inv_info("%s last_in %lld is below %s %" PRId64
			    ": resuming from it", kbuf, v, kfwd, mark);
		mark = v;
	}
	written = mark;
	if (reemit(db, rc, kfwd, mark, &count) == 0 && count > 0)
		inv_info("re-emitted %" PRId64 " invoices committed after "
		    "id %" PRId64, count, mark);
out:
	PQclear(res);
	freeReplyObject(r);
	PQfinish(db);
	redisFree(rc);
}

/* The filter; returns the exit status. */
int
filter_run(const struct config *cf)
{
	struct sigaction sa;
	struct stat st;
	size_t have = 0, off;
	long long lineno = 0, rejected = 0;
	int discarding = 0, eof = 0, read_failed = 0;
	ssize_t n;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: read(2) returns */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (fstat(STDOUT_FILENO, &st) == 0 && S_ISREG(st.st_mode))
		out_buffered = 1;

	if (cf->cf_db == NULL && cf->cf_redis != NULL)
		inv_info("no database (DATABASE_URL unset or --no-db): "
		    "statistics count the lines alone");
	if (cf->cf_redis == NULL)
		inv_info("no Redis (REDIS_URL unset or --no-redis): lines are "
		    "checked and passed on, nothing is counted");
	if (cf->cf_resume) {
		resuming = 1;
		resume(cf);
	}
	if (cf->cf_redis != NULL && counter_start(cf) < 0)
		inv_warnx("cannot start counting: %s", strerror(errno));
	if (resuming && written > 0)
		counter_written(written);

	while (!eof && !stopping && !broken_pipe) {
		n = read(STDIN_FILENO, inbuf + have, IN_BUFSZ - have);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			inv_warn("cannot read standard input");
			read_failed = 1;
			break;
		}
		if (n == 0) {
			eof = 1;
			/* A last line without its newline is still a line. */
			if (have > 0 && !discarding)
				inbuf[have++] = '\n';
		}
		have += n;
		off = 0;
		for (;;) {
			char *nl = memchr(inbuf + off, '\n', have - off);

			if (nl == NULL)
				break;
			if (discarding)
				discarding = 0;	/* end of a line too long */
			else if (one_line(inbuf + off, nl - (inbuf + off),
			    ++lineno, &rejected) < 0)
				break;
			off = nl + 1 - inbuf;
		}
		if (broken_pipe)
			break;
		memmove(inbuf, inbuf + off, have - off);
		have -= off;
		if (have > INV_LINE_MAX && !discarding) {
			/* No newline in sight: reject now, skip to the next. */
			inv_warnx("line %lld: line too long (more than %d "
			    "bytes)", ++lineno, INV_LINE_MAX);
			rejected++;
			discarding = 1;
		}
		if (discarding)
			have = 0;
		if (out_flush() == 0)
			batch_flush();
	}
	out_flush();
	batch_flush();
	counter_stop();
	if (rejected > 0)
		inv_warnx("%lld line%s rejected", rejected,
		    rejected == 1 ? "" : "s");
	if (read_failed)
		return EX_IOERR;
	return rejected > 0 ? EX_DATAERR : 0;
}
