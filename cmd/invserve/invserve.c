/*
 * invserve: the HTTP server of the dashboard. Reads invoice lines from
 * standard input or a FIFO (or the NS:display channel) and streams them
 * to browsers over Server-Sent Events, with stats and state from Redis;
 * serves the page, a JSON API and START/STOP. Every client sees the same
 * invoices in the same order, each once, resumable with Last-Event-ID;
 * a slow client is dropped, never waited for. Nothing blocks the loop.
 */
#include <sys/resource.h>

#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "db.h"
#include "invserve.h"
#include "log.h"
#include "names.h"
#include "rds.h"
#include "util.h"

#define FD_RESERVE	256	/* descriptors beyond the SSE clients */
#define GRACE_MS	500	/* for the last retry: lines to go out */
#define TRIM_MIN	(256 << 10)	/* free heap that is worth giving back */

struct config	 cfg = {
	.backfill = 50,
	.max_clients = 20000,
	.client_queue = 1 << 20,
	.ring_size = 10000,
};
struct metrics	 stats;
struct event_base *base;

static int	 stopping;
static struct event *grace, *trim;

static _Noreturn void
usage(int code)
{
	fprintf(code == 0 ? stdout : stderr,
	    "usage: invserve [-qv] [-l addr:port] [-i path | --source redis]"
	    " [--www dir]\n"
	    "                [--backfill n] [--max-clients n]"
	    " [--client-queue bytes] [--ring n]\n"
	    "                [--allow-origin origin] [--db url]"
	    " [--redis url]\n");
	exit(code);
}

int
shutting_down(void)
{
	return stopping;
}

static void
on_grace(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(base);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct timeval tv = { 0, GRACE_MS * 1000 };

	if (stopping++) {
		event_base_loopbreak(base);	/* a second signal: now */
		return;
	}
	inv_info("%s: closing %zu clients", sig == SIGTERM ? "SIGTERM" :
	    "SIGINT", sse_clients());
	http_stop_accepting();
	sse_shutdown();
	evtimer_add(grace, &tv);
}

/* Every second: what a burst of clients left in the heap goes back. */
static void
on_trim(evutil_socket_t fd, short what, void *arg)
{
	inv_heap_trim(TRIM_MIN);
}

/* Redis channels: stats go straight out, state is read whole again. */
static void
on_message(const char *channel, const char *data, size_t len)
{
	const char *name = strrchr(channel, ':');

	if (name == NULL)
		return;
	if (strcmp(name, ":stats") == 0)
		sse_stats(data, len);
	else if (strcmp(name, ":state") == 0 || strcmp(name, ":buf") == 0)
		api_state_refresh();
	else if (strcmp(name, ":display") == 0)
		input_line(data, len, "display channel");
}

static void
on_redis_ready(void)
{
	api_state_refresh();
	api_stats_refresh();
	input_recover();
}

static void
on_pg_ready(void)
{
	if (!rds_ok() || stats_json[0] == '\0')
		api_stats_refresh();
	input_recover();
	sse_prefill();
}

/* Room for every client: raise the open-file limit, or serve fewer. */
static void
raise_nofile(void)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)cfg.max_clients + FD_RESERVE;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
		return;
	if (rl.rlim_max < need) {
		struct rlimit want = { need, need };

		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			return;
	}
	rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < need) {
		long long fit = (long long)rl.rlim_cur - FD_RESERVE;

		if (fit < 1)
			fit = 1;
		inv_info("open-file limit is %llu: serving at most %lld SSE "
		    "clients, not %lld", (unsigned long long)rl.rlim_cur, fit,
		    cfg.max_clients);
		cfg.max_clients = fit;
	}
}

