/*
 * SSE framing: an event (id, event name, data) as the bytes of the
 * text/event-stream format, and the same bytes as one HTTP/1.1 chunk,
 * in one reference-counted buffer. Data with line breaks (CR, LF or
 * CRLF) becomes one "data:" line per line, so no byte of the data can
 * end the event early or start a field of its own.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "invserve.h"

static struct msg *
msg_alloc(int64_t id, size_t cap)
{
	struct msg *m;

	if ((m = malloc(sizeof(*m) + FRAME_ROOM + cap + 2)) == NULL)
		return NULL;
	m->m_refs = 1;
	m->m_id = id;
	m->m_data = m->m_buf + FRAME_ROOM;
	return m;
}

/* The event is m_len bytes at m_data: put the chunk framing around it. */
static struct msg *
msg_seal(struct msg *m)
{
	char head[FRAME_ROOM];
	int n = snprintf(head, sizeof(head), "%zx\r\n", m->m_len);

	m->m_frame = m->m_data - n;
	memcpy(m->m_frame, head, (size_t)n);
	memcpy(m->m_data + m->m_len, "\r\n", 2);
	m->m_flen = (size_t)n + m->m_len + 2;
	return m;
}

struct msg *
msg_new(int64_t id, const char *event, const char *data, size_t len)
{
	struct msg *m;
	size_t lines = 1, n = 0, i, s;

	/* A "data: " per line, should the data hold newlines. */
	for (i = 0; i < len; i++)
		lines += data[i] == '\n' || data[i] == '\r';
	if ((m = msg_alloc(id, 64 + len + 7 * lines + 1)) == NULL)
		return NULL;
	if (id > 0)
		n += sprintf(m->m_data + n, "id: %" PRId64 "\n", id);
	if (event != NULL)
		n += sprintf(m->m_data + n, "event: %s\n", event);
	if (data != NULL) {
		for (i = s = 0; i <= len; i++) {
			if (i < len && data[i] != '\n' && data[i] != '\r')
				continue;
			memcpy(m->m_data + n, "data: ", 6);
			memcpy(m->m_data + n + 6, data + s, i - s);
			n += 6 + i - s;
			m->m_data[n++] = '\n';
			if (i + 1 < len && data[i] == '\r' && data[i + 1] == '\n')
				i++;
			s = i + 1;
		}
		m->m_data[n++] = '\n';
	}
	m->m_len = n;
	return msg_seal(m);
}

struct msg *
msg_text(const char *text)
{
	struct msg *m;
	size_t len = strlen(text);

	if ((m = msg_alloc(0, len)) == NULL)
		return NULL;
	m->m_len = len;
	memcpy(m->m_data, text, len);
	return msg_seal(m);
}

void
msg_unref(struct msg *m)
{
	if (m != NULL && --m->m_refs == 0)
		free(m);
}
