/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What the BPF benchmarks (bench_bpf.c: XDP, bench_bpf_tc.c: TC) share: settings from the
 * environment, the median of test_run rounds, and the two-instruction baseline program that
 * measures test_run's own cost per packet. Include after tg_bpf_test.h.
 */
#ifndef TG_BENCH_BPF_H
#define TG_BENCH_BPF_H

#include <stdlib.h>

/* A positive integer from the environment, else def. */
static inline int bench_env_int(const char *name, int def)
{
	const char *v = getenv(name);

	return v && atoi(v) > 0 ? atoi(v) : def;
}

static inline int bench_cmp_u32(const void *a, const void *b)
{
	__u32 x = *(const __u32 *)a, y = *(const __u32 *)b;

	return x < y ? -1 : x > y;
}

/*
 * Median over rounds (at most 64) of the kernel's mean ns per run of the frame spec, each
 * run repeat packets; every run must return expect. Negative errno on failure.
 */
static inline double bench_median(int prog_fd, const struct tg_pkt_spec *spec, int rounds,
				  int repeat, int expect)
{
	static uint8_t frame[TG_FRAME_MAX];
	static struct tg_bpf_out out;
	__u32 d[64];
	int len = tg_frame_build(spec, frame);

	if (len < 0)
		return len;
	if (rounds > 64)
		rounds = 64;
	for (int r = 0; r < rounds; r++) {
		int err = tg_bpf_run_ctx(prog_fd, frame, (size_t)len, NULL, 0, repeat, &out);

		if (err)
			return err;
		if (out.retval != expect) {
			fprintf(stderr, "bench: verdict %d, expected %d\n", out.retval, expect);
			return -EPROTO;
		}
		d[r] = out.duration_ns;
	}
	qsort(d, (size_t)rounds, sizeof(d[0]), bench_cmp_u32);
	return d[rounds / 2];
}

/* The baseline: a program of type that only returns retval (r0 = retval; exit). */
static inline int bench_baseline_prog(enum bpf_prog_type type, int retval)
{
	const struct bpf_insn insns[] = {
	    {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = retval},
	    {.code = BPF_JMP | BPF_EXIT},
	};

	return bpf_prog_load(type, "tg_bench_base", "Dual BSD/GPL", insns, 2, NULL);
}

#endif /* TG_BENCH_BPF_H */
