// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The XDP penalty box (rung 3 of the escalation ladder): drops the connection attempts (SYN
 * without ACK, to a guarded listener port) of source addresses that kept coming back after
 * kernel refusals, while their penalty lasts. The TC program decides who enters the box
 * (bpf/lib/penalty.h); this program only reads tg_penalty and tg_allow, and counts.
 *
 * Everything else passes untouched, including everything it cannot parse (fragments, IPv6
 * extension headers, truncated frames): established connections, ACKs and data from a
 * penalised source are never dropped here, so a client behind a penalised address (or NAT)
 * keeps its open connections; only new ones fail until the penalty expires.
 *
 * Built to run under libxdp's multi-program dispatcher: XDP_RUN_CONFIG below sets its
 * priority (early: dropping cheaply is the point) and continues the chain on XDP_PASS.
 */
#include "lib/common.h"
#include "lib/penalty.h"
#include <xdp/xdp_helpers.h>

#define TG_XDP_RUN_PRIO 10 /* lower runs first; libxdp's default is 50 */

struct {
	__uint(priority, TG_XDP_RUN_PRIO);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(tg_xdp_penalty);

#define TG_TCP_FLAG_SYN 0x02
#define TG_TCP_FLAG_ACK 0x10

/* The outer Ethernet header and up to two VLAN tags (802.1ad outer, 802.1Q inner, or
 * 802.1Q twice). On success *off is the L3 offset and *proto the L3 ethertype (network
 * order); -1 if the frame ends first. */
static __always_inline int tg_xdp_eth(void *data, void *end, __u32 *off, __be16 *proto)
{
	struct ethhdr *eth = data;
	__u32 o = ETH_HLEN;
	__be16 p;

	if ((void *)(eth + 1) > end)
		return -1;
	p = eth->h_proto;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		struct vlan_hdr *vh = data + o;

		if (p != bpf_htons(ETH_P_8021Q) && p != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(vh + 1) > end)
			return -1;
		p = vh->h_vlan_encapsulated_proto;
		o += sizeof(*vh);
	}
	*off = o;
	*proto = p;
	return 0;
}

/* IPv4 header at off: the source as a tg_addr and the TCP offset; -1 for non-TCP,
 * fragments (a later fragment carries no TCP header; a first one is rare enough for a SYN
 * to pass), bad header lengths and truncation. */
static __always_inline int tg_xdp_ipv4(void *data, void *end, __u32 off, struct tg_addr *src,
				       __u32 *l4off)
{
	struct iphdr *ip = data + off;
	__u32 hlen;

	if ((void *)(ip + 1) > end)
		return -1;
	if (ip->protocol != IPPROTO_TCP || (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
		return -1;
	hlen = ip->ihl * 4;
	if (hlen < sizeof(*ip))
		return -1;
	tg_addr_from_ipv4(ip->saddr, src);
	*l4off = off + hlen;
	return 0;
}

/* IPv6 header at off: as tg_xdp_ipv4. Any extension header (including a fragment header)
 * means -1: the program does not walk them; the daemon still enforces everything. */
static __always_inline int tg_xdp_ipv6(void *data, void *end, __u32 off, struct tg_addr *src,
				       __u32 *l4off)
{
	struct ipv6hdr *ip6 = data + off;

	if ((void *)(ip6 + 1) > end)
		return -1;
	if (ip6->nexthdr != IPPROTO_TCP)
		return -1;
	tg_addr_from_ipv6(&ip6->saddr, src);
	*l4off = off + sizeof(*ip6);
	return 0;
}

/* 0 when the frame is a SYN without ACK to a guarded port, with its full source address
 * in *src; -1 for anything else. */
static __always_inline int tg_xdp_parse_syn(struct xdp_md *ctx, const struct tg_config *cfg,
					    struct tg_addr *src)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct tcphdr *tcp;
	__u32 off, l4off;
	__be16 proto;
	__u8 flags;
	int err;

	if (tg_xdp_eth(data, end, &off, &proto))
		return -1;
	if (proto == bpf_htons(ETH_P_IP))
		err = tg_xdp_ipv4(data, end, off, src, &l4off);
	else if (proto == bpf_htons(ETH_P_IPV6))
		err = tg_xdp_ipv6(data, end, off, src, &l4off);
	else
		return -1;
	if (err)
		return -1;
	/* l4off <= 14 + 8 + 60: a bound the verifier can follow into the pointer. */
	tcp = data + (l4off & 0xff);
	if ((void *)(tcp + 1) > end)
		return -1;
	flags = ((__u8 *)tcp)[13];
	if ((flags & (TG_TCP_FLAG_SYN | TG_TCP_FLAG_ACK)) != TG_TCP_FLAG_SYN)
		return -1;
	return tg_port_guarded(cfg, tcp->dest) ? 0 : -1;
}

/* The verdict for a SYN from src: drop while its (prefix's) penalty lasts. */
static __always_inline int tg_xdp_judge(const struct tg_config *cfg, const struct tg_addr *src)
{
	struct tg_penalty *p;
	struct tg_addr key;

	if (tg_addr_allowed(src)) {
		tg_count(TG_V_XDP_ALLOWED);
		return XDP_PASS;
	}
	tg_penalty_key(src, cfg, &key);
	p = bpf_map_lookup_elem(&tg_penalty, &key);
	/* No entry: the source was never refused by the kernel (or LRU evicted it as the
	 * quietest): it is not penalised, pass. */
	if (!p || p->until_ns <= tg_now_ns())
		return XDP_PASS;
	__sync_fetch_and_add(&p->dropped_total, 1);
	tg_count(TG_V_XDP_DROPPED);
	return XDP_DROP;
}

SEC("xdp")
int tg_xdp_penalty(struct xdp_md *ctx)
{
	const struct tg_config *cfg;
	struct tg_addr src;

	tg_count(TG_V_XDP_SEEN);
	cfg = tg_cfg();
	/* No configuration (see tg_cfg) or a mode without the penalty box: pass everything. */
	if (!cfg || cfg->mode != TG_MODE_FULL)
		return XDP_PASS;
	if (tg_xdp_parse_syn(ctx, cfg, &src))
		return XDP_PASS;
	return tg_xdp_judge(cfg, &src);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
