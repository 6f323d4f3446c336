/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * SSE parser (userspace/sse.c): every blank-line style ends an event; raw bytes come back
 * unchanged and payloads are the joined "data:" lines; a stream cut at any byte (or fed a
 * byte at a time) gives exactly the events of the whole stream; "[DONE]" is noticed; an
 * oversize event is refused; chunk inspection reads usage and counts content pieces, and
 * malformed chunks change nothing.
 */
#include <errno.h>

#include "sse.h"
#include "tg_test.h"

#define MAX_EVENTS 16

struct event {
	const char *raw;
	const char *data;
};

struct sink {
	size_t n;
	char *raw[MAX_EVENTS];
	char *data[MAX_EVENTS];
	size_t raw_len[MAX_EVENTS];
	size_t data_len[MAX_EVENTS];
	int stop_after; /* return -ECANCELED once this many events arrived; 0 = never */
};

static char *dup_bytes(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static int sink_event(void *ctx, const char *raw, size_t raw_len, const char *data, size_t data_len)
{
	struct sink *s = ctx;

	if (data[data_len] != '\0' || s->n >= MAX_EVENTS)
		return -EPROTO;
	s->raw[s->n] = dup_bytes(raw, raw_len);
	s->data[s->n] = dup_bytes(data, data_len);
	s->raw_len[s->n] = raw_len;
	s->data_len[s->n] = data_len;
	s->n++;
	if (s->stop_after && s->n == (size_t)s->stop_after)
		return -ECANCELED;
	return 0;
}

static void sink_clear(struct sink *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->raw[i]);
		free(s->data[i]);
	}
	memset(s, 0, sizeof(*s));
}

/* Feeds in as pieces cut at the given points (ascending, inside the input). */
static int feed_cut(struct sse_parser *p, const char *in, const size_t *cuts, size_t ncuts,
		    struct sink *s)
{
	size_t len = strlen(in), at = 0;

	for (size_t i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : len;
		int err = sse_feed(p, in + at, to - at, sink_event, s);

		if (err)
			return err;
		at = to;
	}
	return 0;
}

/* True if the sink holds exactly the expected events. */
static int sink_matches(const struct sink *s, const struct event *want, size_t n)
{
	if (s->n != n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (s->raw_len[i] != strlen(want[i].raw) || strcmp(s->raw[i], want[i].raw) ||
		    s->data_len[i] != strlen(want[i].data) || strcmp(s->data[i], want[i].data))
			return 0;
	}
	return 1;
}

static void sink_dump(const struct sink *s)
{
	for (size_t i = 0; i < s->n; i++)
		printf("#     event %zu: raw %zu bytes, data \"%s\"\n", i, s->raw_len[i],
		       s->data[i]);
}

static const struct {
	const char *name;
	const char *in;
	size_t n;
	struct event ev[4];
} streams[] = {
    {"LF LF", "data: a\n\ndata: b\n\n", 2, {{"data: a\n\n", "a"}, {"data: b\n\n", "b"}}},
    {"CRLF CRLF",
     "data: a\r\n\r\ndata: b\r\n\r\n",
     2,
     {{"data: a\r\n\r\n", "a"}, {"data: b\r\n\r\n", "b"}}},
    {"CR CR", "data: a\r\rdata: b\r\r", 2, {{"data: a\r\r", "a"}, {"data: b\r\r", "b"}}},
    {"CRLF then LF",
     "data: a\r\n\ndata: b\r\n\n",
     2,
     {{"data: a\r\n\n", "a"}, {"data: b\r\n\n", "b"}}},
    {"LF then CRLF",
     "data: a\n\r\ndata: b\n\r\n",
     2,
     {{"data: a\n\r\n", "a"}, {"data: b\n\r\n", "b"}}},
    {"CRLF then lone CR",
     "data: a\r\n\rdata: b\r\n\r\n",
     2,
     {{"data: a\r\n\r", "a"}, {"data: b\r\n\r\n", "b"}}},
    {"multi-line data joined by LF",
     "data: a\ndata:b\r\ndata:  c\n\n",
     1,
     {{"data: a\ndata:b\r\ndata:  c\n\n", "a\nb\n c"}}},
    {"comments and other fields stay in raw only",
     "event: delta\nid: 7\nretry: 10\n: note\ndata: {}\n\n",
     1,
     {{"event: delta\nid: 7\nretry: 10\n: note\ndata: {}\n\n", "{}"}}},
    {"comment-only keep-alive still comes out",
     ": ping\n\ndata: x\n\n",
     2,
     {{": ping\n\n", ""}, {"data: x\n\n", "x"}}},
    {"bare and empty data lines",
     "data\n\ndata:\ndata:\n\ndatax: 1\ndata: y\n\n",
     3,
     {{"data\n\n", ""}, {"data:\ndata:\n\n", "\n"}, {"datax: 1\ndata: y\n\n", "y"}}},
    {"a stray blank line is an event of its own",
     "\ndata: a\n\n\r\n",
     3,
     {{"\n", ""}, {"data: a\n\n", "a"}, {"\r\n", ""}}},
    {"CR CR does not wait for a LF",
     "data: a\r\r\ndata: b\n\n",
     3,
     {{"data: a\r\r", "a"}, {"\n", ""}, {"data: b\n\n", "b"}}},
    {"an unfinished event waits", "data: a\n\ndata: b\n", 1, {{"data: a\n\n", "a"}}},
    {"OpenAI chunk then [DONE]",
     "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: [DONE]\n\n",
     2,
     {{"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n",
       "{\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}"},
      {"data: [DONE]\n\n", "[DONE]"}}},
};

