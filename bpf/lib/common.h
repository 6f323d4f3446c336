/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * What every tollgate BPF program includes first: the kernel's types (vmlinux.h, generated
 * from the running kernel's BTF), the libbpf helper declarations, the ABI shared with the
 * daemon, the shared maps, the per-CPU verdict counter, the configuration lookup and the
 * clock.
 *
 * The clock is injectable so tests can move time without sleeping: tg_clock_override_ns is
 * a global in the object's .bss, zero in production (nothing but a test writes it through
 * the skeleton), and tg_now_ns() returns it when non-zero. Time is CLOCK_MONOTONIC
 * (bpf_ktime_get_ns), the clock the daemon's GCRA state is kept in.
 *
 * vmlinux.h carries the kernel's types but none of the UAPI #defines; the few the programs
 * use are defined below under the UAPI names, so code reads as it would with the UAPI
 * headers (which must not be included next to vmlinux.h).
 */
#ifndef TG_BPF_COMMON_H
#define TG_BPF_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "tollgate/abi.h"
#include "tollgate/gcra.h"

#include "maps.h"

#ifndef ETH_HLEN
#define ETH_HLEN 14	   /* Ethernet header without tags */
#endif
#ifndef ETH_ALEN
#define ETH_ALEN 6
#endif
#ifndef ETH_P_IP
#define ETH_P_IP 0x0800
#endif
#ifndef ETH_P_IPV6
#define ETH_P_IPV6 0x86DD
#endif
#ifndef ETH_P_8021Q
#define ETH_P_8021Q 0x8100
#endif
#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif
#ifndef IP_MF
#define IP_MF 0x2000	   /* more fragments */
#endif
#ifndef IP_OFFSET
#define IP_OFFSET 0x1FFF   /* fragment offset mask */
#endif
#ifndef TC_ACT_OK
#define TC_ACT_OK 0
#endif
#ifndef TC_ACT_SHOT
#define TC_ACT_SHOT 2
#endif

/* Test-only clock: see the top of this file. volatile so the compiler reads it every time. */
volatile __u64 tg_clock_override_ns;

/* CLOCK_MONOTONIC now, or the test's injected time when one is set. */
static __always_inline __u64 tg_now_ns(void)
{
	__u64 t = tg_clock_override_ns;

	return t ? t : bpf_ktime_get_ns();
}

/* Counts one packet under verdict v in this CPU's slot of tg_stats. */
static __always_inline void tg_count(enum tg_verdict v)
{
	__u32 idx = v;
	__u64 *n = bpf_map_lookup_elem(&tg_stats, &idx);

	/* Fails only for an index >= TG_V__COUNT, a bug the tests catch: nothing to count
	 * into, and a counter must never change a verdict. Per-CPU slot and no preemption
	 * inside a program on one CPU: a plain increment is exact. */
	if (n)
		*n += 1;
}

/*
 * The daemon's configuration, or NULL. tg_config is a one-entry ARRAY, so the lookup of
 * index 0 cannot fail once the map exists; a NULL still means "pass": without a
 * configuration the kernel knows no guarded port and no mode, and refusing or dropping
 * anything would be guessing. Callers pass the packet on NULL.
 */
static __always_inline const struct tg_config *tg_cfg(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&tg_config, &zero);
}

/* 1 if dport (network order) is one of the guarded listener ports, else 0. */
static __always_inline int tg_port_guarded(const struct tg_config *cfg, __u16 dport_be)
{
	__u16 port = bpf_ntohs(dport_be);

	if (port == 0)
		return 0; /* 0 marks an unused entry in cfg->ports, never a real listener */
#pragma unroll
	for (int i = 0; i < TG_MAX_PORTS; i++)
		if (cfg->ports[i] == port)
			return 1;
	return 0;
}

#endif /* TG_BPF_COMMON_H */
