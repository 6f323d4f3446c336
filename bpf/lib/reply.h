/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The kernel's answers: the HTTP/1.1 429 text, and the rewriting of a received segment into
 * a segment of our own (the 429 to the client, the RST to the local socket, the ACK that
 * absorbs a refused flow's later segments).
 *
 * The 429 has a constant length (TG_REPLY_LEN) so that Content-Length is a constant, the
 * reply fits one segment whatever the numbers, and the sequence space it takes is known
 * when later segments of the flow are absorbed. Numbers in headers sit right-aligned in
 * fixed-width fields (the blanks are OWS after the colon, which every parser drops); the
 * JSON body is padded with blanks after its closing brace (JSON allows whitespace there).
 * The texts follow the daemon's (userspace/ratelimit.c ratelimit_headers and
 * ratelimit_message; type and code as in userspace/dataplane.c dp_rate), except that the
 * kernel does not know the key's id, so the message says "this key".
 *
 * Checksums, as KERNEL-NOTES measured them working in all four TX-offload combinations:
 * the TCP checksum field is written as 0, then the pseudo-header sum goes in with
 * bpf_l4_csum_replace(BPF_F_PSEUDO_HDR) (alone, that is what CHECKSUM_PARTIAL wants) and
 * the sum of header and payload with a second bpf_l4_csum_replace (a no-op for
 * CHECKSUM_PARTIAL, completes the checksum otherwise). The IPv4 header checksum is
 * computed in full.
 */
#ifndef TG_BPF_REPLY_H
#define TG_BPF_REPLY_H

#include "common.h"
#include "parse.h"

/* ---- the 429 text ---- */

#define TG_R_NUM20	  "                    " /* a right-aligned number up to 20 digits */
#define TG_R_NUM25	  TG_R_NUM20 "     "	 /* seconds with 3 decimals and an 's' */
#define TG_R_BODY_LEN	  386			 /* keeps TG_REPLY_LEN a multiple of 4 */
#define TG_R_BODY_LEN_STR "386"

#define TG_R_P_RETRY                                                                               \
	"HTTP/1.1 429 Too Many Requests\r\n"                                                       \
	"Content-Type: application/json\r\n"                                                       \
	"Content-Length: " TG_R_BODY_LEN_STR "\r\n"                                                \
	"Connection: close\r\n"                                                                    \
	"Retry-After: "
#define TG_R_P_LIMIT1 TG_R_P_RETRY TG_R_NUM20 "\r\nx-ratelimit-limit-requests: "
#define TG_R_P_RESET1                                                                              \
	TG_R_P_LIMIT1 TG_R_NUM20 "\r\nx-ratelimit-remaining-requests: 0\r\n"                       \
				 "x-ratelimit-reset-requests: "
#define TG_R_P_LIMIT2	TG_R_P_RESET1 TG_R_NUM25 "\r\nX-RateLimit-Limit: "
#define TG_R_P_RESET2	TG_R_P_LIMIT2 TG_R_NUM20 "\r\nX-RateLimit-Remaining: 0\r\nX-RateLimit-Reset: "
#define TG_R_HEAD	TG_R_P_RESET2 TG_R_NUM20 "\r\nx-tollgate-enforcer: kernel\r\n\r\n"
#define TG_R_BODY_START "{\"error\":{\"type\":\"request_rate_limit_exceeded\",\"param\":null,"

#define TG_R_LIT_LEN(s) (sizeof(s) - 1)
/* End offsets (one past) of the right-aligned fields. */
#define TG_R_END_RETRY	(TG_R_LIT_LEN(TG_R_P_RETRY) + 20)
#define TG_R_END_LIMIT1 (TG_R_LIT_LEN(TG_R_P_LIMIT1) + 20)
#define TG_R_END_RESET1 (TG_R_LIT_LEN(TG_R_P_RESET1) + 25)
#define TG_R_END_LIMIT2 (TG_R_LIT_LEN(TG_R_P_LIMIT2) + 20)
#define TG_R_END_RESET2 (TG_R_LIT_LEN(TG_R_P_RESET2) + 20)
#define TG_R_HEAD_LEN	TG_R_LIT_LEN(TG_R_HEAD)
#define TG_REPLY_LEN	(TG_R_HEAD_LEN + TG_R_BODY_LEN)
#define TG_R_MASK	1023 /* reply buffer index mask; the buffer is TG_R_ROOM bytes */
#define TG_R_ROOM	1088

