// SPDX-License-Identifier: BSD-2-Clause
/*
 * The XDP penalty box (bpf/tollgate_xdp.bpf.c) through bpf_prog_test_run: a table of
 * crafted frames, each with the world it meets (mode, clock, one penalised source, an
 * allow-listed prefix), the verdict it must get and the one XDP counter that must move.
 * Then every truncation of the header stack, which must pass without a fault.
 */
#include "tg_bpf_test.h"
#include "tollgate_xdp.skel.h"

static struct tollgate_xdp *skel;

/* The world of a row. The penalised source's entry has until_ns = 10 s. */
#define T_UNTIL (10 * TG_NS_PER_SEC)
#define T_NOW (5 * TG_NS_PER_SEC)

struct xdp_row {
	const char *desc;
	struct tg_pkt_spec pkt;
	const char *penalised; /* tg_penalty key put in the box, NULL for none */
	const char *allow;     /* allow-listed prefix, NULL for none */
	__u64 now_ns;	       /* injected clock; 0 means T_NOW */
	int mode;	       /* tg_config.mode; 0 (OFF) is written as -1 here, 0 means FULL */
	int v6_prefix;	       /* penalty_v6_prefix_len; 0 means 64, -1 writes 0 */
	int verdict;	       /* XDP_PASS or XDP_DROP */
	int counter;	       /* the XDP counter that moves besides XDP_SEEN, or -1 */
};

#define SYN .flags = TG_TH_SYN
#define V6 .family = 6

static const uint8_t payload[] = "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n";