static void boundary_styles_whole_stream(void)
{
	for (size_t i = 0; i < TG_NCASES(streams); i++) {
		struct sse_parser p;
		struct sink s = {0};

		sse_init(&p);
		TG_CHECK_INT(feed_cut(&p, streams[i].in, NULL, 0, &s), 0);
		if (!sink_matches(&s, streams[i].ev, streams[i].n)) {
			TG_CHECK(!streams[i].name);
			printf("#   stream \"%s\":\n", streams[i].name);
			sink_dump(&s);
		}
		sink_clear(&s);
		sse_free(&p);
	}
}

static void every_cut_gives_the_same_events(void)
{
	for (size_t i = 0; i < TG_NCASES(streams); i++) {
		size_t len = strlen(streams[i].in);

		for (size_t k = 0; k <= len; k++) {
			struct sse_parser p;
			struct sink s = {0};

			sse_init(&p);
			TG_CHECK_INT(feed_cut(&p, streams[i].in, &k, 1, &s), 0);
			if (!sink_matches(&s, streams[i].ev, streams[i].n)) {
				TG_CHECK(!streams[i].name);
				printf("#   stream \"%s\" cut at %zu:\n", streams[i].name, k);
				sink_dump(&s);
			}
			sink_clear(&s);
			sse_free(&p);
		}
	}
}

static void one_byte_at_a_time_and_double_cuts(void)
{
	size_t cuts[2048];

	for (size_t i = 0; i < TG_NCASES(streams); i++) {
		size_t len = strlen(streams[i].in);
		struct sse_parser p;
		struct sink s = {0};

		for (size_t k = 1; k < len; k++)
			cuts[k - 1] = k;
		sse_init(&p);
		TG_CHECK_INT(feed_cut(&p, streams[i].in, cuts, len ? len - 1 : 0, &s), 0);
		TG_CHECK(sink_matches(&s, streams[i].ev, streams[i].n));
		sink_clear(&s);
		sse_free(&p);
		for (size_t a = 0; a <= len; a++) {
			for (size_t b = a; b <= len; b++) {
				size_t two[2] = {a, b};

				sse_init(&p);
				TG_CHECK_INT(feed_cut(&p, streams[i].in, two, 2, &s), 0);
				TG_CHECK(sink_matches(&s, streams[i].ev, streams[i].n));
				sink_clear(&s);
				sse_free(&p);
			}
		}
	}
}

static void held_cr_is_decided_by_the_next_byte(void)
{
	struct sse_parser p;
	struct sink s = {0};

	sse_init(&p);
	TG_CHECK_INT(sse_feed(&p, "data: a\r\n\r", 10, sink_event, &s), 0);
	TG_CHECK_INT(s.n, 0); /* CR or CRLF? not known yet */
	TG_CHECK_INT(sse_feed(&p, "x", 1, sink_event, &s), 0);
	TG_REQUIRE(s.n == 1);
	TG_CHECK_STR(s.raw[0], "data: a\r\n\r");
	TG_CHECK_STR(s.data[0], "a");
	TG_CHECK_INT(p.len, 1); /* "x" starts the next event */
	sink_clear(&s);
	sse_free(&p);
}

static void done_is_detected(void)
{
	static const struct {
		const char *in;
		int done;
	} rows[] = {
	    {"data: [DONE]\n\n", 1},  {"data:[DONE]\r\n\r\n", 1}, {"data: {\"x\":1}\n\n", 0},
	    {"data: [DONE] \n\n", 0}, {"data: [DONE]\n", 0}, /* not complete yet */
	    {": [DONE]\n\n", 0},
	};

	for (size_t i = 0; i < TG_NCASES(rows); i++) {
		struct sse_parser p;
		struct sink s = {0};

		sse_init(&p);
		TG_CHECK_INT(sse_feed(&p, rows[i].in, strlen(rows[i].in), sink_event, &s), 0);
		if (p.done != (rows[i].done != 0))
			TG_CHECK(!rows[i].in);
		sink_clear(&s);
		sse_free(&p);
	}
}

