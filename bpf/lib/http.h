/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The HTTP/1.x part of the TC program: is this segment the start of a request, and which API
 * key does it present? The first TG_SCAN_CAP payload bytes are copied into a per-CPU scratch
 * buffer and scanned there in bpf_loop callbacks, eight bytes per step (a newline test on a
 * whole word), because byte loops over packet data verified inline blow the verifier's
 * budget (KERNEL-NOTES).
 *
 * The key is read the way the daemon reads it (userspace/dataplane.c presented_key and
 * http.c http_bearer_token): `Authorization: Bearer <token>` (scheme case-insensitive,
 * SP/HTAB after it) or `X-API-Key: <value>`, names case-insensitive, surrounding SP/HTAB
 * dropped, inner blanks kept. Where the daemon might read a different key than the kernel
 * would (two key headers disagreeing, a first header without a key followed by one with,
 * a folded line), the kernel reports no key and lets the daemon decide. Only lines complete
 * in this segment count; the header block need not end in it.
 */
#ifndef TG_BPF_HTTP_H
#define TG_BPF_HTTP_H

#include "common.h"
#include "siphash.h"
#include "parse.h"

#define TG_SCAN_CAP  2048 /* payload bytes scanned for the key header */
#define TG_SCAN_MASK (TG_SCAN_CAP - 1)
/* Scratch size: room after the scanned bytes so that reads at a masked offset plus up to
 * 255 bytes (a key) stay inside the buffer. */
#define TG_SCAN_ROOM	   (TG_SCAN_CAP + 256)
#define TG_SCAN_PROBE	   16 /* bytes read first: enough to reject what is not a method */
#define TG_SCAN_MAX_KEYHDR 4  /* key header lines considered; more: the daemon decides */
#define TG_SCAN_MAX_OWS	   32 /* longer runs of blanks around a key: the daemon decides */
_Static_assert(TG_SCAN_MASK == TG_SIP_BUF_MASK, "keys are hashed in the scan buffer");

/* The per-CPU copy of the payload's start (a struct: global functions take sized memory). */
struct tg_scan_buf {
	__u8 b[TG_SCAN_ROOM];
};

/* A little-endian 64-bit word from eight bytes, for comparing eight bytes at once. */
#define TG_LE8(a, b, c, d, e, f, g, h)                                                             \
	((__u64)(a) | (__u64)(b) << 8 | (__u64)(c) << 16 | (__u64)(d) << 24 | (__u64)(e) << 32 |   \
	 (__u64)(f) << 40 | (__u64)(g) << 48 | (__u64)(h) << 56)

enum tg_hdr_kind {
	TG_HDR_AUTH = 1, /* Authorization */
	TG_HDR_XKEY = 2, /* X-API-Key */
};

enum tg_scan_stop {
	TG_SCAN_RUNNING = 0,
	TG_SCAN_HDR_END = 1,  /* the empty line that ends the header block */
	TG_SCAN_NOT_HTTP = 2, /* the first line is not "METHOD target HTTP/1.x" */
	TG_SCAN_GIVE_UP = 3,  /* obs-fold or too many key headers: the daemon decides */
};

/* State shared with the bpf_loop callbacks (they see it through their context pointer). */
struct tg_scan {
	const __u8 *buf;		     /* the scratch copy of the payload */
	const struct tg_secret *secret;	     /* SipHash key of the key hashes */
	__u32 len;			     /* bytes copied */
	__u32 method_len;		     /* bytes before the first SP */
	__u32 line;			     /* offset where the current line starts */
	__u32 nlines;			     /* lines ended so far */
	__u32 stop;			     /* enum tg_scan_stop */
	__u32 nkey;			     /* key header lines found */
	__u32 val_start[TG_SCAN_MAX_KEYHDR]; /* offset just after the colon */
	__u32 val_end[TG_SCAN_MAX_KEYHDR];   /* offset of the line's '\n' */
	__u32 kind[TG_SCAN_MAX_KEYHDR];	     /* enum tg_hdr_kind */
	/* results of the key step, kept branch-free (see tg_scan_key) */
	__u64 khash; /* hash of the first key found */
	__u64 have;  /* 1 once a key was found */
	__u64 bad;   /* keys differ, blanks too long, or a key longer than TG_KEY_MAX_LEN */
	__u64
	    seen; /* bit 2 * kind: a line of that kind had a key; bit 2 * kind + 1: one had none */
};

