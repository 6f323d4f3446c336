/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Header parsing for the TC ingress program: Ethernet with up to two VLAN tags in the frame
 * (a tag the NIC or the stack already stripped into skb->vlan_tci is not in the data),
 * IPv4 with or without options, IPv6 without extension headers, TCP with options.
 *
 * tg_parse() copies everything the later steps need into struct tg_pkt, because every
 * helper that changes the packet invalidates packet pointers, and the reply is built by
 * such helpers. Lengths come from the IP header, not from skb->len: short Ethernet frames
 * carry padding after the IP datagram.
 */
#ifndef TG_BPF_PARSE_H
#define TG_BPF_PARSE_H

#include "common.h"

/* Longest header stack we read directly: Ethernet, two tags, IPv4 with options, TCP with
 * options. tg_parse pulls this much into the linear area when the head is shorter. */
#define TG_PARSE_PULL_LEN (ETH_HLEN + 2 * 4 + 60 + 60)

#define TG_TCP_FIN 0x01
#define TG_TCP_SYN 0x02
#define TG_TCP_RST 0x04
#define TG_TCP_PSH 0x08
#define TG_TCP_ACK 0x10

#define TG_TCPOPT_MAX 40 /* option bytes a TCP header can carry */

/* What the program keeps of one segment; all fields are copies, in the packet's byte order
 * unless the name says host order. */
struct tg_pkt {
	__u8 eth_dst[ETH_ALEN];
	__u8 eth_src[ETH_ALEN];
	__u8 is_v6;	 /* 1: IPv6, 0: IPv4 */
	__u8 has_ts;	 /* the TCP header carried a timestamps option */
	__u8 tcp_flags;	 /* FIN..ACK bits (TG_TCP_*) */
	__u8 pad;	 /* zero */
	__u16 l3_off;	 /* IP header offset from the frame start */
	__u16 ip_hlen;	 /* IPv4 header bytes incl. options, 40 for IPv6 */
	__u16 l4_off;	 /* TCP header offset */
	__u16 tcp_hlen;	 /* TCP header bytes incl. options */
	__u32 pay_off;	 /* payload offset */
	__u32 pay_len;	 /* payload bytes, from the IP lengths */
	__be16 sport;	 /* client port */
	__be16 dport;	 /* listener port */
	__u32 seq_h;	 /* sequence number, host order */
	__u32 ack_h;	 /* acknowledgment number, host order */
	__be32 ts_val;	 /* timestamps option, as sent */
	__be32 ts_ecr;	 /* timestamps option, as sent */
	__be32 saddr[4]; /* IPv4 in saddr[0]; IPv6 all four words */
	__be32 daddr[4]; /* same form */
};

/* The option walk runs in a bpf_loop callback over this copy: a loop over packet bytes
 * verified inline costs hundreds of thousands of instructions (KERNEL-NOTES). */
struct tg_optwalk {
	__u8 opt[72];  /* option bytes; room so a 63-masked index plus 4 stays inside */
	__u32 len;     /* option bytes present */
	__u32 pos;     /* next option */
	__u32 found;   /* a well-formed timestamps option was seen */
	__be32 ts_val; /* its fields, as sent */
	__be32 ts_ecr;
};

static long tg_optwalk_step(__u64 index, void *arg)
{
	struct tg_optwalk *w = arg;
	__u32 pos = w->pos, olen;
	__u8 kind;

	(void)index;
	if (pos >= w->len || pos >= TG_TCPOPT_MAX)
		return 1;
	kind = w->opt[pos & 63];
	if (kind == 0) /* end of option list */
		return 1;
	if (kind == 1) { /* NOP */
		w->pos = pos + 1;
		return 0;
	}
	if (pos + 1 >= w->len)
		return 1;
	olen = w->opt[(pos + 1) & 63];
	/* A bad length ends the walk, as the kernel's own option parser does. */
	if (olen < 2 || pos + olen > w->len)
		return 1;
	if (kind == 8 && olen == 10) {
		__builtin_memcpy(&w->ts_val, &w->opt[(pos + 2) & 63], 4);
		__builtin_memcpy(&w->ts_ecr, &w->opt[(pos + 6) & 63], 4);
		w->found = 1;
	}
	w->pos = pos + olen;
	return 0;
}

