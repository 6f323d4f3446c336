/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The incremental server-sent events parser (see sse.h). Bytes of the event being
 * assembled wait in p->buf; an event that arrives whole in one piece is handed to the
 * callback straight from the caller's bytes, without a copy. The event boundary decision at
 * any byte depends only on that byte and its neighbours inside the event, so however the
 * stream is cut into pieces the same events come out, and the concatenation of every raw
 * event is exactly the stream that went in.
 *
 * Lines end at CRLF, LF or a lone CR, as the SSE specification says; an event ends at the
 * first empty line. The one ambiguous spot is a CR that ends an empty line: it may be the
 * first half of a CRLF. After LF or CRLF line ends (the streams that exist) we look one byte
 * further, waiting for the next piece if the CR was the last byte so far; after a CR line
 * end (a CR-only stream) the event ends at once, so such a stream's last event never waits
 * for a byte that will not come. An empty line with no line before it is passed on as an
 * event of its own (raw "\n", empty data) so that no byte of the stream is lost or held.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "sse.h"

#define SSE_STACK_DATA	 4096	     /* payloads up to this size are built on the stack */
#define SSE_KEEP_CAP_MAX (64 * 1024) /* a bigger buffer is freed after its event */

/* The event assembled so far (a) followed by the new bytes (b), read as one string. */
struct sse_view {
	const char *a;
	size_t alen;
	const char *b;
	size_t blen;
};

static inline char sse_at(const struct sse_view *v, size_t i)
{
	return i < v->alen ? v->a[i] : v->b[i - v->alen];
}

/*
 * Returns the length of the event that starts at index 0 of v, scanning from index start
 * (every byte before it is known not to end the event), or 0 if it is not complete yet.
 */
static size_t sse_event_end(const struct sse_view *v, size_t start)
{
	size_t total = v->alen + v->blen;

	for (size_t i = start; i < total; i++) {
		char c = sse_at(v, i), prev = i ? sse_at(v, i - 1) : '\0';

		if (c == '\n') {
			/* the LF of a CRLF never ends an event here: its CR decided already */
			if (i == 0 || prev == '\n')
				return i + 1;
			continue;
		}
		if (c != '\r')
			continue;
		if (prev == '\r')
			return i + 1;
		if (i == 0 || prev == '\n') {
			if (i + 1 == total)
				return 0;
			return sse_at(v, i + 1) == '\n' ? i + 2 : i + 1;
		}
	}
	return 0;
}

/* Appends one line's contribution (its value and a '\n' if it is a data line) at out[o]. */
static size_t sse_line_data(const char *line, size_t len, char *out, size_t o)
{
	const char *val;
	size_t vlen;

	if (len < 4 || memcmp(line, "data", 4) != 0)
		return o;
	if (len == 4) {
		vlen = 0; /* "data" alone: a field with an empty value */
		val = line;
	} else if (line[4] == ':') {
		val = line + 5;
		vlen = len - 5;
		if (vlen > 0 && val[0] == ' ') {
			val++;
			vlen--;
		}
	} else {
		return o; /* another field whose name starts with "data" */
	}
	memcpy(out + o, val, vlen);
	o += vlen;
	out[o++] = '\n';
	return o;
}

/*
 * Builds the payload of one complete event into out (at least len + 1 bytes: every data
 * line contributes no more than its own length plus terminator). Returns its length.
 */
static size_t sse_event_data(const char *raw, size_t len, char *out)
{
	size_t i = 0, o = 0;

	while (i < len) {
		size_t s = i;

		while (i < len && raw[i] != '\r' && raw[i] != '\n')
			i++;
		o = sse_line_data(raw + s, i - s, out, o);
		if (i < len && raw[i] == '\r' && i + 1 < len && raw[i + 1] == '\n')
			i++;
		i++;
	}
	if (o > 0)
		o--; /* the '\n' after the last data line is not part of the payload */
	out[o] = '\0';
	return o;
}

/* Hands one complete event to fn; notes "[DONE]". */
static int sse_dispatch(struct sse_parser *p, const char *raw, size_t len, sse_event_fn fn,
			void *ctx)
{
	char stack[SSE_STACK_DATA], *data = stack;
	size_t dlen;
	int err = 0;

	if (len + 1 > sizeof(stack)) {
		data = malloc(len + 1);
		if (!data)
			return -ENOMEM;
	}
	dlen = sse_event_data(raw, len, data);
	if (dlen == 6 && memcmp(data, "[DONE]", 6) == 0)
		p->done = true;
	if (fn)
		err = fn(ctx, raw, len, data, dlen);
	if (data != stack)
		free(data);
	return err < 0 ? err : 0;
}

/* Appends n bytes to the event being assembled; the caller checked the size bound. */
static int sse_keep(struct sse_parser *p, const char *buf, size_t n)
{
	if (p->len + n > p->cap) {
		size_t cap = p->cap ? p->cap : 1024;
		char *nb;

		while (cap < p->len + n)
			cap *= 2;
		if (cap > SSE_EVENT_MAX)
			cap = SSE_EVENT_MAX;
		nb = realloc(p->buf, cap);
		if (!nb)
			return -ENOMEM;
		p->buf = nb;
		p->cap = cap;
	}
	memcpy(p->buf + p->len, buf, n);
	p->len += n;
	return 0;
}

