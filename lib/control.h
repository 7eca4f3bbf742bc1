/*
 * The control state machine in NS:control (idle -> running -> stopping
 * -> draining -> idle), changed atomically by one Lua script so that
 * invctl and invserve, or two of either, can never both start a cycle.
 * The script also builds the state JSON (as `invctl status` prints it)
 * and publishes it on NS:state when the state changes.
 */
#ifndef INV_CONTROL_H
#define INV_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis.h>

enum inv_control_op {
	INV_CONTROL_STATUS,	/* read only: the state JSON */
	INV_CONTROL_START,	/* accepted in idle and draining */
	INV_CONTROL_STOP	/* accepted in running */
};

#define INV_CONTROL_RATE	5000	/* thousandths of an invoice a second */
#define INV_CONTROL_DURATION	300	/* seconds */
#define INV_CONTROL_ARGC	11	/* words in the EVAL command */
#define INV_CONTROL_JSON_MAX	1024	/* the state JSON always fits */

/* The idle state, for a program that runs without Redis. */
#define INV_CONTROL_IDLE_JSON	"{\"state\":\"idle\",\"generated\":0," \
	"\"target\":0,\"backlog\":0,\"displayed\":0,\"cycle\":0,\"rate\":0," \
	"\"duration\":0,\"since\":null}"

struct inv_control_args {
	int64_t	rate_milli;	/* START: invoices per 1000 s */
	int64_t	duration;	/* START: seconds */
	int64_t	now_us;		/* the time of the change (CLOCK_REALTIME) */
};

/* The EVAL command as argv, for redisCommandArgv or its async twin. */
struct inv_control_cmd {
	int		 argc;
	const char	*argv[INV_CONTROL_ARGC];
	size_t		 argvlen[INV_CONTROL_ARGC];
	char		 buf[5][64];
};

void	 inv_control_cmd(struct inv_control_cmd *, enum inv_control_op,
	    const struct inv_control_args *);
int	 inv_control_reply(const redisReply *, char *, size_t, char *,
	    size_t);
int	 inv_control_exec(redisContext *, enum inv_control_op,
	    const struct inv_control_args *, char *, size_t, char *, size_t);

#endif
