/*
 * The state machine of a stack (idle, running, stopping, draining) in
 * the Redis hash NS:control, changed only by the Lua scripts here so
 * that every transition is atomic, and the status JSON built from it
 * and NS:buf.
 */
#ifndef INV_STATE_H
#define INV_STATE_H

#include <stdint.h>

#include <hiredis.h>

struct inv_control {
	char	 state[16];	/* idle, running, stopping, draining */
	int64_t	 cycle;
	int64_t	 rate_milli;
	int64_t	 duration;
	int64_t	 target;
	int64_t	 started_us;	/* wall clock at START: the schedule's t0 */
	int64_t	 generated;
	int64_t	 last_id;
	int64_t	 since_us;	/* wall clock of the last transition */
	int64_t	 displayed_base;
	/* from NS:buf */
	int64_t	 backlog;
	int64_t	 displayed;
	int64_t	 last_out;
	int	 have_buf;
};

enum inv_transition {
	INV_START,	/* idle|draining -> running */
	INV_STOP,	/* running -> stopping */
	INV_ACK,	/* stopping -> draining (the generator confirms) */
	INV_FINISH,	/* running|stopping -> draining (cycle complete) */
	INV_IDLE,	/* draining -> idle (backlog shown) */
};

int	 inv_control_get(redisContext *, struct inv_control *, char *, size_t);
int	 inv_control_apply(redisContext *, enum inv_transition, int64_t,
	    int64_t, int64_t, struct inv_control *, char *, size_t);
int	 inv_control_progress(redisContext *, int64_t, int64_t, int64_t,
	    char *, size_t);
int	 inv_control_restore(redisContext *, const struct inv_control *,
	    char *, size_t);
int	 inv_control_json(const struct inv_control *, char *, size_t);
int	 inv_control_publish(redisContext *, char *, size_t);

#endif
