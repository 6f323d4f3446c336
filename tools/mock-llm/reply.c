/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Non-streaming answer bodies (reply.h). Hand-built rather than through cJSON: these are on
 * the hot path of every benchmark against mock-llm, and appending a few fixed pieces is
 * several times cheaper than building and printing a tree.
 */
#include <stdio.h>
#include <string.h>

#include "models.h"
#include "reply.h"

/* Formats V in decimal at the end of B, without printf's parsing. */
static void put_uint(struct buf *b, unsigned long long v)
{
	char tmp[24];
	size_t i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	buf_append(b, tmp + i, sizeof(tmp) - i);
}

void reply_words(struct buf *b, unsigned n)
{
	for (unsigned k = 1; k <= n; k++) {
		buf_append(b, k == 1 ? "tok" : " tok", k == 1 ? 3 : 4);
		put_uint(b, k);
	}
}

static void put_usage(struct buf *b, unsigned prompt, unsigned completion, int with_completion)
{
	buf_puts(b, "\"usage\":{\"prompt_tokens\":");
	put_uint(b, prompt);
	if (with_completion) {
		buf_puts(b, ",\"completion_tokens\":");
		put_uint(b, completion);
	}
	buf_puts(b, ",\"total_tokens\":");
	put_uint(b, (unsigned long long)prompt + completion);
	buf_puts(b, "}");
}

/* The fields every completion starts with: id, object, created, model. */
static void put_head(struct buf *b, const char *prefix, const char *object, uint64_t id,
		     long long created, int model)
{
	buf_printf(b, "{\"id\":\"%s%llu\",\"object\":\"%s\",\"created\":%lld,\"model\":", prefix,
		   (unsigned long long)id, object, created);
	buf_puts(b, models_json(model));
}

static const char *finish_reason(const struct call *c)
{
	return c->length_limited ? "length" : "stop";
}

static void reply_chat(struct buf *b, const struct call *c, uint64_t id, long long created)
{
	put_head(b, "chatcmpl-", "chat.completion", id, created, c->model);
	buf_puts(b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
		    "\"content\":\"");
	reply_words(b, c->completion_tokens);
	buf_printf(b, "\"},\"logprobs\":null,\"finish_reason\":\"%s\"}],", finish_reason(c));
	put_usage(b, c->prompt_tokens, c->completion_tokens, 1);
	buf_puts(b, "}");
}

static void reply_text(struct buf *b, const struct call *c, uint64_t id, long long created)
{
	put_head(b, "cmpl-", "text_completion", id, created, c->model);
	buf_puts(b, ",\"choices\":[{\"text\":\"");
	reply_words(b, c->completion_tokens);
	buf_printf(b, "\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"%s\"}],",
		   finish_reason(c));
	put_usage(b, c->prompt_tokens, c->completion_tokens, 1);
	buf_puts(b, "}");
}

/* The vector as base64 of little-endian float32s, as OpenAI sends it when asked. */
static void put_base64(struct buf *b, const float *v, int n)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned char raw[4 * CALL_EMBEDDING_DIMS + 2] = {0};
	size_t len = (size_t)n * 4;

	for (int i = 0; i < n; i++) {
		uint32_t u;

		memcpy(&u, &v[i], 4);
		for (int k = 0; k < 4; k++)
			raw[4 * i + k] = (unsigned char)(u >> (8 * k));
	}
	buf_puts(b, "\"");
	for (size_t i = 0; i < len; i += 3) {
		unsigned w = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
		char q[4] = {abc[w >> 18], abc[(w >> 12) & 63], abc[(w >> 6) & 63], abc[w & 63]};

		if (i + 1 >= len)
			q[2] = '=';
		if (i + 2 >= len)
			q[3] = '=';
		buf_append(b, q, 4);
	}
	buf_puts(b, "\"");
}

static void reply_embeddings(struct buf *b, const struct call *c)
{
	float v[CALL_EMBEDDING_DIMS];

	buf_puts(b, "{\"object\":\"list\",\"data\":[");
	for (unsigned i = 0; i < c->n_inputs; i++) {
		call_embedding(c->input_hashes[i], v);
		buf_printf(
		    b, "%s{\"object\":\"embedding\",\"index\":%u,\"embedding\":", i ? "," : "", i);
		if (c->base64) {
			put_base64(b, v, CALL_EMBEDDING_DIMS);
		} else {
			for (int k = 0; k < CALL_EMBEDDING_DIMS; k++)
				buf_printf(b, "%c%.8g", k ? ',' : '[', (double)v[k]);
			buf_puts(b, "]");
		}
		buf_puts(b, "}");
	}
	buf_puts(b, "],\"model\":");
	buf_puts(b, models_json(c->model));
	buf_puts(b, ",");
	put_usage(b, c->prompt_tokens, 0, 0);
	buf_puts(b, "}");
}

void reply_call(struct buf *b, const struct call *c, uint64_t id, long long created)
{
	switch (c->kind) {
	case CALL_CHAT:
		reply_chat(b, c, id, created);
		break;
	case CALL_COMPLETION:
		reply_text(b, c, id, created);
		break;
	case CALL_EMBEDDING:
		reply_embeddings(b, c);
		break;
	}
}

void reply_model(struct buf *b, int model)
{
	buf_puts(b, "{\"id\":");
	buf_puts(b, models_json(model));
	buf_printf(b, ",\"object\":\"model\",\"created\":%d,\"owned_by\":\"mock-llm\"}",
		   REPLY_MODEL_CREATED);
}

void reply_models(struct buf *b)
{
	buf_puts(b, "{\"object\":\"list\",\"data\":[");
	for (size_t i = 0; i < models_count(); i++) {
		if (i)
			buf_puts(b, ",");
		reply_model(b, (int)i);
	}
	buf_puts(b, "]}");
}

void reply_error(struct buf *b, const char *message, const char *type, const char *code,
		 const char *param)
{
	buf_puts(b, "{\"error\":{\"message\":");
	buf_json_string(b, message);
	buf_puts(b, ",\"type\":");
	buf_json_string(b, type);
	buf_puts(b, ",\"param\":");
	if (param)
		buf_json_string(b, param);
	else
		buf_puts(b, "null");
	buf_puts(b, ",\"code\":");
	if (code)
		buf_json_string(b, code);
	else
		buf_puts(b, "null");
	buf_puts(b, "}}");
}
