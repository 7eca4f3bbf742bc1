/*
 * ADDR:PORT for a listening socket, IPv4 or [IPv6], port 0 included
 * (the kernel picks a free one). Parsed by evutil, so invctl can refuse
 * a bad INV_LISTEN before it starts a stack whose server would only
 * exit with it.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <event2/util.h>

#include "addr.h"
#include "util.h"

int
inv_listen_parse(const char *addr, struct sockaddr_storage *ss, int *sslen,
    char *err, size_t size)
{
	const char *colon = strrchr(addr, ':'), *errstr;
	char probe[300];
	long long port;

	/* evutil refuses port 0: parse the port here, the address there. */
	memset(ss, 0, sizeof(*ss));
	*sslen = sizeof(*ss);
	if (colon == NULL || (size_t)(colon - addr) > 256 ||
	    inv_parse_int(colon + 1, 0, 65535, &port, &errstr) < 0)
		goto bad;
	snprintf(probe, sizeof(probe), "%.*s:1", (int)(colon - addr), addr);
	if (evutil_parse_sockaddr_port(probe, (struct sockaddr *)ss,
	    sslen) < 0)
		goto bad;
	if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
	else
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	return 0;
bad:
	snprintf(err, size, "bad listen address '%s': expected ADDR:PORT, "
	    "such as 127.0.0.1:8080 or [::1]:8080", addr);
	return -1;
}