static const struct xdp_row rows[] = {
	{ "IPv4 SYN from a penalised source is dropped", { SYN }, "10.0.0.1", NULL, 0, 0, 0,
	  XDP_DROP, TG_V_XDP_DROPPED },
	{ "IPv4 SYN from a source not in the box passes", { SYN, .saddr = "10.0.0.9" },
	  "10.0.0.1", NULL, 0, 0, 0, XDP_PASS, -1 },
	{ "penalty expired (clock past until_ns) passes", { SYN }, "10.0.0.1", NULL,
	  T_UNTIL + 1, 0, 0, XDP_PASS, -1 },
	{ "at until_ns exactly the penalty is over", { SYN }, "10.0.0.1", NULL, T_UNTIL, 0, 0,
	  XDP_PASS, -1 },
	{ "one ns before until_ns still dropped", { SYN }, "10.0.0.1", NULL, T_UNTIL - 1, 0, 0,
	  XDP_DROP, TG_V_XDP_DROPPED },
	{ "allow-listed penalised source passes", { SYN }, "10.0.0.1", "10.0.0.0/24", 0, 0, 0,
	  XDP_PASS, TG_V_XDP_ALLOWED },
	{ "allow-listed /32 passes", { SYN }, "10.0.0.1", "10.0.0.1/32", 0, 0, 0, XDP_PASS,
	  TG_V_XDP_ALLOWED },
	{ "allow list of another prefix does not help", { SYN }, "10.0.0.1", "10.0.1.0/24", 0,
	  0, 0, XDP_DROP, TG_V_XDP_DROPPED },
	{ "ACK from a penalised source passes", { .flags = TG_TH_ACK }, "10.0.0.1", NULL, 0, 0,
	  0, XDP_PASS, -1 },
	{ "data from a penalised source passes",
	  { .flags = TG_TH_ACK | TG_TH_PSH, .payload = payload, .payload_len = sizeof(payload) - 1 },
	  "10.0.0.1", NULL, 0, 0, 0, XDP_PASS, -1 },
	{ "SYN+ACK from a penalised source passes", { .flags = TG_TH_SYN | TG_TH_ACK },
	  "10.0.0.1", NULL, 0, 0, 0, XDP_PASS, -1 },
	{ "RST from a penalised source passes", { .flags = TG_TH_RST }, "10.0.0.1", NULL, 0, 0,
	  0, XDP_PASS, -1 },
	{ "SYN to a port not guarded passes", { SYN, .dport = 22 }, "10.0.0.1", NULL, 0, 0, 0,
	  XDP_PASS, -1 },
	{ "SYN to the second guarded port is dropped", { SYN, .dport = 8443 }, "10.0.0.1", NULL,
	  0, 0, 0, XDP_DROP, TG_V_XDP_DROPPED },
	{ "SYN with IPv4 options is dropped", { SYN, .ip_opt_len = 8 }, "10.0.0.1", NULL, 0, 0,
	  0, XDP_DROP, TG_V_XDP_DROPPED },
	{ "IPv4 header length below 20 passes", { SYN, .ihl = 4 }, "10.0.0.1", NULL, 0, 0, 0,
	  XDP_PASS, -1 },
	{ "first fragment (MF) passes", { SYN, .frag_off = 0x2000 }, "10.0.0.1", NULL, 0, 0, 0,
	  XDP_PASS, -1 },
	{ "later fragment (offset) passes", { SYN, .frag_off = 0x0010 }, "10.0.0.1", NULL, 0, 0,
	  0, XDP_PASS, -1 },
	{ "DF flag alone is no fragment: dropped", { SYN, .frag_off = 0x4000 }, "10.0.0.1", NULL,
	  0, 0, 0, XDP_DROP, TG_V_XDP_DROPPED },
	{ "UDP from a penalised source passes", { SYN, .l4_proto = 17 }, "10.0.0.1", NULL, 0, 0,
	  0, XDP_PASS, -1 },
	{ "ARP passes", { SYN, .ethertype = 0x0806 }, "10.0.0.1", NULL, 0, 0, 0, XDP_PASS, -1 },
	{ "802.1Q-tagged SYN is dropped", { SYN, .vlan_tpid = { 0x8100 }, .vlan_tci = { 7 } },
	  "10.0.0.1", NULL, 0, 0, 0, XDP_DROP, TG_V_XDP_DROPPED },
	{ "QinQ (802.1ad + 802.1Q) SYN is dropped",
	  { SYN, .vlan_tpid = { 0x88a8, 0x8100 }, .vlan_tci = { 100, 7 } }, "10.0.0.1", NULL, 0,
	  0, 0, XDP_DROP, TG_V_XDP_DROPPED },
	{ "802.1Q twice is dropped", { SYN, .vlan_tpid = { 0x8100, 0x8100 } }, "10.0.0.1", NULL,
	  0, 0, 0, XDP_DROP, TG_V_XDP_DROPPED },
	{ "QinQ IPv6 SYN is dropped", { SYN, V6, .vlan_tpid = { 0x88a8, 0x8100 } },
	  "2001:db8:1:2::", NULL, 0, 0, 0, XDP_DROP, TG_V_XDP_DROPPED },
	{ "IPv6 SYN from a penalised /64 is dropped", { SYN, V6, .saddr = "2001:db8:1:2::1" },
	  "2001:db8:1:2::", NULL, 0, 0, 0, XDP_DROP, TG_V_XDP_DROPPED },
	{ "another address in the same /64 shares the entry",
	  { SYN, V6, .saddr = "2001:db8:1:2:ffff:ffff:ffff:fffe" }, "2001:db8:1:2::", NULL, 0, 0,
	  0, XDP_DROP, TG_V_XDP_DROPPED },
	{ "an address outside the /64 passes", { SYN, V6, .saddr = "2001:db8:1:3::1" },
	  "2001:db8:1:2::", NULL, 0, 0, 0, XDP_PASS, -1 },
	{ "prefix length 48: the /48 shares the entry", { SYN, V6, .saddr = "2001:db8:1:3::1" },
	  "2001:db8:1::", NULL, 0, 0, 48, XDP_DROP, TG_V_XDP_DROPPED },
	{ "prefix length 61: bit 60 differs, passes", { SYN, V6, .saddr = "2001:db8:1:8::1" },
	  "2001:db8:1::", NULL, 0, 0, 61, XDP_PASS, -1 },
	{ "prefix length 61: bits after 61 ignored", { SYN, V6, .saddr = "2001:db8:1:7::1" },
	  "2001:db8:1::", NULL, 0, 0, 61, XDP_DROP, TG_V_XDP_DROPPED },
	{ "prefix length 63: bit 63 ignored", { SYN, V6, .saddr = "2001:db8:1:3::1" },
	  "2001:db8:1:2::", NULL, 0, 0, 63, XDP_DROP, TG_V_XDP_DROPPED },
	{ "prefix length 63: bit 62 counts", { SYN, V6, .saddr = "2001:db8:1:0::1" },
	  "2001:db8:1:2::", NULL, 0, 0, 63, XDP_PASS, -1 },
	{ "prefix length 128: only the address itself", { SYN, V6, .saddr = "2001:db8:1:2::1" },
	  "2001:db8:1:2::1", NULL, 0, 0, 128, XDP_DROP, TG_V_XDP_DROPPED },
	{ "prefix length 128: its neighbour passes", { SYN, V6, .saddr = "2001:db8:1:2::2" },
	  "2001:db8:1:2::1", NULL, 0, 0, 128, XDP_PASS, -1 },
	{ "prefix length above 128 means 128", { SYN, V6, .saddr = "2001:db8:1:2::1" },
	  "2001:db8:1:2::1", NULL, 0, 0, 200, XDP_DROP, TG_V_XDP_DROPPED },
	{ "prefix length 0 in the configuration means /64",
	  { SYN, V6, .saddr = "2001:db8:1:2:aaaa::1" }, "2001:db8:1:2::", NULL, 0, 0, -1, XDP_DROP,
	  TG_V_XDP_DROPPED },
	{ "prefix length 0 means /64, not /0", { SYN, V6, .saddr = "2001:db8:1:3::1" },
	  "2001:db8:1:2::", NULL, 0, 0, -1, XDP_PASS, -1 },
	{ "IPv6 allow list matches the full address", { SYN, V6, .saddr = "2001:db8:1:2::1" },
	  "2001:db8:1:2::", "2001:db8:1:2::1/128", 0, 0, 0, XDP_PASS, TG_V_XDP_ALLOWED },
	{ "IPv6 with a destination-options header passes", { SYN, V6, .v6_ext = 60 }, "2001:db8:1:2::",
	  NULL, 0, 0, 0, XDP_PASS, -1 },
	{ "IPv6 fragment header passes", { SYN, V6, .v6_ext = 44 }, "2001:db8:1:2::", NULL, 0,
	  0, 0, XDP_PASS, -1 },
	{ "mode tc: the penalty box is off", { SYN }, "10.0.0.1", NULL, 0, TG_MODE_TC, 0,
	  XDP_PASS, -1 },
	{ "mode off: everything passes", { SYN }, "10.0.0.1", NULL, 0, -1, 0, XDP_PASS, -1 },
};