/* Builds "data: xxx...x\n\n" of exactly total bytes (total >= 8). */
static char *event_of_size(size_t total)
{
	char *e = malloc(total + 1);

	if (!e)
		return NULL;
	memcpy(e, "data: ", 6);
	memset(e + 6, 'x', total - 8);
	memcpy(e + total - 2, "\n\n", 3);
	return e;
}

static void oversize_event_is_refused(void)
{
	char *fit = event_of_size(SSE_EVENT_MAX), *big = event_of_size(SSE_EVENT_MAX + 1), *both;
	struct sse_parser p;
	struct sink s = {0};

	TG_REQUIRE(fit && big);
	sse_init(&p);
	/* exactly the bound passes, whole or in two pieces */
	TG_CHECK_INT(sse_feed(&p, fit, SSE_EVENT_MAX, sink_event, &s), 0);
	TG_CHECK_INT(sse_feed(&p, fit, 1000, sink_event, &s), 0);
	TG_CHECK_INT(sse_feed(&p, fit + 1000, SSE_EVENT_MAX - 1000, sink_event, &s), 0);
	TG_CHECK_INT(s.n, 2);
	TG_CHECK(s.n == 2 && s.data_len[1] == SSE_EVENT_MAX - 8);
	sink_clear(&s);
	/* one byte more fails, whole or growing piece by piece, and delivers nothing */
	TG_CHECK_INT(sse_feed(&p, big, SSE_EVENT_MAX + 1, sink_event, &s), -EMSGSIZE);
	TG_CHECK_INT(p.len, 0);
	TG_CHECK_INT(sse_feed(&p, big, SSE_EVENT_MAX - 1, sink_event, &s), 0);
	TG_CHECK_INT(sse_feed(&p, big + SSE_EVENT_MAX - 1, 2, sink_event, &s), -EMSGSIZE);
	TG_CHECK_INT(s.n, 0);
	/* events ahead of the oversize one in the same piece are still delivered */
	sse_free(&p);
	sse_init(&p);
	both = malloc(9 + SSE_EVENT_MAX + 1);
	TG_REQUIRE(both);
	memcpy(both, "data: a\n\n", 9);
	memcpy(both + 9, big, SSE_EVENT_MAX + 1);
	TG_CHECK_INT(sse_feed(&p, both, 9 + SSE_EVENT_MAX + 1, sink_event, &s), -EMSGSIZE);
	TG_CHECK_INT(s.n, 1);
	sink_clear(&s);
	sse_free(&p);
	free(both);
	free(fit);
	free(big);
}

static void callback_error_stops_the_feed(void)
{
	struct sse_parser p;
	struct sink s = {.stop_after = 1};
	const char *in = "data: a\n\ndata: b\n\n";

	sse_init(&p);
	TG_CHECK_INT(sse_feed(&p, in, strlen(in), sink_event, &s), -ECANCELED);
	TG_CHECK_INT(s.n, 1);
	sink_clear(&s);
	sse_free(&p);
	sse_free(NULL);
}

static const struct sse_usage start = {true, 1, 2, false, 5};

