/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The harness of the BPF tests (tests/bpf/test_*.c): loads the kernel programs from their
 * skeletons with every map unpinned (each test run has private maps; nothing is left in
 * bpffs), crafts Ethernet/VLAN/IPv4/IPv6/TCP frames, checks checksums with an independent
 * userspace computation, runs a program through bpf_prog_test_run_opts, and reads and
 * writes the ABI maps (tg_config, tg_secret, tg_keys, tg_slots, tg_allow, tg_penalty,
 * tg_stats summed over CPUs). Cases are tables run by tests/unit/tg_test.h, so the output is
 * the same "ok - " / "not ok - " / "skip - name: why" lines tests/run counts.
 *
 * Environment: BPF needs root. Without it (or without BPF in the kernel) a suite prints one
 * "skip - bpf: <why>" line, except under CI=true where that is "not ok": CI must never pass
 * by silently testing nothing. A program that fails to load is always a failure.
 *
 * The injectable clock is a global of each object: set it through the skeleton, e.g.
 * skel->bss->tg_clock_override_ns = ns (TG_BPF_CLOCK below).
 */
#ifndef TG_BPF_TEST_H
#define TG_BPF_TEST_H

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "tg_test.h"
#include "tollgate/abi.h"

#define TG_FRAME_MAX 9216 /* largest frame a test crafts or reads back */
#define TG_NS_PER_SEC 1000000000ULL

/* Sets the injected clock of a loaded skeleton (0 = the real clock again). */
#define TG_BPF_CLOCK(skel, ns) ((skel)->bss->tg_clock_override_ns = (ns))

/* ---- environment and loading ---------------------------------------------------------- */

static int tg_bpf_libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[1024];

	/* Warnings only (verifier logs on a failed load included), as comments tests/run
	 * does not count. */
	if (level == LIBBPF_DEBUG)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	return printf("# %s", line);
}

/* NULL when BPF tests can run here, else why not (root, kernel support). */
static inline const char *tg_bpf_env_problem(void)
{
	libbpf_set_print(tg_bpf_libbpf_log);
	if (geteuid() != 0)
		return "needs root (bpf_prog_test_run and map creation)";
	if (libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_XDP, NULL) != 1)
		return "the kernel refuses to load a trivial XDP program (BPF unavailable)";
	return NULL;
}

/* The one line a suite prints when it cannot run; returns its exit status. */
static inline int tg_bpf_unavailable(const char *suite, const char *why)
{
	const char *ci = getenv("CI");

	if (ci && strcmp(ci, "true") == 0) {
		printf("not ok - %s: BPF unavailable under CI: %s\n", suite, why);
		return 1;
	}
	printf("skip - %s: %s\n", suite, why);
	return 0;
}

/* Before load: no map of obj is pinned (no pin_root_path lookup, nothing written to bpffs). */
static inline int tg_bpf_unpin_all(struct bpf_object *obj)
{
	struct bpf_map *map;
	int err;

	bpf_object__for_each_map(map, obj) {
		err = bpf_map__set_pin_path(map, NULL);
		if (err)
			return err;
	}
	return 0;
}

/* Before load of obj: every map named like one of the loaded object from is shared with
 * it (what pinning by name does in production, without bpffs). */
static inline int tg_bpf_share_maps(struct bpf_object *obj, const struct bpf_object *from)
{
	struct bpf_map *map;
	int err;

	bpf_object__for_each_map(map, obj) {
		const struct bpf_map *src =
			bpf_object__find_map_by_name(from, bpf_map__name(map));

		if (!src || strncmp(bpf_map__name(map), "tg_", 3) != 0)
			continue;
		err = bpf_map__reuse_fd(map, bpf_map__fd(src));
		if (err)
			return err;
	}
	return 0;
}

/* The fd of a loaded object's map, or -1 (printed: a test using a missing map fails). */
static inline int tg_bpf_map_fd(const struct bpf_object *obj, const char *name)
{
	const struct bpf_map *m = bpf_object__find_map_by_name(obj, name);

	if (!m) {
		printf("#   no map %s in the object\n", name);
		return -1;
	}
	return bpf_map__fd(m);
}

/* ---- maps ------------------------------------------------------------------------------ */

/* A configuration the tests start from: mode full, port 8080 guarded, penalty after 3 s
 * above 2x the key's rate, 60 s penalty, IPv6 per /64. */