/* Puts the world of row r into the maps and the clock. */
static int world_set(const struct xdp_row *r)
{
	struct tg_config cfg = tg_bpf_config_default();
	struct tg_penalty p = { .until_ns = T_UNTIL, .window_start_ns = 1 };
	const struct bpf_object *obj = skel->obj;
	int err;

	cfg.ports[1] = 8443;
	cfg.mode = r->mode == -1 ? TG_MODE_OFF : r->mode ? (__u32)r->mode : TG_MODE_FULL;
	if (r->v6_prefix)
		cfg.penalty_v6_prefix_len = r->v6_prefix < 0 ? 0 : (__u32)r->v6_prefix;
	err = tg_bpf_set_config(obj, &cfg);
	err = err ?: tg_bpf_map_clear(tg_bpf_map_fd(obj, TG_MAP_PENALTY));
	err = err ?: tg_bpf_map_clear(tg_bpf_map_fd(obj, TG_MAP_ALLOW));
	if (!err && r->penalised)
		err = tg_bpf_penalty_set(obj, r->penalised, &p);
	if (!err && r->allow)
		err = tg_bpf_allow_add(obj, r->allow);
	TG_BPF_CLOCK(skel, r->now_ns ? r->now_ns : T_NOW);
	return err;
}

static const enum tg_verdict xdp_counters[] = { TG_V_XDP_DROPPED, TG_V_XDP_ALLOWED,
						TG_V_PENALISED };

static int row_run(const struct xdp_row *r)
{
	static uint8_t frame[TG_FRAME_MAX];
	static struct tg_bpf_out out;
	__u64 before[TG_V__COUNT], after[TG_V__COUNT];
	int len, bad = tg_failed;

	TG_CHECK_INT(world_set(r), 0);
	len = tg_frame_build(&r->pkt, frame);
	TG_CHECK(len > 0);
	TG_CHECK_INT(tg_bpf_stats(skel->obj, before), 0);
	TG_CHECK_INT(tg_bpf_run(bpf_program__fd(skel->progs.tg_xdp_penalty), frame, (size_t)len,
				&out),
		     0);
	TG_CHECK_INT(tg_bpf_stats(skel->obj, after), 0);
	TG_CHECK_INT(out.retval, r->verdict);
	TG_CHECK_INT(after[TG_V_XDP_SEEN] - before[TG_V_XDP_SEEN], 1);
	for (size_t i = 0; i < sizeof(xdp_counters) / sizeof(xdp_counters[0]); i++) {
		enum tg_verdict v = xdp_counters[i];

		TG_CHECK_INT(after[v] - before[v], (int)v == r->counter ? 1 : 0);
	}
	/* The TC program's counters are not the XDP program's business. */
	TG_CHECK_INT(after[TG_V_SEEN] - before[TG_V_SEEN], 0);
	return tg_failed != bad;
}

/* A drop bumps the entry's dropped_total; the entry is otherwise untouched. */
static void case_dropped_total(void)
{
	uint8_t frame[256];
	struct tg_bpf_out out;
	struct tg_penalty p;
	int len;

	TG_REQUIRE(world_set(&rows[0]) == 0);
	len = tg_frame_build(&rows[0].pkt, frame);
	TG_REQUIRE(len > 0);
	for (int i = 0; i < 3; i++)
		TG_CHECK_INT(tg_bpf_run(bpf_program__fd(skel->progs.tg_xdp_penalty), frame,
					(size_t)len, &out),
			     0);
	TG_REQUIRE(tg_bpf_penalty_get(skel->obj, "10.0.0.1", &p) == 0);
	TG_CHECK_INT(p.dropped_total, 3);
	TG_CHECK_INT(p.until_ns, T_UNTIL);
	TG_CHECK_INT(p.refusals_total, 0);
}

