/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The server-sent events of one streaming answer, as OpenAI sends them: one chunk per
 * completion token (the first also carries the assistant role), a closing chunk with
 * finish_reason, a usage chunk with "choices":[] when stream_options.include_usage was set,
 * then "data: [DONE]". Tokens follow a fixed schedule: the first as soon as the body starts,
 * then one every token_ns, so a late reader gets the overdue tokens at once.
 *
 * Pure: the server asks for bytes with stream_fill and does the waiting (it suspends the
 * connection until the next token is due).
 */
#ifndef MOCK_LLM_STREAM_H
#define MOCK_LLM_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "call.h"

/* stream_fill results other than a byte count */
#define STREAM_FILL_WAIT  (-1) /* the next token is not due: call again at s->next_due_ns */
#define STREAM_FILL_END	  (-2) /* everything was sent, [DONE] included */
#define STREAM_FILL_ABORT (-3) /* disconnect fault: close the connection without [DONE] */

/*
 * A token due within this much of now goes now: the timer wakes streams in batches of this
 * width, and a stream woken a little early must not go back to sleep for the rest.
 */
#define STREAM_EARLY_NS 1000000ULL

enum stream_phase {
	STREAM_TOKENS = 1, /* content chunks */
	STREAM_FINAL = 2,  /* the chunk with finish_reason */
	STREAM_USAGE = 3,  /* the usage chunk (only with include_usage) */
	STREAM_DONE = 4,   /* data: [DONE] */
	STREAM_OVER = 5,   /* nothing left */
};

struct stream {
	uint64_t id;		 /* the number in "chatcmpl-<id>" / "cmpl-<id>" */
	long long created;	 /* Unix seconds */
	uint64_t next_due_ns;	 /* monotonic time the next token is due; 0: at once */
	uint64_t token_ns;	 /* spacing between tokens */
	unsigned tokens;	 /* completion tokens in all */
	unsigned sent;		 /* completion tokens fully emitted */
	unsigned prompt_tokens;	 /* for the usage chunk */
	int disconnect_after;	 /* abort once this many tokens went out; -1: never */
	int model;		 /* index in the model list */
	enum call_kind kind;	 /* CALL_CHAT or CALL_COMPLETION */
	enum stream_phase phase; /* the event being emitted */
	unsigned offset;	 /* bytes of the current event already emitted */
	bool length_limited;	 /* finish_reason "length" */
	bool include_usage;	 /* send the usage chunk */
};

/* Prepares the stream answering C; the first token is due at once. */
void stream_init(struct stream *s, const struct call *c, uint64_t id, long long created,
		 uint64_t token_ns, int disconnect_after);

/*
 * Writes up to MAX bytes of the events due at NOW_NS (monotonic) into BUF; *TOKENS gets the
 * number of completion tokens finished by this call. Returns the byte count (> 0), or one
 * of the STREAM_FILL_* values. An event larger than MAX is split over several calls.
 */
ssize_t stream_fill(struct stream *s, char *buf, size_t max, uint64_t now_ns, unsigned *tokens);

#endif