/* The per-CPU buffer the 429 is built in (a struct: global functions take sized memory). */
struct tg_reply_buf {
	__u8 b[TG_R_ROOM];
};

_Static_assert(TG_REPLY_LEN % 4 == 0, "bpf_csum_diff sums whole 32-bit words");
_Static_assert(TG_REPLY_LEN <= TG_R_MASK, "masked indexes cover the reply");

/*
 * The reply with every variable part blank. The body holds its fixed start, blanks (JSON
 * whitespace between two members) and a final newline; its variable end ("code", "message"
 * and the closing braces) is written right to left from that newline (tg_reply_body).
 * 8-aligned so that the copy moves whole words.
 */
static const char tg_reply_template[TG_REPLY_LEN] __attribute__((aligned(8))) =
    TG_R_HEAD TG_R_BODY_START "                                                            "
			      "                                                            "
			      "                                                            "
			      "                                                            "
			      "                                                            "
			      "                         \n";
_Static_assert(TG_R_HEAD_LEN + TG_R_LIT_LEN(TG_R_BODY_START) + 5 * 60 + 26 == TG_REPLY_LEN,
	       "template fills the reply exactly");

/* What the refusal says: the window that refuses longest, from the slot (see gcra.h). */
struct tg_refusal {
	__u32 window;	  /* enum tg_window_id */
	__u32 slot;	  /* the key's slot in tg_slots */
	__u64 limit;	  /* requests per window (burst for the second window) */
	__u64 retry_ms;	  /* until a request passes, ms rounded up */
	__u64 reset_ms;	  /* until the bucket is full, ms rounded up */
	__u64 rate_milli; /* second window: sustained rate in requests per 1000 s */
};

/*
 * x / 10 for any 32-bit x, without a division: 0xCCCCCCCD / 2^35 is 1/10 closely enough
 * that the product's top bits are exact (the usual reciprocal for 32-bit operands). BPF has
 * no multiply-high, so clang emits a real 64-bit division for a 64-bit "/ 10": tens of
 * cycles each, and a refusal's numbers took over a hundred of them.
 */
static __always_inline __u32 tg_div10(__u32 x)
{
	return (__u32)(((__u64)x * 0xCCCCCCCDULL) >> 35);
}

/* v's decimal digits right-aligned so that the last one is at end - 1. */
static __always_inline void tg_put_num_right(__u8 *out, __u32 end, __u64 v)
{
	__u32 lo;
	int i = 1;

	/* Digits above 32 bits (no figure of a real window) the slow way. */
	for (; i <= 20 && v > 0xffffffffULL; i++) {
		out[(end - i) & TG_R_MASK] = '0' + v % 10;
		v /= 10;
	}
	lo = (__u32)v;
	for (; i <= 20; i++) {
		__u32 q = tg_div10(lo);

		out[(end - i) & TG_R_MASK] = '0' + (lo - q * 10);
		lo = q;
		if (!lo)
			break;
	}
}

/* Seconds from ms as the daemon prints them: trailing zeros of 3 decimals dropped, at least
 * min_dec kept ("1.5", "60", "2.0" with min_dec 1). Digits of the fraction, first to last. */