static __always_inline __u64 tg_load64(const __u8 *buf, __u32 off)
{
	/* An unaligned 8-byte load; the verifier accepts it on x86 (no strict alignment). */
	return *(const __u64 *)(buf + (off & TG_SCAN_MASK));
}

static __always_inline __u8 tg_byte(const __u8 *buf, __u32 off)
{
	return buf[off & TG_SCAN_MASK];
}

static __always_inline int tg_is_ows(__u8 c)
{
	return c == ' ' || c == '\t';
}

/*
 * Header name at s, case-insensitive and followed directly by ':' (RFC 9112 forbids blanks
 * before the colon). Letters compare with 0x20 OR-ed in: c | 0x20 equals a lower-case letter
 * only for that letter in either case. Returns the kind and the name length with colon.
 */
static __always_inline __u32 tg_hdr_name(const __u8 *buf, __u32 s, __u32 eol, __u32 *nlen)
{
	__u64 w0 = tg_load64(buf, s), w1 = tg_load64(buf, s + 8);

	if (eol > s + 14 &&
	    (w0 | 0x2020202020202020ULL) == TG_LE8('a', 'u', 't', 'h', 'o', 'r', 'i', 'z') &&
	    ((w1 | 0x2020202020ULL) & 0xffffffffffffULL) ==
		TG_LE8('a', 't', 'i', 'o', 'n', ':', 0, 0)) {
		*nlen = 14;
		return TG_HDR_AUTH;
	}
	if (eol > s + 10 &&
	    (w0 | 0x2020002020200020ULL) == TG_LE8('x', '-', 'a', 'p', 'i', '-', 'k', 'e') &&
	    ((w1 | 0x20ULL) & 0xffffULL) == TG_LE8('y', ':', 0, 0, 0, 0, 0, 0)) {
		*nlen = 10;
		return TG_HDR_XKEY;
	}
	return 0;
}

/* The request line ends at nl: "METHOD SP target SP HTTP/1.d" with CRLF or bare LF. */
static __always_inline int tg_request_line_ok(const struct tg_scan *c, __u32 nl)
{
	__u32 e = nl;

	if (e > 0 && tg_byte(c->buf, e - 1) == '\r')
		e--;
	/* method, SP, at least one target byte, then " HTTP/1." and a digit */
	if (e < c->method_len + 2 + 9)
		return 0;
	if (tg_load64(c->buf, e - 9) != TG_LE8(' ', 'H', 'T', 'T', 'P', '/', '1', '.'))
		return 0;
	return tg_byte(c->buf, e - 1) >= '0' && tg_byte(c->buf, e - 1) <= '9';
}

/* A line ended at nl. Returns 1 to stop the scan. */
static __always_inline int tg_scan_line(struct tg_scan *c, __u32 nl)
{
	__u32 s = c->line, kind, nlen = 0, i;
	__u8 first;

	c->line = nl + 1;
	if (c->nlines++ == 0) {
		if (tg_request_line_ok(c, nl))
			return 0;
		c->stop = TG_SCAN_NOT_HTTP;
		return 1;
	}
	first = tg_byte(c->buf, s);
	if (nl == s || (nl == s + 1 && first == '\r')) {
		c->stop = TG_SCAN_HDR_END;
		return 1;
	}
	if (tg_is_ows(first)) { /* obs-fold: the previous field continues here */
		c->stop = TG_SCAN_GIVE_UP;
		return 1;
	}
	kind = tg_hdr_name(c->buf, s, nl, &nlen);
	if (!kind)
		return 0;
	i = c->nkey;
	if (i >= TG_SCAN_MAX_KEYHDR) {
		c->stop = TG_SCAN_GIVE_UP;
		return 1;
	}
	c->val_start[i & (TG_SCAN_MAX_KEYHDR - 1)] = s + nlen;
	c->val_end[i & (TG_SCAN_MAX_KEYHDR - 1)] = nl;
	c->kind[i & (TG_SCAN_MAX_KEYHDR - 1)] = kind;
	c->nkey = i + 1;
	return 0;
}

