/*
 * invstats: a pass-through filter for invoice lines that keeps count,
 * subtotal, VAT and total in Redis (NS:stats, integer cents), always
 * equal to the PostgreSQL aggregates: every update is idempotent above
 * the high-water mark last_id, and a start catches up from the database.
 * `invstats show` prints the stats JSON (from Redis, or PostgreSQL when
 * Redis is away); `invstats rebuild` recomputes the hash atomically.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "invstats.h"
#include "log.h"
#include "rds.h"
#include "stats.h"
#include "util.h"

static _Noreturn void
usage(int code)
{
	fprintf(code == 0 ? stdout : stderr,
	    "usage: invstats [-qv] [--resume] [--db url | --no-db]"
	    " [--redis url | --no-redis]\n"
	    "       invstats [-qv] [--db url | --no-db]"
	    " [--redis url | --no-redis] show\n"
	    "       invstats [-qv] [--db url] [--redis url] rebuild\n");
	exit(code);
}

/* A malformed connection string is a usage error, said before connecting. */
static void
check_db_url(const struct config *cf)
{
	char err[512];

	if (cf->cf_db != NULL && inv_db_url_check(cf->cf_db, err,
	    sizeof(err)) < 0)
		inv_errx(EX_USAGE, "%s", err);
}

/*
 * The stats JSON from Redis, or from PostgreSQL when Redis cannot say.
 * The database URL is checked only then: the answer from Redis never
 * maps libpq (lib/pq.c), which would be most of its time.
 */
static int
show(const struct config *cf)
{
	char err[512], json[INV_STATS_JSON_MAX];
	struct inv_stats st;
	redisContext *rc;
	PGconn *db;
	int rv = -1;

	if (cf->cf_redis != NULL) {
		if ((rc = inv_redis_connect(&cf->cf_ru, REDIS_TIMEOUT_MS, err,
		    sizeof(err))) != NULL) {
			rv = inv_stats_redis(rc, &st, err, sizeof(err));
			redisFree(rc);
		}
		if (rv == 0 && cf->cf_db == NULL) {
			/* Nothing counted yet, and nothing else to ask. */
			memset(&st, 0, sizeof(st));
			rv = 1;
		}
		if (rv == 1) {
			inv_stats_json(&st, "redis", json, sizeof(json));
			printf("%s\n", json);
			return 0;
		}
		if (rv == 0)
			snprintf(err, sizeof(err), "no statistics in Redis");
		if (cf->cf_db == NULL)
			inv_errx(EX_UNAVAILABLE, "%s", err);
		check_db_url(cf);
		inv_info("%s: computing them from PostgreSQL", err);
	}
	if (cf->cf_db == NULL)
		inv_errx(EX_UNAVAILABLE, "no statistics without Redis or a "
		    "database (REDIS_URL, DATABASE_URL)");
	check_db_url(cf);
	if ((db = inv_db_connect(cf->cf_db, err, sizeof(err))) == NULL)
		inv_errx(EX_UNAVAILABLE, "%s", err);
	if (inv_stats_db(db, 0, &st, err, sizeof(err)) < 0)
		inv_errx(EX_UNAVAILABLE, "%s", err);
	PQfinish(db);
	inv_stats_json(&st, "postgres", json, sizeof(json));
	printf("%s\n", json);
	return 0;
}

/*
 * Recompute NS:stats from the database, count what writers added since
 * (the settle after it), then tell the subscribers.
 */