static __always_inline __u32 tg_frac_digits(__u64 ms, __u32 min_dec, __u8 d[3])
{
	__u32 f = ms % 1000, f10 = tg_div10(f), f100 = tg_div10(f10), n = 3;

	d[0] = '0' + f100;
	d[1] = '0' + (f10 - f100 * 10);
	d[2] = '0' + (f - f10 * 10);
	if (n > min_dec && d[2] == '0')
		n = 2;
	if (n == 2 && n > min_dec && d[1] == '0')
		n = 1;
	if (n == 1 && n > min_dec && d[0] == '0')
		n = 0;
	return n;
}

/* x-ratelimit-reset-requests: "<seconds>s", right-aligned in its 25-byte field. */
static __always_inline void tg_put_secs_right(__u8 *out, __u32 end, __u64 ms)
{
	__u8 d[3];
	__u32 n = tg_frac_digits(ms, 0, d), pos = end - 1;

	out[pos & TG_R_MASK] = 's';
	for (int i = 2; i >= 0; i--) {
		if ((__u32)i >= n)
			continue;
		out[(pos - n + i) & TG_R_MASK] = d[i];
	}
	if (n) {
		pos -= n;
		out[(pos - 1) & TG_R_MASK] = '.';
		pos--;
	}
	tg_put_num_right(out, pos, ms / 1000);
}

/*
 * The body's variable end is written right to left, so that no write depends on a digit
 * count: a number is written as its 19 lowest digits ending at the cursor (the leading zeros
 * land on bytes that the text further left overwrites afterwards; the leftmost number has a
 * 75-byte text on its left), and only the cursor moves by the count, computed without
 * branches. The verifier then follows one path per number instead of one per length; where
 * branches do make the cursor differ (the window's name, "request" or "requests"),
 * tg_cur_forget makes it one unknown value again.
 */
struct tg_cur {
	__u8 *out;
	__u32 pos; /* the next write ends just before this offset */
};

/*
 * Reading the cursor back from map memory gives it a value the verifier does not know, only
 * bounded by the mask. The spare bytes after the reply (TG_R_MASK + 1 onwards) hold it.
 */
static __always_inline void tg_cur_forget(struct tg_cur *c)
{
	volatile __u32 *slot = (volatile __u32 *)(c->out + TG_R_MASK + 1);

	*slot = c->pos;
	c->pos = *slot & TG_R_MASK;
}

#define tg_rput_lit(c, s)                                                                          \
	do {                                                                                       \
		(c)->pos -= TG_R_LIT_LEN(s);                                                       \
		for (__u32 i_ = 0; i_ < TG_R_LIT_LEN(s); i_++)                                     \
			(c)->out[((c)->pos + i_) & TG_R_MASK] = (s)[i_];                           \
	} while (0)

/* x, opaque to the compiler, so that arithmetic on it stays arithmetic (not branches). */
static __always_inline __u64 tg_opaque(__u64 x)
{
	barrier_var(x);
	return x;
}

/* 1 if x != 0, without a branch. */
static __always_inline __u64 tg_nz(__u64 x)
{
	return (x | (0 - tg_opaque(x))) >> 63;
}

/* 1 if v >= c, for v < 2^63 and 0 < c < 2^63, without a branch. */
static __always_inline __u64 tg_ge(__u64 v, __u64 c)
{
	return (tg_opaque(c - 1) - v) >> 63;
}

#define TG_R_NUM_MAX 999999999999999999ULL /* 18 digits: more than any limit or time here */

/* v in decimal, ending at the cursor. */
static __always_inline void tg_rput_u64(struct tg_cur *c, __u64 v)
{
	__u64 n = 1, p = 10;

	if (v > TG_R_NUM_MAX)
		v = TG_R_NUM_MAX;
	__u32 part[2];

	for (int k = 1; k < 18; k++, p *= 10)
		n += tg_ge(v, p);
	/* Two 9-digit halves: one 64-bit division, then 32-bit arithmetic (tg_div10). */
	part[1] = (__u32)(v / 1000000000ULL);
	part[0] = (__u32)(v - part[1] * 1000000000ULL);
	for (int h = 0; h < 2; h++) {
		__u32 x = part[h];

		for (int i = 1; i <= 9; i++) {
			__u32 q = tg_div10(x);

			c->out[(c->pos - 9 * h - i) & TG_R_MASK] = '0' + (x - q * 10);
			x = q;
		}
	}
	c->pos -= n;
}

