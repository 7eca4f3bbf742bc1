/*
 * libpq, mapped on first use. invstats and invctl link these stand-ins
 * instead of libpq itself (the Makefile's LAZY_PQ; this file is not in
 * libinv.a): each forwards to the library's function of the same name,
 * and the first call dlopen(3)s the library. So `invstats show`
 * answered from Redis, the filter without a database, and invctl, which
 * only checks DATABASE_URL for its children, never map libpq and the
 * two dozen libraries it pulls in (TLS, Kerberos, LDAP): mapping them
 * is most of a short run's time and about 5 MB of each one's RSS.
 *
 * A stand-in has the prototype of libpq-fe.h, so the compiler checks
 * each against the real one. Adding a libpq call to lib/db.c, lib/stats.c
 * or invstats means adding a line to PQ_CALLS, or the link fails.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "log.h"
#include "util.h"

#define LIBPQ	"libpq.so.5"	/* its soname since PostgreSQL 8.0 */

/*
 * F(type, name, parameters, arguments): a function that returns a value.
 * R(name, type): one that releases what libpq made; before libpq is
 * mapped there is nothing to release, so it does not map it.
 */
#define PQ_CALLS(F, R)						\
	F(PGconn *, PQconnectdbParams, (const char *const *keywords,	\
	    const char *const *values, int expand_dbname),		\
	    (keywords, values, expand_dbname))				\
	F(PQconninfoOption *, PQconninfoParse, (const char *conninfo,	\
	    char **errmsg), (conninfo, errmsg))				\
	F(ConnStatusType, PQstatus, (const PGconn *conn), (conn))	\
	F(char *, PQerrorMessage, (const PGconn *conn), (conn))	\
	F(int, PQsocket, (const PGconn *conn), (conn))			\
	F(PQnoticeProcessor, PQsetNoticeProcessor, (PGconn *conn,	\
	    PQnoticeProcessor proc, void *arg), (conn, proc, arg))	\
	F(char *, PQescapeLiteral, (PGconn *conn, const char *str,	\
	    size_t len), (conn, str, len))				\
	F(PGresult *, PQexec, (PGconn *conn, const char *query),	\
	    (conn, query))						\
	F(PGresult *, PQexecParams, (PGconn *conn, const char *command,	\
	    int nParams, const Oid *paramTypes,				\
	    const char *const *paramValues, const int *paramLengths,	\
	    const int *paramFormats, int resultFormat),			\
	    (conn, command, nParams, paramTypes, paramValues,		\
	    paramLengths, paramFormats, resultFormat))			\
	F(PGresult *, PQgetResult, (PGconn *conn), (conn))		\
	F(int, PQputCopyData, (PGconn *conn, const char *buffer,	\
	    int nbytes), (conn, buffer, nbytes))			\
	F(int, PQputCopyEnd, (PGconn *conn, const char *errormsg),	\
	    (conn, errormsg))						\
	F(int, PQsetnonblocking, (PGconn *conn, int arg), (conn, arg))	\
	F(int, PQisnonblocking, (const PGconn *conn), (conn))		\
	F(int, PQflush, (PGconn *conn), (conn))				\
	F(int, PQconsumeInput, (PGconn *conn), (conn))			\
	F(int, PQisBusy, (PGconn *conn), (conn))			\
	F(int, PQsendQueryParams, (PGconn *conn, const char *command,	\
	    int nParams, const Oid *paramTypes,				\
	    const char *const *paramValues, const int *paramLengths,	\
	    const int *paramFormats, int resultFormat),			\
	    (conn, command, nParams, paramTypes, paramValues,		\
	    paramLengths, paramFormats, resultFormat))			\
	F(ExecStatusType, PQresultStatus, (const PGresult *res), (res))	\
	F(char *, PQresultErrorMessage, (const PGresult *res), (res))	\
	F(char *, PQresultErrorField, (const PGresult *res,		\
	    int fieldcode), (res, fieldcode))				\
	F(int, PQntuples, (const PGresult *res), (res))			\
	F(int, PQnfields, (const PGresult *res), (res))			\
	F(char *, PQgetvalue, (const PGresult *res, int tup_num,	\
	    int field_num), (res, tup_num, field_num))			\
	R(PQclear, PGresult *)						\
	R(PQfinish, PGconn *)						\
	R(PQfreemem, void *)						\
	R(PQconninfoFree, PQconninfoOption *)

/* The library's functions, once mapped. */
#define POINTER(type, name, params, args)	static type (*p_##name)params;
#define POINTER_R(name, type)			static void (*p_##name)(type);
PQ_CALLS(POINTER, POINTER_R)

static pthread_once_t	 once = PTHREAD_ONCE_INIT;
static int		 mapped;

/*
 * Called once, from whichever thread needs libpq first. invstats cannot
 * do without what it asked for, so a missing library ends it here.
 */
static void
map_libpq(void)
{
	void *h;

	if ((h = dlopen(LIBPQ, RTLD_NOW | RTLD_LOCAL)) == NULL)
		inv_errx(EX_UNAVAILABLE, "cannot load %s: %s", LIBPQ, dlerror());
#define LOOKUP(name)							\
	if ((p_##name = (__typeof__(p_##name))dlsym(h, #name)) == NULL)	\
		inv_errx(EX_UNAVAILABLE, "cannot load %s: no %s", LIBPQ, #name);
#define LOOKUP_F(type, name, params, args)	LOOKUP(name)
#define LOOKUP_R(name, type)			LOOKUP(name)
	PQ_CALLS(LOOKUP_F, LOOKUP_R)
	__atomic_store_n(&mapped, 1, __ATOMIC_RELEASE);
}

#define STANDIN(type, name, params, args)				\
type name params							\
{									\
	pthread_once(&once, map_libpq);					\
	return p_##name args;						\
}
#define STANDIN_R(name, type)						\
void name(type p)							\
{									\
	if (__atomic_load_n(&mapped, __ATOMIC_ACQUIRE))			\
		p_##name(p);						\
}
PQ_CALLS(STANDIN, STANDIN_R)
