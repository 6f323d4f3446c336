/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The in-place JSON member scanner (userspace/jscan.c): finds the first top-level member
 * of a name and its value text; refuses what is not one strictly valid object, and
 * everything cJSON would read differently; token counts come out as cJSON's valuedouble
 * would give them. A differential case checks, over thousands of mutated answers, that
 * whenever the scanner answers, cJSON parses the text and finds the same counts.
 */
#include <errno.h>

#include <cjson/cJSON.h>

#include "jscan.h"
#include "tg_test.h"

struct member_case {
	const char *name;
	const char *json;
	const char *member;
	int rc;
	const char *value; /* with rc 0 */
};

static const struct member_case member_cases[] = {
    {"a plain object", "{\"a\":1,\"usage\":{\"x\":2}}", "usage", 0, "{\"x\":2}"},
    {"white space around everything", " \r\n{ \"usage\" :\t[1, 2] , \"b\" : null }\n", "usage", 0,
     "[1, 2]"},
    {"the first of two members of the name", "{\"u\":1,\"u\":2}", "u", 0, "1"},
    {"a nested member of the name is not taken", "{\"a\":{\"u\":1}}", "u", -ENOENT, NULL},
    {"a string value with escapes", "{\"u\":\"a\\\"b\\\\c\\u00e9\\ud83d\\ude00\"}", "u", 0,
     "\"a\\\"b\\\\c\\u00e9\\ud83d\\ude00\""},
    {"literals and numbers", "{\"t\":true,\"f\":false,\"n\":null,\"x\":-0.5e+3}", "x", 0,
     "-0.5e+3"},
    {"an empty object", "{}", "u", -ENOENT, NULL},
    {"empty containers as values", "{\"a\":{},\"b\":[],\"u\":[{}]}", "u", 0, "[{}]"},
    {"not an object at the top", "[{\"u\":1}]", "u", -EINVAL, NULL},
    {"empty text", "", "u", -EINVAL, NULL},
    {"trailing bytes (cJSON ignores them: ask it)", "{\"u\":1} x", "u", -EINVAL, NULL},
    {"a trailing comma", "{\"u\":1,}", "u", -EINVAL, NULL},
    {"a missing colon", "{\"u\" 1}", "u", -EINVAL, NULL},
    {"an unterminated string", "{\"u\":\"abc}", "u", -EINVAL, NULL},
    {"a control character in a string", "{\"u\":\"a\tb\"}", "u", -EINVAL, NULL},
    {"a bad escape", "{\"u\":\"a\\xb\"}", "u", -EINVAL, NULL},
    {"bad hex in \\u (cJSON reads it as 0)", "{\"u\":\"\\u00g0\"}", "u", -EINVAL, NULL},
    {"a lone low surrogate", "{\"u\":\"\\udc00\"}", "u", -EINVAL, NULL},
    {"a high surrogate without its low half", "{\"u\":\"\\ud83dx\"}", "u", -EINVAL, NULL},
    {"a leading zero", "{\"u\":01}", "u", -EINVAL, NULL},
    {"a bare minus", "{\"u\":-}", "u", -EINVAL, NULL},
    {"a dot without digits", "{\"u\":1.}", "u", -EINVAL, NULL},
    {"an exponent without digits", "{\"u\":1e}", "u", -EINVAL, NULL},
    {"a number of 64 characters",
     "{\"u\":1000000000000000000000000000000000000000000000000000000000000000}", "u", -EINVAL,
     NULL},
    {"a misspelt literal", "{\"u\":nul}", "u", -EINVAL, NULL},
    {"an escaped member name at the top", "{\"\\u0075\":1}", "u", -EINVAL, NULL},
    {"a UTF-8 byte order mark (cJSON skips it: ask it)", "\xef\xbb\xbf{\"u\":1}", "u", -EINVAL,
     NULL},
    {"a form feed as white space (cJSON takes it: ask it)", "{\f\"u\":1}", "u", -EINVAL, NULL},
};

static void member_table(void)
{
	for (size_t i = 0; i < TG_NCASES(member_cases); i++) {
		const struct member_case *t = &member_cases[i];
		const char *v = NULL;
		size_t n = 0;
		int rc = jscan_member(t->json, strlen(t->json), t->member, &v, &n);

		if (rc != t->rc || (rc == 0 && (n != strlen(t->value) || memcmp(v, t->value, n))))
			printf("#   case \"%s\": rc %d, value \"%.*s\"\n", t->name, rc,
			       rc == 0 ? (int)n : 0, rc == 0 ? v : "");
		TG_CHECK_INT(rc, t->rc);
		if (rc == 0 && t->rc == 0)
			TG_CHECK(n == strlen(t->value) && memcmp(v, t->value, n) == 0);
	}
}

