/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The ABI between tollgated and the kernel programs: the layout of the per-key slot array
 * (today plain shared memory in the daemon; the BPF_F_MMAPABLE array tg_slots when the
 * kernel fast path lands, the same bytes either way) and the version that guards it. Only
 * fixed-width types, explicit padding, a unit in every field name; sizes pinned below.
 * Change a layout and TG_ABI_VERSION together: a loader finding pinned maps of another
 * version migrates them, never reuses them silently.
 */
#ifndef TOLLGATE_ABI_H
#define TOLLGATE_ABI_H

#include <linux/types.h>

#define TG_ABI_VERSION 1

/* Slot flags. */
#define TG_SLOT_ACTIVE 0x1u	    /* a key occupies the slot */
#define TG_SLOT_KERNEL_REFUSE 0x2u /* its limit action is block and mode hard: the kernel may refuse */

/*
 * One key's request-rate state, 64 bytes (one cache line). The daemon is the single writer:
 * it charges tat_ns by compare-and-swap (GCRA, include/tollgate/gcra.h) and writes the
 * parameters when the key's limits change; the kernel only reads.
 */
struct tg_slot {
	__u64 tat_ns;	    /* per-second bucket: theoretical arrival time, CLOCK_MONOTONIC ns */
	__u64 interval_ns;  /* per-second bucket: ns per request at the sustained rate */
	__u64 tolerance_ns; /* per-second bucket: (burst - 1) * interval_ns */
	__u64 tat_min_ns;   /* per-minute window TAT (daemon only), 0 = unused */
	__u64 tat_hour_ns;  /* per-hour window TAT (daemon only), 0 = unused */
	__u32 flags;	    /* TG_SLOT_* */
	__u32 key_gen;	    /* bumped when the slot is given to another key */
	__u64 allowed;	    /* requests allowed by the daemon (statistics) */
	__u64 refused;	    /* requests refused by the daemon (statistics) */
};

#ifdef __cplusplus
static_assert(sizeof(struct tg_slot) == 64, "tg_slot is one cache line");
#else
_Static_assert(sizeof(struct tg_slot) == 64, "tg_slot is one cache line");
#endif

#endif /* TOLLGATE_ABI_H */