/*
 * ms as seconds the way the daemon prints them (ratelimit.c fmt_seconds): three decimals
 * with trailing zeros dropped, at least min_dec (0 or 1) kept: "1.5", "60", "2.0".
 */
static __always_inline void tg_rput_ms(struct tg_cur *c, __u64 ms, __u32 min_dec)
{
	__u64 secs = ms / 1000, n, shown;
	__u32 f = (__u32)(ms - secs * 1000), f10 = tg_div10(f), f100 = tg_div10(f10);

	/* decimals shown, up to the last non-zero one: 3 minus the trailing zeros */
	n = tg_nz(f - f10 * 10) + tg_nz(f - f100 * 100) + tg_nz(f);
	if (min_dec)
		n += 1 - tg_nz(n);
	/* the shown decimals as a number, f / 10^(3 - n), chosen without a branch (n = 0
	 * only when f = 0, where every choice is 0) */
	shown = f100 + (__u64)(f10 - f100) * tg_ge(n, 2) + (__u64)(f - f10) * tg_ge(n, 3);
	for (int i = 1; i <= 3; i++) {
		__u32 q = tg_div10((__u32)shown);

		c->out[(c->pos - i) & TG_R_MASK] = '0' + ((__u32)shown - q * 10);
		shown = q;
	}
	c->pos -= n;
	c->out[(c->pos - 1) & TG_R_MASK] = '.';
	c->pos -= tg_nz(n); /* no decimals: the integer's last digit overwrites the dot */
	tg_rput_u64(c, secs);
}

/*
 * The body's variable end, from its last byte leftwards: "code", "message" and the closing
 * braces, as the daemon's 429 (its message says "for key <id>"; the kernel does not know ids).
 */
static __always_inline void tg_reply_body(__u8 *out, const struct tg_refusal *r)
{
	struct tg_cur c = {.out = out, .pos = TG_REPLY_LEN - 1};

	/* Unknown to the compiler: it keeps every mask instead of folding them into offsets
	 * below the buffer's start (negative offsets the verifier refuses). */
	barrier_var(c.pos);
	tg_rput_lit(&c, " s)\"}}");
	tg_rput_ms(&c, r->reset_ms, 1);
	tg_rput_lit(&c, " s (bucket full again in ");
	tg_rput_ms(&c, r->retry_ms, 1);
	tg_rput_lit(&c, "; retry after ");
	if (r->window == TG_WIN_SECOND) {
		tg_rput_lit(&c, ")");
		tg_rput_u64(&c, r->limit);
		tg_rput_lit(&c, "/s, burst ");
		tg_rput_ms(&c, r->rate_milli, 0);
		tg_rput_lit(&c, "second (rate ");
	} else if (r->window == TG_WIN_MINUTE) {
		tg_rput_lit(&c, "minute");
	} else {
		tg_rput_lit(&c, "hour");
	}
	tg_cur_forget(&c);
	if (r->limit == 1)
		tg_rput_lit(&c, " request per ");
	else
		tg_rput_lit(&c, " requests per ");
	tg_cur_forget(&c);
	tg_rput_u64(&c, r->limit);
	tg_rput_lit(&c, "\",\"message\":\"Rate limit exceeded for this key: ");
	if (r->window == TG_WIN_SECOND)
		tg_rput_lit(&c, "second");
	else if (r->window == TG_WIN_MINUTE)
		tg_rput_lit(&c, "minute");
	else
		tg_rput_lit(&c, "hour");
	tg_rput_lit(&c, "\"code\":\"requests_per_");
}

/*
 * Writes the whole 429 into rb. The longest message (every number at 20 digits) ends well
 * before the body's last byte, so the blanks and the final newline remain. Returns 0, or
 * -1 for a NULL argument. A global function, verified once on its own (see tg_http_key).
 */
