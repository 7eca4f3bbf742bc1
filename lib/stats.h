/*
 * Running statistics of the invoices: count and the sums of subtotal,
 * VAT and total in integer cents, as kept in the Redis hash NS:stats
 * (fields count, subtotal, vat, total, last_id) and as PostgreSQL
 * aggregates them. last_id is the high-water mark: the highest invoice
 * id counted, so every update above it is idempotent.
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
int	 inv_stats_db(PGconn *, int64_t, struct inv_stats *, int64_t *,
	    char *, size_t);
int	 inv_stats_redis(redisContext *, struct inv_stats *, char *, size_t);
int	 inv_stats_rebuild(redisContext *, PGconn *, struct inv_stats *,
	    char *, size_t);
int	 inv_stats_sync(redisContext *, PGconn *, struct inv_stats *,
	    int64_t *, char *, size_t);
int	 inv_stats_publish(redisContext *, const struct inv_stats *, char *,
	    size_t);

#endif