static int
rebuild(const struct config *cf)
{
	char err[512];
	struct inv_settle se = { 0 };
	struct inv_stats st;
	redisContext *rc;
	PGconn *db;

	if (cf->cf_db == NULL || cf->cf_redis == NULL)
		inv_errx(EX_UNAVAILABLE, "rebuild needs %s",
		    cf->cf_db == NULL ? "a database (DATABASE_URL or --db)" :
		    "Redis (REDIS_URL or --redis)");
	if ((db = inv_db_connect(cf->cf_db, err, sizeof(err))) == NULL)
		inv_errx(EX_UNAVAILABLE, "%s", err);
	if ((rc = inv_redis_connect(&cf->cf_ru, REDIS_TIMEOUT_MS, err,
	    sizeof(err))) == NULL)
		inv_errx(EX_UNAVAILABLE, "%s", err);
	if (inv_stats_rebuild(rc, db, &st, err, sizeof(err)) < 0 ||
	    inv_stats_settle(rc, db, &se, 0, &st, NULL, err, sizeof(err)) < 0)
		inv_errx(EX_UNAVAILABLE, "%s", err);
	if (inv_stats_publish(rc, &st, err, sizeof(err)) < 0)
		inv_warnx("%s", err);
	if (inv_verbose)
		inv_info("statistics rebuilt: %" PRId64 " invoices, last id %"
		    PRId64, st.st_count, st.st_last_id);
	redisFree(rc);
	PQfinish(db);
	return 0;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "db",		required_argument, NULL, 'D' },
		{ "no-db",	no_argument,	   NULL, 'N' },
		{ "redis",	required_argument, NULL, 'R' },
		{ "no-redis",	no_argument,	   NULL, 'n' },
		{ "resume",	no_argument,	   NULL, 'r' },
		{ "quiet",	no_argument,	   NULL, 'q' },
		{ "verbose",	no_argument,	   NULL, 'v' },
		{ "help",	no_argument,	   NULL, 'h' },
		{ "version",	no_argument,	   NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	static char progname[] = "invstats";
	static struct config cf;
	const char *db_flag = NULL, *redis_flag = NULL, *cmd = NULL;
	int no_db = 0, no_redis = 0, ch;
	char err[512];

	inv_setprogname(argv[0]);
	argv[0] = progname;		/* getopt's messages say "invstats:" */
	while ((ch = getopt_long(argc, argv, "qvh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'D':
			db_flag = optarg;
			break;
		case 'N':
			no_db = 1;
			break;
		case 'R':
			redis_flag = optarg;
			break;
		case 'n':
			no_redis = 1;
			break;
		case 'r':
			cf.cf_resume = 1;
			break;
		case 'q':
			inv_quiet = 1;
			break;
		case 'v':
			inv_verbose++;
			break;
		case 'h':
			usage(0);
		case 'V':
			printf("invstats %s\n", INV_VERSION);
			return 0;
		default:
			usage(EX_USAGE);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc > 0) {
		cmd = argv[0];
		if (strcmp(cmd, "show") != 0 && strcmp(cmd, "rebuild") != 0) {
			inv_warnx("unknown command '%s'", cmd);
			usage(EX_USAGE);
		}
		if (argc > 1) {
			inv_warnx("unexpected argument '%s'", argv[1]);
			usage(EX_USAGE);
		}
		if (cf.cf_resume)
			inv_errx(EX_USAGE, "--resume is for the filter, not "
			    "'%s'", cmd);
	}
	if (db_flag != NULL && no_db)
		inv_errx(EX_USAGE, "--db and --no-db exclude each other");
	if (redis_flag != NULL && no_redis)
		inv_errx(EX_USAGE, "--redis and --no-redis exclude each other");
	if (inv_ns_check(inv_ns()) < 0)
		inv_errx(EX_USAGE, "bad INV_NAMESPACE '%s': expected 1 to 64 of "
		    "A-Z a-z 0-9 _ . -", inv_ns());

	cf.cf_db = no_db ? NULL : inv_db_url(db_flag);
	if (cmd == NULL || strcmp(cmd, "show") != 0)
		check_db_url(&cf);
	cf.cf_redis = no_redis ? NULL : inv_redis_url(redis_flag);
	if (cf.cf_redis != NULL && inv_redis_url_parse(cf.cf_redis,
	    &cf.cf_ru, err, sizeof(err)) < 0)
		inv_errx(EX_USAGE, "%s", err);

	if (cmd == NULL)
		return filter_run(&cf);
	if (strcmp(cmd, "show") == 0)
		return show(&cf);
	return rebuild(&cf);
}
