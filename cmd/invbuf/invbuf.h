/*
 * invbuf's parts: the local backlog (queue.c: memory, then a spill file)
 * and its copy in Redis (mirror.c). invbuf.c owns the event loop.
 */
#ifndef INVBUF_H
#define INVBUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <hiredis.h>

/* queue.c: a FIFO of lines that keeps at most a bound in memory. */
struct line {
	STAILQ_ENTRY(line) l_entry;
	size_t	 l_len;			/* bytes in l_data, '\n' included */
	char	 l_data[];
};

struct queue {
	STAILQ_HEAD(, line) q_mem;	/* the oldest lines */
	size_t	 q_mem_lines;
	size_t	 q_mem_bytes;
	size_t	 q_max_lines;		/* bounds before spilling */
	size_t	 q_max_bytes;
	int	 q_fd;			/* spill file (unlinked), or -1 */
	off_t	 q_rd;			/* records in [q_rd, q_wr) */
	off_t	 q_wr;
	off_t	 q_punched;		/* file space freed below this */
	size_t	 q_file_lines;
	int	 q_nospill;		/* the spill file failed: memory only */
	struct line *q_peeked;		/* head read back from the file */
};

void		 queue_init(struct queue *, size_t, size_t);
void		 queue_free(struct queue *);
int		 queue_push(struct queue *, const char *, size_t);
struct line	*queue_peek(struct queue *);
void		 queue_pop(struct queue *);
size_t		 queue_len(const struct queue *);
int		 queue_walk(struct queue *,
		    int (*)(void *, const char *, size_t), void *);

/* mirror.c: the backlog and NS:buf in Redis (see the contract). */
struct bufstate {
	int64_t	 last_in;		/* highest id accepted, 0 if none */
	int64_t	 last_out;		/* highest id shown, 0 if none */
	int64_t	 displayed;
	int	 eof;
};

int	 mirror_init(redisContext *, char *, size_t);
int	 mirror_load(redisContext *, struct queue *, size_t *,
	    struct bufstate *, char *, size_t);
int	 mirror_rewrite(redisContext *, struct queue *,
	    const struct bufstate *, char *, size_t);
int	 mirror_accept_append(redisContext *, int64_t, const char *, size_t);
int	 mirror_accept_finish(redisContext *, int, int *, char *, size_t);
int	 mirror_take(redisContext *, const char *, size_t, char *, size_t);
int	 mirror_confirm(redisContext *, const char *, size_t, int64_t,
	    char *, size_t);
int	 mirror_set_eof(redisContext *, int, char *, size_t);
int	 mirror_publish(redisContext *, size_t, int64_t, int, char *,
	    size_t);

#endif
