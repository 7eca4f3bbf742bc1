/*
 * invctl: start and stop generation cycles, report the state, and run
 * the whole stack under supervision (up, down). Control goes through
 * the NS:control hash in Redis, so it reaches a generator wherever it
 * runs and is not lost while the generator restarts.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "invctl.h"
#include "log.h"
#include "rds.h"
#include "control.h"
#include "util.h"

static const char *redis_flag;

_Noreturn void
usage(int code)
{
	fprintf(code == 0 ? stdout : stderr,
	    "usage: invctl start [-r rate] [-d seconds] [--redis url]\n"
	    "       invctl stop [--redis url]\n"
	    "       invctl status [-w] [--redis url]\n"
	    "       invctl up [-q] [--rundir dir] [--display-rate rate]"
	    " [-l addr:port]\n"
	    "       invctl down [--rundir dir]\n");
	exit(code);
}

/* REDIS_URL (or --redis) and INV_NAMESPACE, or exit 64 saying why. */
void
redis_config(const char *url, struct inv_redis_url *u)
{
	char err[512];

	if (url == NULL)
		inv_errx(EX_USAGE, "no Redis: set REDIS_URL or --redis");
	if (inv_redis_url_parse(url, u, err, sizeof(err)) < 0)
		inv_errx(EX_USAGE, "%s", err);
	if (inv_ns_check(inv_ns()) < 0)
		inv_errx(EX_USAGE, "bad INV_NAMESPACE '%s': expected 1 to 64 of "
		    "A-Z a-z 0-9 _ . -", inv_ns());
}

static redisContext *
connect_redis(void)
{
	struct inv_redis_url u;
	redisContext *c;
	char err[512];

	redis_config(inv_redis_url(redis_flag), &u);
	if ((c = inv_redis_connect(&u, 5000, err, sizeof(err))) == NULL)
		inv_errx(EX_UNAVAILABLE, "%s", err);
	return c;
}

/* Run one operation on c, then free it; print the status, or why it
 * was refused (exit 1). */
static int
control(redisContext *c, enum inv_control_op op,
    const struct inv_control_args *a)
{
	char json[INV_CONTROL_JSON_MAX], err[512];
	int r;

	r = inv_control_exec(c, op, a, json, sizeof(json), err, sizeof(err));
	redisFree(c);
	if (r < 0)
		inv_errx(EX_UNAVAILABLE, "%s", err);
	if (r == 0) {
		inv_warnx("%s", err);
		return 1;
	}
	printf("%s\n", json);
	fflush(stdout);
	return 0;
}

static int
cmd_start(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "rate",	required_argument, NULL, 'r' },
		{ "duration",	required_argument, NULL, 'd' },
		{ "redis",	required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 }
	};
	struct inv_control_args a = { 0 };
	int64_t rate = INV_CONTROL_RATE;
	long long duration = INV_CONTROL_DURATION;
	const char *errstr;
	int ch;

	while ((ch = getopt_long(argc, argv, "r:d:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			if (inv_parse_rate(optarg, &rate) < 0 || rate == 0 ||
			    rate > 1000000000)
				inv_errx(EX_USAGE, "bad rate '%s': expected "
				    "invoices per second above 0, up to "
				    "1000000, three decimals at most", optarg);
			break;
		case 'd':
			if (inv_parse_int(optarg, 1, 31536000, &duration,
			    &errstr) < 0)
				inv_errx(EX_USAGE, "bad duration '%s': %s "
				    "(seconds, 1 to 31536000)", optarg, errstr);
			break;
		case 'S':
			redis_flag = optarg;
			break;
		default:
			usage(EX_USAGE);
		}
	}
	if (optind != argc)
		usage(EX_USAGE);
	a.rate_milli = rate;
	a.duration = duration;
	return control(connect_redis(), INV_CONTROL_START, &a);
}

static int
cmd_stop(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "redis",	required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 }
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (ch == 'S')
			redis_flag = optarg;
		else
			usage(EX_USAGE);
	}
	if (optind != argc)
		usage(EX_USAGE);
	return control(connect_redis(), INV_CONTROL_STOP, NULL);
}