static inline struct tg_config tg_bpf_config_default(void)
{
	struct tg_config c;

	memset(&c, 0, sizeof(c));
	c.abi_version = TG_ABI_VERSION;
	c.mode = TG_MODE_FULL;
	c.ports[0] = 8080;
	c.penalty_multiple_milli = 2000;
	c.penalty_after_sec = 3;
	c.penalty_sec = 60;
	c.penalty_v6_prefix_len = 64;
	return c;
}

static inline int tg_bpf_set_config(const struct bpf_object *obj, const struct tg_config *c)
{
	__u32 zero = 0;

	return bpf_map_update_elem(tg_bpf_map_fd(obj, TG_MAP_CONFIG), &zero, c, BPF_ANY);
}

static inline int tg_bpf_set_secret(const struct bpf_object *obj, __u64 k0, __u64 k1)
{
	struct tg_secret s = { .k0 = k0, .k1 = k1 };
	__u32 zero = 0;

	return bpf_map_update_elem(tg_bpf_map_fd(obj, TG_MAP_SECRET), &zero, &s, BPF_ANY);
}

static inline int tg_bpf_set_slot(const struct bpf_object *obj, __u32 idx,
				  const struct tg_slot *slot)
{
	return bpf_map_update_elem(tg_bpf_map_fd(obj, TG_MAP_SLOTS), &idx, slot, BPF_ANY);
}

static inline int tg_bpf_set_key(const struct bpf_object *obj, __u64 hash, __u32 slot,
				 __u32 key_gen)
{
	struct tg_key_val v = { .slot = slot, .key_gen = key_gen };

	return bpf_map_update_elem(tg_bpf_map_fd(obj, TG_MAP_KEYS), &hash, &v, BPF_ANY);
}

/* Deletes every entry of a hash-like map (hash, LRU, LPM trie). */
static inline int tg_bpf_map_clear(int fd)
{
	uint8_t key[64], next[64];
	int err;

	while ((err = bpf_map_get_next_key(fd, NULL, next)) == 0) {
		memcpy(key, next, sizeof(key));
		err = bpf_map_delete_elem(fd, key);
		if (err)
			return err;
	}
	return err == -ENOENT ? 0 : err;
}

/* "10.0.0.1" -> ::ffff:10.0.0.1, "2001:db8::1" -> itself. 0 or -EINVAL. */
static inline int tg_bpf_addr(const char *text, struct tg_addr *out)
{
	uint8_t v4[4];

	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, text, v4) == 1) {
		out->addr[10] = 0xff;
		out->addr[11] = 0xff;
		memcpy(&out->addr[12], v4, 4);
		return 0;
	}
	return inet_pton(AF_INET6, text, out->addr) == 1 ? 0 : -EINVAL;
}

/* Adds an allow-listed prefix "a.b.c.d/n" or "x::/n" to tg_allow. */
static inline int tg_bpf_allow_add(const struct bpf_object *obj, const char *prefix)
{
	struct tg_lpm_key k;
	struct tg_addr a;
	char text[64];
	char *slash;
	__u8 one = 1;
	int n;

	snprintf(text, sizeof(text), "%s", prefix);
	slash = strchr(text, '/');
	if (!slash)
		return -EINVAL;
	*slash = '\0';
	n = atoi(slash + 1);
	if (tg_bpf_addr(text, &a))
		return -EINVAL;
	memset(&k, 0, sizeof(k));
	k.prefixlen = strchr(text, ':') ? (__u32)n : 96 + (__u32)n;
	memcpy(k.addr, a.addr, 16);
	return bpf_map_update_elem(tg_bpf_map_fd(obj, TG_MAP_ALLOW), &k, &one, BPF_ANY);
}

static inline int tg_bpf_penalty_set(const struct bpf_object *obj, const char *addr,
				     const struct tg_penalty *p)
{
	struct tg_addr a;

	if (tg_bpf_addr(addr, &a))
		return -EINVAL;
	return bpf_map_update_elem(tg_bpf_map_fd(obj, TG_MAP_PENALTY), &a, p, BPF_ANY);
}

/* 0 and *p filled, or -ENOENT when the source has no entry. */
static inline int tg_bpf_penalty_get(const struct bpf_object *obj, const char *addr,
				     struct tg_penalty *p)
{
	struct tg_addr a;

	if (tg_bpf_addr(addr, &a))
		return -EINVAL;
	return bpf_map_lookup_elem(tg_bpf_map_fd(obj, TG_MAP_PENALTY), &a, p);
}

