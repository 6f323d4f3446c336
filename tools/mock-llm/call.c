/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Parsing and validating /v1 request bodies, and the token rule (call.h). The only file
 * that includes cJSON for the API side. Error messages follow OpenAI's wording where a
 * client might show them; the status, type, code and param are what tests compare.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "call.h"
#include "models.h"

static int call_fail(struct call_error *err, unsigned status, const char *code, const char *param,
		     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int call_fail(struct call_error *err, unsigned status, const char *code, const char *param,
		     const char *fmt, ...)
{
	va_list ap;

	err->status = status;
	err->type = "invalid_request_error";
	err->code = code;
	err->param = param;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

unsigned call_text_tokens(size_t len)
{
	return (unsigned)((len + 3) / 4);
}

static uint64_t fnv1a64(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Newton's method, so the binary needs no libm; S is in (0, CALL_EMBEDDING_DIMS]. */
static double root_of(double s)
{
	double x = 1.0;

	for (int i = 0; i < 32; i++)
		x = 0.5 * (x + s / x);
	return x;
}

void call_embedding(uint64_t input_hash, float out[CALL_EMBEDDING_DIMS])
{
	double v[CALL_EMBEDDING_DIMS], sum = 0.0, norm;
	uint64_t state = input_hash;

	for (int i = 0; i < CALL_EMBEDDING_DIMS; i++) {
		/* 53 random bits to [-1, 1) */
		v[i] = (double)(splitmix64(&state) >> 11) / 4503599627370496.0 - 1.0;
		sum += v[i] * v[i];
	}
	norm = sum > 1e-12 ? root_of(sum) : 1.0;
	for (int i = 0; i < CALL_EMBEDDING_DIMS; i++)
		out[i] = (float)(v[i] / norm);
}

/* An optional boolean member: absent or null is false; any other type is a 400. */
static int get_bool(const cJSON *obj, const char *name, bool *out, struct call_error *err)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);

	*out = false;
	if (!item || cJSON_IsNull(item))
		return 0;
	if (!cJSON_IsBool(item))
		return call_fail(err, 400, NULL, name, "Invalid type for '%s': expected a boolean.",
				 name);
	*out = cJSON_IsTrue(item);
	return 0;
}

/* Text tokens of one chat message content: a string, or an array of parts with "text". */
static int content_tokens(const cJSON *content, unsigned *tokens, struct call_error *err)
{
	const cJSON *part;

	if (!content || cJSON_IsNull(content))
		return 0;
	if (cJSON_IsString(content)) {
		*tokens += call_text_tokens(strlen(content->valuestring));
		return 0;
	}
	if (!cJSON_IsArray(content))
		return call_fail(
		    err, 400, NULL, "messages",
		    "Invalid 'messages': content must be a string or an array of parts.");
	cJSON_ArrayForEach(part, content)
	{
		const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");

		if (cJSON_IsString(text))
			*tokens += call_text_tokens(strlen(text->valuestring));
	}
	return 0;
}

static int parse_messages(const cJSON *root, struct call *c, struct call_error *err)
{
	const cJSON *messages = cJSON_GetObjectItemCaseSensitive(root, "messages");
	const cJSON *m;
	int rc;

	if (!cJSON_IsArray(messages))
		return call_fail(err, 400, NULL, "messages",
				 "Missing required parameter: 'messages' (an array).");
	if (!messages->child)
		return call_fail(err, 400, NULL, "messages",
				 "Invalid 'messages': empty array. Expected at least one message.");
	cJSON_ArrayForEach(m, messages)
	{
		if (!cJSON_IsObject(m))
			return call_fail(err, 400, NULL, "messages",
					 "Invalid 'messages': each message must be an object.");
		rc = content_tokens(cJSON_GetObjectItemCaseSensitive(m, "content"),
				    &c->prompt_tokens, err);
		if (rc < 0)
			return rc;
		c->prompt_tokens += CALL_PROMPT_TOKENS_PER_MESSAGE;
	}
	return 0;
}

/*
 * A string or a non-empty array of strings in member NAME: counts their tokens and, when
 * HASHES is set, stores each one's FNV-1a hash in a new array (*HASHES, owned by the call).
 */
static int parse_texts(const cJSON *root, const char *name, struct call *c, uint64_t **hashes,
		       struct call_error *err)
{
	const cJSON *in = cJSON_GetObjectItemCaseSensitive(root, name);
	const cJSON *s;
	unsigned n = 0;

	if (cJSON_IsString(in)) {
		c->n_inputs = 1;
		c->prompt_tokens = call_text_tokens(strlen(in->valuestring));
		if (hashes && !(*hashes = malloc(sizeof(**hashes))))
			return -ENOMEM;
		if (hashes)
			(*hashes)[0] = fnv1a64(in->valuestring);
		return 0;
	}
	if (!cJSON_IsArray(in) || !in->child)
		return call_fail(err, 400, NULL, name,
				 "Invalid '%s': expected a string or a non-empty array of strings.",
				 name);
	cJSON_ArrayForEach(s, in)
	{
		if (!cJSON_IsString(s))
			return call_fail(err, 400, NULL, name,
					 "Invalid '%s': every item must be a string.", name);
		if (++n > CALL_MAX_INPUTS)
			return call_fail(err, 400, NULL, name, "Invalid '%s': at most %d items.",
					 name, CALL_MAX_INPUTS);
	}
	if (hashes && !(*hashes = calloc(n, sizeof(**hashes))))
		return -ENOMEM;
	c->n_inputs = n;
	n = 0;
	cJSON_ArrayForEach(s, in)
	{
		c->prompt_tokens += call_text_tokens(strlen(s->valuestring));
		if (hashes)
			(*hashes)[n++] = fnv1a64(s->valuestring);
	}
	return 0;
}

/* One of the maximum-token members: absent or null leaves *OUT at 0. */
static int get_max(const cJSON *root, const char *name, unsigned *out, struct call_error *err)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, name);
	double v;

	*out = 0;
	if (!item || cJSON_IsNull(item))
		return 0;
	v = item->valuedouble;
	if (!cJSON_IsNumber(item) || v < 1 || v > 1e9 || (double)(long long)v != v)
		return call_fail(err, 400, "integer_below_min_value", name,
				 "Invalid '%s': expected an integer of at least 1.", name);
	*out = v > CALL_MAX_COMPLETION_TOKENS ? CALL_MAX_COMPLETION_TOKENS : (unsigned)v;
	return 0;
}

