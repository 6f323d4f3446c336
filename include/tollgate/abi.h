/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The ABI between tollgated and the kernel programs (bpf/): the names of the pinned maps,
 * their key and value layouts, the verdict codes the programs count, and the version that
 * guards them. This is the only header both sides include besides the pure gcra.h and
 * siphash.h. Only fixed-width types, explicit padding, a unit in every field name; sizes are
 * pinned by the asserts at the end.
 *
 * Change a layout and TG_ABI_VERSION together: a daemon finding pinned maps of another
 * version migrates them (copies what it can, rebuilds the rest from LMDB), never reuses them
 * silently.
 */
#ifndef TOLLGATE_ABI_H
#define TOLLGATE_ABI_H

#include <linux/types.h>

#define TG_ABI_VERSION 2

/* Pinned map names, under the pin directory (default /sys/fs/bpf/tollgate). */
#define TG_MAP_KEYS "tg_keys"	      /* HASH: __u64 key hash -> struct tg_key_val */
#define TG_MAP_SLOTS "tg_slots"	      /* ARRAY, BPF_F_MMAPABLE: slot -> struct tg_slot */
#define TG_MAP_CONFIG "tg_config"     /* ARRAY[1]: struct tg_config */
#define TG_MAP_SECRET "tg_secret"     /* ARRAY[1]: struct tg_secret (root only, never dumped) */
#define TG_MAP_STATS "tg_stats"	      /* PERCPU_ARRAY: enum tg_verdict -> __u64 packets */
#define TG_MAP_PENALTY "tg_penalty"   /* LRU_HASH: struct tg_addr -> struct tg_penalty */
#define TG_MAP_ALLOW "tg_allow"	      /* LPM_TRIE: struct tg_lpm_key -> __u8 (1) */
#define TG_MAP_KILLED "tg_killed"     /* LRU_HASH: struct tg_flow -> __u64 until_ns */

/* Pinned program names (under the pin directory too, for bpftool prog show pinned). */
#define TG_PROG_TC "tg_tc_ingress"
#define TG_PROG_XDP "tg_xdp_penalty"

#define TG_MAX_PORTS 4	   /* listener ports the programs guard */
#define TG_KEY_MAX_LEN 128 /* longest API key the kernel hashes; longer ones pass */

/* Request-rate windows of a slot, in the order the daemon charges them. */
enum tg_window_id {
	TG_WIN_SECOND = 0, /* rate + burst */
	TG_WIN_MINUTE = 1, /* N per minute: GCRA with T = 60 s / N, burst N */
	TG_WIN_HOUR = 2,   /* N per hour */
	TG_WIN__COUNT = 3,
};

/* One GCRA window. interval_ns == 0: the key's limits do not define this window. */
struct tg_window {
	__u64 tat_ns;	    /* theoretical arrival time, CLOCK_MONOTONIC ns (daemon writes by CAS) */
	__u64 interval_ns;  /* emission interval T: ns per request at the sustained rate */
	__u64 tolerance_ns; /* tau = (burst - 1) * T */
};

/* Slot flags. */
#define TG_SLOT_ACTIVE 0x1u	   /* a key occupies the slot */
#define TG_SLOT_KERNEL_REFUSE 0x2u /* limit action block, mode hard: the kernel may refuse */

/*
 * One key's request-rate state, 128 bytes (two cache lines), in the BPF_F_MMAPABLE array
 * tg_slots that the daemon maps (or plain shared memory when BPF is off). The daemon is the
 * single writer: it charges each window's tat_ns by compare-and-swap (include/tollgate/gcra.h)
 * and writes the parameters when the key's limits change. The kernel only reads, and refuses
 * a request only when some defined window would refuse it at that instant, which is exactly
 * when the daemon would.
 */
struct tg_slot {
	struct tg_window win[TG_WIN__COUNT]; /* second, minute, hour */
	__u32 flags;			     /* TG_SLOT_* */
	__u32 key_gen;			     /* bumped when the slot is given to another key */
	__u64 allowed;			     /* requests allowed by the daemon (statistics) */
	__u64 refused;			     /* requests refused by the daemon (statistics) */
	__u64 reserved[4];		     /* zero; room for growth within this ABI */
};

/* tg_keys value: where a key's hash leads. Stale when key_gen differs from the slot's. */
struct tg_key_val {
	__u32 slot;    /* index into tg_slots */
	__u32 key_gen; /* the slot's key_gen when this entry was written */
};

/* Enforcement modes (tg_config.mode). */
enum tg_mode {
	TG_MODE_OFF = 0,  /* daemon only: nothing attached */
	TG_MODE_TC = 1,	  /* rungs 1-2: kernel 429s on new connections */
	TG_MODE_FULL = 2, /* rungs 1-3: plus the XDP penalty box */
};

/* tg_config[0]: written by the daemon, read by the programs. */
struct tg_config {
	__u32 abi_version;		  /* TG_ABI_VERSION of the maps' creator */
	__u32 mode;			  /* enum tg_mode */
	__u16 ports[TG_MAX_PORTS];	  /* guarded TCP listener ports, host order; 0 = unused */
	__u32 penalty_multiple_milli;	  /* refusals/s above this multiple of the key's rate.. */
	__u32 penalty_after_sec;	  /* ..for this many consecutive seconds: penalty box */
	__u32 penalty_sec;		  /* how long a penalised source's SYNs are dropped */
	__u32 penalty_v6_prefix_len;	  /* IPv6 sources are counted per prefix of this length */
	__u64 daemon_heartbeat_ns;	  /* CLOCK_MONOTONIC of the daemon's last heartbeat */
	__u64 reserved[4];		  /* zero */
};

