// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Test-only probe (built for tests/bpf, never loaded by the daemon): each run records one
 * kernel refusal with tg_penalty_note_refusal() for the source and slot the test put in the
 * globals below, at the injected clock, exactly as the TC program does after sending a 429.
 * It lets tests/bpf/test_penalty.c drive the penalty bookkeeping without a TCP handshake.
 * The frame it runs on is ignored.
 */
#include "lib/common.h"
#include "lib/penalty.h"

struct tg_addr probe_src; /* full client address (IPv4 as ::ffff:a.b.c.d) */
__u32 probe_slot;	  /* the refused key's slot in tg_slots */

SEC("xdp")
int penalty_probe(struct xdp_md *ctx)
{
	__u32 idx = probe_slot;
	struct tg_addr src = probe_src;
	const struct tg_slot *slot = bpf_map_lookup_elem(&tg_slots, &idx);

	(void)ctx;
	/* A slot index beyond the array is a test bug: report it as XDP_ABORTED. */
	if (!slot)
		return XDP_ABORTED;
	tg_penalty_note_refusal(&src, slot, tg_now_ns());
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
