// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * tg_tc_ingress: the TC ingress program of tollgate's kernel fast path (DESIGN.md, "One
 * request, step by step", step 1; KERNEL-NOTES.md for the measured facts it relies on).
 *
 * For the first segment of a plaintext HTTP/1.x request to a guarded port, it finds the API
 * key, looks its hash up in tg_keys, reads the key's GCRA windows in tg_slots (read only:
 * the daemon is the single writer) and, when some window would refuse the request now and
 * the connection is still embryonic (TCP_DEFER_ACCEPT: a request socket, the daemon has not
 * accepted it), answers HTTP 429 itself: a copy of the rewritten packet goes back out of the
 * ingress device, and the original becomes a bare RST that removes the local request socket.
 * Later segments of a refused flow are absorbed. Everything else passes untouched: the daemon
 * enforces the same buckets and is the authority, so every doubt fails open.
 *
 * Each packet is counted once in tg_stats under the verdict that decided it (and TG_V_SEEN).
 */
#include "lib/common.h"
#include "lib/penalty.h"
#include "lib/parse.h"
#include "lib/http.h"
#include "lib/reply.h"

/* A refused flow's later segments are absorbed until this long after the last of them. */
#define TG_KILLED_NS (5 * TG_NSEC_PER_SEC)
#define TG_NS_PER_MS 1000000ULL
/* Window advertised in our segments: the client's remaining body must fit, we ACK it all. */
#define TG_REPLY_WINDOW 65535

#define TG_READ_ONCE(x) (*(const volatile __typeof__(x) *)&(x))

/* Per-CPU work space: the payload copy the header scan reads, the segment writer's area
 * (with the 429 being built), and the decision's description of a refusal. */
struct tg_tc_scratch {
	struct tg_scan_buf scan;
	struct tg_seg_work seg;
	struct tg_refusal refusal;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tg_tc_scratch);
} tg_tc_scratch SEC(".maps");

static __always_inline struct tg_tc_scratch *tg_scratch(void)
{
	__u32 zero = 0;

	/* A one-entry per-CPU array: the lookup cannot fail. A caller that gets NULL fails
	 * open (passes), except the absorbing of a refused flow, which then drops the
	 * segment as absorbing would, only without the ACK. */
	return bpf_map_lookup_elem(&tg_tc_scratch, &zero);
}

/* Passing returns TC_ACT_UNSPEC, not TC_ACT_OK, so a filter attached after ours on the same
 * hook (another tool's classifier) still sees the packet; at the end of the chain the
 * packet goes up the stack as with TC_ACT_OK. */
static __always_inline int tg_pass(__u32 verdict)
{
	tg_count(verdict);
	return TC_ACT_UNSPEC;
}

static __always_inline int tg_drop(__u32 verdict)
{
	tg_count(verdict);
	return TC_ACT_SHOT;
}

/* An address of the packet in the ABI's form (IPv4 as ::ffff:a.b.c.d). */
static __always_inline void tg_addr_of(const struct tg_pkt *p, const __be32 *a, struct tg_addr *out)
{
	if (p->is_v6)
		tg_addr_from_ipv6((const struct in6_addr *)a, out);
	else
		tg_addr_from_ipv4(a[0], out);
}

static __always_inline void tg_flow_of(const struct tg_pkt *p, struct tg_flow *f)
{
	tg_addr_of(p, p->saddr, (struct tg_addr *)f->saddr);
	tg_addr_of(p, p->daddr, (struct tg_addr *)f->daddr);
	f->sport = p->sport;
	f->dport = p->dport;
	f->pad = 0;
}

static __always_inline __u64 tg_ns_to_ms_up(__u64 ns)
{
	return ns / TG_NS_PER_MS + (ns % TG_NS_PER_MS != 0);
}

/*
 * The daemon's decision at now, read only: refused when any defined window refuses (the
 * daemon charges the windows in order and stops at the first refusal). r gets the refusing
 * window whose retry is longest, the earlier one on a tie, as the daemon's refusing_window.
 * limit is recovered from the parameters: tolerance = (limit - 1) * interval for every window.
 */