static void nesting_is_bounded(void)
{
	char buf[2 * JSCAN_DEPTH_MAX + 64];
	const char *v;
	size_t n, at = 0;

	/* {"u": [[[...]]]}: the object is one level, so DEPTH_MAX - 1 brackets pass */
	for (int depth = JSCAN_DEPTH_MAX - 1; depth <= JSCAN_DEPTH_MAX; depth++) {
		at = (size_t)snprintf(buf, sizeof(buf), "{\"u\":");
		for (int i = 0; i < depth; i++)
			buf[at++] = '[';
		for (int i = 0; i < depth; i++)
			buf[at++] = ']';
		buf[at++] = '}';
		TG_CHECK_INT(jscan_member(buf, at, "u", &v, &n),
			     depth < JSCAN_DEPTH_MAX ? 0 : -EINVAL);
	}
}

static void counts(void)
{
	static const struct {
		const char *text;
		bool ok;
		uint64_t want;
	} t[] = {
	    {"0", true, 0},	 {"17", true, 17},
	    {"12.9", true, 12},	 {"1e3", true, 1000},
	    {"-0", true, 0},	 {"9007199254740992", true, 9007199254740992ULL},
	    {"-1", false, 0},	 {"9007199254740993e3", false, 0},
	    {"1e400", false, 0}, {"\"12\"", false, 0},
	    {"null", false, 0},	 {"1 ", false, 0},
	    {"", false, 0},
	};

	for (size_t i = 0; i < TG_NCASES(t); i++) {
		uint64_t got = 424242;
		bool ok = jscan_count(t[i].text, strlen(t[i].text), &got);

		TG_CHECK_INT(ok, t[i].ok);
		TG_CHECK_INT(got, t[i].ok ? t[i].want : 424242);
	}
}

/* cJSON's reading of the same text, the way dataplane_openai.c's plain_tokens does it. */
static bool cjson_count(const cJSON *u, const char *name, uint64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(u, name);

	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 9007199254740992.0))
		return false;
	*out = (uint64_t)v->valuedouble;
	return true;
}

/* One text: if the scanner finds a count, cJSON must parse it and find the same one. */
static int differ(const char *buf, size_t len)
{
	const char *u, *v;
	size_t ulen, vlen;
	uint64_t s = 0, j = 0;
	cJSON *root;
	int bad = 0;

	if (jscan_member(buf, len, "usage", &u, &ulen) ||
	    jscan_member(u, ulen, "prompt_tokens", &v, &vlen) || !jscan_count(v, vlen, &s))
		return 0;
	root = cJSON_ParseWithLength(buf, len);
	if (!cjson_count(cJSON_GetObjectItemCaseSensitive(root, "usage"), "prompt_tokens", &j) ||
	    j != s)
		bad = 1;
	cJSON_Delete(root);
	return bad;
}

static void agrees_with_cjson_on_mutations(void)
{
	static const char base[] =
	    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
	    "\"message\":{\"role\":\"assistant\",\"content\":\"Hi \\u00e9\\ud83d\\ude00 "
	    "\\\"x\\\"\"},"
	    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":"
	    "3.0,\"total_tokens\":1.5e1}}";
	static const char alphabet[] = "{}[]\":,\\u0123456789.eE+-tfnrl \t\r\nxdD\x01\x7f\xc3";
	char buf[sizeof(base) + 8];
	uint32_t seed = 12345;
	int bad = 0, answered = 0;

	for (int i = 0; i < 40000; i++) {
		size_t len = sizeof(base) - 1;
		int edits = 1 + i % 3;

		memcpy(buf, base, len);
		for (int e = 0; e < edits; e++) {
			seed = seed * 1103515245u + 12345u;
			size_t at = (seed >> 8) % len;

			seed = seed * 1103515245u + 12345u;
			buf[at] = alphabet[(seed >> 8) % (sizeof(alphabet) - 1)];
		}
		bad += differ(buf, len);
		answered +=
		    jscan_member(buf, len, "usage", &(const char *){NULL}, &(size_t){0}) == 0;
	}
	TG_CHECK_INT(bad, 0);
	TG_CHECK(answered > 1000); /* the mutations leave many texts valid: the check ran */
	TG_CHECK_INT(differ(base, sizeof(base) - 1), 0);
}

static const struct tg_case cases[] = {
    {"members found, absent, and every refusal (invalid, or read otherwise by cJSON)",
     member_table},
    {"nesting up to JSCAN_DEPTH_MAX passes, deeper is refused", nesting_is_bounded},
    {"token counts: integers, fractions, exponents; negatives, strings, overflow refused", counts},
    {"on 40,000 mutated answers, every count found equals cJSON's", agrees_with_cjson_on_mutations},
};

int main(void)
{
	return tg_run("jscan", cases, TG_NCASES(cases));
}
