/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A growable byte buffer for building JSON bodies, and the JSON string escaping every
 * body shares. An allocation failure is sticky (buf.err), so a builder appends freely
 * and checks once at the end instead of after every append.
 */
#ifndef MOCK_LLM_BUF_H
#define MOCK_LLM_BUF_H

#include <stddef.h>

struct buf {
	char *data; /* NUL-terminated once anything was appended; owned */
	size_t len; /* bytes used, without the NUL */
	size_t cap; /* bytes allocated */
	int err;    /* 0, or -ENOMEM after the first failed allocation */
};

/* An empty buffer; nothing is allocated until the first append. */
void buf_init(struct buf *b);

/* Releases the data (NULL-safe) and leaves an empty buffer. */
void buf_free(struct buf *b);

void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends S as a quoted JSON string, escaping quotes, backslashes and control bytes. */
void buf_json_string(struct buf *b, const char *s);

/*
 * Hands the data over: returns the NUL-terminated bytes (the caller frees them with free())
 * and their length in *len, and leaves B empty. Returns NULL with errno ENOMEM if an
 * append had failed.
 */
char *buf_steal(struct buf *b, size_t *len);

#endif