static __always_inline int tg_decide(const struct tg_slot *slot, __u64 now, struct tg_refusal *r)
{
	__u64 best = 0;
	int refused = 0;

	for (int w = 0; w < TG_WIN__COUNT; w++) {
		struct tg_gcra_verdict v;
		struct tg_gcra g;

		g.interval_ns = TG_READ_ONCE(slot->win[w].interval_ns);
		if (!g.interval_ns)
			continue;
		g.tolerance_ns = TG_READ_ONCE(slot->win[w].tolerance_ns);
		if (tg_gcra_decide(TG_READ_ONCE(slot->win[w].tat_ns), now, &g, &v))
			continue;
		if (refused && v.retry_after_ns <= best)
			continue;
		refused = 1;
		best = v.retry_after_ns;
		r->window = w;
		r->limit = g.tolerance_ns / g.interval_ns + 1;
		r->retry_ms = tg_ns_to_ms_up(v.retry_after_ns);
		r->reset_ms = tg_ns_to_ms_up(v.reset_ns);
		r->rate_milli = (1000ULL * TG_NSEC_PER_SEC + g.interval_ns / 2) / g.interval_ns;
	}
	return refused;
}

/*
 * Which socket owns the flow: 0 for a request socket (embryonic, refusable), else the verdict:
 * ESTABLISHED for a full socket (the daemon has or will accept it and answers itself),
 * NO_SOCKET when only the listener (SYN cookies, no defer-accept queue entry) or a
 * TIME_WAIT socket matches, or nothing does.
 */
static __always_inline int tg_sock_verdict(struct __sk_buff *skb, const struct tg_pkt *p)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	__u32 size, state;

	if (p->is_v6) {
		__builtin_memcpy(t.ipv6.saddr, p->saddr, 16);
		__builtin_memcpy(t.ipv6.daddr, p->daddr, 16);
		t.ipv6.sport = p->sport;
		t.ipv6.dport = p->dport;
		size = sizeof(t.ipv6);
	} else {
		t.ipv4.saddr = p->saddr[0];
		t.ipv4.daddr = p->daddr[0];
		t.ipv4.sport = p->sport;
		t.ipv4.dport = p->dport;
		size = sizeof(t.ipv4);
	}
	sk = bpf_skc_lookup_tcp(skb, &t, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return TG_V_NO_SOCKET;
	state = sk->state;
	bpf_sk_release(sk);
	if (state == BPF_TCP_NEW_SYN_RECV)
		return 0;
	if (state == BPF_TCP_LISTEN || state == BPF_TCP_TIME_WAIT)
		return TG_V_NO_SOCKET;
	return TG_V_ESTABLISHED;
}

/*
 * A later segment of a refused flow. Dropping it would leave a client that is still sending
 * its body blocked on a full window (many clients read the answer only after sending it all:
 * they would wait for retransmission timeouts), and letting it reach the stack draws RSTs
 * that make clients report a reset instead of the 429 (KERNEL-NOTES). So data and FIN are
 * answered with an ACK, as the server would have: the client finishes sending, then reads
 * its 429. Pure ACKs and RSTs need no answer and are dropped.
 *
 * The ACK's sequence number: the client's ack field is either our ISN+1 (it sent the segment
 * before the 429 arrived) or ISN+1 plus the 429 and its FIN (after). ack + TG_REPLY_LEN + 1 is
 * exactly its next expected byte in the first case, and ahead of it in the second; both lie in
 * its receive window, where RFC 793 (and Linux) take a bare ACK's acknowledgment, while a
 * sequence number behind the window would be ignored. The packet itself becomes the ACK.
 */
