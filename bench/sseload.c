/*
 * sseload: many Server-Sent Events clients on one epoll loop, and the
 * publisher that feeds them, so one clock times every delivery.
 *
 *   sseload -p PORT -P PATH -n CLIENTS -e EVENTS -r RATE
 *           (-f FIFO | -u PUBLISH-PATH) [-t SECONDS]
 *   sseload -p PORT -P PATH -n CLIENTS -e EVENTS [-o FILE] [-t SECONDS]
 *
 * Opens CLIENTS connections to 127.0.0.1:PORT PATH, waits until each has
 * its 200, then publishes EVENTS invoice lines at RATE a second: into
 * FIFO (invserve) or by HTTP POST to PUBLISH-PATH (nchan). Each line
 * carries its send time (CLOCK_REALTIME, microseconds) in its invoice
 * number; every client that receives it records now - then. Prints
 *   clients=N events=E delivered=D p50_us=.. p99_us=.. max_us=..
 * With neither -f nor -u it only listens, to a stream someone else
 * feeds (bench/soak): it waits until every client has EVENTS invoice
 * events, checks that each client's ids rise strictly, and prints
 *   clients=N events=E delivered=D complete=C inorder=I same=S
 * (clients with all E; with rising ids; with the same sequence as the
 * first client, by an FNV-1a hash of it); -o FILE gets the first
 * client's ids, one a line.
 * Loopback only; gives up after SECONDS (default 60).
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_	8192

enum { HDR, CHUNK_SIZE, CHUNK_DATA, CHUNK_CRLF, PLAIN };

struct conn {
	int	 fd;
	int	 state;
	int	 ok;		/* got 200 */
	int	 chunked;
	long	 chunk_left;
	size_t	 len;
	long	 events;
	int	 invoice;	/* listening: the event being read is one */
	long long id;		/* its id: */
	long long last;		/* the last invoice id */
	int	 disorder;	/* an id not above the one before */
	uint64_t hash;		/* FNV-1a of the ids, in order */
	char	 line[LINE_MAX_];
};

static struct conn *conns;
static uint32_t *lat;
static size_t	 nlat, caplat;
static int	 nready;
static long	 delivered;
static int	 listening;	/* neither -f nor -u */
static FILE	*idsout;	/* -o: the first client's ids */

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
die(const char *what)
{
	perror(what);
	exit(1);
}

static int
connect_to(int port)
{
	struct sockaddr_in sa;
	int fd, one = 1;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) < 0)
		die("socket");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 &&
	    errno != EINPROGRESS)
		die("connect");
	return fd;
}

/* Listening: the invoice events' ids, per client, in order. */
static void
listen_line(struct conn *c, const char *s, size_t n)
{
	int i;

	if (n == 0) {		/* the end of an event */
		if (c->invoice) {
			if (c->events > 0 && c->id <= c->last)
				c->disorder = 1;
			c->last = c->id;
			for (i = 0; i < 8; i++) {
				c->hash ^= (uint64_t)(c->id >> (i * 8)) & 0xff;
				c->hash *= 1099511628211ULL;
			}
			if (c == conns && idsout != NULL)
				fprintf(idsout, "%lld\n", c->id);
			c->events++;
			delivered++;
		}
		c->invoice = 0;
		return;
	}
	if (n == 14 && memcmp(s, "event: invoice", 14) == 0)
		c->invoice = 1;
	else if (n > 4 && memcmp(s, "id: ", 4) == 0)
		c->id = strtoll(s + 4, NULL, 10);
}

/* One complete line of the event stream (without its newline). */
static void
sse_line(struct conn *c, const char *s, size_t n)
{
	static const char key[] = "\"invoice_number\":\"BENCH-";
	const char *p;
	int64_t sent;

	if (listening) {
		listen_line(c, s, n);
		return;
	}
	if (n < 6 || memcmp(s, "data: ", 6) != 0)
		return;
	if ((p = memmem(s, n, key, sizeof(key) - 1)) == NULL)
		return;
	sent = strtoll(p + sizeof(key) - 1, NULL, 10);
	c->events++;
	delivered++;
	if (nlat < caplat)
		lat[nlat++] = (uint32_t)(now_us() - sent);
}

static void
body_bytes(struct conn *c, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] == '\n') {
			sse_line(c, c->line, c->len);
			c->len = 0;
		} else if (c->len < sizeof(c->line) - 1)
			c->line[c->len++] = s[i];
	}
}

