/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Key sync: keeps the request-rate slot array and (when the kernel path is on) the kernel's
 * key table tg_keys in step with the key registry, which follows LMDB (DESIGN invariant 3:
 * LMDB first, then the maps). The registry reports every committed change through
 * keys_set_sync(sync_key_changed); sync_reconcile rebuilds everything from the registry at
 * start; sync_tick retires what time ends (a key's expiry, a rotated secret's grace), which
 * no change reports.
 *
 * Per slot, sync remembers the key hashes it gave the kernel and the slot's key_gen. A key
 * (re)activated on a slot whose key_gen is not the remembered one, or whose flags lack
 * TG_SLOT_ACTIVE, gets a fresh bucket (slots_assign, key_gen bumped, so kernel entries
 * written for an earlier key go stale); a limits change keeps the bucket (slots_set_limits,
 * TATs kept). At reconcile, a slot already ACTIVE with matching parameters (pinned maps
 * adopted after a restart) is kept as is: the TATs survive the restart.
 *
 * Kernel refusals (DESIGN invariant 1): a slot gets TG_SLOT_KERNEL_REFUSE only when the
 * limits policy lets the kernel refuse the key - limits enabled, the key's effective mode
 * hard and the action of its request-rate limits block (sync_kernel_refuse) - and the
 * registry says so (keys_sync_key.kernel_refuse). Every change of a key, and of its tier,
 * reaches the sync and sets the flag again; a change of the global policy (config) takes
 * effect at the next start, whose reconcile sets every slot's flags.
 *
 * Thread-safe: changes arrive on admin threads, ticks on the housekeeping thread.
 */
#ifndef TG_SYNC_H
#define TG_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "keys.h"

struct slots;

/* Implemented by the kernel loader (kernel.c); NULL ops (BPF off) or NULL members are skipped. */
struct sync_kernel_ops {
	/* Adds or replaces tg_keys[khash] = {slot, key_gen}; 0/-errno. */
	int (*key_put)(void *kctx, uint64_t khash, uint32_t slot, uint32_t key_gen);
	/* Removes tg_keys[khash]; 0, -ENOENT (absent: fine) or -errno. */
	int (*key_del)(void *kctx, uint64_t khash);
	/* Replaces tg_keys' content with exactly these n entries, in batches; 0/-errno. */
	int (*reconcile)(void *kctx, const uint64_t *khash, const uint32_t *slot,
			 const uint32_t *key_gen, size_t n);
};

struct sync;

/* The global limits policy (config limits.*) the kernel-refuse decision needs. */
struct sync_policy {
	bool limits_enabled;	  /* limits.enabled */
	enum limit_mode mode;	  /* limits.mode: LIMIT_MODE_HARD or _SOFT */
	enum limit_action action; /* limits.action: the default action */
};

/*
 * Whether the kernel may refuse a key with effective limits lim under policy p: limits
 * enabled, mode hard (the key's LIMIT_MODE, else the policy's) and the action of each of its
 * request-rate limits (requests_per_second, and requests_per_minute / _hour when set) block,
 * each resolved by limit_action_of (its per-limit action, the key's action, else the
 * policy's). Pure.
 */
bool sync_kernel_refuse(const struct sync_policy *p, const struct limits *lim);
/*
 * Sets the policy (default: enabled, hard, block). Call before sync_reconcile: keys synced
 * earlier keep the flags they got.
 */
void sync_set_policy(struct sync *s, const struct sync_policy *p);

/*
 * A sync over slots (borrowed; must outlive the sync) and the kernel ops (NULL: none; kops
 * and kctx borrowed too). NULL and errno on failure.
 */
struct sync *sync_new(struct slots *slots, const struct sync_kernel_ops *kops, void *kctx);
/* Frees the sync (the slots and kernel maps keep their content). Accepts NULL. */
void sync_free(struct sync *s);
/*
 * Makes the slots and tg_keys hold exactly the keys active in k now: each active key's slot
 * is adopted or assigned and gets its limits and flags, every other slot's flags are
 * cleared, and tg_keys is replaced in one batch call. Safe while changes arrive. 0/-errno
 * (a failed kernel reconcile is returned after the slots are done).
 */
int sync_reconcile(struct sync *s, struct keys *k);
/* The keys_sync_ops.changed listener (s is the struct sync). */
void sync_key_changed(void *s, const struct keys_sync_key *k);
/*
 * Once a second, with the wall clock (Unix s): keys that expired are removed (kernel
 * entries deleted, slot flags cleared) and previous-secret hashes whose grace ended are
 * deleted from tg_keys. Cheap when nothing is due (one comparison).
 */
void sync_tick(struct sync *s, int64_t now_wall);
/* Keys the sync gives a slot now (for tests and status). */
size_t sync_active_count(struct sync *s);

#endif /* TG_SYNC_H */
