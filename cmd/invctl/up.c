/*
 * invctl up: run the whole stack in the foreground and keep it running,
 * the way a supervisor does.
 *
 *   invgen --wait | invstats --resume | invbuf -r RATE > RUNDIR/display.fifo
 *   invserve --input RUNDIR/display.fifo
 *
 * The three filters are one segment: when any of them dies the others
 * are stopped and the segment restarts together, since a pipe cannot be
 * mended. invserve restarts alone; it holds the FIFO open, so the
 * segment can come and go under it. Restarts back off from 250 ms to
 * 8 s. Each child's stderr comes through here, each line led by the
 * child's name. A pid file keeps two supervisors off one run directory;
 * a supervisor killed outright takes its children with it (SIGTERM), so
 * the next one starts clean.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bsd/libutil.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "addr.h"
#include "db.h"
#include "invctl.h"
#include "log.h"
#include "rds.h"
#include "util.h"

enum { SEGMENT, SERVER, NGROUPS };

struct child {
	const char		*name;
	int			 group;
	char			*argv[12];
	pid_t			 pid;
	struct bufferevent	*err;
};

static struct child children[] = {
	{ "invgen",   SEGMENT, { NULL }, 0, NULL },
	{ "invstats", SEGMENT, { NULL }, 0, NULL },
	{ "invbuf",   SEGMENT, { NULL }, 0, NULL },
	{ "invserve", SERVER,  { NULL }, 0, NULL },
};
#define NCHILDREN (sizeof(children) / sizeof(children[0]))

struct group {
	int		 restarts;
	int64_t		 started;	/* CLOCK_MONOTONIC ns */
	int64_t		 delay_ms;
	struct event	*timer;
	int		 pending;	/* a restart is scheduled */
};

static struct group groups[NGROUPS];
static struct event_base *base;
static char rundir[PATH_MAX], fifo[PATH_MAX + 32], pidpath[PATH_MAX + 32];
static char rate_arg[32] = "2", listen_arg[128];
static int shutting_down;
static struct event *kill_timer;

static void start_group(int);

static void
resolve_rundir(const char *flag)
{
	char exe[PATH_MAX - 16], *slash;
	const char *env;
	ssize_t n;

	if (flag == NULL)
		flag = inv_getenv("INV_RUNDIR");
	if (flag != NULL) {
		snprintf(rundir, sizeof(rundir), "%s", flag);
		return;
	}
	/* From the source tree (cmd/invctl/invctl): its var/run. */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		if ((slash = strstr(exe, "/cmd/invctl/invctl")) != NULL &&
		    slash[18] == '\0') {
			*slash = '\0';
			snprintf(rundir, sizeof(rundir), "%s/var/run", exe);
			return;
		}
	}
	if ((env = inv_getenv("XDG_RUNTIME_DIR")) != NULL)
		snprintf(rundir, sizeof(rundir), "%.*s/inv", PATH_MAX - 16, env);
	else
		snprintf(rundir, sizeof(rundir), "/run/inv");
}

static int
mkdirs(const char *path)
{
	char buf[PATH_MAX], *p;

	snprintf(buf, sizeof(buf), "%s", path);
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(buf, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

/*
 * A sibling program: beside invctl when installed, in the source tree's
 * cmd/NAME/NAME when run from there, else from PATH.
 */
static char *
find_program(const char *name)
{
	char exe[PATH_MAX], path[PATH_MAX * 2], *slash;
	ssize_t n;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		if ((slash = strrchr(exe, '/')) != NULL)
			*slash = '\0';
		snprintf(path, sizeof(path), "%s/../%s/%s", exe, name, name);
		if (access(path, X_OK) == 0)
			return strdup(path);
		snprintf(path, sizeof(path), "%s/%s", exe, name);
		if (access(path, X_OK) == 0)
			return strdup(path);
	}
	return strdup(name);
}

static struct child *
child_by_pid(pid_t pid)
{
	size_t i;

	for (i = 0; i < NCHILDREN; i++)
		if (children[i].pid == pid)
			return &children[i];
	return NULL;
}

static int
group_alive(int g)
{
	size_t i;

	for (i = 0; i < NCHILDREN; i++)
		if (children[i].group == g && children[i].pid > 0)
			return 1;
	return 0;
}

static int
all_dead(void)
{
	return !group_alive(SEGMENT) && !group_alive(SERVER);
}

static void
signal_group(int g, int sig)
{
	size_t i;

	for (i = 0; i < NCHILDREN; i++)
		if (children[i].group == g && children[i].pid > 0)
			kill(children[i].pid, sig);
}

/* Each line a child writes on stderr, led by its name (once). */
static void
on_stderr(struct bufferevent *bev, void *arg)
{
	struct child *ch = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line, out[4200];
	size_t len, nlen = strlen(ch->name);
	int n;

	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) != NULL) {
		if (len >= nlen + 1 && strncmp(line, ch->name, nlen) == 0 &&
		    line[nlen] == ':')
			n = snprintf(out, sizeof(out), "%.*s\n", 4000, line);
		else
			n = snprintf(out, sizeof(out), "%s: %.*s\n", ch->name,
			    4000, line);
		(void)!write(STDERR_FILENO, out, n < (int)sizeof(out) ? n :
		    (int)sizeof(out) - 1);
		free(line);
	}
}