/* bpf_loop callback: the eight bytes at index * 8. */
static long tg_scan_word(__u64 index, void *arg)
{
	struct tg_scan *c = arg;
	__u32 off = (__u32)index * 8;
	__u64 w, x, t;

	if (off >= c->len)
		return 1;
	w = tg_load64(c->buf, off);
	/* Bytes equal to '\n' become zero in x; t has bit 7 clear exactly in those bytes. */
	x = w ^ 0x0a0a0a0a0a0a0a0aULL;
	t = ((x & 0x7f7f7f7f7f7f7f7fULL) + 0x7f7f7f7f7f7f7f7fULL) | x | 0x7f7f7f7f7f7f7f7fULL;
	if (t == ~0ULL)
		return 0;
	for (int j = 0; j < 8; j++) {
		if (t & (0x80ULL << (8 * j)))
			continue;
		if (tg_scan_line(c, off + j))
			return 1;
	}
	return 0;
}

/*
 * Blank trimming runs in a bpf_loop callback: sequential bounded loops over a position the
 * verifier must track precisely multiply its paths. The callback reads at a fixed end plus
 * the loop index and changes nothing the next step reads, so the verifier checks it once.
 */
struct tg_trim {
	const __u8 *buf;
	__u32 s; /* [s, e): the value being trimmed */
	__u32 e;
	__u32 at_end; /* trim at e (1) or at s (0) */
	__u32 n;      /* blanks found before a non-blank byte or the value's end */
	__u32 done;   /* 1 once that end was reached */
};

static long tg_trim_step(__u64 index, void *arg)
{
	struct tg_trim *t = arg;
	__u32 i = (__u32)index;

	if (i >= t->e - t->s || !tg_is_ows(tg_byte(t->buf, t->at_end ? t->e - 1 - i : t->s + i))) {
		t->n = i;
		t->done = 1;
		return 1;
	}
	return 0;
}

/* Drops blanks at the start or the end of [*s, *e) (s <= e); 0 if there are too many. */
static __always_inline int tg_trim(const __u8 *buf, __u32 *s, __u32 *e, int at_end)
{
	struct tg_trim t = {.buf = buf, .s = *s, .e = *e, .at_end = at_end};

	bpf_loop(TG_SCAN_MAX_OWS + 1, tg_trim_step, &t, 0);
	if (!t.done || t.n > TG_SCAN_MAX_OWS)
		return 0;
	if (at_end)
		*e -= t.n;
	else
		*s += t.n;
	return 1;
}

/*
 * The key a header value presents, as [*s, *e): X-API-Key's whole value, or the token after
 * "Bearer". Returns 1 when the value presents a key, 0 when it does not (empty, another
 * scheme), -1 when its blanks run longer than the scan follows.
 */
static __always_inline int tg_value_key(const __u8 *buf, __u32 kind, __u32 *s, __u32 *e)
{
	__u64 w;

	if (*e > *s && tg_byte(buf, *e - 1) == '\r')
		(*e)--;
	if (!tg_trim(buf, s, e, 0) || !tg_trim(buf, s, e, 1))
		return -1;
	if (kind == TG_HDR_AUTH) {
		w = tg_load64(buf, *s);
		if (*e < *s + 7 ||
		    ((w | 0x202020202020ULL) & 0xffffffffffffULL) !=
			TG_LE8('b', 'e', 'a', 'r', 'e', 'r', 0, 0) ||
		    !tg_is_ows((__u8)(w >> 48)))
			return 0;
		*s += 7;
		if (!tg_trim(buf, s, e, 0))
			return -1;
	}
	return *e > *s;
}

/*
 * bpf_loop callback: the key of key header line index; hashes it and checks agreement. The
 * results are combined without branching on what earlier steps found: a branch on such a
 * value would make the verifier check this callback once per combination.
 */
