/*
 * Fuzz the SSE framing (msg_new in cmd/invserve/frame.c): whatever the
 * data, the event parses back, by the text/event-stream rules, as one
 * event with the id, name and data given (line breaks in the data as
 * LF, which is what an EventSource gives its page), ending exactly
 * where the message ends; and the chunk around it is one well-formed
 * HTTP/1.1 chunk of those bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "invserve.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const char *const names[] = { "invoice", "stats", "state", "reset" };

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg *m;
	const char *name, *p, *end, *nl;
	char *want, *got;
	size_t wlen = 0, glen = 0, i, events = 0;
	int64_t id = 0, gotid = -1;
	uint64_t u = 0;
	char head[32];
	int n, named = 0;

	if (size < 9)
		return 0;
	/* the first 8 bytes: the id (0: none); the 9th: the event name */
	for (i = 0; i < 8; i++)
		u = u << 8 | data[i];
	id = (int64_t)(u >> 2);
	if (data[0] & 0x80)
		id = 0;
	name = names[data[8] % 4];
	data += 9;
	size -= 9;

	if ((m = msg_new(id, name, (const char *)data, size)) == NULL)
		return 0;
	/* the data as an EventSource reports it: CRLF, CR and LF are LF */
	want = malloc(size + 1);
	got = malloc(2 * size + 2);
	for (i = 0; i < size; i++) {
		if (data[i] == '\r' && i + 1 < size && data[i + 1] == '\n')
			i++;
		want[wlen++] = data[i] == '\r' ? '\n' : (char)data[i];
	}

	p = m->m_data;
	end = m->m_data + m->m_len;
	while (p < end) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			abort();		/* an unterminated line */
		if (memchr(p, '\r', (size_t)(nl - p)) != NULL)
			abort();		/* a CR would end the line early */
		if (nl == p) {			/* a blank line: dispatch */
			events++;
			if (glen > 0)
				glen--;		/* the last LF is dropped */
			p = nl + 1;
			if (p != end)
				abort();	/* more after the event */
			break;
		}
		if ((size_t)(nl - p) >= 6 && memcmp(p, "data: ", 6) == 0) {
			/* each data line adds its value and a LF */
			if (glen + (size_t)(nl - p - 6) + 1 > 2 * size + 2)
				abort();
			memcpy(got + glen, p + 6, (size_t)(nl - p - 6));
			glen += (size_t)(nl - p - 6);
			got[glen++] = '\n';
		} else if ((size_t)(nl - p) > 7 && memcmp(p, "event: ", 7) == 0) {
			if ((size_t)(nl - p - 7) != strlen(name) ||
			    memcmp(p + 7, name, strlen(name)) != 0)
				abort();
			named++;
		} else if ((size_t)(nl - p) > 4 && memcmp(p, "id: ", 4) == 0) {
			gotid = strtoll(p + 4, NULL, 10);
		} else
			abort();		/* a field nobody asked for */
		p = nl + 1;
	}
	if (events != 1 || named != 1 || glen != wlen || memcmp(got, want, wlen) != 0)
		abort();
	if (id > 0 ? gotid != id : gotid != -1)
		abort();

	/* the chunk: hex size, CRLF, the event, CRLF */
	n = snprintf(head, sizeof(head), "%zx\r\n", m->m_len);
	if (m->m_flen != (size_t)n + m->m_len + 2 ||
	    memcmp(m->m_frame, head, (size_t)n) != 0 ||
	    m->m_frame + n != m->m_data ||
	    memcmp(m->m_frame + n + m->m_len, "\r\n", 2) != 0)
		abort();
	free(want);
	free(got);
	msg_unref(m);
	return 0;
}