/* tg_stats summed over all possible CPUs into out[TG_V__COUNT]. */
static inline int tg_bpf_stats(const struct bpf_object *obj, __u64 out[TG_V__COUNT])
{
	int fd = tg_bpf_map_fd(obj, TG_MAP_STATS), ncpu = libbpf_num_possible_cpus();
	__u64 vals[512];

	if (ncpu <= 0 || ncpu > 512)
		return -ERANGE;
	for (__u32 v = 0; v < TG_V__COUNT; v++) {
		int err = bpf_map_lookup_elem(fd, &v, vals);

		if (err)
			return err;
		out[v] = 0;
		for (int c = 0; c < ncpu; c++)
			out[v] += vals[c];
	}
	return 0;
}

/* ---- running a program ------------------------------------------------------------------ */

struct tg_bpf_out {
	int retval;		     /* the program's return value */
	__u32 duration_ns;	     /* the kernel's average per run (with repeat) */
	__u32 len;		     /* bytes in data */
	uint8_t data[TG_FRAME_MAX]; /* the packet after the program ran */
};

/* Runs prog_fd once (repeat 0/1) or repeat times over the frame; ctx is optional (TC's
 * struct __sk_buff). 0, or the negative errno of the test run (e.g. -EINVAL for a frame
 * shorter than an Ethernet header, which the kernel never hands to XDP). */
static inline int tg_bpf_run_ctx(int prog_fd, const void *frame, size_t len, void *ctx,
				 size_t ctx_len, int repeat, struct tg_bpf_out *out)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .data_size_in = (__u32)len,
		    .data_out = out->data, .data_size_out = sizeof(out->data), .ctx_in = ctx,
		    .ctx_size_in = (__u32)ctx_len, .ctx_out = ctx, .ctx_size_out = (__u32)ctx_len,
		    .repeat = repeat);
	int err = bpf_prog_test_run_opts(prog_fd, &o);

	if (err)
		return err < 0 ? err : -errno;
	out->retval = (int)o.retval;
	out->duration_ns = o.duration;
	out->len = o.data_size_out;
	return 0;
}

static inline int tg_bpf_run(int prog_fd, const void *frame, size_t len, struct tg_bpf_out *out)
{
	return tg_bpf_run_ctx(prog_fd, frame, len, NULL, 0, 1, out);
}

/* ---- frames ------------------------------------------------------------------------------ */

#define TG_TH_FIN 0x01
#define TG_TH_SYN 0x02
#define TG_TH_RST 0x04
#define TG_TH_PSH 0x08
#define TG_TH_ACK 0x10

/* What to craft; zero fields take the defaults noted. */
struct tg_pkt_spec {
	int family;		 /* 4 or 6 (default 4) */
	const char *saddr;	 /* default 10.0.0.1 / 2001:db8:1:2::1 */
	const char *daddr;	 /* default 10.0.0.2 / 2001:db8:ffff::2 */
	uint16_t sport, dport;	 /* host order; default 40000 / 8080 */
	uint8_t flags;		 /* TCP flags (TG_TH_*) */
	uint32_t seq, ack;	 /* host order */
	const void *payload;	 /* TCP payload */
	size_t payload_len;
	const void *tcp_opts;	 /* TCP option bytes, a multiple of 4 */
	size_t tcp_opts_len;
	uint16_t vlan_tpid[2];	 /* 0 = no tag; outer first (0x88a8, 0x8100) */
	uint16_t vlan_tci[2];
	uint16_t ethertype;	 /* overrides the L3 ethertype (e.g. 0x0806) */
	uint16_t frag_off;	 /* IPv4 flags+offset field, host order */
	uint8_t ip_opt_len;	 /* IPv4 option bytes (NOPs + EOL), a multiple of 4, <= 40 */
	uint8_t ihl;		 /* overrides the IPv4 header length field (words) */
	uint8_t l4_proto;	 /* overrides IPv4 protocol / IPv6 next header (no TCP then) */
	uint8_t v6_ext;		 /* IPv6: insert one 8-byte extension header of this type */
};