/* max_completion_tokens, else max_tokens, else the default; then stream and its options. */
static int parse_generation(const cJSON *root, struct call *c, struct call_error *err)
{
	const cJSON *opts = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
	unsigned max_completion, max_tokens;
	int rc;

	rc = get_max(root, "max_completion_tokens", &max_completion, err);
	if (!rc)
		rc = get_max(root, "max_tokens", &max_tokens, err);
	if (!rc)
		rc = get_bool(root, "stream", &c->stream, err);
	if (rc < 0)
		return rc;
	c->completion_tokens = max_completion ? max_completion : max_tokens;
	c->length_limited = c->completion_tokens != 0;
	if (!c->length_limited)
		c->completion_tokens = CALL_DEFAULT_COMPLETION_TOKENS;
	if (!opts || cJSON_IsNull(opts))
		return 0;
	if (!c->stream)
		return call_fail(err, 400, NULL, "stream_options",
				 "The 'stream_options' parameter is only allowed when 'stream' is "
				 "enabled.");
	if (!cJSON_IsObject(opts))
		return call_fail(err, 400, NULL, "stream_options",
				 "Invalid type for 'stream_options': expected an object.");
	return get_bool(opts, "include_usage", &c->include_usage, err);
}

static int parse_encoding(const cJSON *root, struct call *c, struct call_error *err)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "encoding_format");

	if (!f || cJSON_IsNull(f))
		return 0;
	if (cJSON_IsString(f) && strcmp(f->valuestring, "float") == 0)
		return 0;
	if (cJSON_IsString(f) && strcmp(f->valuestring, "base64") == 0) {
		c->base64 = true;
		return 0;
	}
	return call_fail(err, 400, NULL, "encoding_format",
			 "Invalid 'encoding_format': expected 'float' or 'base64'.");
}

static int parse_body(const cJSON *root, struct call *c, struct call_error *err)
{
	switch (c->kind) {
	case CALL_CHAT:
		return parse_messages(root, c, err) ?: parse_generation(root, c, err);
	case CALL_COMPLETION:
		return parse_texts(root, "prompt", c, NULL, err) ?: parse_generation(root, c, err);
	case CALL_EMBEDDING:
		return parse_texts(root, "input", c, &c->input_hashes, err)
			   ?: parse_encoding(root, c, err);
	}
	return -EINVAL;
}

int call_parse(enum call_kind kind, const char *body, size_t len, struct call *c,
	       struct call_error *err)
{
	const cJSON *model;
	cJSON *root;
	int rc;

	memset(c, 0, sizeof(*c));
	c->kind = kind;
	root = cJSON_ParseWithLength(body, len);
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return call_fail(err, 400, NULL, NULL,
				 "We could not parse the JSON body of your request. (HINT: This "
				 "likely means you aren't using your HTTP library correctly.)");
	}
	model = cJSON_GetObjectItemCaseSensitive(root, "model");
	if (!cJSON_IsString(model))
		rc = call_fail(err, 400, NULL, "model",
			       "You must provide a model parameter (a string).");
	else
		rc = parse_body(root, c, err);
	if (!rc) {
		c->model = models_find(model->valuestring);
		if (c->model < 0)
			rc = call_fail(err, 404, "model_not_found", NULL,
				       "The model '%.128s' does not exist or you do not have "
				       "access to it.",
				       model->valuestring);
	}
	cJSON_Delete(root);
	if (rc)
		call_free(c);
	return rc;
}

void call_free(struct call *c)
{
	if (!c)
		return;
	free(c->input_hashes);
	c->input_hashes = NULL;
	c->n_inputs = 0;
}
