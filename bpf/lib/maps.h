/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The maps of include/tollgate/abi.h as BPF definitions, shared by every kernel program.
 * Each is BTF-typed (bpftool map dump prints named fields) and pinned by name: libbpf looks
 * for <pin_root_path>/<map name> at load and reuses a map it finds there, so the TC and the
 * XDP object loaded with the same pin_root_path (the daemon's /sys/fs/bpf/tollgate) share one
 * instance of each map, and both outlive the daemon. Sizes here are what a test gets; the
 * loader sets the production sizes of tg_keys and tg_slots with bpf_map__set_max_entries
 * before load.
 *
 * Scratch maps private to one program (per-CPU buffers for bpf_loop) are not defined here
 * and must not be pinned: they carry no state worth sharing or keeping.
 */
#ifndef TG_BPF_MAPS_H
#define TG_BPF_MAPS_H

/* Placeholder sizes; the loader overrides tg_keys and tg_slots from the configuration. */
#define TG_KEYS_MAX_DEFAULT 1024
#define TG_SLOTS_MAX_DEFAULT 1024
#define TG_PENALTY_MAX 65536 /* sources tracked; LRU evicts the quietest beyond this */
#define TG_ALLOW_MAX 1024    /* allow-listed prefixes */
#define TG_KILLED_MAX 65536  /* refused flows whose late segments are absorbed */

/* Key hash (SipHash-2-4 of the whole API key) -> its slot. Preallocated: the daemon's
 * reconcile fills it in batches and lookups never allocate. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TG_KEYS_MAX_DEFAULT);
	__type(key, __u64);
	__type(value, struct tg_key_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tg_keys SEC(".maps");

/* Per-key GCRA state; the daemon mmaps this array and is its single writer. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TG_SLOTS_MAX_DEFAULT);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct tg_slot);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tg_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tg_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tg_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tg_secret);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tg_secret SEC(".maps");

/* Packets per verdict, per CPU: counting never contends between CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_V__COUNT);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tg_stats SEC(".maps");

/* Source address (IPv6 masked to the configured prefix) -> refusals and penalty. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TG_PENALTY_MAX);
	__type(key, struct tg_addr);
	__type(value, struct tg_penalty);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tg_penalty SEC(".maps");

/* Allow-listed prefixes; the kernel requires BPF_F_NO_PREALLOC for LPM tries. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, TG_ALLOW_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tg_lpm_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tg_allow SEC(".maps");

/* Flows the TC program refused -> until when their late segments are absorbed. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TG_KILLED_MAX);
	__type(key, struct tg_flow);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tg_killed SEC(".maps");

#endif /* TG_BPF_MAPS_H */
