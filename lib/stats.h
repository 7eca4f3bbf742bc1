/*
 * Running statistics of the invoices: count and the sums of subtotal,
 * VAT and total in integer cents, as kept in the Redis hash NS:stats
 * (fields count, subtotal, vat, total, last_id, floor) and as PostgreSQL
 * aggregates them. last_id is the highest invoice id counted. With a
 * database, floor (at most last_id) is the id at or below which every
 * row is counted, and the sorted set NS:stats:ids holds the ids counted
 * above it, so every update is idempotent whatever order the rows of
 * several writers commit in; inv_stats_settle() checks both parts
 * against the database and raises the floor. Without one the lines are
 * the only source and the floor is last_id.
 *
 * The stats JSON (what `invstats show` prints, what is published on the
 * channel NS:stats and what invserve's /api/stats answers):
 *   {"count":N,"total_amount":X.XX,"vat_amount":X.XX,
 *    "average_amount":X.XX,"source":"redis"}
 * average_amount is total / count rounded half-up to the cent.
 *
 * Programs on an event loop read the hash with
 *   HMGET NS:stats count subtotal vat total last_id
 * (INV_STATS_HMGET_FIELDS) and hand the reply to inv_stats_reply().
 */
#ifndef INV_STATS_H
#define INV_STATS_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis.h>
#include <libpq-fe.h>

#define INV_STATS_JSON_MAX	192
#define INV_STATS_HMGET_FIELDS	"count subtotal vat total last_id"

/* What failed, when a function below returns an error. */
#define INV_STATS_EREDIS	-1	/* Redis: reconnect and retry */
#define INV_STATS_EDB		-2	/* PostgreSQL: see inv_db_gone() */

/* One invoice to count: its id and amounts in cents. */
struct inv_counted {
	int64_t	c_id;
	int64_t	c_subtotal;
	int64_t	c_vat;
	int64_t	c_total;
};

/* What inv_stats_settle() keeps between calls; zero it to start. */
struct inv_settle {
	int64_t	se_cand;	/* the floor's next height, a past max(id) */
	int64_t	se_cand_at;	/* when it was the max, mono ns */
	int64_t	se_full_at;	/* the next check below the floor is due */
	int	se_open;	/* ids counted above the floor: settle again */
};

struct inv_stats {
	int64_t	st_count;
	int64_t	st_subtotal;	/* cents */
	int64_t	st_vat;		/* cents */
	int64_t	st_total;	/* cents */
	int64_t	st_last_id;	/* highest invoice id counted */
};

int64_t	 inv_stats_average(const struct inv_stats *);
int	 inv_stats_json(const struct inv_stats *, const char *, char *,
	    size_t);
int	 inv_stats_reply(const redisReply *, struct inv_stats *);
int	 inv_stats_db(PGconn *, int64_t, struct inv_stats *, char *,
	    size_t);
int	 inv_stats_redis(redisContext *, struct inv_stats *, char *, size_t);
int	 inv_stats_rebuild(redisContext *, PGconn *, struct inv_stats *,
	    char *, size_t);
int	 inv_stats_count(redisContext *, const struct inv_counted *, size_t,
	    int, int64_t, struct inv_stats *, char *, size_t);
int	 inv_stats_settle(redisContext *, PGconn *, struct inv_settle *, int,
	    struct inv_stats *, int64_t *, char *, size_t);
int	 inv_stats_publish(redisContext *, const struct inv_stats *, char *,
	    size_t);

#endif
