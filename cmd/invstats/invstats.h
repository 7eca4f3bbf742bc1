/*
 * invstats: what its files share. invstats.c has main() and the
 * subcommands, filter.c the stdin-to-stdout loop and --resume,
 * counter.c the thread that keeps Redis.
 */
#ifndef INVSTATS_H
#define INVSTATS_H

#include <stddef.h>
#include <stdint.h>

#include "rds.h"
#include "stats.h"

#define REDIS_TIMEOUT_MS	1000	/* every Redis connect and command */

struct config {
	const char		*cf_db;		/* NULL: no database */
	const char		*cf_redis;	/* NULL: no Redis */
	struct inv_redis_url	 cf_ru;
	int			 cf_resume;
};

/* counter.c */
int	 counter_start(const struct config *);
void	 counter_add(const struct inv_counted *, size_t);
void	 counter_written(int64_t);
void	 counter_stop(void);

/* filter.c */
int	 filter_run(const struct config *);

#endif
