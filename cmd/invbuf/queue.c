/*
 * The local backlog: a FIFO of lines, the oldest in memory up to a
 * bound (lines and bytes), the rest in an unlinked temporary file in
 * $TMPDIR as records of a 4-byte length and the line. While the file
 * holds anything, new lines go to the file too, so the order is always
 * memory, then file. When the file empties it is truncated and memory
 * takes over again; space below the read offset is given back to the
 * file system as the reading advances, so a backlog that never quite
 * empties does not grow the disk without end.
 *
 * Nothing is ever dropped: if the spill file cannot be created or
 * written, its records are read back into memory and the queue goes on
 * in memory alone, unbounded, after saying so, until it empties; the
 * next backlog tries the file again (a full disk may have room by then).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "invbuf.h"
#include "log.h"
#include "util.h"

#define PUNCH_STEP	(1 << 20)	/* give back file space a MiB at a time */

void
queue_init(struct queue *q, size_t max_lines, size_t max_bytes)
{
	memset(q, 0, sizeof(*q));
	STAILQ_INIT(&q->q_mem);
	q->q_max_lines = max_lines;
	q->q_max_bytes = max_bytes;
	q->q_fd = -1;
}

void
queue_free(struct queue *q)
{
	struct line *l;

	while ((l = STAILQ_FIRST(&q->q_mem)) != NULL) {
		STAILQ_REMOVE_HEAD(&q->q_mem, l_entry);
		free(l);
	}
	free(q->q_peeked);
	if (q->q_fd >= 0)
		close(q->q_fd);
	queue_init(q, q->q_max_lines, q->q_max_bytes);
}

size_t
queue_len(const struct queue *q)
{
	return q->q_mem_lines + q->q_file_lines;
}

static struct line *
line_new(const char *data, size_t len)
{
	struct line *l;

	if ((l = malloc(sizeof(*l) + len + 1)) == NULL)
		return NULL;
	memcpy(l->l_data, data, len);
	l->l_data[len] = '\n';
	l->l_len = len + 1;
	return l;
}

static void
mem_append(struct queue *q, struct line *l)
{
	STAILQ_INSERT_TAIL(&q->q_mem, l, l_entry);
	q->q_mem_lines++;
	q->q_mem_bytes += l->l_len;
}

/* The record at *off, into a new line; *off moves past it. */
static struct line *
record_read(struct queue *q, off_t *off)
{
	uint32_t len;
	struct line *l;

	if (pread(q->q_fd, &len, sizeof(len), *off) != sizeof(len))
		return NULL;
	if ((l = malloc(sizeof(*l) + len)) == NULL)
		return NULL;
	if (pread(q->q_fd, l->l_data, len, *off + sizeof(len)) != (ssize_t)len) {
		free(l);
		return NULL;
	}
	l->l_len = len;
	*off += sizeof(len) + len;
	return l;
}

static const char *
spill_dir(void)
{
	const char *dir = inv_getenv("TMPDIR");

	return dir != NULL ? dir : "/tmp";
}

/*
 * The spill file failed: move what it holds into memory, in order, and
 * stay in memory until the queue empties. Returns -1 if even that
 * failed.
 */
static int
unspill(struct queue *q, const char *why, int saved)
{
	struct line *l;
	off_t off = q->q_rd;
	int rc = 0;

	inv_warnx("cannot %s a spill file in %s: %s; the backlog stays in "
	    "memory until it empties", why, spill_dir(), strerror(saved));
	free(q->q_peeked);
	q->q_peeked = NULL;
	while (q->q_fd >= 0 && off < q->q_wr) {
		if ((l = record_read(q, &off)) == NULL) {
			inv_warn("cannot read the spill file back: %zu lines "
			    "lost", q->q_file_lines);
			rc = -1;
			break;
		}
		mem_append(q, l);
		q->q_file_lines--;
	}
	if (q->q_fd >= 0)
		close(q->q_fd);
	q->q_fd = -1;
	q->q_rd = q->q_wr = q->q_punched = 0;
	q->q_file_lines = 0;
	q->q_nospill = 1;
	return rc;
}

static int
spill_open(struct queue *q)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/invbuf.XXXXXX", spill_dir());
	if ((q->q_fd = mkostemp(path, O_CLOEXEC)) < 0)
		return -1;
	unlink(path);
	q->q_rd = q->q_wr = q->q_punched = 0;
	return 0;
}