/* Forgets the event being assembled, releasing a buffer one big event left behind. */
static void sse_reset(struct sse_parser *p)
{
	p->len = 0;
	if (p->cap > SSE_KEEP_CAP_MAX) {
		free(p->buf);
		p->buf = NULL;
		p->cap = 0;
	}
}

void sse_init(struct sse_parser *p)
{
	memset(p, 0, sizeof(*p));
}

void sse_free(struct sse_parser *p)
{
	if (!p)
		return;
	free(p->buf);
	p->buf = NULL;
	p->len = 0;
	p->cap = 0;
}

/*
 * After an error (-EMSGSIZE, -ENOMEM or the callback's) the partial event is dropped and
 * the stream is out of step: the caller should abandon it. fn must not feed the same
 * parser: raw may point into p->buf.
 */
int sse_feed(struct sse_parser *p, const char *buf, size_t len, sse_event_fn fn, void *ctx)
{
	while (len > 0) {
		/* scanning stops one byte past the bound: enough to tell an oversize event */
		size_t room = SSE_EVENT_MAX + 1 - p->len;
		struct sse_view v = {p->buf, p->len, buf, len < room ? len : room};
		size_t end = sse_event_end(&v, p->len ? p->len - 1 : 0), take;
		const char *raw = buf;
		int err;

		if (end == 0 || end > SSE_EVENT_MAX) {
			if (end == 0 && p->len + len <= SSE_EVENT_MAX)
				return sse_keep(p, buf, len);
			sse_reset(p);
			return -EMSGSIZE;
		}
		take = end - p->len;
		if (p->len > 0) {
			err = sse_keep(p, buf, take);
			if (err)
				return err;
			raw = p->buf;
		}
		err = sse_dispatch(p, raw, end, fn, ctx);
		sse_reset(p);
		if (err)
			return err;
		buf += take;
		len -= take;
	}
	return 0;
}

/* Reads a token count: a whole number >= 0 that a double holds exactly. */
static bool sse_token_count(const cJSON *n, uint64_t *out)
{
	double d;

	if (!cJSON_IsNumber(n))
		return false;
	d = n->valuedouble;
	if (!(d >= 0 && d <= 9007199254740992.0) || (double)(uint64_t)d != d)
		return false;
	*out = (uint64_t)d;
	return true;
}

/*
 * Takes "usage" when it is an object with at least one of the two counts and each count
 * present is valid (a missing one is 0); anything else is ignored, and the caller falls
 * back to its estimate. Returns true if usage was taken.
 */
static bool sse_usage_read(const cJSON *root, struct sse_usage *u)
{
	const cJSON *usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
	const cJSON *pt, *ct;
	uint64_t prompt = 0, completion = 0;

	if (!cJSON_IsObject(usage))
		return false;
	pt = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens");
	ct = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
	if ((!pt && !ct) || (pt && !sse_token_count(pt, &prompt)) ||
	    (ct && !sse_token_count(ct, &completion)))
		return false;
	u->found = true;
	u->prompt_tokens = prompt;
	u->completion_tokens = completion;
	return true;
}

static bool sse_nonempty_string(const cJSON *s)
{
	return cJSON_IsString(s) && s->valuestring && s->valuestring[0] != '\0';
}

/* Counts the non-empty content strings of choices[]; true if choices is an empty array. */
static bool sse_choices_read(const cJSON *root, struct sse_usage *u)
{
	const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
	const cJSON *ch;

	if (!cJSON_IsArray(choices))
		return false;
	cJSON_ArrayForEach(ch, choices)
	{
		const cJSON *delta = cJSON_GetObjectItemCaseSensitive(ch, "delta");

		if (cJSON_IsObject(delta) &&
		    sse_nonempty_string(cJSON_GetObjectItemCaseSensitive(delta, "content")))
			u->content_pieces++;
		if (sse_nonempty_string(cJSON_GetObjectItemCaseSensitive(ch, "text")))
			u->content_pieces++;
	}
	return choices->child == NULL;
}

/* Parses exactly len bytes of text as one JSON object; NULL if it is anything else. */
static cJSON *sse_parse_object(const char *text, size_t len)
{
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);

	if (!root)
		return NULL;
	/* cJSON stops after the first value: anything but whitespace after it is malformed */
	while (end < text + len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
		end++;
	if (end != text + len || !cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

int sse_chunk_inspect(const char *data, size_t len, struct sse_usage *u)
{
	char stack[SSE_STACK_DATA], *text = stack;
	struct sse_usage next = *u;
	cJSON *root;
	bool has_usage, no_choices;

	if (len == 6 && memcmp(data, "[DONE]", 6) == 0)
		return 0;
	/*
	 * cJSON 1.7.15 as released reads one byte past len on input that ends inside an
	 * object (cJSON #800, CVE-2023-53154; fixed in 1.7.18 and in Debian's 1.7.15-1+deb12u3):
	 * a NUL-terminated copy makes that byte ours whichever build is linked.
	 */
	if (len + 1 > sizeof(stack)) {
		text = malloc(len + 1);
		if (!text)
			return -ENOMEM;
	}
	memcpy(text, data, len);
	text[len] = '\0';
	root = sse_parse_object(text, len);
	if (text != stack)
		free(text);
	if (!root)
		return -EINVAL;
	has_usage = sse_usage_read(root, &next);
	no_choices = sse_choices_read(root, &next);
	if (has_usage && no_choices)
		next.usage_only = true;
	*u = next;
	cJSON_Delete(root);
	return 0;
}