/*
 * status -w: a line each time the status changes. Changes are announced
 * on NS:state and NS:buf; a poll every second catches anything missed
 * while Redis was away.
 */
static int
watch(redisContext *c)
{
	struct inv_redis_url u;
	struct timeval tv = { 1, 0 };
	redisContext *sub;
	redisReply *r;
	char err[512], ks[128], kb[128], last[INV_CONTROL_JSON_MAX] = "";
	char json[INV_CONTROL_JSON_MAX];

	inv_redis_url_parse(inv_redis_url(redis_flag), &u, err, sizeof(err));
	if ((sub = inv_redis_connect(&u, 5000, err, sizeof(err))) == NULL)
		inv_errx(EX_UNAVAILABLE, "%s", err);
	r = redisCommand(sub, "SUBSCRIBE %s %s", inv_key(ks, sizeof(ks),
	    "state"), inv_key(kb, sizeof(kb), "buf"));
	freeReplyObject(r);
	redisGetReply(sub, (void **)&r);	/* the second confirmation */
	freeReplyObject(r);
	redisSetTimeout(sub, tv);
	signal(SIGPIPE, SIG_DFL);
	for (;;) {
		if (inv_control_exec(c, INV_CONTROL_STATUS, NULL, json,
		    sizeof(json), err, sizeof(err)) < 0)
			inv_errx(EX_UNAVAILABLE, "%s", err);
		if (strcmp(json, last) != 0) {
			printf("%s\n", json);
			if (fflush(stdout) == EOF) {
				redisFree(sub);
				redisFree(c);
				return 0;
			}
			snprintf(last, sizeof(last), "%s", json);
		}
		r = NULL;
		if (redisGetReply(sub, (void **)&r) != REDIS_OK) {
			if (sub->err == REDIS_ERR_IO && (errno == EAGAIN ||
			    errno == EWOULDBLOCK)) {
				/* A quiet second: hiredis needs a new context. */
				redisFree(sub);
				sub = inv_redis_connect(&u, 5000, err,
				    sizeof(err));
				if (sub == NULL)
					inv_errx(EX_UNAVAILABLE, "%s", err);
				r = redisCommand(sub, "SUBSCRIBE %s %s", ks, kb);
				freeReplyObject(r);
				redisGetReply(sub, (void **)&r);
				freeReplyObject(r);
				redisSetTimeout(sub, tv);
				continue;
			}
			inv_errx(EX_UNAVAILABLE, "lost Redis: %s", sub->errstr);
		}
		freeReplyObject(r);
	}
}

static int
cmd_status(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "watch",	no_argument,	   NULL, 'w' },
		{ "redis",	required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 }
	};
	redisContext *c;
	int ch, watching = 0;

	while ((ch = getopt_long(argc, argv, "w", longopts, NULL)) != -1) {
		switch (ch) {
		case 'w':
			watching = 1;
			break;
		case 'S':
			redis_flag = optarg;
			break;
		default:
			usage(EX_USAGE);
		}
	}
	if (optind != argc)
		usage(EX_USAGE);
	c = connect_redis();
	if (watching)
		return watch(c);
	return control(c, INV_CONTROL_STATUS, NULL);
}

int
main(int argc, char *argv[])
{
	static char progname[] = "invctl";
	const char *cmd;

	inv_setprogname(argv[0]);
	argv[0] = progname;
	if (argc < 2)
		usage(EX_USAGE);
	cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0)
		usage(0);
	if (strcmp(cmd, "--version") == 0) {
		printf("invctl %s\n", INV_VERSION);
		return 0;
	}
	/* getopt sees "invctl CMD ..." with CMD as its program name. */
	argc--;
	argv++;
	argv[0] = progname;
	if (strcmp(cmd, "start") == 0)
		return cmd_start(argc, argv);
	if (strcmp(cmd, "stop") == 0)
		return cmd_stop(argc, argv);
	if (strcmp(cmd, "status") == 0)
		return cmd_status(argc, argv);
	if (strcmp(cmd, "up") == 0)
		return cmd_up(argc, argv);
	if (strcmp(cmd, "down") == 0)
		return cmd_down(argc, argv);
	inv_warnx("unknown command '%s'", cmd);
	usage(EX_USAGE);
}