__noinline int tg_reply_text(struct tg_reply_buf *rb, const struct tg_refusal *r)
{
	__u8 *out;
	__u64 retry_s;

	if (!rb || !r)
		return -1;
	out = rb->b;
	retry_s = r->retry_ms / 1000 + (r->retry_ms % 1000 != 0);

	__builtin_memcpy(out, tg_reply_template, TG_REPLY_LEN);
	tg_put_num_right(out, TG_R_END_RETRY, retry_s ? retry_s : 1);
	tg_put_num_right(out, TG_R_END_LIMIT1, r->limit);
	tg_put_secs_right(out, TG_R_END_RESET1, r->reset_ms);
	tg_put_num_right(out, TG_R_END_LIMIT2, r->limit);
	tg_put_num_right(out, TG_R_END_RESET2, r->reset_ms / 1000 + (r->reset_ms % 1000 != 0));
	tg_reply_body(out, r);
	return 0;
}

/* ---- segments ---- */

/* A TCP header with room for NOP,NOP,timestamps; without them only the first 20 bytes. */
struct tg_tcp_hdr {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
	__u8 doff;  /* data offset in words, << 4 */
	__u8 flags; /* TG_TCP_* */
	__be16 window;
	__be16 check;
	__be16 urg_ptr;
	__u8 opt[4]; /* NOP, NOP, kind 8, length 10 */
	__be32 ts_val;
	__be32 ts_ecr;
};

/* The segment to write: direction, numbers, flags, payload. */
struct tg_seg {
	__u32 seq;	 /* host order */
	__u32 ack;	 /* host order */
	__u8 flags;	 /* TG_TCP_* */
	__u8 to_client;	 /* 1: addresses, ports and MACs swapped; 0: as received */
	__u8 with_ts;	 /* add the timestamps option echoing the received one */
	__u8 with_reply; /* the payload is the 429 in the work area's text */
	__u16 window;	 /* host order */
	__u16 pad;
};

struct tg_pseudo4 {
	__be32 src;
	__be32 dst;
	__u8 zero;
	__u8 proto;
	__be16 len;
};

struct tg_pseudo6 {
	__be32 src[4];
	__be32 dst[4];
	__be32 len;
	__be32 nexthdr;
};

/*
 * Per-CPU work area of the segment writer, in the scratch map rather than on the stack: the
 * BPF stack is 512 bytes for a whole chain of calls.
 *
 * The 429 it holds is kept from one refusal to the next with the refusal it was built for
 * and its checksum (tg_reply_prepare): a flood refuses many requests within each millisecond,
 * and those all get the same text (its numbers are milliseconds), so most refusals skip both
 * the formatting and the sum over ~700 bytes.
 */
struct tg_seg_work {
	struct tg_reply_buf text; /* the 429 (tg_reply_text) */
	struct tg_refusal text_for; /* the refusal text says, when text_valid */
	__u32 text_sum;		    /* text's 32-bit ones'-complement sum (bpf_csum_diff's) */
	__u32 text_valid;
	struct tg_tcp_hdr th;
	union {
		struct ipv6hdr ip6;
		struct {
			struct iphdr ip;
			__u8 opt[40]; /* the request's IPv4 options, written as zeros */
		} v4;
	} ip;
	union {
		struct tg_pseudo4 v4;
		struct tg_pseudo6 v6;
	} ph;
	__u8 mac[2 * ETH_ALEN];
	__u8 pad[4];
};

static __always_inline __u16 tg_csum_fold(__u64 csum)
{
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return (__u16)~csum;
}

