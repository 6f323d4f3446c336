/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * An incremental parser for the server-sent event streams of OpenAI-compatible upstreams.
 * Bytes arrive in arbitrary pieces; the parser hands back each complete event (the raw
 * bytes, to forward to the client unchanged, and its joined "data:" payload, to inspect),
 * and reads the token usage out of chunk payloads. Pure: no I/O, bounded memory (an event
 * larger than SSE_EVENT_MAX is an error, not an allocation).
 */
#ifndef TG_SSE_H
#define TG_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SSE_EVENT_MAX (256 * 1024)

struct sse_parser {
	char *buf;	   /* bytes of the event being assembled (malloc'd, <= SSE_EVENT_MAX) */
	size_t len;	   /* bytes in buf */
	size_t cap;	   /* allocated */
	bool done;	   /* "data: [DONE]" was seen */
};

/*
 * Called once per complete event: raw is the event's bytes including its blank-line
 * terminator; data is the payload (the "data:" lines joined by '\n', one leading space
 * dropped per line), NUL-terminated, valid only during the call. Return 0 to go on, or a
 * negative errno to stop sse_feed with it.
 */
typedef int (*sse_event_fn)(void *ctx, const char *raw, size_t raw_len, const char *data,
			    size_t data_len);

void sse_init(struct sse_parser *p);
/* Frees the parser's buffer. Accepts a parser that was only initialised. */
void sse_free(struct sse_parser *p);
/* Feeds bytes; events end at "\n\n", "\r\n\r\n" or "\r\r". -EMSGSIZE for an oversize event. */
int sse_feed(struct sse_parser *p, const char *buf, size_t len, sse_event_fn fn, void *ctx);

struct sse_usage {
	bool found;		    /* a "usage" object with token counts was present */
	uint64_t prompt_tokens;
	uint64_t completion_tokens;
	bool usage_only;	    /* the chunk carried usage and an empty "choices" array */
	uint64_t content_pieces;    /* choices[].delta.content / choices[].text strings seen */
};

/*
 * Inspects one chunk payload (JSON text) and adds what it finds to *u: usage (the last one
 * seen wins) and the number of non-empty content pieces (an estimate of completion tokens
 * for streams whose upstream never sends usage). Malformed JSON changes nothing and returns
 * -EINVAL; "[DONE]" returns 0.
 */
int sse_chunk_inspect(const char *data, size_t len, struct sse_usage *u);

#endif /* TG_SSE_H */
