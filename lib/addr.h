/*
 * Listen addresses: ADDR:PORT as INV_LISTEN and invserve -l take them.
 */
#ifndef INV_ADDR_H
#define INV_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

int	 inv_listen_parse(const char *, struct sockaddr_storage *, int *,
	    char *, size_t);

#endif