/* The IP header of segment s; *pseudo gets the sum of the TCP pseudo-header. */
static __always_inline int tg_seg_ip(struct __sk_buff *skb, const struct tg_pkt *p,
				     const struct tg_seg *s, struct tg_seg_work *w, __u32 l4_len,
				     __s64 *pseudo)
{
	const __be32 *src = s->to_client ? p->daddr : p->saddr;
	const __be32 *dst = s->to_client ? p->saddr : p->daddr;

	if (p->is_v6) {
		struct ipv6hdr *ip6 = &w->ip.ip6;

		__builtin_memset(ip6, 0, sizeof(*ip6));
		ip6->version = 6;
		ip6->payload_len = bpf_htons(l4_len);
		ip6->nexthdr = IPPROTO_TCP;
		ip6->hop_limit = 64;
		__builtin_memcpy(&ip6->saddr, src, 16);
		__builtin_memcpy(&ip6->daddr, dst, 16);
		__builtin_memcpy(w->ph.v6.src, src, 16);
		__builtin_memcpy(w->ph.v6.dst, dst, 16);
		w->ph.v6.len = bpf_htonl(l4_len);
		w->ph.v6.nexthdr = bpf_htonl(IPPROTO_TCP);
		*pseudo = bpf_csum_diff(0, 0, (__be32 *)&w->ph.v6, sizeof(w->ph.v6), 0);
		return bpf_skb_store_bytes(skb, p->l3_off, ip6, sizeof(*ip6), 0);
	} else {
		struct iphdr *ip = &w->ip.v4.ip;
		__u32 hlen = p->ip_hlen & 63;

		/* Options of the request become zeros (end of list): nothing is reflected, and
		 * the TCP header stays where it was (csum_start of a CHECKSUM_PARTIAL skb). */
		__builtin_memset(&w->ip.v4, 0, sizeof(w->ip.v4));
		ip->version = 4;
		ip->ihl = hlen / 4;
		ip->tot_len = bpf_htons(hlen + l4_len);
		ip->frag_off = bpf_htons(0x4000); /* DF */
		ip->ttl = 64;
		ip->protocol = IPPROTO_TCP;
		ip->saddr = src[0];
		ip->daddr = dst[0];
		ip->check = tg_csum_fold(bpf_csum_diff(0, 0, (__be32 *)ip, sizeof(*ip), 0));
		__builtin_memset(&w->ph.v4, 0, sizeof(w->ph.v4));
		w->ph.v4.src = src[0];
		w->ph.v4.dst = dst[0];
		w->ph.v4.proto = IPPROTO_TCP;
		w->ph.v4.len = bpf_htons(l4_len);
		*pseudo = bpf_csum_diff(0, 0, (__be32 *)&w->ph.v4, sizeof(w->ph.v4), 0);
		if (hlen < sizeof(*ip) || hlen > sizeof(w->ip.v4))
			return -1;
		return bpf_skb_store_bytes(skb, p->l3_off, &w->ip.v4, hlen, 0);
	}
}

/* Sum of the payload in pieces: bpf_csum_diff takes at most 512 bytes at once. */
static __always_inline __s64 tg_csum_payload(const __u8 *pay, __s64 seed)
{
	seed = bpf_csum_diff(0, 0, (__be32 *)pay, 512, seed);
	if (seed < 0)
		return seed;
	return bpf_csum_diff(0, 0, (__be32 *)(pay + 512), TG_REPLY_LEN - 512, seed);
}

/* 1 when a and b give the same 429 text (the slot is not in it). */
static __always_inline int tg_refusal_same_text(const struct tg_refusal *a,
						const struct tg_refusal *b)
{
	return a->window == b->window && a->limit == b->limit && a->retry_ms == b->retry_ms &&
	       a->reset_ms == b->reset_ms && a->rate_milli == b->rate_milli;
}

/*
 * The 429 for r and its checksum in w, built unless w holds the text of an identical refusal
 * already. Returns 0, or -1 when it cannot be built (w then holds no valid text).
 */