/* Append a line (without its newline); -1 only when memory runs out. */
int
queue_push(struct queue *q, const char *data, size_t len)
{
	struct line *l;
	struct iovec iov[3];
	uint32_t rlen = (uint32_t)len + 1;
	static char nl[] = "\n";
	ssize_t n;

	if (q->q_nospill || (q->q_file_lines == 0 &&
	    q->q_mem_lines < q->q_max_lines &&
	    q->q_mem_bytes + len + 1 <= q->q_max_bytes)) {
		if ((l = line_new(data, len)) == NULL)
			return -1;
		mem_append(q, l);
		return 0;
	}
	if (q->q_fd < 0 && spill_open(q) < 0) {
		unspill(q, "create", errno);
		return queue_push(q, data, len);
	}
	iov[0].iov_base = &rlen;
	iov[0].iov_len = sizeof(rlen);
	iov[1].iov_base = (void *)(uintptr_t)data;
	iov[1].iov_len = len;
	iov[2].iov_base = nl;
	iov[2].iov_len = 1;
	if ((n = pwritev(q->q_fd, iov, 3, q->q_wr)) !=
	    (ssize_t)(sizeof(rlen) + rlen)) {
		unspill(q, "write", n < 0 ? errno : ENOSPC);
		return queue_push(q, data, len);
	}
	q->q_wr += sizeof(rlen) + rlen;
	q->q_file_lines++;
	return 0;
}

/* The oldest line, still queued; NULL when empty or the file fails. */
struct line *
queue_peek(struct queue *q)
{
	off_t off;

	if (!STAILQ_EMPTY(&q->q_mem))
		return STAILQ_FIRST(&q->q_mem);
	if (q->q_file_lines == 0)
		return NULL;
	if (q->q_peeked == NULL) {
		off = q->q_rd;
		if ((q->q_peeked = record_read(q, &off)) == NULL)
			inv_warn("cannot read the spill file");
	}
	return q->q_peeked;
}

void
queue_pop(struct queue *q)
{
	struct line *l;
	off_t upto;

	if ((l = STAILQ_FIRST(&q->q_mem)) != NULL) {
		STAILQ_REMOVE_HEAD(&q->q_mem, l_entry);
		q->q_mem_lines--;
		q->q_mem_bytes -= l->l_len;
		free(l);
		if (q->q_mem_lines == 0)
			q->q_nospill = 0;	/* the next backlog tries the file */
		return;
	}
	if (q->q_file_lines == 0 || queue_peek(q) == NULL)
		return;
	q->q_rd += sizeof(uint32_t) + q->q_peeked->l_len;
	free(q->q_peeked);
	q->q_peeked = NULL;
	if (--q->q_file_lines == 0) {
		/* Empty: start the file again from nothing. */
		if (ftruncate(q->q_fd, 0) == 0)
			q->q_rd = q->q_wr = q->q_punched = 0;
		return;
	}
	upto = q->q_rd / PUNCH_STEP * PUNCH_STEP;
	if (upto > q->q_punched) {
		/* Not every file system can; the space then waits for the
		 * truncate above. */
		(void)fallocate(q->q_fd, FALLOC_FL_PUNCH_HOLE |
		    FALLOC_FL_KEEP_SIZE, q->q_punched, upto - q->q_punched);
		q->q_punched = upto;
	}
}

/*
 * Call fn on every line, oldest first, with its data ('\n' included)
 * valid during the call. Stops at the first nonzero return of fn and
 * returns it; -1 if the spill file cannot be read.
 */
int
queue_walk(struct queue *q, int (*fn)(void *, const char *, size_t),
    void *arg)
{
	struct line *l;
	off_t off = q->q_rd;
	size_t i;
	int rc;

	STAILQ_FOREACH(l, &q->q_mem, l_entry)
		if ((rc = fn(arg, l->l_data, l->l_len)) != 0)
			return rc;
	for (i = 0; i < q->q_file_lines; i++) {
		if ((l = record_read(q, &off)) == NULL) {
			inv_warn("cannot read the spill file");
			return -1;
		}
		rc = fn(arg, l->l_data, l->l_len);
		free(l);
		if (rc != 0)
			return rc;
	}
	return 0;
}