static void
on_stderr_event(struct bufferevent *bev, short what, void *arg)
{
	struct child *ch = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		on_stderr(bev, arg);
		bufferevent_free(bev);
		ch->err = NULL;
	}
}

/* fork and exec one child with the given stdin and stdout. */
static void
spawn(struct child *ch, int in, int out, int closefd)
{
	int errp[2];
	pid_t pid, parent = getpid();

	if (pipe2(errp, O_CLOEXEC) < 0) {
		inv_warn("cannot make a pipe for %s", ch->name);
		return;
	}
	pid = fork();
	if (pid < 0) {
		inv_warn("cannot start %s", ch->name);
		close(errp[0]);
		close(errp[1]);
		return;
	}
	if (pid == 0) {
		sigset_t none;

		/*
		 * A supervisor killed outright must not leave its children
		 * running unsupervised, holding the port and the FIFO that
		 * the next invctl up needs: they get SIGTERM as it dies.
		 */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
			_exit(EX_OSERR);
		/* Ctrl-C reaches the supervisor, which stops children in order. */
		setpgid(0, 0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (closefd >= 0)
			close(closefd);
		if (in >= 0 && dup2(in, STDIN_FILENO) < 0)
			_exit(EX_OSERR);
		if (out == -2) {
			/* invbuf writes into the FIFO, once a reader is there. */
			int fd = open(fifo, O_WRONLY);

			if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
				_exit(EX_OSERR);
			close(fd);
		} else if (out >= 0 && dup2(out, STDOUT_FILENO) < 0)
			_exit(EX_OSERR);
		if (dup2(errp[1], STDERR_FILENO) < 0)
			_exit(EX_OSERR);
		execvp(ch->argv[0], ch->argv);
		fprintf(stderr, "%s: cannot run %s: %s\n", ch->name,
		    ch->argv[0], strerror(errno));
		_exit(127);
	}
	close(errp[1]);
	ch->pid = pid;
	ch->err = bufferevent_socket_new(base, errp[0], BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(ch->err, on_stderr, NULL, on_stderr_event, ch);
	bufferevent_enable(ch->err, EV_READ);
}

static void
start_group(int g)
{
	int p1[2], p2[2];

	groups[g].pending = 0;
	groups[g].started = inv_mono_ns();
	if (g == SERVER) {
		spawn(&children[3], open("/dev/null", O_RDONLY | O_CLOEXEC),
		    -1, -1);
		return;
	}
	if (pipe2(p1, O_CLOEXEC) < 0 || pipe2(p2, O_CLOEXEC) < 0) {
		inv_warn("cannot make the pipeline's pipes");
		return;
	}
	spawn(&children[0], -1, p1[1], -1);
	spawn(&children[1], p1[0], p2[1], -1);
	spawn(&children[2], p2[0], -2, -1);
	close(p1[0]);
	close(p1[1]);
	close(p2[0]);
	close(p2[1]);
}

static void
on_restart_timer(evutil_socket_t fd, short what, void *arg)
{
	int g = (int)(intptr_t)arg;

	if (!shutting_down && !group_alive(g)) {
		groups[g].restarts++;
		start_group(g);
	}
}

/* A group is down: start it again after its backoff. */
static void
schedule_restart(int g)
{
	struct group *gr = &groups[g];
	struct timeval tv;

	if (gr->pending)
		return;
	/* A group that ran for ten seconds was healthy: start afresh. */
	if (inv_mono_ns() - gr->started > 10000000000LL)
		gr->delay_ms = 250;
	else
		gr->delay_ms = gr->delay_ms == 0 ? 250 :
		    gr->delay_ms * 2 > 8000 ? 8000 : gr->delay_ms * 2;
	tv.tv_sec = gr->delay_ms / 1000;
	tv.tv_usec = (gr->delay_ms % 1000) * 1000;
	gr->pending = 1;
	evtimer_add(gr->timer, &tv);
}

static void
on_sigchld(evutil_socket_t fd, short what, void *arg)
{
	struct child *ch;
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if ((ch = child_by_pid(pid)) == NULL)
			continue;
		ch->pid = 0;
		if (!shutting_down) {
			if (WIFSIGNALED(status))
				inv_warnx("%s died of signal %d; restarting",
				    ch->name, WTERMSIG(status));
			else
				inv_warnx("%s exited with status %d; "
				    "restarting", ch->name, WEXITSTATUS(status));
			/* One member gone breaks the pipe: stop the rest. */
			if (ch->group == SEGMENT)
				signal_group(SEGMENT, SIGTERM);
			if (!group_alive(ch->group))
				schedule_restart(ch->group);
		}
	}
	if (shutting_down && all_dead())
		event_base_loopexit(base, NULL);
}

static void
on_kill_timer(evutil_socket_t fd, short what, void *arg)
{
	inv_warnx("children still running after 10 s; killing them");
	signal_group(SEGMENT, SIGKILL);
	signal_group(SERVER, SIGKILL);
}

static void
on_term(evutil_socket_t sig, short what, void *arg)
{
	struct timeval tv = { 10, 0 };

	if (shutting_down)
		return;
	shutting_down = 1;
	inv_info("stopping the stack");
	signal_group(SEGMENT, SIGTERM);
	signal_group(SERVER, SIGTERM);
	if (all_dead()) {
		event_base_loopexit(base, NULL);
		return;
	}
	kill_timer = evtimer_new(base, on_kill_timer, NULL);
	evtimer_add(kill_timer, &tv);
}

static void
set_argv(struct child *ch, ...)
{
	va_list ap;
	char *a;
	int i = 0;

	ch->argv[i++] = find_program(ch->name);
	va_start(ap, ch);
	while ((a = va_arg(ap, char *)) != NULL && i < 11)
		ch->argv[i++] = a;
	va_end(ap);
	ch->argv[i] = NULL;
}

/*
 * DATABASE_URL as the children will read it, checked by libpq's own
 * parser in a child process: mapping libpq and the libraries it pulls
 * in would add some 5 MB to the supervisor for the rest of its life.
 */
static void
check_db_url(const char *url)
{
	char err[512];
	ssize_t n;
	pid_t pid;
	int fd[2], status;

	if (pipe(fd) < 0 || (pid = fork()) < 0)
		inv_err(EX_OSERR, "cannot check DATABASE_URL");
	if (pid == 0) {
		close(fd[0]);
		if (inv_db_url_check(url, err, sizeof(err)) == 0)
			_exit(0);
		(void)write(fd[1], err, strlen(err));
		_exit(EX_USAGE);
	}
	close(fd[1]);
	while ((n = read(fd[0], err, sizeof(err) - 1)) < 0 && errno == EINTR)
		;
	close(fd[0]);
	err[n > 0 ? n : 0] = '\0';
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		inv_errx(EX_USAGE, "%s", err[0] != '\0' ? err :
		    "cannot check DATABASE_URL");
}

/* A display rate for invbuf -r, from where: lines per second above 0. */
static void
check_rate(const char *where, const char *s)
{
	int64_t milli;

	if (inv_parse_rate(s, &milli) < 0 || milli == 0)
		inv_errx(EX_USAGE, "bad %s '%s': expected lines per second "
		    "above 0, up to three decimals", where, s);
	snprintf(rate_arg, sizeof(rate_arg), "%s", s);
}

int
cmd_up(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "rundir",	  required_argument, NULL, 'R' },
		{ "display-rate", required_argument, NULL, 'D' },
		{ "listen",	  required_argument, NULL, 'l' },
		{ "quiet",	  no_argument,	     NULL, 'q' },
		{ NULL, 0, NULL, 0 }
	};
	const char *rundir_flag = NULL, *rate_flag = NULL, *env;
	struct inv_redis_url ru;
	struct sockaddr_storage ss;
	char err[512];
	int sslen;
	struct pidfh *pfh;
	struct event *ev_int, *ev_term, *ev_chld;
	struct stat st;
	sigset_t block;
	pid_t other;
	int ch, g;

	while ((ch = getopt_long(argc, argv, "l:q", longopts, NULL)) != -1) {
		switch (ch) {
		case 'R':
			rundir_flag = optarg;
			break;
		case 'D':
			rate_flag = optarg;
			break;
		case 'l':
			snprintf(listen_arg, sizeof(listen_arg), "%s", optarg);
			break;
		case 'q':
			inv_quiet = 1;
			break;
		default:
			usage(EX_USAGE);
		}
	}
	if (optind != argc)
		usage(EX_USAGE);
	/*
	 * What the children would refuse, refused here before anything
	 * starts: a child that exits 64 would only be restarted for ever.
	 */
	if ((env = inv_getenv("INV_DISPLAY_RATE")) != NULL && rate_flag == NULL)
		check_rate("INV_DISPLAY_RATE", env);
	else if (rate_flag != NULL)
		check_rate("display rate", rate_flag);
	if (inv_getenv("REDIS_URL") == NULL)
		inv_errx(EX_USAGE, "the stack needs Redis: set REDIS_URL");
	redis_config(inv_getenv("REDIS_URL"), &ru);
	if ((env = inv_db_url(NULL)) != NULL)
		check_db_url(env);
	if ((env = listen_arg[0] != '\0' ? listen_arg :
	    inv_getenv("INV_LISTEN")) != NULL &&
	    inv_listen_parse(env, &ss, &sslen, err, sizeof(err)) < 0)
		inv_errx(EX_USAGE, "%s", err);

	resolve_rundir(rundir_flag);
	if (mkdirs(rundir) < 0)
		inv_err(EX_CANTCREAT, "cannot create the run directory %s",
		    rundir);
	snprintf(pidpath, sizeof(pidpath), "%s/invctl.pid", rundir);
	if ((pfh = pidfile_open(pidpath, 0644, &other)) == NULL) {
		if (errno == EEXIST)
			inv_errx(EX_TEMPFAIL, "already running as pid %d on %s",
			    (int)other, rundir);
		inv_err(EX_CANTCREAT, "cannot create %s", pidpath);
	}
	snprintf(fifo, sizeof(fifo), "%s/display.fifo", rundir);
	if (stat(fifo, &st) == 0 && !S_ISFIFO(st.st_mode))
		inv_errx(EX_CANTCREAT, "%s exists and is not a FIFO", fifo);
	if (stat(fifo, &st) < 0 && mkfifo(fifo, 0600) < 0)
		inv_err(EX_CANTCREAT, "cannot create the FIFO %s", fifo);
	pidfile_write(pfh);

	set_argv(&children[0], "--wait", (char *)NULL);
	set_argv(&children[1], "--resume", (char *)NULL);
	set_argv(&children[2], "-r", rate_arg, (char *)NULL);
	if (listen_arg[0] != '\0')
		set_argv(&children[3], "--input", fifo, "-l", listen_arg,
		    (char *)NULL);
	else
		set_argv(&children[3], "--input", fifo, (char *)NULL);

	/* Signals arrive through the event loop, never in the middle of it. */
	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	ev_int = evsignal_new(base, SIGINT, on_term, NULL);
	ev_term = evsignal_new(base, SIGTERM, on_term, NULL);
	ev_chld = evsignal_new(base, SIGCHLD, on_sigchld, NULL);
	event_add(ev_int, NULL);
	event_add(ev_term, NULL);
	event_add(ev_chld, NULL);
	for (g = 0; g < NGROUPS; g++)
		groups[g].timer = evtimer_new(base, on_restart_timer,
		    (void *)(intptr_t)g);

	inv_info("up: run directory %s, display rate %s/s", rundir, rate_arg);
	start_group(SERVER);
	start_group(SEGMENT);
	event_base_dispatch(base);

	pidfile_remove(pfh);
	inv_info("stopped");
	return 0;
}