/* Cutting a frame at every length from an Ethernet header to its full headers: each cut
 * passes (no fault, no drop). Below 14 bytes the kernel refuses to run XDP at all. */
static void truncations(const struct tg_pkt_spec *spec)
{
	static uint8_t frame[TG_FRAME_MAX];
	static struct tg_bpf_out out;
	int fd = bpf_program__fd(skel->progs.tg_xdp_penalty);
	int len = tg_frame_build(spec, frame);

	TG_REQUIRE(len > 0);
	TG_CHECK_INT(tg_bpf_run(fd, frame, (size_t)len, &out), 0);
	TG_CHECK_INT(out.retval, XDP_DROP); /* whole: the world drops it */
	for (int cut = 0; cut < len; cut++) {
		int err = tg_bpf_run(fd, frame, (size_t)cut, &out);

		if (cut < 14) {
			TG_CHECK_INT(err, -EINVAL);
			continue;
		}
		TG_CHECK_INT(err, 0);
		if (out.retval != XDP_PASS)
			printf("#   cut at %d of %d\n", cut, len);
		TG_CHECK_INT(out.retval, XDP_PASS);
	}
}

static void case_truncated_v4(void)
{
	struct tg_pkt_spec s = { SYN, .ip_opt_len = 4 };

	TG_REQUIRE(world_set(&rows[0]) == 0);
	truncations(&s);
}

static void case_truncated_v6_qinq(void)
{
	struct tg_pkt_spec s = { SYN, V6, .vlan_tpid = { 0x88a8, 0x8100 } };
	struct xdp_row r = rows[0];

	r.penalised = "2001:db8:1:2::";
	TG_REQUIRE(world_set(&r) == 0);
	truncations(&s);
}

/* No configuration: tg_config[0] all zero is mode off; everything passes. */
static void case_zero_config(void)
{
	struct tg_config zero;
	uint8_t frame[256];
	struct tg_bpf_out out;
	int len;

	TG_REQUIRE(world_set(&rows[0]) == 0);
	memset(&zero, 0, sizeof(zero));
	TG_REQUIRE(tg_bpf_set_config(skel->obj, &zero) == 0);
	len = tg_frame_build(&rows[0].pkt, frame);
	TG_REQUIRE(len > 0);
	TG_CHECK_INT(tg_bpf_run(bpf_program__fd(skel->progs.tg_xdp_penalty), frame, (size_t)len,
				&out),
		     0);
	TG_CHECK_INT(out.retval, XDP_PASS);
}

/* The harness's own checksum check: a built frame is right, a flipped byte is caught. */
static void case_harness_checksums(void)
{
	static uint8_t f[TG_FRAME_MAX];
	struct tg_pkt_spec v4 = { SYN, .payload = payload, .payload_len = 7, .ip_opt_len = 4 };
	struct tg_pkt_spec v6 = { SYN, V6, .payload = payload, .payload_len = 9 };
	int len;

	len = tg_frame_build(&v4, f);
	TG_REQUIRE(len > 0);
	TG_CHECK_INT(tg_frame_csum_check(f, (size_t)len), 0);
	f[len - 1] ^= 0x40;
	TG_CHECK_INT(tg_frame_csum_check(f, (size_t)len), -EBADMSG);
	len = tg_frame_build(&v6, f);
	TG_REQUIRE(len > 0);
	TG_CHECK_INT(tg_frame_csum_check(f, (size_t)len), 0);
	f[len - 3] ^= 0x01;
	TG_CHECK_INT(tg_frame_csum_check(f, (size_t)len), -EBADMSG);
}

static const struct tg_case cases[] = {
	{ "a drop bumps dropped_total", case_dropped_total },
	{ "every truncation of an IPv4 SYN passes", case_truncated_v4 },
	{ "every truncation of a QinQ IPv6 SYN passes", case_truncated_v6_qinq },
	{ "all-zero configuration passes everything", case_zero_config },
	{ "harness checksums are independent and catch errors", case_harness_checksums },
};

int main(void)
{
	const char *why = tg_bpf_env_problem();
	int rc;

	if (why)
		return tg_bpf_unavailable("bpf/xdp", why);
	skel = tollgate_xdp__open();
	if (!skel || tg_bpf_unpin_all(skel->obj) || tollgate_xdp__load(skel)) {
		printf("not ok - bpf/xdp: tollgate_xdp does not load (see libbpf lines above)\n");
		tollgate_xdp__destroy(skel);
		return 1;
	}
	rc = TG_ROWS_RUN("bpf/xdp", rows, row_run);
	rc |= tg_run("bpf/xdp", cases, TG_NCASES(cases));
	tollgate_xdp__destroy(skel);
	return rc;
}
