/*
 * invserve: what its files share. One event loop (libevent) runs
 * everything: the HTTP server, the SSE fan-out, the input, Redis
 * (hiredis async) and PostgreSQL (libpq, non-blocking).
 */
#ifndef INVSERVE_H
#define INVSERVE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <event2/http.h>
#include <hiredis.h>
#include <libpq-fe.h>

#define EX_NOINPUT	66

struct evbuffer;

/* Options and the state every file reads. */
struct config {
	const char	*listen;		/* ADDR:PORT */
	const char	*input;			/* NULL or "-": stdin */
	int		 source_redis;		/* --source redis */
	const char	*www;			/* realpath of the www dir */
	long long	 backfill;
	long long	 max_clients;
	long long	 client_queue;		/* bytes */
	long long	 ring_size;
	const char	*token;			/* INV_TOKEN */
	const char	**origins;		/* --allow-origin */
	int		 norigins;
	const char	*db_url;
	const char	*redis_url;
};

extern struct config	 cfg;
extern struct event_base *base;

/* Counters for /metrics. */
struct metrics {
	uint64_t	 events_sent;
	uint64_t	 clients_total;
	uint64_t	 clients_dropped;	/* slow: queue overflowed */
	uint64_t	 clients_shed;		/* past --max-clients */
	uint64_t	 accept_pauses;		/* out of descriptors */
	uint64_t	 input_lines;
	uint64_t	 input_bad;
	uint64_t	 input_dup;
	uint64_t	 broadcasts;
	uint64_t	 recovered;
	uint64_t	 resumes;
	uint64_t	 resets;
	uint64_t	 http_requests;
	uint64_t	 http_no_request;	/* connections that sent none */
	uint64_t	 http_errors[6];	/* 400 401 403 404 405 4xx/5xx */
	uint64_t	 redis_errors;
	uint64_t	 pg_errors;
};
extern struct metrics	 stats;

/* invserve.c */
int		 shutting_down(void);

/* http.c */
int		 http_start(const char *, char *, size_t);
void		 http_stop_accepting(void);
void		 http_stop(void);
void		 http_json(struct evhttp_request *, int, const char *);
void		 http_jsonf(struct evhttp_request *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
void		 http_error(struct evhttp_request *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
void		 http_cors(struct evhttp_request *);
int		 http_same_origin(struct evhttp_request *);
void		 http_stream(struct evhttp_request *,
		    void (*)(struct evhttp_connection *, void *), void *);
uint32_t	 jitter(uint32_t);

/* frame.c */
/*
 * An event, and the same bytes framed as an HTTP/1.1 chunk, so that a
 * broadcast appends one reference per client and nothing else.
 */
#define FRAME_ROOM	16	/* for the chunk size line, "%zx\r\n" */

struct msg {
	int	 m_refs;
	int64_t	 m_id;
	char	*m_data;	/* the event */
	size_t	 m_len;
	char	*m_frame;	/* the event as one chunk */
	size_t	 m_flen;
	char	 m_buf[];
};
struct msg	*msg_new(int64_t, const char *, const char *, size_t);
struct msg	*msg_text(const char *);
void		 msg_unref(struct msg *);

/* sse.c */
void		 sse_init(void);
void		 sse_open(struct evhttp_request *);
void		 sse_invoice(int64_t, const char *, size_t);
void		 sse_stats(const char *, size_t);
void		 sse_state(const char *, size_t);
void		 sse_shutdown(void);
size_t		 sse_clients(void);
size_t		 sse_ring_count(void);
int		 sse_ring_page(int64_t, int, struct evbuffer *);
void		 sse_prefill(void);
void		 sse_served_floor(int64_t);
extern int64_t	 served;	/* the highest invoice id broadcast */
extern char	 stats_json[1024];

/* uri.c */
int		 uri_file_path(const char *, const char *, char *, size_t);
int		 uri_query_int(const char *, const char *, long long, long long,
		    long long *, char *, size_t);

/* input.c */
int		 input_open(const char *, char *, size_t);
void		 input_resume(void);
void		 input_line(const char *, size_t, const char *);
void		 input_start(void);
void		 input_recover(void);

/* api.c */
void		 api_init(void);
void		 api_invoices(struct evhttp_request *);
void		 api_stats(struct evhttp_request *);
void		 api_state(struct evhttp_request *);
void		 api_control(struct evhttp_request *, int);
void		 api_healthz(struct evhttp_request *);
void		 api_metrics(struct evhttp_request *);
void		 api_stats_refresh(void);
void		 api_state_refresh(void);
void		 stats_local_add(int64_t, int64_t, int64_t);
int		 invoice_json_row(PGresult *, int, char *, size_t, int64_t *);
extern const char invoice_columns[];

/* redis.c: two connections, one for commands and one subscribed. */
typedef void	 rds_cb(redisReply *, void *);
int		 rds_init(const char *, char *, size_t);
int		 rds_configured(void);
int		 rds_ok(void);
int		 rds_command(rds_cb *, void *, const char *, ...);
int		 rds_command_argv(rds_cb *, void *, int, const char **,
		    const size_t *);
void		 rds_on_ready(void (*)(void));
void		 rds_on_message(void (*)(const char *, const char *, size_t));
void		 rds_stop(void);

/* pg.c: one non-blocking connection and a queue of queries. */
typedef void	 pg_cb(PGresult *, const char *, void *);
int		 pg_init(const char *, char *, size_t);
int		 pg_ok(void);
int		 pg_configured(void);
int		 pg_query(const char *, int, const char *const *, pg_cb *,
		    void *);
void		 pg_on_ready(void (*)(void));
void		 pg_stop(void);

#endif
