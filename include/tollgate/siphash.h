/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * SipHash-2-4 (Aumasson and Bernstein), 64- and 128-bit tags.
 *
 * tollgate identifies an API key by a keyed hash of the whole key, never by a public prefix:
 * the daemon's verification cache uses the 128-bit tag, and the kernel fast path will look
 * keys up by the 64-bit tag computed with the store's hash secret. Both sides must compute
 * the same function, so it lives here, pure, with no libc and no I/O.
 */
#ifndef TOLLGATE_SIPHASH_H
#define TOLLGATE_SIPHASH_H

#include <linux/types.h>

#define TG_SIPHASH_KEY_LEN 16

#define TG_SIP_ROTL(x, b) (__u64)(((x) << (b)) | ((x) >> (64 - (b))))

struct tg_sip_state {
	__u64 v0; /* the four SipHash state words */
	__u64 v1;
	__u64 v2;
	__u64 v3;
};

static inline __u64 tg_sip_le64(const __u8 *p)
{
	return (__u64)p[0] | (__u64)p[1] << 8 | (__u64)p[2] << 16 | (__u64)p[3] << 24 |
	       (__u64)p[4] << 32 | (__u64)p[5] << 40 | (__u64)p[6] << 48 | (__u64)p[7] << 56;
}

static inline void tg_sip_round(struct tg_sip_state *s)
{
	s->v0 += s->v1;
	s->v1 = TG_SIP_ROTL(s->v1, 13);
	s->v1 ^= s->v0;
	s->v0 = TG_SIP_ROTL(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = TG_SIP_ROTL(s->v3, 16);
	s->v3 ^= s->v2;
	s->v0 += s->v3;
	s->v3 = TG_SIP_ROTL(s->v3, 21);
	s->v3 ^= s->v0;
	s->v2 += s->v1;
	s->v1 = TG_SIP_ROTL(s->v1, 17);
	s->v1 ^= s->v2;
	s->v2 = TG_SIP_ROTL(s->v2, 32);
}

static inline void tg_sip_compress(struct tg_sip_state *s, __u64 m)
{
	s->v3 ^= m;
	tg_sip_round(s);
	tg_sip_round(s);
	s->v0 ^= m;
}

/* Absorbs the whole message; 'wide' selects the 128-bit variant's initialisation. */
static inline void tg_sip_absorb(struct tg_sip_state *s, const __u8 key[TG_SIPHASH_KEY_LEN],
				 const void *msg, __u64 len, int wide)
{
	const __u8 *in = (const __u8 *)msg;
	__u64 k0 = tg_sip_le64(key), k1 = tg_sip_le64(key + 8);
	__u64 last = len << 56;
	__u64 i, tail = len & 7;

	s->v0 = k0 ^ 0x736f6d6570736575ULL;
	s->v1 = k1 ^ 0x646f72616e646f6dULL;
	s->v2 = k0 ^ 0x6c7967656e657261ULL;
	s->v3 = k1 ^ 0x7465646279746573ULL;
	if (wide)
		s->v1 ^= 0xee;
	for (i = 0; i + 8 <= len; i += 8)
		tg_sip_compress(s, tg_sip_le64(in + i));
	for (i = 0; i < tail; i++)
		last |= (__u64)in[len - tail + i] << (8 * i);
	tg_sip_compress(s, last);
}

static inline __u64 tg_sip_finish(struct tg_sip_state *s, __u8 xor_v2)
{
	s->v2 ^= xor_v2;
	tg_sip_round(s);
	tg_sip_round(s);
	tg_sip_round(s);
	tg_sip_round(s);
	return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

/* SipHash-2-4 with a 64-bit tag, as the reference implementation's little-endian value. */
static inline __u64 tg_siphash64(const __u8 key[TG_SIPHASH_KEY_LEN], const void *msg, __u64 len)
{
	struct tg_sip_state s;

	tg_sip_absorb(&s, key, msg, len, 0);
	return tg_sip_finish(&s, 0xff);
}

/* SipHash-2-4 with a 128-bit tag: out[0] holds the first 8 output bytes (little-endian). */
static inline void tg_siphash128(const __u8 key[TG_SIPHASH_KEY_LEN], const void *msg, __u64 len,
				 __u64 out[2])
{
	struct tg_sip_state s;

	tg_sip_absorb(&s, key, msg, len, 1);
	out[0] = tg_sip_finish(&s, 0xee);
	s.v1 ^= 0xdd;
	tg_sip_round(&s);
	tg_sip_round(&s);
	tg_sip_round(&s);
	tg_sip_round(&s);
	out[1] = s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

#endif /* TOLLGATE_SIPHASH_H */