/* A byte count with an optional K or M (binary) suffix. */
static int
parse_bytes(const char *s, long long *out)
{
	char num[32];
	size_t n = strlen(s);
	long long mul = 1;
	const char *errstr;

	if (n == 0 || n >= sizeof(num))
		return -1;
	memcpy(num, s, n + 1);
	if (num[n - 1] == 'k' || num[n - 1] == 'K')
		mul = 1024;
	else if (num[n - 1] == 'm' || num[n - 1] == 'M')
		mul = 1024 * 1024;
	if (mul > 1)
		num[n - 1] = '\0';
	if (inv_parse_int(num, 1, (1LL << 34) / mul, out, &errstr) < 0)
		return -1;
	*out *= mul;
	return 0;
}

static long long
number(const char *what, const char *s, long long min, long long max)
{
	long long v;
	const char *errstr;

	if (inv_parse_int(s, min, max, &v, &errstr) < 0)
		inv_errx(EX_USAGE, "bad %s '%s': %s (expected %lld to %lld)",
		    what, s, errstr, min, max);
	return v;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "listen",	  required_argument, NULL, 'l' },
		{ "input",	  required_argument, NULL, 'i' },
		{ "source",	  required_argument, NULL, 'S' },
		{ "www",	  required_argument, NULL, 'W' },
		{ "backfill",	  required_argument, NULL, 'B' },
		{ "max-clients",  required_argument, NULL, 'M' },
		{ "client-queue", required_argument, NULL, 'Q' },
		{ "ring",	  required_argument, NULL, 'R' },
		{ "allow-origin", required_argument, NULL, 'O' },
		{ "db",		  required_argument, NULL, 'D' },
		{ "redis",	  required_argument, NULL, 'r' },
		{ "quiet",	  no_argument,	     NULL, 'q' },
		{ "verbose",	  no_argument,	     NULL, 'v' },
		{ "help",	  no_argument,	     NULL, 'h' },
		{ "version",	  no_argument,	     NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	static char progname[] = "invserve";
	const char *www = NULL, *db_flag = NULL, *redis_flag = NULL;
	char err[512], wwwbuf[PATH_MAX], real[PATH_MAX];
	struct inv_redis_url ru;
	struct sockaddr_storage ss;
	int sslen;
	struct event *sigterm, *sigint;
	struct timeval second = { 1, 0 };
	int ch;

	inv_setprogname(argv[0]);
	argv[0] = progname;
	while ((ch = getopt_long(argc, argv, "l:i:qvh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'l':
			cfg.listen = optarg;
			break;
		case 'i':
			cfg.input = optarg;
			break;
		case 'S':
			if (strcmp(optarg, "redis") == 0)
				cfg.source_redis = 1;
			else if (strcmp(optarg, "input") == 0)
				cfg.source_redis = 0;
			else
				inv_errx(EX_USAGE, "bad source '%s': expected "
				    "redis or input", optarg);
			break;
		case 'W':
			www = optarg;
			break;
		case 'B':
			cfg.backfill = number("backfill", optarg, 0, 100000);
			break;
		case 'M':
			cfg.max_clients = number("client count", optarg, 1,
			    1000000);
			break;
		case 'Q':
			if (parse_bytes(optarg, &cfg.client_queue) < 0 ||
			    cfg.client_queue < 4096)
				inv_errx(EX_USAGE, "bad queue size '%s': expected "
				    "bytes from 4096 to 16G, K or M allowed",
				    optarg);
			break;
		case 'R':
			cfg.ring_size = number("ring size", optarg, 1, 10000000);
			break;
		case 'O':
			cfg.origins = reallocarray(cfg.origins,
			    (size_t)cfg.norigins + 1, sizeof(*cfg.origins));
			if (cfg.origins == NULL)
				inv_err(EX_OSERR, "out of memory");
			cfg.origins[cfg.norigins++] = optarg;
			break;
		case 'D':
			db_flag = optarg;
			break;
		case 'r':
			redis_flag = optarg;
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
			printf("invserve %s\n", INV_VERSION);
			return 0;
		default:
			usage(EX_USAGE);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 0) {
		inv_warnx("unexpected argument '%s'", argv[0]);
		usage(EX_USAGE);
	}
	if (cfg.source_redis && cfg.input != NULL)
		inv_errx(EX_USAGE, "-i and --source redis exclude each other");
	if (cfg.backfill > cfg.ring_size)
		inv_errx(EX_USAGE, "--backfill %lld is more than the ring holds "
		    "(--ring %lld)", cfg.backfill, cfg.ring_size);
	if (cfg.listen == NULL && (cfg.listen = inv_getenv("INV_LISTEN")) == NULL)
		cfg.listen = "127.0.0.1:8080";
	cfg.token = inv_getenv("INV_TOKEN");
	if (inv_ns_check(inv_ns()) < 0)
		inv_errx(EX_USAGE, "bad INV_NAMESPACE '%s': expected 1 to 64 of "
		    "A-Z a-z 0-9 _ . -", inv_ns());
	cfg.db_url = inv_db_url(db_flag);
	if (cfg.db_url != NULL && inv_db_url_check(cfg.db_url, err,
	    sizeof(err)) < 0)
		inv_errx(EX_USAGE, "%s", err);
	cfg.redis_url = inv_redis_url(redis_flag);
	/* Every value from outside is checked before anything starts. */
	if (cfg.redis_url != NULL && inv_redis_url_parse(cfg.redis_url, &ru,
	    err, sizeof(err)) < 0)
		inv_errx(EX_USAGE, "%s", err);
	if (inv_listen_parse(cfg.listen, &ss, &sslen, err, sizeof(err)) < 0)
		inv_errx(EX_USAGE, "%s", err);
	if (cfg.source_redis && cfg.redis_url == NULL)
		inv_errx(EX_USAGE, "--source redis needs Redis: set REDIS_URL "
		    "or --redis");
	if (www == NULL) {
		snprintf(wwwbuf, sizeof(wwwbuf), "%s/www", inv_datadir());
		www = wwwbuf;
	}
	if (realpath(www, real) != NULL)
		cfg.www = strdup(real);
	else if (www != wwwbuf)
		inv_err(EX_NOINPUT, "cannot use --www %s", www);
	else
		inv_warnx("no page to serve: %s: %s", www, strerror(errno));

	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	if ((base = event_base_new()) == NULL)
		inv_errx(EX_OSERR, "cannot start the event loop");
	sse_init();
	api_init();
	if (http_start(cfg.listen, err, sizeof(err)) < 0)
		inv_errx(strstr(err, "bad listen") != NULL ? EX_USAGE :
		    EX_UNAVAILABLE, "%s", err);
	if (!cfg.source_redis && input_open(cfg.input, err, sizeof(err)) < 0)
		inv_errx(EX_NOINPUT, "%s", err);
	rds_on_ready(on_redis_ready);
	rds_on_message(on_message);
	pg_on_ready(on_pg_ready);
	if (cfg.redis_url != NULL && rds_init(cfg.redis_url, err,
	    sizeof(err)) < 0)
		inv_errx(EX_USAGE, "%s", err);
	if (cfg.db_url != NULL)
		pg_init(cfg.db_url, err, sizeof(err));
	if (cfg.redis_url == NULL && cfg.db_url == NULL)
		inv_info("no Redis and no database: stats are counted from the "
		    "input, and START/STOP are not available");
	api_state_refresh();
	api_stats_refresh();
	if (!cfg.source_redis)
		input_start();

	sigterm = evsignal_new(base, SIGTERM, on_signal, NULL);
	sigint = evsignal_new(base, SIGINT, on_signal, NULL);
	grace = evtimer_new(base, on_grace, NULL);
	trim = event_new(base, -1, EV_PERSIST, on_trim, NULL);
	evtimer_add(trim, &second);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);

	event_base_dispatch(base);

	rds_stop();
	pg_stop();
	http_stop();
	return 0;
}
