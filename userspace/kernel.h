/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The kernel fast path's loader: the only module that includes libbpf and libxdp. It mounts
 * bpffs when needed, creates or adopts the pinned maps under the pin directory (checking the
 * ABI version and every map's shape; a pinned set of another version or shape is migrated,
 * never silently reused), maps tg_slots into the daemon so the rate limiter charges the very
 * memory the TC program reads, writes tg_config / tg_secret / tg_allow, attaches the TC
 * ingress program and (mode full) the XDP penalty-box program through libxdp's dispatcher,
 * and keeps tg_keys in step with LMDB through the sync_kernel_ops it exports.
 *
 * Programs and maps stay attached and pinned when the daemon exits or crashes: enforcement
 * outlives the daemon. A restarted daemon replaces its own attachments (fixed TC handle and
 * priority; its previous XDP program is taken out of the dispatcher first), never stacks
 * them. kernel_detach removes everything (the `tollgated detach` command).
 *
 * Errors are negative errno values; a message naming the cause goes to the log.
 */
#ifndef TG_KERNEL_H
#define TG_KERNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/abi.h"

/* kernel.mode as configured (index into its config names). */
enum kernel_mode_req {
	KERNEL_MODE_AUTO = 0, /* full when BPF is available, else off with a warning */
	KERNEL_MODE_FULL = 1, /* TC + XDP; failing to load is a start-up error */
	KERNEL_MODE_TC = 2,   /* TC only; failing to load is a start-up error */
	KERNEL_MODE_OFF = 3,  /* daemon only */
};

/* kernel.xdp_mode */
enum kernel_xdp_req {
	KERNEL_XDP_AUTO = 0,	/* native where the driver has it, else generic (skb) */
	KERNEL_XDP_NATIVE = 1,	/* native or fail */
	KERNEL_XDP_GENERIC = 2, /* generic (skb) mode */
};

#define KERNEL_MAX_IFACES 16
#define KERNEL_IFNAME_MAX 16 /* IFNAMSIZ */
#define KERNEL_MAX_ALLOW  64

struct kernel_opts {
	enum kernel_mode_req mode;
	enum kernel_xdp_req xdp_mode;
	const char *pin_dir;	 /* kernel.pin_dir */
	const char *interfaces;	 /* kernel.interfaces: comma-separated ifnames, "" = default */
	const char *data_listen; /* data.listen (host:port): default interfaces */
	const char *allow;	 /* kernel.allow: comma-separated CIDRs never penalised */
	uint32_t penalty_multiple_milli; /* kernel.penalty_multiple x 1000 */
	uint32_t penalty_after_sec;	 /* kernel.penalty_after_sec */
	uint32_t penalty_sec;		 /* kernel.penalty_sec */
	uint32_t penalty_v6_prefix;	 /* kernel.penalty_v6_prefix */
	uint32_t rate_slots;		 /* data.rate_slots: tg_slots entries (tg_keys: twice) */
	const uint8_t *secret;		 /* 16-byte key-hash secret; read during kernel_open only */
};

struct kernel;

/*
 * Checks the options (interfaces exist, CIDRs parse), then loads: maps created or adopted,
 * tg_slots mapped, tg_secret and tg_allow written. Nothing is attached yet (kernel_attach).
 * Returns 0 with *out set, or 0 with *out NULL when the kernel path is off (configured off,
 * or mode auto without BPF: a warning says why), or -errno when an explicitly configured
 * mode cannot run (the log says why).
 */
int kernel_open(const struct kernel_opts *o, struct kernel **out);

/*
 * Writes tg_config (mode, ports, penalty parameters, ABI version) and attaches the programs
 * to the interfaces; port is the data listener's actual port. 0 or -errno.
 */
int kernel_attach(struct kernel *k, uint16_t port);

/* Unmaps tg_slots and closes every fd; programs and maps stay attached and pinned. NULL ok. */
void kernel_close(struct kernel *k);

/* The mmapped tg_slots array (capacity entries), valid until kernel_close. */
struct tg_slot *kernel_slots_mem(struct kernel *k, uint32_t *capacity);

/* Writes tg_config.daemon_heartbeat_ns (CLOCK_MONOTONIC); called once a second. */
void kernel_heartbeat(struct kernel *k);

