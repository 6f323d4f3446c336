/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The penalty box's bookkeeping (rung 3 of the escalation ladder): source addresses as the
 * ABI's struct tg_addr, the allow-list check, and the counting of kernel refusals per source
 * that puts a source in the box. The TC program calls tg_penalty_note_refusal() after each
 * kernel 429; the XDP program (tollgate_xdp.bpf.c) drops the SYNs of sources in the box.
 *
 * Rule: a source whose refusals per one-second window stay above penalty_multiple_milli/1000
 * times its key's request rate for penalty_after_sec consecutive windows has its SYNs dropped
 * for penalty_sec. IPv6 sources are counted per prefix of penalty_v6_prefix_len bits (one
 * subscriber usually holds a whole /64 and could otherwise rotate addresses); IPv4 sources per
 * address. Allow-listed sources are never counted nor penalised.
 *
 * Include after common.h.
 */
#ifndef TG_BPF_PENALTY_H
#define TG_BPF_PENALTY_H

#include "common.h"

#define TG_PENALTY_V6_PREFIX_DEFAULT 64 /* used when the configuration says 0 */

/* IPv4 source (network order) as ::ffff:a.b.c.d. */
static __always_inline void tg_addr_from_ipv4(__be32 saddr, struct tg_addr *out)
{
	__builtin_memset(out->addr, 0, 10);
	out->addr[10] = 0xff;
	out->addr[11] = 0xff;
	__builtin_memcpy(&out->addr[12], &saddr, 4);
}

/* IPv6 source, copied whole (not masked: the allow list matches the full address). */
static __always_inline void tg_addr_from_ipv6(const struct in6_addr *saddr, struct tg_addr *out)
{
	__builtin_memcpy(out->addr, saddr, 16);
}

/* 1 if addr is IPv4-mapped (::ffff:0:0/96), i.e. made by tg_addr_from_ipv4. An IPv6 packet
 * whose source is itself IPv4-mapped (invalid on the wire) is then counted per address. */
static __always_inline int tg_addr_is_v4(const struct tg_addr *addr)
{
	__u64 lo;
	__u32 mid;

	__builtin_memcpy(&lo, addr->addr, 8);
	__builtin_memcpy(&mid, &addr->addr[8], 4);
	return lo == 0 && mid == bpf_htonl(0x0000ffff);
}

/* 1 if the full source address lies in an allow-listed prefix of tg_allow, else 0. */
static __always_inline int tg_addr_allowed(const struct tg_addr *full)
{
	struct tg_lpm_key k = { .prefixlen = 128 };

	__builtin_memcpy(k.addr, full->addr, 16);
	/* A miss is the normal case (not allow-listed), not a failure: the source is treated
	 * like any other. The lookup cannot fail otherwise for a well-formed key. */
	return bpf_map_lookup_elem(&tg_allow, &k) != NULL;
}

/* The network-order 64-bit mask of the first bits (0..64) of a half address. */
static __always_inline __u64 tg_mask64(int bits)
{
	if (bits <= 0)
		return 0;
	if (bits >= 64)
		return ~0ULL;
	return bpf_cpu_to_be64(~0ULL << (64 - bits));
}

/* The tg_penalty key of a full source address: IPv4 unchanged, IPv6 masked to the
 * configured prefix (0 in the configuration means the default /64; above 128 means 128).
 * Masked as two 64-bit halves: a per-byte loop costs the verifier thousands of states. */
static __always_inline void tg_penalty_key(const struct tg_addr *full,
					   const struct tg_config *cfg, struct tg_addr *key)
{
	int plen = cfg->penalty_v6_prefix_len;
	__u64 hi, lo;

	__builtin_memcpy(key->addr, full->addr, 16);
	if (tg_addr_is_v4(full))
		return;
	if (plen == 0)
		plen = TG_PENALTY_V6_PREFIX_DEFAULT;
	__builtin_memcpy(&hi, key->addr, 8);
	__builtin_memcpy(&lo, &key->addr[8], 8);
	hi &= tg_mask64(plen);
	lo &= tg_mask64(plen - 64);
	__builtin_memcpy(key->addr, &hi, 8);
	__builtin_memcpy(&key->addr[8], &lo, 8);
}

/*
 * Refusals per second (x1000) above which a window counts as a strike: the configured
 * multiple of the key's rate. The rate is that of the slot's first defined window in the
 * order second, minute, hour (1e12 / interval_ns requests per 1000 s). A slot with no
 * defined window has no rate, and the kernel never refuses for it: ~0 (never a strike).
 * Integers only; the rate is capped at 1e6 requests/s so the product fits in 64 bits, and
 * the result saturates at the field's 32 bits.
 */