static __always_inline int tg_absorb(struct __sk_buff *skb, const struct tg_pkt *p)
{
	__u32 fin = p->tcp_flags & TG_TCP_FIN ? 1 : 0;
	struct tg_seg s = {
	    .seq = p->ack_h + TG_REPLY_LEN + 1,
	    .ack = p->seq_h + p->pay_len + fin,
	    .flags = TG_TCP_ACK,
	    .to_client = 1,
	    .with_ts = p->has_ts,
	    .window = TG_REPLY_WINDOW,
	};
	struct tg_tc_scratch *sc = tg_scratch();

	if ((!p->pay_len && !fin) || !sc)
		return tg_drop(TG_V_ABSORBED);
	/* A failed rewrite leaves nothing to send; the client retransmits and is ACKed then. */
	if (tg_seg_write(skb, p, &s, &sc->seg))
		return tg_drop(TG_V_ABSORBED);
	tg_count(TG_V_ABSORBED);
	return bpf_redirect(skb->ifindex, 0);
}

/*
 * Looks the flow up in tg_killed. Returns 1 when the segment belongs to a refused flow still
 * being absorbed. A SYN on the same 4-tuple is a new connection: the entry goes.
 */
static __always_inline int tg_killed_flow(const struct tg_pkt *p, const struct tg_flow *f,
					  __u64 now)
{
	__u64 *until = bpf_map_lookup_elem(&tg_killed, f);

	/* Not found: not a flow we refused (or evicted from the LRU, then the stack answers
	 * the rest with resets, as without absorption). */
	if (!until)
		return 0;
	if (*until <= now || (p->tcp_flags & TG_TCP_SYN)) {
		bpf_map_delete_elem(&tg_killed, f);
		return 0;
	}
	*until = now + TG_KILLED_NS;
	return 1;
}

/*
 * Counts the refusal for the penalty box (penalty.h). A global function, so the verifier
 * checks that bookkeeping once, and its stack is not added to the caller's. Returns 0.
 */
__noinline int tg_tc_note_refusal(const struct tg_pkt *p, __u32 slot_idx, __u64 now)
{
	struct tg_slot *slot = bpf_map_lookup_elem(&tg_slots, &slot_idx);
	struct tg_addr src;

	/* The slot was found a moment ago; if the array shrank since, there is no rate to
	 * compare the refusals with: skip the bookkeeping, the refusal stands. */
	if (!p || !slot)
		return 0;
	tg_addr_of(p, p->saddr, &src);
	tg_penalty_note_refusal(&src, slot, now);
	return 0;
}

/*
 * Sends the 429 and resets the local request socket; counts the verdict and returns the TC
 * action. Before the packet is changed a failure passes the request intact to the daemon;
 * after, the request is gone and the packet is dropped: TCP retransmits the request, which
 * is decided again. A global function (verified once; its frame is not the caller's).
 */