/* tg_secret[0]: the SipHash-2-4 key of the key hashes (from LMDB); in its own map so
 * dumping tg_config never shows it. */
struct tg_secret {
	__u64 k0; /* SipHash key, first half */
	__u64 k1; /* SipHash key, second half */
};

/* A source address for the penalty box: IPv4 as ::ffff:a.b.c.d, IPv6 masked to the prefix. */
struct tg_addr {
	__u8 addr[16]; /* network order */
};

/* tg_allow key: an allow-listed prefix (IPv4 as ::ffff:0:0/96 + its prefix). */
struct tg_lpm_key {
	__u32 prefixlen; /* bits of addr that count (96 + IPv4 prefix for IPv4) */
	__u8 addr[16];	 /* network order */
};

/* tg_penalty value: one source's refusals and its penalty. */
struct tg_penalty {
	__u64 window_start_ns;	/* start of the current one-second counting window */
	__u64 until_ns;		/* SYNs dropped until this CLOCK_MONOTONIC time; 0 = never */
	__u64 refusals_total;	/* kernel 429s sent to this source */
	__u64 dropped_total;	/* SYNs dropped while penalised */
	__u32 refusals_window;	/* kernel 429s in the current window */
	__u32 strikes;		/* consecutive windows above the threshold */
	__u32 limit_milli;	/* threshold of the current window: multiple x key rate, per s */
	__u32 pad;		/* zero */
};

/* tg_killed key: a flow the kernel refused, whose later segments it absorbs. */
struct tg_flow {
	__u8 saddr[16]; /* client address (IPv4 as ::ffff:a.b.c.d), network order */
	__u8 daddr[16]; /* listener address, same form */
	__u16 sport;	/* client port, network order */
	__u16 dport;	/* listener port, network order */
	__u32 pad;	/* zero */
};

/* Verdicts counted per CPU in tg_stats (index = verdict). Keep the order; append only. */
enum tg_verdict {
	TG_V_SEEN = 0,		/* packets the TC program looked at */
	TG_V_NOT_TCP = 1,	/* not TCP over IPv4/IPv6 (incl. unknown ethertypes): pass */
	TG_V_NOT_PORT = 2,	/* TCP, not to a guarded port: pass */
	TG_V_NO_PAYLOAD = 3,	/* no payload (handshake, ACK, FIN): pass */
	TG_V_NOT_HTTP = 4,	/* payload is not an HTTP/1.x request line (TLS, h2, ...): pass */
	TG_V_NO_KEY = 5,	/* no key header in this segment: pass, the daemon decides */
	TG_V_UNKNOWN_KEY = 6,	/* key hash not in tg_keys: pass, the daemon answers 401 */
	TG_V_STALE_KEY = 7,	/* tg_keys entry older than its slot: pass */
	TG_V_ESTABLISHED = 8,	/* request on an accepted connection: pass, the daemon answers */
	TG_V_NO_SOCKET = 9,	/* no embryonic socket for the flow: pass */
	TG_V_UNDER_LIMIT = 10,	/* key has capacity: pass, the daemon charges it */
	TG_V_NOT_REFUSABLE = 11, /* over limit but soft mode or action not block: pass */
	TG_V_REFUSED = 12,	/* kernel answered 429 and reset the local half */
	TG_V_ABSORBED = 13,	/* later segment of a refused flow: ACKed if it carries data or FIN, else dropped */
	TG_V_FRAGMENT = 14,	/* IP fragment: pass */
	TG_V_IPV6_EXT = 15,	/* IPv6 extension header: pass */
	TG_V_GSO = 16,		/* GSO super-packet: pass */
	TG_V_MALFORMED = 17,	/* truncated or inconsistent headers: pass */
	TG_V_REPLY_FAILED = 18, /* building the 429 failed: pass, the daemon answers */
	TG_V_XDP_SEEN = 19,	/* packets the XDP program looked at */
	TG_V_XDP_DROPPED = 20,	/* SYN from a penalised source: dropped */
	TG_V_XDP_ALLOWED = 21,	/* SYN from an allow-listed source: passed unchecked */
	TG_V_PENALISED = 22,	/* a source entered the penalty box */
	TG_V_MODE_OFF = 23,	/* mode off in tg_config: pass */
	TG_V__COUNT = 24,
};

#ifdef __cplusplus
#define TG_ABI_ASSERT static_assert
#else
#define TG_ABI_ASSERT _Static_assert
#endif
TG_ABI_ASSERT(sizeof(struct tg_window) == 24, "tg_window layout");
TG_ABI_ASSERT(sizeof(struct tg_slot) == 128, "tg_slot is two cache lines");
TG_ABI_ASSERT(sizeof(struct tg_key_val) == 8, "tg_key_val layout");
TG_ABI_ASSERT(sizeof(struct tg_config) == 72, "tg_config layout");
TG_ABI_ASSERT(sizeof(struct tg_secret) == 16, "tg_secret layout");
TG_ABI_ASSERT(sizeof(struct tg_addr) == 16, "tg_addr layout");
TG_ABI_ASSERT(sizeof(struct tg_lpm_key) == 20, "tg_lpm_key layout");
TG_ABI_ASSERT(sizeof(struct tg_penalty) == 48, "tg_penalty layout");
TG_ABI_ASSERT(sizeof(struct tg_flow) == 40, "tg_flow layout");

#endif /* TOLLGATE_ABI_H */
