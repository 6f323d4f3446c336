/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * SipHash-2-4-64 of a key in the TC program's scratch buffer, equal to the daemon's
 * tg_siphash64() (include/tollgate/siphash.h), whose round, compression, finalisation and
 * byte order this reuses. Only the message walk differs: tg_sip_absorb's two loops, bounded
 * by a length the verifier must follow precisely, multiplied its paths beyond the 1M
 * instruction limit inside the program. Here the whole words are compressed in one loop
 * whose bound the verifier cannot know (the length is read from map memory by the caller,
 * the scan's key step): one path per word, no callback call per word. The last partial
 * word is one masked 8-byte load, which is
 * safe because the buffer has room after any key (TG_SCAN_ROOM) and the bytes past the key
 * are masked off. tests/bpf/test_tc.c checks equality with tg_siphash64 for every length up
 * to TG_KEY_MAX_LEN.
 *
 * The key words: tg_secret holds the 16 secret bytes as stored (k0 = the little-endian
 * value of bytes 0-7, k1 of bytes 8-15), as tg_siphash64 reads its key argument.
 */
#ifndef TG_BPF_SIPHASH_H
#define TG_BPF_SIPHASH_H

#include "common.h"
#include "tollgate/siphash.h"

/* Index mask of the buffers keys are hashed in (the TC program's scan buffer). */
#define TG_SIP_BUF_MASK 2047

/*
 * tg_siphash64(secret, buf + off, len) for off + len <= TG_SIP_BUF_MASK + 1 and
 * len <= TG_KEY_MAX_LEN; buf must have TG_SIP_BUF_MASK + 1 + 8 bytes at least.
 */
static __always_inline __u64 tg_bpf_siphash64(const struct tg_secret *secret, const __u8 *buf,
					      __u32 off, __u32 len)
{
	__u64 k0 = tg_sip_le64((const __u8 *)secret), k1 = tg_sip_le64((const __u8 *)secret + 8);
	struct tg_sip_state st;
	__u32 tail = len & 7;
	__u64 last;

	/* Initialisation as tg_sip_absorb (64-bit tag: not "wide"). */
	st.v0 = k0 ^ 0x736f6d6570736575ULL;
	st.v1 = k1 ^ 0x646f72616e646f6dULL;
	st.v2 = k0 ^ 0x6c7967656e657261ULL;
	st.v3 = k1 ^ 0x7465646279746573ULL;
	/* The whole words inline: len comes from map memory, unknown to the verifier, so this
	 * is one path per word (at most TG_KEY_MAX_LEN / 8), not one per length. */
	for (__u32 i = 0; i < TG_KEY_MAX_LEN / 8; i++) {
		if (i >= len / 8)
			break;
		tg_sip_compress(&st, *(const __u64 *)(buf + ((off + i * 8) & TG_SIP_BUF_MASK)));
	}
	last = *(const __u64 *)(buf + ((off + len - tail) & TG_SIP_BUF_MASK));
	last = tail ? last & ((1ULL << (8 * tail)) - 1) : 0;
	tg_sip_compress(&st, last | (__u64)len << 56);
	return tg_sip_finish(&st, 0xff);
}

#endif /* TG_BPF_SIPHASH_H */