/* What the adoption at kernel_open found. */
enum kernel_origin {
	KERNEL_CREATED = 0,  /* no pinned maps: created fresh */
	KERNEL_ADOPTED = 1,  /* pinned maps of this ABI and shape: reused, state kept */
	KERNEL_MIGRATED = 2, /* another ABI or shape: new maps, slots copied where possible */
};

/* The sync_kernel_ops callbacks (sync.h); kctx is the struct kernel. Thread-safe. */
int kernel_key_put(void *kctx, uint64_t khash, uint32_t slot, uint32_t key_gen);
int kernel_key_del(void *kctx, uint64_t khash);
/* Makes tg_keys hold exactly these n entries: batch updates, then stale entries deleted. */
int kernel_keys_reconcile(void *kctx, const uint64_t *khash, const uint32_t *slot,
			  const uint32_t *key_gen, size_t n);

/* ---- status (GET /api/v1/kernel, /metrics, tollctl status) ---- */

/* Attachment flags of one interface (also kept in the loader's pinned tg_ifaces map). */
#define KERNEL_IF_TC	      0x1u /* our TC ingress filter is attached */
#define KERNEL_IF_CLSACT_OURS 0x2u /* we created the clsact qdisc (detach may remove it) */
#define KERNEL_IF_XDP_NATIVE  0x4u /* our XDP program, native mode */
#define KERNEL_IF_XDP_SKB     0x8u /* our XDP program, generic (skb) mode */

struct kernel_iface {
	char name[KERNEL_IFNAME_MAX];
	uint32_t ifindex;
	uint32_t flags; /* KERNEL_IF_* */
};

struct kernel_status {
	enum tg_mode mode;
	enum kernel_origin origin;
	char pin_dir[256];
	size_t n_ifaces;
	struct kernel_iface ifaces[KERNEL_MAX_IFACES];
	uint64_t verdicts[TG_V__COUNT];	  /* tg_stats summed over CPUs */
	uint32_t slots, keys_max;	  /* max_entries of tg_slots and tg_keys */
	uint64_t penalty_entries;	  /* entries in tg_penalty (counted, up to its max) */
	uint64_t keys_bytes, slots_bytes; /* kernel memory of tg_keys and tg_slots (memlock) */
};

/* Fills *st. 0 or -errno. */
int kernel_status(struct kernel *k, struct kernel_status *st);

/* One penalty-box entry as shown to people. */
struct kernel_penalty_entry {
	char addr[48];		 /* text; IPv4 plain, IPv6 as the counted prefix */
	uint64_t refusals_total; /* kernel 429s sent to this source */
	uint64_t dropped_total;	 /* SYNs dropped while penalised */
	int64_t until_unix;	 /* wall-clock end of the penalty; 0 = not penalised now */
	uint32_t strikes;	 /* consecutive windows above the threshold */
};

/* Copies up to cap penalty-box entries into out; *n gets how many were copied. */
int kernel_penalty_list(struct kernel *k, struct kernel_penalty_entry *out, size_t cap, size_t *n);

/*
 * One CIDR prefix of kernel.allow ("10.0.0.0/8", "::1/128"; a bare address is a host) as a
 * tg_allow key: IPv4 as ::ffff:a.b.c.d with 96 added to its prefix length. 0 or -EINVAL.
 */
int kernel_cidr_parse(const char *text, struct tg_lpm_key *out);

/* tg_keys[khash] into *slot and *key_gen: 0, -ENOENT, or -errno. */
int kernel_key_get(void *kctx, uint64_t khash, uint32_t *slot, uint32_t *key_gen);

/* "seen", "not_tcp", ... for enum tg_verdict (the metrics label and JSON key). */
const char *kernel_verdict_name(unsigned v);
/* "off", "tc", "full" */
const char *kernel_mode_name(enum tg_mode m);

/*
 * `tollgated detach`: removes our TC filters (and clsact qdiscs we created, when no other
 * filter is left on them) and our XDP programs from the interfaces recorded in the pin
 * directory plus those named in interfaces (comma-separated, may be NULL), then unpins
 * everything under pin_dir and removes it. Idempotent: nothing to do is success. Prints
 * what it does to stdout. 0 or -errno (the message says why).
 */
int kernel_detach(const char *pin_dir, const char *interfaces);

#endif /* TG_KERNEL_H */
