/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The HTTP/1.x part of the TC program: is this segment the start of a request, and which API
 * key does it present? The first TG_SCAN_CAP payload bytes are copied into a per-CPU scratch
 * buffer and scanned there in bpf_loop callbacks, because byte loops over packet data
 * verified inline blow the verifier's budget (KERNEL-NOTES). Each step tests 64 bytes for
 * newlines, a word at a time; at a newline, one more word (the next line's first eight
 * bytes) says whether that line can matter at all: only the header block's end, an obs-fold
 * and the two key header names do, and each is decided when its line starts (the key line
 * is recorded when its end is found). Every other line costs nothing more.
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

/* What the line being read awaits at its end (the next newline), decided at its start. */
enum tg_scan_pend {
	TG_PEND_NONE = 0, /* a line that cannot matter: the fast path skips its end */
	TG_PEND_REQ = 1,  /* the request line */
	TG_PEND_FOLD = 2, /* an obs-fold line: complete, it stops the scan */
	TG_PEND_KEY = 3,  /* a key header line: complete, it is recorded */
};

/*
 * The scan's state. It lives in the per-CPU scratch map next to the payload copy, not on the
 * stack: the verifier knows nothing of values read from map memory, so the callbacks are
 * verified for any state at once. On the stack, every combination of what the scan had
 * found (the pending line, the key lines so far) was a state of its own, each followed
 * through the rest of the 64-byte step: 0.5M verified instructions instead of 75k.
 */