/* Headers, then the body, chunked or not. */
static void
feed(struct conn *c, const char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		switch (c->state) {
		case HDR:
			for (; i < n; i++) {
				if (s[i] != '\n') {
					if (c->len < sizeof(c->line) - 1)
						c->line[c->len++] = s[i];
					continue;
				}
				c->line[c->len] = '\0';
				if (strncmp(c->line, "HTTP/1.1 200", 12) == 0 &&
				    !c->ok) {
					c->ok = 1;
					nready++;
				}
				if (strncasecmp(c->line, "Transfer-Encoding: chunked",
				    26) == 0)
					c->chunked = 1;
				if (c->len <= 1) {	/* the blank line */
					c->state = c->chunked ? CHUNK_SIZE : PLAIN;
					c->len = 0;
					i++;
					break;
				}
				c->len = 0;
			}
			break;
		case CHUNK_SIZE:
			for (; i < n && s[i] != '\n'; i++)
				if (c->len < 30)
					c->line[c->len++] = s[i];
			if (i < n) {
				c->line[c->len] = '\0';
				c->chunk_left = strtol(c->line, NULL, 16);
				c->len = 0;
				c->state = c->chunk_left > 0 ? CHUNK_DATA : HDR;
				i++;
			}
			break;
		case CHUNK_DATA: {
			size_t take = n - i < (size_t)c->chunk_left ? n - i :
			    (size_t)c->chunk_left;

			body_bytes(c, s + i, take);
			i += take;
			c->chunk_left -= take;
			if (c->chunk_left == 0)
				c->state = CHUNK_CRLF;
			break;
		}
		case CHUNK_CRLF:
			if (s[i++] == '\n')
				c->state = CHUNK_SIZE;
			break;
		case PLAIN:
			body_bytes(c, s + i, n - i);
			i = n;
			break;
		}
	}
}

/* Read what a connection has; a closed one leaves the loop. */
static void
drain(int ep, struct conn *c, char *buf, size_t size)
{
	ssize_t r;

	while ((r = read(c->fd, buf, size)) > 0)
		feed(c, buf, (size_t)r);
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
		epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
	}
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Listening: read until every client has all its events, or time is up. */
static int
listen_all(int ep, int nclients, long nevents, int64_t deadline, char *buf,
    size_t size)
{
	struct epoll_event evs[1024];
	int i, n, complete = 0, inorder = 0, same = 0;

	for (i = 0; i < nclients; i++)
		conns[i].hash = 14695981039346656037ULL;
	while (now_us() < deadline && delivered < (long)nclients * nevents) {
		n = epoll_wait(ep, evs, 1024, 1000);
		for (i = 0; i < n; i++)
			drain(ep, evs[i].data.ptr, buf, size);
	}
	for (i = 0; i < nclients; i++) {
		complete += conns[i].events == nevents;
		inorder += !conns[i].disorder;
		same += conns[i].events == conns[0].events &&
		    conns[i].hash == conns[0].hash;
	}
	if (idsout != NULL)
		fclose(idsout);
	printf("clients=%d events=%ld delivered=%ld complete=%d inorder=%d "
	    "same=%d\n", nclients, nevents, delivered, complete, inorder,
	    same);
	return complete == nclients && inorder == nclients &&
	    same == nclients ? 0 : 1;
}