/* invctl down: stop the supervisor of a run directory, and wait for it. */
int
cmd_down(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "rundir",	required_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 }
	};
	const char *rundir_flag = NULL, *errstr;
	char buf[32];
	long long pid;
	FILE *fp;
	int ch, i;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (ch == 'R')
			rundir_flag = optarg;
		else
			usage(EX_USAGE);
	}
	if (optind != argc)
		usage(EX_USAGE);
	resolve_rundir(rundir_flag);
	snprintf(pidpath, sizeof(pidpath), "%s/invctl.pid", rundir);
	if ((fp = fopen(pidpath, "r")) == NULL) {
		inv_warnx("nothing to stop: no %s", pidpath);
		return 1;
	}
	if (fgets(buf, sizeof(buf), fp) == NULL)
		buf[0] = '\0';
	fclose(fp);
	buf[strcspn(buf, "\n")] = '\0';
	if (inv_parse_int(buf, 2, INT_MAX, &pid, &errstr) < 0)
		inv_errx(EX_DATAERR, "%s does not hold a pid", pidpath);
	if (kill((pid_t)pid, SIGTERM) < 0) {
		if (errno == ESRCH) {
			inv_warnx("nothing to stop: pid %lld is gone", pid);
			return 1;
		}
		inv_err(EX_NOPERM, "cannot signal pid %lld", pid);
	}
	for (i = 0; i < 300 && kill((pid_t)pid, 0) == 0; i++)
		usleep(50000);
	if (kill((pid_t)pid, 0) == 0)
		inv_errx(EX_TEMPFAIL, "pid %lld is still running after 15 s",
		    pid);
	return 0;
}
