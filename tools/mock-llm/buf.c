/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Growable buffer and JSON string escaping (buf.h). Capacity doubles, so building a body of
 * n bytes costs O(n) copies in all; the largest bodies here (4096 completion tokens) are a
 * few tens of KiB.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void buf_init(struct buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->err = 0;
}

void buf_free(struct buf *b)
{
	if (!b)
		return;
	free(b->data);
	buf_init(b);
}

/* Makes room for N more bytes plus the NUL; 0 or -ENOMEM (also recorded in b->err). */
static int buf_reserve(struct buf *b, size_t n)
{
	size_t want, cap;
	char *p;

	if (b->err)
		return b->err;
	if (n > SIZE_MAX / 2 - b->len - 1)
		return b->err = -ENOMEM;
	want = b->len + n + 1;
	if (want <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < want)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p)
		return b->err = -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

void buf_append(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) < 0)
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void buf_puts(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || buf_reserve(b, (size_t)n) < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void buf_json_string(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *run = p;

	buf_append(b, "\"", 1);
	for (; *p; p++) {
		char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};

		if (*p >= 0x20 && *p != '"' && *p != '\\')
			continue;
		buf_append(b, run, (size_t)(p - run));
		run = p + 1;
		if (*p == '"' || *p == '\\') {
			esc[1] = (char)*p;
			buf_append(b, esc, 2);
		} else {
			buf_append(b, esc, 6);
		}
	}
	buf_append(b, run, (size_t)(p - run));
	buf_append(b, "\"", 1);
}

char *buf_steal(struct buf *b, size_t *len)
{
	char *p;

	if (b->err || buf_reserve(b, 0) < 0) {
		buf_free(b);
		errno = ENOMEM;
		return NULL;
	}
	p = b->data;
	*len = b->len;
	p[b->len] = '\0';
	buf_init(b);
	return p;
}