/* The line for event k: a valid invoice whose number is its send time. */
static int
invoice(char *buf, size_t size, int64_t k)
{
	int64_t t = now_us();
	time_t secs = t / 1000000;
	struct tm tm;
	char date[40];

	gmtime_r(&secs, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	return snprintf(buf, size, "{\"id\":%lld,\"invoice_number\":"
	    "\"BENCH-%lld\",\"invoice_date\":\"%s.%06dZ\",\"seller_name\":"
	    "\"Bench Sellers Ltd\",\"buyer_name\":\"Bench Buyers plc\","
	    "\"subtotal\":100.00,\"vat_amount\":15.00,\"total_amount\":115.00}\n",
	    (long long)k, (long long)t, date, (int)(t % 1000000));
}

/* POST one message to nchan's publisher on a kept-alive connection. */
static void
publish(int *pfd, int port, const char *path, const char *body, size_t n)
{
	char req[LINE_MAX_ * 2], resp[4096];
	int len, flags;
	ssize_t r;

	if (*pfd < 0) {
		*pfd = connect_to(port);
		flags = fcntl(*pfd, F_GETFL);
		fcntl(*pfd, F_SETFL, flags & ~O_NONBLOCK);
	}
	len = snprintf(req, sizeof(req), "POST %s HTTP/1.1\r\nHost: bench\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%.*s",
	    path, n, (int)n, body);
	if (write(*pfd, req, len) != len)
		die("publish");
	/* The answer is small; read what has come (one read suffices). */
	if ((r = read(*pfd, resp, sizeof(resp))) <= 0)
		die("publish answer");
}

int
main(int argc, char *argv[])
{
	const char *path = "/events", *fifo = NULL, *pub = NULL;
	int port = 0, nclients = 100, nevents = 100, timeout = 60, ch, ep;
	int ffd = -1, pfd = -1, i, n;
	double rate = 10;
	struct epoll_event ev, evs[1024];
	long sent = 0;
	int64_t start, next, deadline, idbase;
	char buf[65536];

	while ((ch = getopt(argc, argv, "p:P:n:e:r:f:u:t:o:")) != -1) {
		switch (ch) {
		case 'p': port = atoi(optarg); break;
		case 'P': path = optarg; break;
		case 'n': nclients = atoi(optarg); break;
		case 'e': nevents = atoi(optarg); break;
		case 'r': rate = atof(optarg); break;
		case 'f': fifo = optarg; break;
		case 'u': pub = optarg; break;
		case 't': timeout = atoi(optarg); break;
		case 'o':
			if ((idsout = fopen(optarg, "w")) == NULL)
				die(optarg);
			break;
		default:
			fprintf(stderr, "usage: sseload -p port -P path -n clients "
			    "-e events -r rate (-f fifo | -u publish-path) "
			    "[-t seconds] [-o file]\n");
			return 64;
		}
	}
	listening = fifo == NULL && pub == NULL;
	if (port <= 0 || (fifo != NULL && pub != NULL) || rate <= 0) {
		fprintf(stderr, "sseload: need -p, and at most one of -f "
		    "and -u\n");
		return 64;
	}
	if (fifo != NULL && (ffd = open(fifo, O_WRONLY)) < 0)
		die(fifo);
	caplat = listening ? 0 : (size_t)nclients * nevents;
	if ((conns = calloc(nclients, sizeof(*conns))) == NULL ||
	    (lat = malloc(caplat * sizeof(*lat) + 1)) == NULL)
		die("malloc");
	if ((ep = epoll_create1(0)) < 0)
		die("epoll");
	deadline = now_us() + (int64_t)timeout * 1000000;

	/* Connect in batches, so the listen backlog is never the limit. */
	for (i = 0; i < nclients; i++) {
		conns[i].fd = connect_to(port);
		ev.events = EPOLLIN | EPOLLOUT;
		ev.data.ptr = &conns[i];
		epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
		if (i % 500 == 499)
			usleep(20000);
	}
	while (nready < nclients && now_us() < deadline) {
		n = epoll_wait(ep, evs, 1024, 100);
		for (i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;

			if (evs[i].events & EPOLLOUT) {
				char req[512];
				int len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\n"
				    "Host: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n",
				    path);

				if (write(c->fd, req, len) != len)
					die("request");
				ev.events = EPOLLIN;
				ev.data.ptr = c;
				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
			}
			if (evs[i].events & EPOLLIN)
				drain(ep, c, buf, sizeof(buf));
		}
	}
	if (nready < nclients) {
		fprintf(stderr, "sseload: only %d of %d clients connected\n",
		    nready, nclients);
		return 1;
	}
	fprintf(stderr, "sseload: %d clients connected\n", nclients);
	printf("connected\n");
	fflush(stdout);
	if (listening)
		return listen_all(ep, nclients, nevents, deadline, buf,
		    sizeof(buf));
	sleep(1);	/* for the caller to read the RSS */

	/* Ids above any earlier run's, for a server that drops repeats. */
	idbase = now_us();
	start = next = now_us();
	while (now_us() < deadline && (sent < nevents ||
	    delivered < (long)nclients * nevents)) {
		int64_t t = now_us(), wait_ms;

		if (sent < nevents && t >= next) {
			char line[1024];
			int len = invoice(line, sizeof(line), idbase + sent + 1);

			if (ffd >= 0) {
				if (write(ffd, line, len) != len)
					die("fifo");
			} else
				publish(&pfd, port, pub, line, len - 1);
			sent++;
			next = start + (int64_t)(sent * 1e6 / rate);
		}
		wait_ms = sent < nevents ? (next - now_us()) / 1000 : 100;
		if (wait_ms < 0)
			wait_ms = 0;
		n = epoll_wait(ep, evs, 1024, (int)wait_ms);
		for (i = 0; i < n; i++) {
			drain(ep, evs[i].data.ptr, buf, sizeof(buf));
		}
	}
	qsort(lat, nlat, sizeof(*lat), cmp_u32);
	printf("clients=%d events=%d delivered=%ld p50_us=%u p99_us=%u "
	    "max_us=%u\n", nclients, nevents, delivered,
	    nlat ? lat[nlat / 2] : 0, nlat ? lat[nlat * 99 / 100] : 0,
	    nlat ? lat[nlat - 1] : 0);
	return delivered == (long)nclients * nevents ? 0 : 1;
}
