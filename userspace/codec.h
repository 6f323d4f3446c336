/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The byte cursors behind every versioned record layout (model.c's keys, tiers, tokens and
 * owners; usage.c's usage records and roll-ups): little-endian integers of a given width and
 * length-prefixed strings, with the first error remembered instead of checked per field.
 * Also the big-endian integers of LMDB keys, whose byte order is their numeric order.
 * Pure and header-only.
 */
#ifndef TG_CODEC_H
#define TG_CODEC_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/*
 * Encoding: a cursor over the output buffer. Overflow and bad input are remembered rather
 * than checked after every field, which keeps the per-record functions a flat list.
 */
struct codec_enc {
	uint8_t *p;
	size_t cap, pos;
	int err; /* first error: -EMSGSIZE (buffer too small) or -EINVAL (unencodable field) */
};

static inline void codec_put(struct codec_enc *e, const void *v, size_t n)
{
	if (!e->err && n > e->cap - e->pos)
		e->err = -EMSGSIZE;
	if (e->err)
		return;
	memcpy(e->p + e->pos, v, n);
	e->pos += n;
}

static inline void codec_put_uint(struct codec_enc *e, uint64_t v, unsigned width)
{
	uint8_t b[8];

	for (unsigned i = 0; i < width; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	codec_put(e, b, width);
}

/* s is a char array of max + 1 bytes that must hold a NUL within it. */
static inline void codec_put_str(struct codec_enc *e, const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	uint8_t len = (uint8_t)n;

	if (n > max) {
		if (!e->err)
			e->err = -EINVAL;
		return;
	}
	codec_put(e, &len, 1);
	codec_put(e, s, n);
}

/* Decoding: the mirror cursor; any short read or bad field sets bad and yields zeroes. */
struct codec_dec {
	const uint8_t *p;
	size_t len, pos;
	bool bad;
};

static inline void codec_get(struct codec_dec *d, void *out, size_t n)
{
	if (!d->bad && n > d->len - d->pos)
		d->bad = true;
	if (d->bad) {
		memset(out, 0, n);
		return;
	}
	memcpy(out, d->p + d->pos, n);
	d->pos += n;
}

static inline uint64_t codec_get_uint(struct codec_dec *d, unsigned width)
{
	uint8_t b[8];
	uint64_t v = 0;

	codec_get(d, b, width);
	for (unsigned i = 0; i < width; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

/* out is a char array of max + 1 bytes. */
static inline void codec_get_str(struct codec_dec *d, char *out, size_t max)
{
	size_t n = (size_t)codec_get_uint(d, 1);

	if (n > max) {
		d->bad = true;
		n = 0;
	}
	codec_get(d, out, n);
	out[n] = '\0';
	/* An embedded NUL would silently shorten the string: the record is corrupt. */
	if (memchr(out, '\0', n))
		d->bad = true;
}

/* v's low width bytes at p, most significant first (keys that sort as numbers). */
static inline void codec_be_put(uint8_t *p, uint64_t v, unsigned width)
{
	for (unsigned i = width; i-- > 0; v >>= 8)
		p[i] = (uint8_t)v;
}

static inline uint64_t codec_be_get(const uint8_t *p, unsigned width)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < width; i++)
		v = v << 8 | p[i];
	return v;
}

#endif /* TG_CODEC_H */
