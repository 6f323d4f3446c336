/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The in-place JSON member scanner (see jscan.h): a recursive-descent validator over the
 * RFC 8259 grammar that remembers, at the top level only, where the wanted member's value
 * starts and ends. Where cJSON is more lenient (control characters in strings, any byte
 * up to space as white space, a BOM, trailing bytes, invalid \u hex read as 0) the scanner
 * refuses, so that its caller asks cJSON instead; where cJSON is stricter (a lone
 * surrogate escape, numbers beyond 63 characters, deep nesting) it refuses as well.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jscan.h"

struct jscan {
	const char *p, *end;
	int depth;
};

static void js_space(struct jscan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static bool js_lit(struct jscan *s, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return false;
	s->p += n;
	return true;
}

/* Four hex digits after "\u"; -1 if they are not. */
static long js_hex4(const char *p, const char *end)
{
	long v = 0;

	if (end - p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		int d = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10
					       : -1;

		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/* The escape after a backslash (s->p at the character after it); false if cJSON refuses. */
static bool js_escape(struct jscan *s)
{
	long hi, lo;

	if (s->p >= s->end)
		return false;
	if (*s->p && strchr("\"\\/bfnrt", *s->p)) {
		s->p++;
		return true;
	}
	if (*s->p != 'u' || (hi = js_hex4(s->p + 1, s->end)) < 0 || (hi >= 0xDC00 && hi <= 0xDFFF))
		return false;
	s->p += 5;
	if (hi < 0xD800 || hi > 0xDBFF)
		return true;
	/* a high surrogate: cJSON wants its low half right after it */
	if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u')
		return false;
	lo = js_hex4(s->p + 2, s->end);
	if (lo < 0xDC00 || lo > 0xDFFF)
		return false;
	s->p += 6;
	return true;
}

/* A string (s->p at its opening quote); *escaped tells whether it had an escape. */
static bool js_string(struct jscan *s, bool *escaped)
{
	*escaped = false;
	s->p++;
	while (s->p < s->end) {
		unsigned char c = (unsigned char)*s->p++;

		if (c == '"')
			return true;
		if (c < 0x20)
			return false;
		if (c == '\\') {
			*escaped = true;
			if (!js_escape(s))
				return false;
		}
	}
	return false;
}

static bool js_digits(struct jscan *s)
{
	const char *start = s->p;

	while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
		s->p++;
	return s->p > start;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? of at most JSCAN_NUMBER_MAX characters. */
static bool js_number(struct jscan *s)
{
	const char *start = s->p;

	if (s->p < s->end && *s->p == '-')
		s->p++;
	if (s->p < s->end && *s->p == '0')
		s->p++;
	else if (!js_digits(s))
		return false;
	if (s->p < s->end && *s->p == '.') {
		s->p++;
		if (!js_digits(s))
			return false;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (!js_digits(s))
			return false;
	}
	return s->p - start <= JSCAN_NUMBER_MAX;
}

static bool js_value(struct jscan *s);

/* An array or an object (s->p at its bracket), its members' values through js_value. */
static bool js_container(struct jscan *s, char close)
{
	bool escaped;

	if (++s->depth > JSCAN_DEPTH_MAX)
		return false;
	s->p++;
	js_space(s);
	if (s->p < s->end && *s->p == close) {
		s->p++;
		s->depth--;
		return true;
	}
	for (;;) {
		if (close == '}') {
			if (s->p >= s->end || *s->p != '"' || !js_string(s, &escaped))
				return false;
			js_space(s);
			if (s->p >= s->end || *s->p++ != ':')
				return false;
		}
		if (!js_value(s))
			return false;
		if (s->p >= s->end)
			return false;
		if (*s->p == close) {
			s->p++;
			s->depth--;
			return true;
		}
		if (*s->p++ != ',')
			return false;
		js_space(s);
	}
}

/* One value with the white space around it. */
static bool js_value(struct jscan *s)
{
	bool escaped, ok;

	js_space(s);
	if (s->p >= s->end)
		return false;
	switch (*s->p) {
	case '{':
		ok = js_container(s, '}');
		break;
	case '[':
		ok = js_container(s, ']');
		break;
	case '"':
		ok = js_string(s, &escaped);
		break;
	case 't':
		ok = js_lit(s, "true");
		break;
	case 'f':
		ok = js_lit(s, "false");
		break;
	case 'n':
		ok = js_lit(s, "null");
		break;
	default:
		ok = js_number(s);
	}
	js_space(s);
	return ok;
}

/* The top-level object's members, looking for name (s->p past the opening brace). */
static int js_members(struct jscan *s, const char *name, const char **val, size_t *vlen)
{
	size_t nlen = strlen(name);
	bool found = false;

	s->depth = 1;
	js_space(s);
	if (s->p < s->end && *s->p == '}') {
		s->p++;
		return -ENOENT;
	}
	for (;;) {
		const char *key = s->p + 1, *start;
		bool escaped, match;

		if (s->p >= s->end || *s->p != '"' || !js_string(s, &escaped) || escaped)
			return -EINVAL;
		match = !found && (size_t)(s->p - 1 - key) == nlen && memcmp(key, name, nlen) == 0;
		js_space(s);
		if (s->p >= s->end || *s->p++ != ':')
			return -EINVAL;
		js_space(s);
		start = s->p;
		if (!js_value(s))
			return -EINVAL;
		if (match) {
			const char *e = s->p;

			while (e > start && strchr(" \t\r\n", e[-1]))
				e--;
			*val = start;
			*vlen = (size_t)(e - start);
			found = true;
		}
		if (s->p < s->end && *s->p == '}') {
			s->p++;
			return found ? 0 : -ENOENT;
		}
		if (s->p >= s->end || *s->p++ != ',')
			return -EINVAL;
		js_space(s);
	}
}

int jscan_member(const char *buf, size_t len, const char *name, const char **val, size_t *vlen)
{
	struct jscan s = {.p = buf, .end = buf ? buf + len : buf};
	const char *v = NULL;
	size_t vl = 0;
	int rc;

	if (!buf || !name || !val || !vlen)
		return -EINVAL;
	js_space(&s);
	if (s.p >= s.end || *s.p != '{')
		return -EINVAL;
	s.p++;
	rc = js_members(&s, name, &v, &vl);
	if (rc && rc != -ENOENT)
		return rc;
	js_space(&s);
	if (s.p != s.end) /* cJSON would ignore trailing bytes; the caller asks it */
		return -EINVAL;
	if (rc)
		return rc;
	*val = v;
	*vlen = vl;
	return 0;
}

bool jscan_count(const char *val, size_t vlen, uint64_t *out)
{
	char num[JSCAN_NUMBER_MAX + 1];
	struct jscan s = {.p = val, .end = val + vlen};
	double d;

	if (!val || !vlen || vlen > JSCAN_NUMBER_MAX || !js_number(&s) || s.p != s.end)
		return false;
	memcpy(num, val, vlen);
	num[vlen] = '\0';
	d = strtod(num, NULL);
	if (!(d >= 0 && d <= 9007199254740992.0))
		return false;
	*out = (uint64_t)d;
	return true;
}