__noinline int tg_refuse(struct __sk_buff *skb, const struct tg_pkt *p, struct tg_tc_scratch *sc,
			 __u64 now)
{
	struct tg_seg s = {}, rst = {};
	__u64 until = now + TG_KILLED_NS;
	struct tg_flow f;
	int rc;

	if (!skb || !p || !sc)
		return tg_pass(TG_V_REPLY_FAILED);
	s.seq = p->ack_h;
	s.ack = p->seq_h + p->pay_len + (p->tcp_flags & TG_TCP_FIN ? 1 : 0);
	s.flags = TG_TCP_FIN | TG_TCP_PSH | TG_TCP_ACK;
	s.to_client = 1;
	s.with_ts = p->has_ts;
	s.window = TG_REPLY_WINDOW;
	s.with_reply = 1;
	rst.seq = p->seq_h;
	rst.flags = TG_TCP_RST;
	if (tg_reply_prepare(&sc->seg, &sc->refusal))
		return tg_pass(TG_V_REPLY_FAILED);
	rc = tg_seg_write(skb, p, &s, &sc->seg);
	if (rc)
		return rc > 0 ? tg_pass(TG_V_REPLY_FAILED) : tg_drop(TG_V_REPLY_FAILED);
	/* The clone is the 429; the original, un-cloned by the helper, becomes the RST. */
	if (bpf_clone_redirect(skb, skb->ifindex, 0))
		return tg_drop(TG_V_REPLY_FAILED);
	/* A full LRU evicts an old entry; a failure only means later segments draw resets. */
	tg_flow_of(p, &f);
	bpf_map_update_elem(&tg_killed, &f, &until, BPF_ANY);
	tg_tc_note_refusal(p, sc->refusal.slot, now);
	tg_count(TG_V_REFUSED);
	/* Without the RST the request socket would live on out of sync; if it cannot be
	 * written, drop: the socket then expires unused, the daemon never sees the request. */
	if (tg_seg_write(skb, p, &rst, &sc->seg))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

/*
 * Steps 6-8 once the key's hash is known: its slot, the decision, the socket. Returns 0 when
 * the request is to be refused (r describes why), else the verdict to pass with. A global
 * function: verified once on its own, not once per path that reaches it.
 */
__noinline int tg_keyed(struct __sk_buff *skb, const struct tg_pkt *p, __u64 khash, __u64 now,
			struct tg_refusal *r)
{
	struct tg_key_val *kv;
	struct tg_slot *slot;
	__u32 idx;
	int v;

	if (!skb || !p || !r)
		return TG_V_REPLY_FAILED;
	kv = bpf_map_lookup_elem(&tg_keys, &khash);
	/* Unknown to the kernel: a wrong key, or one not synced yet; the daemon answers. */
	if (!kv)
		return TG_V_UNKNOWN_KEY;
	idx = kv->slot;
	slot = bpf_map_lookup_elem(&tg_slots, &idx);
	/* A slot index beyond the array: the entry is not usable; fail open. */
	if (!slot)
		return TG_V_UNKNOWN_KEY;
	/* The slot went to another key since the entry was written: its state is not ours. */
	if (TG_READ_ONCE(slot->key_gen) != kv->key_gen)
		return TG_V_STALE_KEY;
	if (!tg_decide(slot, now, r))
		return TG_V_UNDER_LIMIT;
	r->slot = idx;
	if ((TG_READ_ONCE(slot->flags) & (TG_SLOT_ACTIVE | TG_SLOT_KERNEL_REFUSE)) !=
	    (TG_SLOT_ACTIVE | TG_SLOT_KERNEL_REFUSE))
		return TG_V_NOT_REFUSABLE;
	v = tg_sock_verdict(skb, p);
	return v;
}

/* Steps 4-9 for a segment with payload: the key's hash, the decision, the refusal. */
static __always_inline int tg_request(struct __sk_buff *skb, const struct tg_pkt *p, __u64 now)
{
	struct tg_tc_scratch *sc = tg_scratch();
	struct tg_secret *secret;
	__u32 zero = 0;
	__u64 khash = 0;
	int v;

	secret = bpf_map_lookup_elem(&tg_secret, &zero);
	/* One-entry arrays: these lookups cannot fail; if they did, the daemon decides. */
	if (!sc || !secret)
		return tg_pass(TG_V_NO_KEY);
	v = tg_http_key(skb, p, &sc->scan, secret, &khash);
	if (v)
		return tg_pass(v);
	v = tg_keyed(skb, p, khash, now, &sc->refusal);
	if (v)
		return tg_pass(v);
	return tg_refuse(skb, p, sc, now);
}

SEC("tc")
int tg_tc_ingress(struct __sk_buff *skb)
{
	const struct tg_config *cfg;
	struct tg_pkt p = {};
	struct tg_flow f;
	__u64 now;
	int v;

	tg_count(TG_V_SEEN);
	cfg = tg_cfg();
	/* A one-entry array cannot miss; if it did, nothing is guarded: as mode off. */
	if (!cfg || TG_READ_ONCE(cfg->mode) == TG_MODE_OFF)
		return tg_pass(TG_V_MODE_OFF);
	v = tg_parse(skb, cfg, &p);
	if (v)
		return tg_pass(v);
	now = tg_now_ns();
	tg_flow_of(&p, &f);
	/* Before the GSO test: a refused flow's body may arrive as GRO super-packets. */
	if (tg_killed_flow(&p, &f, now))
		return tg_absorb(skb, &p);
	if (skb->gso_segs > 1)
		return tg_pass(TG_V_GSO);
	if (!p.pay_len)
		return tg_pass(TG_V_NO_PAYLOAD);
	return tg_request(skb, &p, now);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
