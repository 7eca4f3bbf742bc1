/*
 * The state machine of a stack in the Redis hash NS:control:
 *   idle -> running -> (stopping) -> draining -> idle
 * changed only by one Lua script, so that two controllers (invctl and a
 * browser's START, say) can never both win and a transition that does
 * not apply changes nothing. The script also builds the status JSON, as
 * `invctl status` prints it, and publishes it on NS:state when something
 * changed, so every program prints the same bytes.
 */
#ifndef INV_CONTROL_H
#define INV_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis.h>

enum inv_control_op {
	INV_CONTROL_STATUS,	/* read only: the status JSON */
	INV_CONTROL_START,	/* idle|draining -> running */
	INV_CONTROL_STOP,	/* running -> stopping */
	INV_CONTROL_ACK,	/* stopping -> draining: the generator stopped */
	INV_CONTROL_FINISH,	/* running|stopping -> draining: cycle complete */
	INV_CONTROL_IDLE,	/* draining -> idle: the backlog is shown */
	INV_CONTROL_PROGRESS,	/* the generator's count for its cycle */
	INV_CONTROL_RESTORE	/* put NS:control back after Redis lost it */
};

#define INV_CONTROL_RATE	5000	/* thousandths of an invoice a second */
#define INV_CONTROL_DURATION	300	/* seconds */
#define INV_CONTROL_ARGC	18	/* words in the EVAL command */
#define INV_CONTROL_JSON_MAX	1024	/* the status JSON always fits */

/* The idle state, for a program that runs without Redis. */
#define INV_CONTROL_IDLE_JSON	"{\"state\":\"idle\",\"generated\":0," \
	"\"target\":0,\"backlog\":0,\"displayed\":0,\"cycle\":0,\"rate\":0," \
	"\"duration\":0,\"since\":null}"

/* What an operation needs; zero what it does not. */
struct inv_control_args {
	int64_t		 rate_milli;	/* START, RESTORE */
	int64_t		 duration;	/* START, RESTORE */
	int64_t		 now_us;	/* CLOCK_REALTIME of the change */
	int64_t		 cycle;		/* ACK, FINISH, PROGRESS, RESTORE */
	int64_t		 generated;	/* PROGRESS, RESTORE */
	int64_t		 last_id;	/* PROGRESS, RESTORE */
	int64_t		 target;	/* RESTORE */
	int64_t		 started_us;	/* RESTORE */
	const char	*state;		/* RESTORE */
};

/* The EVAL command as argv, for redisCommandArgv or its async twin. */
struct inv_control_cmd {
	int		 argc;
	const char	*argv[INV_CONTROL_ARGC];
	size_t		 argvlen[INV_CONTROL_ARGC];
	char		 buf[12][48];
};

/* NS:control and NS:buf as a generator reads them. */
struct inv_control {
	char	 state[16];
	int64_t	 cycle;
	int64_t	 rate_milli;
	int64_t	 duration;
	int64_t	 target;
	int64_t	 started_us;	/* wall clock at START: the schedule's t0 */
	int64_t	 generated;
	int64_t	 last_id;
	int64_t	 since_us;
};

void	 inv_control_cmd(struct inv_control_cmd *, enum inv_control_op,
	    const struct inv_control_args *);
int	 inv_control_reply(const redisReply *, char *, size_t, char *,
	    size_t);
int	 inv_control_exec(redisContext *, enum inv_control_op,
	    const struct inv_control_args *, char *, size_t, char *, size_t);
int	 inv_control_get(redisContext *, struct inv_control *, char *, size_t);

#endif