static long tg_scan_key(__u64 index, void *arg)
{
	struct tg_scan *c = arg;
	__u32 i = (__u32)index & (TG_SCAN_MAX_KEYHDR - 1);
	__u32 s = c->val_start[i], e = c->val_end[i], kind = c->kind[i] & 3, len;
	__u64 h, first;
	int rc;

	if (e < s || e - s > TG_SCAN_CAP) {
		c->bad = 1;
		return 1;
	}
	rc = tg_value_key(c->buf, kind, &s, &e);
	if (rc < 0) {
		c->bad = 1;
		return 1;
	}
	if (rc == 0) {
		c->seen |= 1ULL << (2 * kind + 1);
		return 0;
	}
	len = e - s;
	if (len > TG_KEY_MAX_LEN) {
		c->bad = 1;
		return 1;
	}
	h = tg_bpf_siphash64(c->secret, c->buf, s & TG_SCAN_MASK, len);
	first = 0 - (1 - (c->have & 1)); /* all ones if this is the first key */
	c->bad |= c->have & (__u64)(h != c->khash);
	c->khash = (c->khash & ~first) | (h & first);
	c->have = 1;
	c->seen |= 1ULL << (2 * kind);
	return 0;
}

/* Length of an upper-case method followed by SP in the first bytes, or 0. */
static __always_inline __u32 tg_method_len(const __u8 *buf, __u32 len)
{
	for (__u32 i = 0; i < TG_SCAN_PROBE; i++) {
		__u8 ch = buf[i];

		if (i >= len)
			return 0;
		if (ch == ' ')
			return i;
		if (ch < 'A' || ch > 'Z')
			return 0;
	}
	return 0;
}

/*
 * Copies the payload's start into sb (per-CPU) and finds the key. Returns 0 with the key's
 * SipHash-2-4-64 in *khash, or the verdict to pass with: NOT_HTTP, NO_KEY, MALFORMED (the
 * copy failed, or a NULL argument). A global function: the verifier checks it once, on its
 * own, instead of once for every path that reaches the call.
 */
__noinline int tg_http_key(struct __sk_buff *skb, const struct tg_pkt *p, struct tg_scan_buf *sb,
			   const struct tg_secret *secret, __u64 *khash)
{
	struct tg_scan c = {};
	__u8 *buf;
	__u32 n, probe;

	if (!skb || !p || !sb || !secret || !khash)
		return TG_V_MALFORMED;
	buf = sb->b;
	n = p->pay_len < TG_SCAN_CAP ? p->pay_len : TG_SCAN_CAP;
	probe = n < TG_SCAN_PROBE ? n : TG_SCAN_PROBE;
	if (probe == 0 || bpf_skb_load_bytes(skb, p->pay_off, buf, probe & 0x1f))
		return TG_V_MALFORMED;
	c.method_len = tg_method_len(buf, probe);
	if (c.method_len == 0)
		return TG_V_NOT_HTTP;
	n &= 0xfff;
	if (n > TG_SCAN_PROBE) {
		__u64 rest = (__u64)n - TG_SCAN_PROBE;

		/* Checked on the very register passed: clang would otherwise test n and pass a
		 * value the verifier believes may be 0 (KERNEL-NOTES, re-derived lengths). */
		barrier_var(rest);
		if (rest == 0 || rest > TG_SCAN_CAP - TG_SCAN_PROBE ||
		    bpf_skb_load_bytes(skb, p->pay_off + TG_SCAN_PROBE, buf + TG_SCAN_PROBE, rest))
			return TG_V_MALFORMED;
	}
	/* Stale bytes of an earlier packet after the copy must not read as a newline. */
	if (n < TG_SCAN_CAP) {
		*(__u64 *)(buf + n) = 0;
		*(__u64 *)(buf + n + 8) = 0;
	}
	c.buf = buf;
	c.secret = secret;
	c.len = n;
	bpf_loop((n + 7) / 8, tg_scan_word, &c, 0);
	if (c.stop == TG_SCAN_NOT_HTTP)
		return TG_V_NOT_HTTP;
	/* No complete request line in the copy, a folded line, or no key line at all. */
	if (c.nlines == 0 || c.stop == TG_SCAN_GIVE_UP || c.nkey == 0)
		return TG_V_NO_KEY;
	bpf_loop(c.nkey, tg_scan_key, &c, 0);
	if (c.bad || !c.have)
		return TG_V_NO_KEY;
	/* The daemon reads only the first header of each name: one without a key and another
	 * with one would leave it with a different key, or none. */
	if ((c.seen >> (2 * TG_HDR_AUTH) & 3) == 3 || (c.seen >> (2 * TG_HDR_XKEY) & 3) == 3)
		return TG_V_NO_KEY;
	*khash = c.khash;
	return 0;
}

#endif /* TG_BPF_HTTP_H */
