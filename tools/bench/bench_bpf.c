// SPDX-License-Identifier: BSD-2-Clause
/*
 * Cost per packet of the XDP penalty box (bpf/tollgate_xdp.bpf.c), measured by the kernel
 * with bpf_prog_test_run's repeat: a SYN from a penalised source (parse, allow-list miss,
 * penalty hit, drop), a SYN from a source not in the box (parse, both lookups, pass), an ACK
 * (parse, early pass) and a non-TCP frame. The baseline, in the same run, is an XDP program
 * that only returns XDP_PASS: the test_run loop's own cost per packet. Each figure is the
 * median of BENCH_ROUNDS (default 5) runs of BENCH_REPEAT (default 1,000,000) packets.
 *
 * Prints the metric lines of tools/bench/run. Needs root.
 */
#include <stdlib.h>

#include "tg_bpf_test.h"
#include "bench_bpf.h"
#include "tollgate_xdp.skel.h"

#define BENCH_GOAL_NS 300.0 /* issue 4: parser + lookup per packet under 300 ns */

static void metric(const char *name, double v, double base)
{
	printf("metric=%s value=%.1f unit=ns baseline=%.1f ratio=%.2f goal=<%.0f pass=%s\n", name,
	       v, base, base > 0 ? v / base : 0.0, BENCH_GOAL_NS, v < BENCH_GOAL_NS ? "yes" : "no");
}

static int world_set(struct tollgate_xdp *skel)
{
	struct tg_config cfg = tg_bpf_config_default();
	struct tg_penalty p = { .until_ns = 100 * TG_NS_PER_SEC };
	int err;

	err = tg_bpf_set_config(skel->obj, &cfg);
	err = err ?: tg_bpf_penalty_set(skel->obj, "10.0.0.1", &p);
	err = err ?: tg_bpf_allow_add(skel->obj, "192.168.0.0/16"); /* a trie that misses */
	TG_BPF_CLOCK(skel, 50 * TG_NS_PER_SEC);
	return err;
}

int main(void)
{
	int rounds = bench_env_int("BENCH_ROUNDS", 5);
	int repeat = bench_env_int("BENCH_REPEAT", 1000000);
	const struct tg_pkt_spec drop = { .flags = TG_TH_SYN, .saddr = "10.0.0.1" };
	const struct tg_pkt_spec pass = { .flags = TG_TH_SYN, .saddr = "10.0.0.7" };
	const struct tg_pkt_spec ack = { .flags = TG_TH_ACK, .saddr = "10.0.0.1" };
	const struct tg_pkt_spec udp = { .l4_proto = 17 };
	const char *why = tg_bpf_env_problem();
	struct tollgate_xdp *skel = NULL;
	double base, v[4];
	int fd, base_fd = -1, rc = 1;

	if (why) {
		fprintf(stderr, "bench_bpf: %s\n", why);
		return 1;
	}
	if (rounds > 64)
		rounds = 64;
	skel = tollgate_xdp__open();
	if (!skel || tg_bpf_unpin_all(skel->obj) || tollgate_xdp__load(skel) || world_set(skel))
		goto out;
	base_fd = bench_baseline_prog(BPF_PROG_TYPE_XDP, XDP_PASS);
	if (base_fd < 0)
		goto out;
	fd = bpf_program__fd(skel->progs.tg_xdp_penalty);
	base = bench_median(base_fd, &pass, rounds, repeat, XDP_PASS);
	v[0] = bench_median(fd, &drop, rounds, repeat, XDP_DROP);
	v[1] = bench_median(fd, &pass, rounds, repeat, XDP_PASS);
	v[2] = bench_median(fd, &ack, rounds, repeat, XDP_PASS);
	v[3] = bench_median(fd, &udp, rounds, repeat, XDP_PASS);
	if (base < 0 || v[0] < 0 || v[1] < 0 || v[2] < 0 || v[3] < 0)
		goto out;
	printf("# bench_bpf: XDP penalty box, median of %d x %d test_run packets\n", rounds,
	       repeat);
	metric("xdp_syn_penalised_ns", v[0], base);
	metric("xdp_syn_not_penalised_ns", v[1], base);
	metric("xdp_ack_ns", v[2], base);
	metric("xdp_not_tcp_ns", v[3], base);
	rc = 0;
out:
	if (rc)
		fprintf(stderr, "bench_bpf: setup or run failed\n");
	if (base_fd >= 0)
		close(base_fd);
	tollgate_xdp__destroy(skel);
	return rc;
}