static const struct {
	const char *name;
	const char *json;
	int ret;
	struct sse_usage want;
} chunks[] = {
    {"usage chunk",
     "{\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":{"
     "\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15}}",
     0,
     {true, 12, 3, false, 6}},
    {"usage-only chunk",
     "{\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,"
     "\"completion_tokens\":7}}",
     0,
     {true, 5, 7, true, 5}},
    {"empty choices without usage is not usage-only",
     "{\"choices\":[]}",
     0,
     {true, 1, 2, false, 5}},
    {"content counting: non-empty delta.content and text",
     "{\"choices\":[{\"delta\":{\"content\":\"a\"}},{\"delta\":{\"content\":\"\"}},"
     "{\"delta\":{\"role\":\"assistant\"}},{\"text\":\"b\"},{\"delta\":{\"content\":null}},"
     "{\"text\":\"\"},{\"delta\":\"c\"}]}",
     0,
     {true, 1, 2, false, 7}},
    {"usage null changes nothing",
     "{\"choices\":[{\"delta\":{\"content\":\"x\"}}],"
     "\"usage\":null}",
     0,
     {true, 1, 2, false, 6}},
    {"a missing count is 0",
     "{\"usage\":{\"prompt_tokens\":9,\"total_tokens\":9}}",
     0,
     {true, 9, 0, false, 5}},
    {"non-number usage ignored",
     "{\"usage\":{\"prompt_tokens\":\"12\",\"completion_tokens\":3}}",
     0,
     {true, 1, 2, false, 5}},
    {"negative usage ignored",
     "{\"usage\":{\"prompt_tokens\":-1,\"completion_tokens\":3}}",
     0,
     {true, 1, 2, false, 5}},
    {"fractional usage ignored",
     "{\"usage\":{\"prompt_tokens\":1.5,\"completion_tokens\":3}}",
     0,
     {true, 1, 2, false, 5}},
    {"usage without counts ignored", "{\"usage\":{}}", 0, {true, 1, 2, false, 5}},
    {"[DONE] sets nothing", "[DONE]", 0, {true, 1, 2, false, 5}},
    {"malformed JSON",
     "{\"choices\":[{\"delta\":{\"content\":\"a\"}}",
     -EINVAL,
     {true, 1, 2, false, 5}},
    {"trailing garbage", "{\"usage\":{\"prompt_tokens\":3}} x", -EINVAL, {true, 1, 2, false, 5}},
    {"not an object", "[{\"usage\":{\"prompt_tokens\":3}}]", -EINVAL, {true, 1, 2, false, 5}},
    {"an object cut after a comma",
     "{\"usage\":{\"prompt_tokens\":3},",
     -EINVAL,
     {true, 1, 2, false, 5}},
    {"empty payload", "", -EINVAL, {true, 1, 2, false, 5}},
    {"trailing whitespace is fine",
     "{\"usage\":{\"completion_tokens\":4}}\r\n ",
     0,
     {true, 0, 4, false, 5}},
};

static int usage_equal(const struct sse_usage *a, const struct sse_usage *b)
{
	return a->found == b->found && a->prompt_tokens == b->prompt_tokens &&
	       a->completion_tokens == b->completion_tokens && a->usage_only == b->usage_only &&
	       a->content_pieces == b->content_pieces;
}

static void chunk_inspection_table(void)
{
	for (size_t i = 0; i < TG_NCASES(chunks); i++) {
		struct sse_usage u = start;
		int ret = sse_chunk_inspect(chunks[i].json, strlen(chunks[i].json), &u);

		if (ret != chunks[i].ret || !usage_equal(&u, &chunks[i].want)) {
			TG_CHECK(!chunks[i].name);
			printf("#   \"%s\": ret %d, found %d %" PRIu64 "/%" PRIu64
			       " usage_only %d pieces %" PRIu64 "\n",
			       chunks[i].name, ret, u.found, u.prompt_tokens, u.completion_tokens,
			       u.usage_only, u.content_pieces);
		}
	}
}

static void inspect_reads_only_len_bytes_and_last_usage_wins(void)
{
	const char *s = "{\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}garbage";
	struct sse_usage u = {0};

	TG_CHECK_INT(sse_chunk_inspect(s, strlen(s) - 7, &u), 0);
	TG_CHECK(u.found && u.prompt_tokens == 3 && u.completion_tokens == 4);
	s = "{\"choices\":[],\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":40}}";
	TG_CHECK_INT(sse_chunk_inspect(s, strlen(s), &u), 0);
	TG_CHECK(u.found && u.prompt_tokens == 30 && u.completion_tokens == 40 && u.usage_only);
	TG_CHECK_INT(sse_chunk_inspect("[DONE]", 6, &u), 0);
	TG_CHECK_INT(u.prompt_tokens, 30);
}

static const struct tg_case cases[] = {
    {"every blank-line style, fields, comments, multi-line data", boundary_styles_whole_stream},
    {"a stream cut at any byte gives the same events", every_cut_gives_the_same_events},
    {"one byte at a time and every pair of cuts give the same events",
     one_byte_at_a_time_and_double_cuts},
    {"a CR ending a blank line after CRLF waits for one more byte",
     held_cr_is_decided_by_the_next_byte},
    {"data: [DONE] is detected, look-alikes are not", done_is_detected},
    {"an event over SSE_EVENT_MAX is -EMSGSIZE, one at the bound passes",
     oversize_event_is_refused},
    {"a callback error stops the feed", callback_error_stops_the_feed},
    {"chunk inspection: usage, usage-only, content pieces, bad input", chunk_inspection_table},
    {"inspection reads len bytes only; the last usage wins",
     inspect_reads_only_len_bytes_and_last_usage_wins},
};

int main(void)
{
	return tg_run("sse", cases, TG_NCASES(cases));
}
