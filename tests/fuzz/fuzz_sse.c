/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * libFuzzer target for the SSE parser and chunk inspection (userspace/sse.c).
 *
 * Build and run (from the top of the tree):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Iuserspace \
 *     tests/fuzz/fuzz_sse.c userspace/sse.c -lcjson -o build/fuzz_sse
 *   build/fuzz_sse -max_total_time=60 -max_len=8192
 *
 * The first two input bytes seed where the stream is cut; the rest is the stream. Besides
 * memory errors under the sanitizers it checks the parser's promises and aborts if one
 * breaks: the cut stream gives exactly the events (raw and payload) of the whole stream,
 * the raw events put together are a prefix of the stream, every payload is NUL-terminated
 * and no longer than its raw event. Every payload, and the stream itself, also goes
 * through sse_chunk_inspect from an exact-size copy so that a read past len is caught.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"

struct record {
	char *buf; /* the events seen, serialised as len, raw, len, data */
	size_t len, cap;
	size_t raw_total;      /* bytes of raw events so far */
	const uint8_t *stream; /* the bytes fed, to check raw against */
	struct sse_usage usage;
};

static void record_add(struct record *r, const void *p, size_t n)
{
	if (r->len + n > r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 4096;

		while (cap < r->len + n)
			cap *= 2;
		r->buf = realloc(r->buf, cap);
		if (!r->buf)
			abort();
		r->cap = cap;
	}
	memcpy(r->buf + r->len, p, n);
	r->len += n;
}

static bool usage_eq(const struct sse_usage *a, const struct sse_usage *b)
{
	return a->found == b->found && a->prompt_tokens == b->prompt_tokens &&
	       a->completion_tokens == b->completion_tokens && a->usage_only == b->usage_only &&
	       a->content_pieces == b->content_pieces;
}

/* Inspects len bytes from an exact-size copy, so a read past len is an ASan report. */
static void inspect_exact(const void *p, size_t len, struct sse_usage *u)
{
	char *copy = malloc(len ? len : 1);
	struct sse_usage before = *u;
	int err;

	if (!copy)
		abort();
	memcpy(copy, p, len);
	err = sse_chunk_inspect(copy, len, u);
	if (err && !usage_eq(&before, u))
		abort(); /* a refused chunk must change nothing */
	if (err && err != -EINVAL)
		abort();
	free(copy);
}

static int on_event(void *ctx, const char *raw, size_t raw_len, const char *data, size_t data_len)
{
	struct record *r = ctx;

	if (data[data_len] != '\0' || data_len > raw_len || raw_len == 0 || raw_len > SSE_EVENT_MAX)
		abort();
	if (memcmp(raw, r->stream + r->raw_total, raw_len) != 0)
		abort();
	r->raw_total += raw_len;
	record_add(r, &raw_len, sizeof(raw_len));
	record_add(r, raw, raw_len);
	record_add(r, &data_len, sizeof(data_len));
	record_add(r, data, data_len);
	inspect_exact(data, data_len, &r->usage);
	return 0;
}

/* Feeds the stream cut where the xorshift sequence from seed says; returns sse_feed's error. */
static int feed(const uint8_t *s, size_t n, uint32_t seed, struct record *r, bool *done)
{
	struct sse_parser p;
	size_t at = 0;
	int err = 0;

	sse_init(&p);
	r->stream = s;
	while (at < n && !err) {
		size_t piece = n - at;

		if (seed) {
			seed ^= seed << 13;
			seed ^= seed >> 17;
			seed ^= seed << 5;
			piece = 1 + seed % (seed & 0x100 ? 4 : 64);
			if (piece > n - at)
				piece = n - at;
		}
		err = sse_feed(&p, (const char *)s + at, piece, on_event, r);
		at += piece;
	}
	*done = p.done;
	sse_free(&p);
	return err;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct record whole = {0}, cut = {0};
	struct sse_usage u = {0};
	bool done_whole, done_cut;
	uint32_t seed;
	int e1, e2;

	if (size < 2)
		return 0;
	seed = (uint32_t)data[0] << 8 | data[1] | 1u;
	data += 2;
	size -= 2;
	e1 = feed(data, size, 0, &whole, &done_whole);
	e2 = feed(data, size, seed, &cut, &done_cut);
	if (e1 != e2 || done_whole != done_cut || whole.len != cut.len ||
	    (whole.len && memcmp(whole.buf, cut.buf, whole.len) != 0) ||
	    !usage_eq(&whole.usage, &cut.usage))
		abort();
	inspect_exact(data, size, &u);
	free(whole.buf);
	free(cut.buf);
	return 0;
}