/* RFC 1071 sum of len bytes added to sum (not folded). */
static inline uint32_t tg_csum_add(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static inline uint16_t tg_csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* The TCP checksum (host order) of a segment over IPv4 (addr_len 4) or IPv6 (16). */
static inline uint16_t tg_csum_tcp(const void *saddr, const void *daddr, size_t addr_len,
				   const void *seg, size_t seg_len)
{
	uint32_t sum = 0;

	sum = tg_csum_add(sum, saddr, addr_len);
	sum = tg_csum_add(sum, daddr, addr_len);
	sum += 6; /* IPPROTO_TCP */
	sum += (uint32_t)seg_len;
	return tg_csum_fold(tg_csum_add(sum, seg, seg_len));
}

static inline void tg_put16(uint8_t *p, uint16_t host)
{
	uint16_t n = htons(host);

	memcpy(p, &n, 2);
}

static inline void tg_put32(uint8_t *p, uint32_t host)
{
	uint32_t n = htonl(host);

	memcpy(p, &n, 4);
}

/* MACs, tags and ethertype; returns the L3 offset. */
static inline int tg_frame_eth(const struct tg_pkt_spec *s, uint8_t *buf)
{
	int off = 12;

	memcpy(buf, "\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01", 12); /* dst, src MAC */
	for (int i = 0; i < 2 && s->vlan_tpid[i]; i++) {
		tg_put16(buf + off, s->vlan_tpid[i]);
		tg_put16(buf + off + 2, s->vlan_tci[i]);
		off += 4;
	}
	tg_put16(buf + off, s->ethertype ? s->ethertype : (s->family == 6 ? 0x86dd : 0x0800));
	return off + 2;
}

/* IPv4 header (with its checksum) at l3 for a TCP segment of tcplen; returns the L4 offset. */
static inline int tg_frame_ip4(const struct tg_pkt_spec *s, uint8_t *buf, int l3, int tcplen,
			       const uint8_t *sa, const uint8_t *da)
{
	int hl = 20 + s->ip_opt_len;

	buf[l3] = (uint8_t)(0x40 | (s->ihl ? s->ihl : hl / 4));
	tg_put16(buf + l3 + 2, (uint16_t)(hl + tcplen));
	tg_put16(buf + l3 + 6, s->frag_off);
	buf[l3 + 8] = 64;
	buf[l3 + 9] = s->l4_proto ? s->l4_proto : 6;
	memcpy(buf + l3 + 12, sa, 4);
	memcpy(buf + l3 + 16, da, 4);
	memset(buf + l3 + 20, 1, s->ip_opt_len); /* NOPs */
	if (s->ip_opt_len)
		buf[l3 + hl - 1] = 0; /* EOL */
	tg_put16(buf + l3 + 10, tg_csum_fold(tg_csum_add(0, buf + l3, (size_t)hl)));
	return l3 + hl;
}

/* IPv6 header at l3 (and one empty extension header if asked); returns the L4 offset. */
static inline int tg_frame_ip6(const struct tg_pkt_spec *s, uint8_t *buf, int l3, int tcplen,
			       const uint8_t *sa, const uint8_t *da)
{
	int ext = s->v6_ext ? 8 : 0, l4 = l3 + 40;
	uint8_t proto = s->l4_proto ? s->l4_proto : 6;

	buf[l3] = 0x60;
	tg_put16(buf + l3 + 4, (uint16_t)(ext + tcplen));
	buf[l3 + 6] = s->v6_ext ? s->v6_ext : proto;
	buf[l3 + 7] = 64;
	memcpy(buf + l3 + 8, sa, 16);
	memcpy(buf + l3 + 24, da, 16);
	if (ext)
		buf[l4] = proto; /* the next header after the extension header */
	return l4 + ext;
}

/* TCP header, options and payload at l4, with the checksum over the pseudo-header. */
static inline void tg_frame_tcp(const struct tg_pkt_spec *s, uint8_t *buf, int l4, int tcplen,
				const uint8_t *sa, const uint8_t *da)
{
	tg_put16(buf + l4, s->sport ? s->sport : 40000);
	tg_put16(buf + l4 + 2, s->dport ? s->dport : 8080);
	tg_put32(buf + l4 + 4, s->seq);
	tg_put32(buf + l4 + 8, s->ack);
	buf[l4 + 12] = (uint8_t)(((20 + s->tcp_opts_len) / 4) << 4);
	buf[l4 + 13] = s->flags;
	tg_put16(buf + l4 + 14, 64240);
	if (s->tcp_opts_len)
		memcpy(buf + l4 + 20, s->tcp_opts, s->tcp_opts_len);
	if (s->payload_len)
		memcpy(buf + l4 + 20 + s->tcp_opts_len, s->payload, s->payload_len);
	tg_put16(buf + l4 + 16,
		 tg_csum_tcp(sa, da, s->family == 6 ? 16 : 4, buf + l4, (size_t)tcplen));
}

/* Builds the frame into buf (TG_FRAME_MAX); returns its length or -EINVAL. */
static inline int tg_frame_build(const struct tg_pkt_spec *s, uint8_t *buf)
{
	int v6 = s->family == 6, af = v6 ? AF_INET6 : AF_INET, l3, l4, tcplen;
	const char *src = s->saddr ? s->saddr : (v6 ? "2001:db8:1:2::1" : "10.0.0.1");
	const char *dst = s->daddr ? s->daddr : (v6 ? "2001:db8:ffff::2" : "10.0.0.2");
	uint8_t sa[16], da[16];

	if (inet_pton(af, src, sa) != 1 || inet_pton(af, dst, da) != 1)
		return -EINVAL;
	if (s->tcp_opts_len % 4 || s->tcp_opts_len > 40 || s->ip_opt_len % 4 ||
	    s->ip_opt_len > 40 || s->payload_len > 8000)
		return -EINVAL;
	memset(buf, 0, TG_FRAME_MAX);
	l3 = tg_frame_eth(s, buf);
	tcplen = 20 + (int)s->tcp_opts_len + (int)s->payload_len;
	l4 = v6 ? tg_frame_ip6(s, buf, l3, tcplen, sa, da) : tg_frame_ip4(s, buf, l3, tcplen, sa, da);
	tg_frame_tcp(s, buf, l4, tcplen, sa, da);
	return l4 + tcplen;
}

/*
 * Checks a frame's IPv4 header checksum and its TCP checksum from scratch (for replies a
 * program built). Ethernet with up to two tags, IPv4 or IPv6 without extension headers.
 * 0 when both are right, -EBADMSG when one is wrong, -EINVAL when the frame is not TCP or
 * its lengths are inconsistent. Prints what is wrong.
 */
static inline int tg_frame_csum_check(const uint8_t *f, size_t len)
{
	size_t off = 12, l4, seglen;
	uint16_t et;

	for (int i = 0; i < 3; i++) {
		if (off + 2 > len)
			return -EINVAL;
		et = (uint16_t)(f[off] << 8 | f[off + 1]);
		if (et != 0x8100 && et != 0x88a8)
			break;
		off += 4;
	}
	off += 2;
	if (et == 0x0800) {
		size_t hl, tot;

		if (off + 20 > len || f[off + 9] != 6)
			return -EINVAL;
		hl = (size_t)(f[off] & 0xf) * 4;
		tot = (size_t)(f[off + 2] << 8 | f[off + 3]);
		if (hl < 20 || tot < hl + 20 || off + tot > len)
			return -EINVAL;
		if (tg_csum_fold(tg_csum_add(0, f + off, hl)) != 0) {
			printf("#   bad IPv4 header checksum\n");
			return -EBADMSG;
		}
		l4 = off + hl;
		seglen = tot - hl;
		if (tg_csum_tcp(f + off + 12, f + off + 16, 4, f + l4, seglen) != 0) {
			printf("#   bad TCP checksum (IPv4)\n");
			return -EBADMSG;
		}
		return 0;
	}
	if (et != 0x86dd || off + 40 > len || f[off + 6] != 6)
		return -EINVAL;
	seglen = (size_t)(f[off + 4] << 8 | f[off + 5]);
	l4 = off + 40;
	if (seglen < 20 || l4 + seglen > len)
		return -EINVAL;
	if (tg_csum_tcp(f + off + 8, f + off + 24, 16, f + l4, seglen) != 0) {
		printf("#   bad TCP checksum (IPv6)\n");
		return -EBADMSG;
	}
	return 0;
}

/*
 * Runs a table of rows (each with a `desc`) through row_fn (non-zero: the row failed), one
 * "ok"/"not ok" line per row in tg_run's format. Evaluates to 1 if a row failed, else 0.
 */
#define TG_ROWS_RUN(suite, rows, row_fn)                                                           \
	({                                                                                         \
		int bad_ = 0;                                                                      \
		for (size_t i_ = 0; i_ < TG_NCASES(rows); i_++) {                                  \
			int failed_;                                                               \
			tg_failed = 0;                                                             \
			failed_ = row_fn(&(rows)[i_]);                                             \
			printf("%s - %s: %s\n", failed_ ? "not ok" : "ok", (suite), (rows)[i_].desc); \
			bad_ |= failed_ != 0;                                                      \
		}                                                                                  \
		bad_;                                                                              \
	})

#endif /* TG_BPF_TEST_H */