/*
 * The option walk for a layout other than NOP,NOP,TS first. A global function: verified once
 * on its own, and its copy of the options is not on the main program's stack. Returns 0.
 */
__noinline int tg_parse_tcp_opts_walk(struct __sk_buff *skb, struct tg_pkt *p)
{
	struct tg_optwalk w = {};
	__u32 len;

	if (!skb || !p)
		return 0;
	len = (p->tcp_hlen - sizeof(struct tcphdr)) & 63;
	if (len == 0 || len > TG_TCPOPT_MAX ||
	    bpf_skb_load_bytes(skb, p->l4_off + sizeof(struct tcphdr), w.opt, len))
		return 0;
	w.len = len;
	bpf_loop(TG_TCPOPT_MAX, tg_optwalk_step, &w, 0);
	if (w.found) {
		p->ts_val = w.ts_val;
		p->ts_ecr = w.ts_ecr;
		p->has_ts = 1;
	}
	return 0;
}

/*
 * Finds the timestamps option. Linux and macOS put NOP,NOP,TS first in every data segment,
 * which this reads straight from the packet; anything else is walked.
 */
static __always_inline void tg_parse_tcp_opts(struct __sk_buff *skb, struct tg_pkt *p,
					      const __u8 *opt, const void *data_end)
{
	__u32 len = p->tcp_hlen - sizeof(struct tcphdr);

	if (len == 0)
		return;
	if (len >= 12 && opt + 12 <= (const __u8 *)data_end && opt[0] == 1 && opt[1] == 1 &&
	    opt[2] == 8 && opt[3] == 10) {
		__builtin_memcpy(&p->ts_val, opt + 4, 4);
		__builtin_memcpy(&p->ts_ecr, opt + 8, 4);
		p->has_ts = 1;
		return;
	}
	tg_parse_tcp_opts_walk(skb, p);
}

/* Ethernet and VLAN tags: the ethertype after them, or 0 when the frame ends first. */
static __always_inline __u16 tg_parse_eth(struct tg_pkt *p, const void *data, const void *data_end)
{
	const struct ethhdr *eth = data;
	__u16 off = ETH_HLEN, proto;

	if ((const void *)(eth + 1) > data_end)
		return 0;
	__builtin_memcpy(p->eth_dst, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(p->eth_src, eth->h_source, ETH_ALEN);
	proto = eth->h_proto;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		const __be16 *tag;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		tag = data + off; /* TCI, then the inner ethertype */
		if ((const void *)(tag + 2) > data_end)
			return 0;
		proto = tag[1];
		off += 4;
	}
	p->l3_off = off;
	return proto;
}

/* IPv4: returns 0 and sets l4_off and the L4 length, or a verdict. */
static __always_inline int tg_parse_ipv4(struct __sk_buff *skb, struct tg_pkt *p, const void *data,
					 const void *data_end, __u32 *l4_len)
{
	const struct iphdr *ip = data + p->l3_off;
	__u32 hlen, tot;

	if ((const void *)(ip + 1) > data_end)
		return TG_V_MALFORMED;
	hlen = ip->ihl * 4;
	tot = bpf_ntohs(ip->tot_len);
	if (ip->version != 4 || hlen < sizeof(*ip) || tot < hlen || p->l3_off + tot > skb->len)
		return TG_V_MALFORMED;
	if (ip->protocol != IPPROTO_TCP)
		return TG_V_NOT_TCP;
	if (ip->frag_off & bpf_htons(0x3fff)) /* MF, or a fragment offset */
		return TG_V_FRAGMENT;
	p->saddr[0] = ip->saddr;
	p->daddr[0] = ip->daddr;
	p->ip_hlen = hlen;
	p->l4_off = p->l3_off + hlen;
	*l4_len = tot - hlen;
	return 0;
}