static __always_inline int tg_reply_prepare(struct tg_seg_work *w, const struct tg_refusal *r)
{
	__s64 sum;

	if (w->text_valid && tg_refusal_same_text(&w->text_for, r))
		return 0;
	w->text_valid = 0;
	if (tg_reply_text(&w->text, r))
		return -1;
	sum = tg_csum_payload(w->text.b, 0);
	if (sum < 0)
		return -1;
	w->text_sum = (__u32)sum;
	w->text_for = *r;
	w->text_valid = 1;
	return 0;
}

/* The TCP header of segment s in w->th; returns its length. */
static __always_inline __u32 tg_seg_tcp(const struct tg_pkt *p, const struct tg_seg *s,
					struct tg_tcp_hdr *th)
{
	__u32 thl = s->with_ts ? sizeof(*th) : 20;

	__builtin_memset(th, 0, sizeof(*th));
	th->source = s->to_client ? p->dport : p->sport;
	th->dest = s->to_client ? p->sport : p->dport;
	th->seq = bpf_htonl(s->seq);
	th->ack_seq = bpf_htonl(s->ack);
	th->doff = (thl / 4) << 4;
	th->flags = s->flags;
	th->window = bpf_htons(s->window);
	if (s->with_ts) {
		th->opt[0] = 1;
		th->opt[1] = 1;
		th->opt[2] = 8;
		th->opt[3] = 10;
		th->ts_val = p->ts_ecr; /* our clock as the client last echoed it */
		th->ts_ecr = p->ts_val;
	}
	return thl;
}

/*
 * Turns the packet into segment s of the same flow, in place; the caller sends it. Returns
 * 0; 1 when a helper failed before the packet was changed (it is intact); -1 when one failed
 * after (the packet is neither what arrived nor the segment), or for a NULL argument. A
 * global function, verified once on its own (see tg_http_key).
 */
__noinline int tg_seg_write(struct __sk_buff *skb, const struct tg_pkt *p, const struct tg_seg *s,
			    struct tg_seg_work *w)
{
	__u32 thl, l4_len, csum_off, len;
	__s64 pseudo = 0, sum;

	if (!skb || !p || !s || !w)
		return -1;
	if (s->with_reply && !w->text_valid)
		return 1;
	thl = tg_seg_tcp(p, s, &w->th);
	l4_len = thl + (s->with_reply ? TG_REPLY_LEN : 0);
	csum_off = p->l4_off + 16;
	len = p->l4_off + l4_len;
	/* A change of length turns CHECKSUM_COMPLETE into NONE (its sum would be stale);
	 * with an unchanged length it would stay, so step through a longer one. */
	if (skb->len == len && bpf_skb_change_tail(skb, len + 4, 0))
		return 1;
	if (bpf_skb_change_tail(skb, len, 0))
		return 1;
	__builtin_memcpy(w->mac, s->to_client ? p->eth_src : p->eth_dst, ETH_ALEN);
	__builtin_memcpy(w->mac + ETH_ALEN, s->to_client ? p->eth_dst : p->eth_src, ETH_ALEN);
	if (bpf_skb_store_bytes(skb, 0, w->mac, sizeof(w->mac), 0))
		return -1;
	if (tg_seg_ip(skb, p, s, w, l4_len, &pseudo) || pseudo < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, p->l4_off, &w->th, thl, 0))
		return -1;
	/* The header's sum on top of the 429's, computed with the text (tg_reply_prepare); the
	 * header is 20 or 32 bytes, so the text's sum needs no byte swap. */
	sum = bpf_csum_diff(0, 0, (__be32 *)&w->th, thl, s->with_reply ? w->text_sum : 0);
	if (s->with_reply &&
	    bpf_skb_store_bytes(skb, p->l4_off + thl, w->text.b, TG_REPLY_LEN, 0))
		return -1;
	if (sum < 0)
		return -1;
	if (bpf_l4_csum_replace(skb, csum_off, 0, pseudo, BPF_F_PSEUDO_HDR) ||
	    bpf_l4_csum_replace(skb, csum_off, 0, sum, 0))
		return -1;
	return 0;
}

#endif /* TG_BPF_REPLY_H */