static __always_inline __u32 tg_penalty_limit_milli(const struct tg_config *cfg,
						    const struct tg_slot *slot)
{
	__u64 interval = 0, rate_milli, limit;

#pragma unroll
	for (int w = 0; w < TG_WIN__COUNT; w++)
		if (!interval)
			interval = slot->win[w].interval_ns;
	if (!interval)
		return ~0u;
	rate_milli = (1000ULL * TG_NSEC_PER_SEC) / interval;
	if (rate_milli > 1000000000ULL)
		rate_milli = 1000000000ULL;
	limit = rate_milli * cfg->penalty_multiple_milli / 1000;
	return limit > ~0u ? ~0u : (__u32)limit;
}

/* First refusal seen from this source (or since LRU evicted it). */
static __always_inline void tg_penalty_insert(const struct tg_addr *key, __u32 limit,
					      __u64 now)
{
	struct tg_penalty fresh = {
		.window_start_ns = now,
		.refusals_total = 1,
		.refusals_window = 1,
		.limit_milli = limit,
	};
	struct tg_penalty *p;

	if (bpf_map_update_elem(&tg_penalty, key, &fresh, BPF_NOEXIST) == 0)
		return;
	/* -EEXIST: another CPU inserted this source since our lookup; count into its entry.
	 * Any other failure (no memory): this refusal goes uncounted, which only delays a
	 * penalty; it never wrongly causes one. */
	p = bpf_map_lookup_elem(&tg_penalty, key);
	if (!p)
		return;
	__sync_fetch_and_add(&p->refusals_total, 1);
	__sync_fetch_and_add(&p->refusals_window, 1);
}

/*
 * Ends the source's current window at a refusal arriving at now (>= 1 s after the window
 * began) and starts a new one with that refusal in it. The ended window is a strike when its
 * refusals exceeded its threshold; a gap of 2 s or more means a whole window went by without
 * any refusal, which resets the strikes too.
 *
 * Imprecision, accepted: windows start at the first refusal after the previous one ended
 * (not on a fixed grid), so "quiet window" is judged by that gap; two CPUs may both see the
 * window end and both roll it over, and an increment on another CPU during the roll-over can
 * be lost. Each costs at most one refusal or one window of delay; none penalises a source
 * that stayed under its threshold for a whole window.
 */
static __always_inline void tg_penalty_roll(struct tg_penalty *p, const struct tg_config *cfg,
					    __u32 limit, __u64 now)
{
	__u32 strikes = p->strikes;

	if ((__u64)p->refusals_window * 1000 > p->limit_milli)
		strikes++;
	else
		strikes = 0;
	if (now - p->window_start_ns >= 2 * TG_NSEC_PER_SEC)
		strikes = 0;
	p->window_start_ns = now;
	p->refusals_window = 1;
	p->limit_milli = limit;
	/* penalty_after_sec == 0 disables the box (the daemon's configuration says so). */
	if (cfg->penalty_after_sec && strikes >= cfg->penalty_after_sec) {
		if (p->until_ns <= now)
			tg_count(TG_V_PENALISED);
		p->until_ns = now + (__u64)cfg->penalty_sec * TG_NSEC_PER_SEC;
		strikes = 0;
	}
	p->strikes = strikes;
}

/*
 * Records one kernel refusal (a 429 the TC program sent) to the client at src, whose key is
 * in slot, at now (tg_now_ns()). src is the full client address (tg_addr_from_ipv4/6, not
 * masked: the allow list matches full addresses; masking to the IPv6 prefix happens here).
 * Does nothing outside mode full (no XDP program would enforce a penalty), for allow-listed
 * sources, or without a configuration (nothing to compare against: fail open).
 */
static __always_inline void tg_penalty_note_refusal(const struct tg_addr *src,
						    const struct tg_slot *slot, __u64 now)
{
	const struct tg_config *cfg = tg_cfg();
	struct tg_penalty *p;
	struct tg_addr key;
	__u32 limit;

	if (!cfg || cfg->mode != TG_MODE_FULL)
		return;
	if (tg_addr_allowed(src))
		return;
	tg_penalty_key(src, cfg, &key);
	limit = tg_penalty_limit_milli(cfg, slot);
	p = bpf_map_lookup_elem(&tg_penalty, &key);
	if (!p) {
		/* No entry: this source's first refusal, or LRU evicted it. Start one. */
		tg_penalty_insert(&key, limit, now);
		return;
	}
	__sync_fetch_and_add(&p->refusals_total, 1);
	if (now - p->window_start_ns >= TG_NSEC_PER_SEC)
		tg_penalty_roll(p, cfg, limit, now);
	else
		__sync_fetch_and_add(&p->refusals_window, 1);
}

#endif /* TG_BPF_PENALTY_H */