struct tg_scan {
	__u32 len;			     /* bytes copied */
	__u32 method_len;		     /* bytes before the first SP */
	__u32 reqline;			     /* 1 once a complete request line was accepted */
	__u32 pend;			     /* enum tg_scan_pend: what the current line awaits */
	__u32 pend_kind;		     /* TG_PEND_KEY: enum tg_hdr_kind */
	__u32 pend_val;			     /* TG_PEND_KEY: offset just after the colon */
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

/* The per-CPU copy of the payload's start and the scan's state (a struct: global functions
 * take sized memory). */
struct tg_scan_buf {
	__u8 b[TG_SCAN_ROOM];
	struct tg_scan st;
};

/* What the bpf_loop callbacks get as their context (it must be on the stack). */
struct tg_scan_ref {
	struct tg_scan_buf *sb;
	const struct tg_secret *secret; /* SipHash key of the key hashes */
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

#define TG_W_AUTH TG_LE8('a', 'u', 't', 'h', 'o', 'r', 'i', 'z')
#define TG_W_XKEY TG_LE8('x', '-', 'a', 'p', 'i', '-', 'k', 'e')
/* OR-ed into a word before comparing it with TG_W_AUTH / TG_W_XKEY: 0x20 makes letters lower
 * case and leaves a letter equal to a lower-case one only when it is that letter; the '-'
 * bytes are compared as they are. */
#define TG_W_AUTH_FOLD 0x2020202020202020ULL
#define TG_W_XKEY_FOLD 0x2020002020200020ULL

/*
 * Header name at s, case-insensitive and followed directly by ':' (RFC 9112 forbids blanks
 * before the colon). Returns the kind and the name length with colon. The name has no
 * newline in it, so a line that ends after it holds it whole; the caller checks that end.
 */
static __always_inline __u32 tg_hdr_name(const __u8 *buf, __u32 s, __u32 *nlen)
{
	__u64 w0 = tg_load64(buf, s), w1 = tg_load64(buf, s + 8);

	if ((w0 | TG_W_AUTH_FOLD) == TG_W_AUTH && ((w1 | 0x2020202020ULL) & 0xffffffffffffULL) ==
						      TG_LE8('a', 't', 'i', 'o', 'n', ':', 0, 0)) {
		*nlen = 14;
		return TG_HDR_AUTH;
	}
	if ((w0 | TG_W_XKEY_FOLD) == TG_W_XKEY &&
	    ((w1 | 0x20ULL) & 0xffffULL) == TG_LE8('y', ':', 0, 0, 0, 0, 0, 0)) {
		*nlen = 10;
		return TG_HDR_XKEY;
	}
	return 0;
}

/* The request line ends at nl: "METHOD SP target SP HTTP/1.d" with CRLF or bare LF. */
static __always_inline int tg_request_line_ok(const struct tg_scan *c, const __u8 *buf, __u32 nl)
{
	__u32 e = nl;

	if (e > 0 && tg_byte(buf, e - 1) == '\r')
		e--;
	/* method, SP, at least one target byte, then " HTTP/1." and a digit */
	if (e < c->method_len + 2 + 9)
		return 0;
	if (tg_load64(buf, e - 9) != TG_LE8(' ', 'H', 'T', 'T', 'P', '/', '1', '.'))
		return 0;
	return tg_byte(buf, e - 1) >= '0' && tg_byte(buf, e - 1) <= '9';
}

/* The line that ended at nl is complete: what it awaited happens. Returns 1 to stop. */
static __always_inline int tg_scan_line_end(struct tg_scan *c, const __u8 *buf, __u32 nl)
{
	__u32 pend = c->pend, i;

	c->pend = TG_PEND_NONE;
	if (pend == TG_PEND_REQ) {
		if (tg_request_line_ok(c, buf, nl)) {
			c->reqline = 1;
			return 0;
		}
		c->stop = TG_SCAN_NOT_HTTP;
		return 1;
	}
	if (pend == TG_PEND_FOLD) { /* obs-fold: the previous field continues here */
		c->stop = TG_SCAN_GIVE_UP;
		return 1;
	}
	/* A key line with nothing after its colon ("X-API-Key:" then LF) is one without a key,
	 * as "X-API-Key:" then CRLF: the daemon reads that first, empty header. */
	if (pend != TG_PEND_KEY || nl < c->pend_val)
		return 0;
	i = c->nkey;
	if (i >= TG_SCAN_MAX_KEYHDR) {
		c->stop = TG_SCAN_GIVE_UP;
		return 1;
	}
	c->val_start[i & (TG_SCAN_MAX_KEYHDR - 1)] = c->pend_val;
	c->val_end[i & (TG_SCAN_MAX_KEYHDR - 1)] = nl;
	c->kind[i & (TG_SCAN_MAX_KEYHDR - 1)] = c->pend_kind;
	c->nkey = i + 1;
	return 0;
}

/*
 * A newline at nl: the line before it ends, the one after it starts. The new line's first
 * bytes say what it can be: the empty line that ends the header block (it stops the scan at
 * once), an obs-fold, a key header, or anything else. Returns 1 to stop the scan.
 */
static __always_inline int tg_scan_newline(struct tg_scan *c, const __u8 *buf, __u32 nl)
{
	__u32 s = nl + 1, kind, nlen = 0;
	__u8 first;

	if (tg_scan_line_end(c, buf, nl))
		return 1;
	/* A line starting past the copy cannot be complete in it. */
	if (s >= c->len)
		return 0;
	first = tg_byte(buf, s);
	if (first == '\n' || (first == '\r' && s + 1 < c->len && tg_byte(buf, s + 1) == '\n')) {
		c->stop = TG_SCAN_HDR_END;
		return 1;
	}
	if (tg_is_ows(first)) {
		c->pend = TG_PEND_FOLD;
		return 0;
	}
	kind = tg_hdr_name(buf, s, &nlen);
	if (kind) {
		c->pend = TG_PEND_KEY;
		c->pend_kind = kind;
		c->pend_val = s + nlen;
	}
	return 0;
}

/*
 * 1 when the newline at nl needs tg_scan_newline: the line before it awaits its end, or the
 * line after it may be the header block's end, an obs-fold (both start with a byte <= SP)
 * or a key header (its first eight bytes, case-folded, are those of a key header's name).
 * Every other newline ends a line that changes nothing and starts another such line.
 */
static __always_inline int tg_newline_matters(const struct tg_scan *c, const __u8 *buf, __u32 nl)
{
	__u64 h = tg_load64(buf, nl + 1);

	return c->pend != TG_PEND_NONE || (__u8)h <= ' ' || (h | TG_W_AUTH_FOLD) == TG_W_AUTH ||
	       (h | TG_W_XKEY_FOLD) == TG_W_XKEY;
}

/* Bit 7 of each byte of the result is set where w has a '\n' byte (exact, no carries). */
static __always_inline __u64 tg_newlines(__u64 w)
{
	__u64 x = w ^ 0x0a0a0a0a0a0a0a0aULL;

	return ~(((x & 0x7f7f7f7f7f7f7f7fULL) + 0x7f7f7f7f7f7f7f7fULL) | x) & 0x8080808080808080ULL;
}

/* The byte index (0-7) of the lowest set bit of m, whose set bits are all bit 7 of bytes:
 * (b >> 7) is 1 << 8j; multiplying shifts the constant's byte 7 - j (which holds j) to the
 * top. BPF has no count-trailing-zeros instruction. */
static __always_inline __u32 tg_lowest_lane(__u64 m)
{
	__u64 b = m & (0 - m);

	return (__u32)(((b >> 7) * 0x0001020304050607ULL) >> 56);
}

/* The newlines of the word at off (mask m). Returns 1 to stop the scan. */
static __always_inline int tg_scan_lanes(struct tg_scan *c, const __u8 *buf, __u32 off, __u64 m)
{
#pragma clang loop unroll(disable)
	for (int i = 0; i < 8 && m; i++) {
		__u32 nl = off + tg_lowest_lane(m);

		m &= m - 1;
		if (tg_newline_matters(c, buf, nl) && tg_scan_newline(c, buf, nl))
			return 1;
	}
	return 0;
}

#define TG_SCAN_WORDS 8 /* words per bpf_loop step */

/* bpf_loop callback: the TG_SCAN_WORDS words from index * 8 * TG_SCAN_WORDS. The buffer and
 * length are read once into locals: most words hold no newline and cost a load, the newline
 * test and a branch. */
static long tg_scan_block(__u64 index, void *arg)
{
	struct tg_scan_ref *ref = arg;
	struct tg_scan *c = &ref->sb->st;
	const __u8 *buf = ref->sb->b;
	__u32 off = (__u32)index * (8 * TG_SCAN_WORDS), len = c->len;

#pragma unroll
	for (int k = 0; k < TG_SCAN_WORDS; k++, off += 8) {
		__u64 m;

		if (off >= len)
			return 1;
		m = tg_newlines(tg_load64(buf, off));
		if (m && tg_scan_lanes(c, buf, off, m))
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

	/* No blank or a single one at that end (what clients send): decided without the loop. */
	if (*e - *s >= 2 && *e > *s) {
		__u32 at = at_end ? *e - 1 : *s, next = at_end ? *e - 2 : *s + 1;

		if (!tg_is_ows(tg_byte(buf, at)))
			return 1;
		if (!tg_is_ows(tg_byte(buf, next))) {
			if (at_end)
				*e -= 1;
			else
				*s += 1;
			return 1;
		}
	}

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
	struct tg_scan_ref *ref = arg;
	struct tg_scan *c = &ref->sb->st;
	const __u8 *buf = ref->sb->b;
	__u32 i = (__u32)index & (TG_SCAN_MAX_KEYHDR - 1);
	__u32 s = c->val_start[i], e = c->val_end[i], kind = c->kind[i] & 3, len;
	__u64 h, first;
	int rc;

	if (e < s || e - s > TG_SCAN_CAP) {
		c->bad = 1;
		return 1;
	}
	rc = tg_value_key(buf, kind, &s, &e);
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
	h = tg_bpf_siphash64(ref->secret, buf, s & TG_SCAN_MASK, len);
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
	struct tg_scan_ref ref = {.sb = sb, .secret = secret};
	struct tg_scan *c;
	__u8 *buf;
	__u32 n, probe;

	if (!skb || !p || !sb || !secret || !khash)
		return TG_V_MALFORMED;
	buf = sb->b;
	c = &sb->st;
	__builtin_memset(c, 0, sizeof(*c));
	n = p->pay_len < TG_SCAN_CAP ? p->pay_len : TG_SCAN_CAP;
	probe = n < TG_SCAN_PROBE ? n : TG_SCAN_PROBE;
	if (probe == 0 || bpf_skb_load_bytes(skb, p->pay_off, buf, probe & 0x1f))
		return TG_V_MALFORMED;
	c->method_len = tg_method_len(buf, probe);
	if (c->method_len == 0)
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
	c->len = n;
	c->pend = TG_PEND_REQ;
	bpf_loop((n + 8 * TG_SCAN_WORDS - 1) / (8 * TG_SCAN_WORDS), tg_scan_block, &ref, 0);
	if (c->stop == TG_SCAN_NOT_HTTP)
		return TG_V_NOT_HTTP;
	/* No complete request line in the copy, a folded line, or no key line at all. */
	if (!c->reqline || c->stop == TG_SCAN_GIVE_UP || c->nkey == 0)
		return TG_V_NO_KEY;
	bpf_loop(c->nkey, tg_scan_key, &ref, 0);
	if (c->bad || !c->have)
		return TG_V_NO_KEY;
	/* The daemon reads only the first header of each name: one without a key and another
	 * with one would leave it with a different key, or none. */
	if ((c->seen >> (2 * TG_HDR_AUTH) & 3) == 3 || (c->seen >> (2 * TG_HDR_XKEY) & 3) == 3)
		return TG_V_NO_KEY;
	*khash = c->khash;
	return 0;
}

#endif /* TG_BPF_HTTP_H */
