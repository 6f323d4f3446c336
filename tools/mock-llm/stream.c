/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * SSE events of a streaming answer (stream.h). An event is rendered from the stream's state
 * alone, so when the caller's buffer cuts one short, the next call renders it again and
 * goes on from s->offset: no per-stream copy is kept, which matters with 10,000 open
 * streams.
 */
#include <stdio.h>
#include <string.h>

#include "models.h"
#include "stream.h"

/* Large enough for any event: the JSON of the longest model name plus the fixed text. */
#define EVENT_MAX (6 * MODELS_NAME_MAX_LEN + 512)

void stream_init(struct stream *s, const struct call *c, uint64_t id, long long created,
		 uint64_t token_ns, int disconnect_after)
{
	memset(s, 0, sizeof(*s));
	s->id = id;
	s->created = created;
	s->token_ns = token_ns;
	s->tokens = c->completion_tokens;
	s->prompt_tokens = c->prompt_tokens;
	s->disconnect_after = disconnect_after;
	s->model = c->model;
	s->kind = c->kind;
	s->phase = STREAM_TOKENS;
	s->length_limited = c->length_limited;
	s->include_usage = c->include_usage;
}

/* "data: {" and the fields every chunk starts with, up to the choices. */
static int event_head(const struct stream *s, char *out, size_t cap)
{
	bool chat = s->kind == CALL_CHAT;

	return snprintf(
	    out, cap, "data: {\"id\":\"%s%llu\",\"object\":\"%s\",\"created\":%lld,\"model\":%s,",
	    chat ? "chatcmpl-" : "cmpl-", (unsigned long long)s->id,
	    chat ? "chat.completion.chunk" : "text_completion", s->created, models_json(s->model));
}

/* The body of the current event after its head; returns its length as snprintf does. */
static int event_tail(const struct stream *s, char *out, size_t cap)
{
	const char *reason = s->length_limited ? "length" : "stop";
	unsigned k = s->sent + 1, total = s->prompt_tokens + s->tokens;
	bool chat = s->kind == CALL_CHAT;

	switch (s->phase) {
	case STREAM_TOKENS:
		if (chat)
			return snprintf(
			    out, cap,
			    "\"choices\":[{\"index\":0,\"delta\":{%s\"content\":\"%stok%u\"},"
			    "\"logprobs\":null,\"finish_reason\":null}]}\n\n",
			    k == 1 ? "\"role\":\"assistant\"," : "", k == 1 ? "" : " ", k);
		return snprintf(out, cap,
				"\"choices\":[{\"text\":\"%stok%u\",\"index\":0,\"logprobs\":null,"
				"\"finish_reason\":null}]}\n\n",
				k == 1 ? "" : " ", k);
	case STREAM_FINAL:
		if (chat)
			return snprintf(out, cap,
					"\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
					"\"finish_reason\":\"%s\"}]}\n\n",
					reason);
		return snprintf(out, cap,
				"\"choices\":[{\"text\":\"\",\"index\":0,\"logprobs\":null,"
				"\"finish_reason\":\"%s\"}]}\n\n",
				reason);
	default:
		return snprintf(out, cap,
				"\"choices\":[],\"usage\":{\"prompt_tokens\":%u,"
				"\"completion_tokens\":%u,\"total_tokens\":%u}}\n\n",
				s->prompt_tokens, s->tokens, total);
	}
}

/* Renders the current event into OUT (EVENT_MAX bytes); its length, or -1. */
static int event_render(const struct stream *s, char *out)
{
	int head, tail;

	if (s->phase == STREAM_DONE)
		return snprintf(out, EVENT_MAX, "data: [DONE]\n\n");
	head = event_head(s, out, EVENT_MAX);
	if (head < 0 || head >= EVENT_MAX)
		return -1;
	tail = event_tail(s, out + head, EVENT_MAX - (size_t)head);
	if (tail < 0 || tail >= EVENT_MAX - head)
		return -1;
	return head + tail;
}

/* Moves past the event just emitted. */
static void event_next(struct stream *s, uint64_t now_ns, unsigned *tokens)
{
	switch (s->phase) {
	case STREAM_TOKENS:
		s->sent++;
		(*tokens)++;
		/* The schedule counts from the first token, not from each late wake-up. */
		s->next_due_ns = (s->next_due_ns ? s->next_due_ns : now_ns) + s->token_ns;
		if (s->sent == s->tokens)
			s->phase = STREAM_FINAL;
		break;
	case STREAM_FINAL:
		s->phase = s->include_usage ? STREAM_USAGE : STREAM_DONE;
		break;
	case STREAM_USAGE:
		s->phase = STREAM_DONE;
		break;
	default:
		s->phase = STREAM_OVER;
		break;
	}
}

/* Whether the current event may go now, or why not (a STREAM_FILL_* value). */
static int event_ready(const struct stream *s, uint64_t now_ns)
{
	if (s->phase != STREAM_TOKENS || s->offset)
		return 0;
	if (s->disconnect_after >= 0 && s->sent >= (unsigned)s->disconnect_after)
		return STREAM_FILL_ABORT;
	if (s->next_due_ns > now_ns + STREAM_EARLY_NS)
		return STREAM_FILL_WAIT;
	return 0;
}

ssize_t stream_fill(struct stream *s, char *buf, size_t max, uint64_t now_ns, unsigned *tokens)
{
	char event[EVENT_MAX];
	size_t n = 0;

	*tokens = 0;
	while (s->phase != STREAM_OVER && n < max) {
		int why = event_ready(s, now_ns);
		int len;
		size_t part;

		if (why)
			return n ? (ssize_t)n : why;
		len = event_render(s, event);
		if (len < 0)
			return STREAM_FILL_ABORT;
		part = (size_t)len - s->offset;
		if (part > max - n)
			part = max - n;
		memcpy(buf + n, event + s->offset, part);
		n += part;
		s->offset += (unsigned)part;
		if (s->offset < (unsigned)len)
			break;
		s->offset = 0;
		event_next(s, now_ns, tokens);
	}
	return n ? (ssize_t)n : STREAM_FILL_END;
}