static __always_inline int tg_ipv6_is_ext(__u8 nexthdr)
{
	switch (nexthdr) {
	case 0:	  /* hop-by-hop options */
	case 43:  /* routing */
	case 44:  /* fragment */
	case 50:  /* ESP */
	case 51:  /* AH */
	case 60:  /* destination options */
	case 135: /* mobility */
	case 139: /* HIP */
	case 140: /* shim6 */
	case 253: /* experiments */
	case 254:
		return 1;
	}
	return 0;
}

static __always_inline int tg_parse_ipv6(struct __sk_buff *skb, struct tg_pkt *p, const void *data,
					 const void *data_end, __u32 *l4_len)
{
	const struct ipv6hdr *ip6 = data + p->l3_off;
	__u32 plen;

	if ((const void *)(ip6 + 1) > data_end)
		return TG_V_MALFORMED;
	plen = bpf_ntohs(ip6->payload_len);
	/* payload_len 0 is a jumbogram, which needs a hop-by-hop header: inconsistent here */
	if (ip6->version != 6 || plen == 0 || p->l3_off + sizeof(*ip6) + plen > skb->len)
		return TG_V_MALFORMED;
	if (ip6->nexthdr != IPPROTO_TCP)
		return tg_ipv6_is_ext(ip6->nexthdr) ? TG_V_IPV6_EXT : TG_V_NOT_TCP;
	__builtin_memcpy(p->saddr, &ip6->saddr, 16);
	__builtin_memcpy(p->daddr, &ip6->daddr, 16);
	p->is_v6 = 1;
	p->ip_hlen = sizeof(*ip6);
	p->l4_off = p->l3_off + sizeof(*ip6);
	*l4_len = plen;
	return 0;
}

/*
 * Parses the frame into p. Returns 0 for a TCP segment to a guarded port (p filled), or the
 * verdict to count and pass with: NOT_TCP, NOT_PORT, FRAGMENT, IPV6_EXT, MALFORMED.
 */
static __always_inline int tg_parse(struct __sk_buff *skb, const struct tg_config *cfg,
				    struct tg_pkt *p)
{
	const void *data, *data_end;
	const struct tcphdr *tcp;
	__u32 l4_len = 0, need;
	__u16 proto;
	int v;

	/* Headers in paged data (rare on receive) are pulled in once; a failed pull leaves
	 * the packet as it was, and the bounds checks below then call it malformed. */
	need = skb->len < TG_PARSE_PULL_LEN ? skb->len : TG_PARSE_PULL_LEN;
	data = (const void *)(long)skb->data;
	data_end = (const void *)(long)skb->data_end;
	if (data + (need & 0xff) > data_end) {
		bpf_skb_pull_data(skb, need);
		data = (const void *)(long)skb->data;
		data_end = (const void *)(long)skb->data_end;
	}

	proto = tg_parse_eth(p, data, data_end);
	if (proto == 0)
		return TG_V_MALFORMED;
	if (proto == bpf_htons(ETH_P_IP))
		v = tg_parse_ipv4(skb, p, data, data_end, &l4_len);
	else if (proto == bpf_htons(ETH_P_IPV6))
		v = tg_parse_ipv6(skb, p, data, data_end, &l4_len);
	else
		return TG_V_NOT_TCP;
	if (v)
		return v;

	tcp = data + (p->l4_off & 0xff);
	if ((const void *)(tcp + 1) > data_end)
		return TG_V_MALFORMED;
	p->tcp_hlen = tcp->doff * 4;
	if (p->tcp_hlen < sizeof(*tcp) || p->tcp_hlen > l4_len)
		return TG_V_MALFORMED;
	p->sport = tcp->source;
	p->dport = tcp->dest;
	if (!tg_port_guarded(cfg, p->dport))
		return TG_V_NOT_PORT;
	p->seq_h = bpf_ntohl(tcp->seq);
	p->ack_h = bpf_ntohl(tcp->ack_seq);
	p->tcp_flags = ((const __u8 *)tcp)[13];
	p->pay_off = p->l4_off + p->tcp_hlen;
	p->pay_len = l4_len - p->tcp_hlen;
	tg_parse_tcp_opts(skb, p, (const __u8 *)(tcp + 1), data_end);
	return 0;
}

#endif /* TG_BPF_PARSE_H */
