/*
 * PostgreSQL through libpq: connecting, and writing invoices with COPY.
 */
#ifndef INV_DB_H
#define INV_DB_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "invoice.h"

/* Rows in COPY's binary format, built while a previous COPY runs. */
struct inv_copybuf {
	char	*buf;
	size_t	 len;
	size_t	 cap;
};

const char	*inv_db_url(const char *);
int		 inv_db_url_check(const char *, char *, size_t);
PGconn		*inv_db_connect(const char *, char *, size_t);
int		 inv_db_reserve_ids(PGconn *, int, int64_t *, char *, size_t);
int		 inv_db_reserve_send(PGconn *, int, char *, size_t);
int		 inv_db_reserve_recv(PGconn *, int, int64_t *, PGconn *, char *,
		    size_t);
int		 inv_db_copy_add(struct inv_copybuf *, const struct inv_invoice *);
char		*inv_db_put_numeric(char *, int64_t);
int		 inv_db_copy_send(PGconn *, const struct inv_copybuf *,
		    const char *, char *, size_t);
int		 inv_db_insert_wait(PGconn *, char *, size_t);
int		 inv_db_copy(PGconn *, const struct inv_copybuf *, const char *,
		    char *, size_t);
void		 inv_db_pump(PGconn *);
int		 inv_db_count_ids(PGconn *, const int64_t *, int, char *,
		    size_t);
int		 inv_db_gone(PGconn *);
int		 inv_db_duplicate(PGconn *);
int64_t		 inv_db_cycle_begin(PGconn *, const char *, int64_t, int64_t,
		    char *, size_t);
char		*inv_db_cycle_then(PGconn *, const char *, int, int64_t, char *,
		    size_t);
void		 inv_db_failed(PGconn *, PGresult *, const char *, char *,
		    size_t);

#endif
