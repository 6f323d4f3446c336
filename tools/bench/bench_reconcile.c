/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Benchmark of the kernel loader's tg_keys reconcile (what a daemon start does with every
 * active key of LMDB), on real BPF maps under a pin directory of its own, removed at the end:
 *   1. a first start: N keys into an empty tg_keys (goal for N = 1,000,000: under 2 s);
 *   2. a restart with nothing changed: the same N keys again;
 *   3. a restart after churn: 10 % of the keys replaced (stale entries found and deleted);
 * each against a baseline measured in the same run: N single bpf_map_update_elem calls
 * through kernel_key_put, what reconciling without batches would cost. Also the kernel
 * memory per key (tg_keys' memlock divided by its entries, and tg_slots' per slot).
 * Needs root and BPF; without them it says so and exits 0 (nothing measured).
 *
 * usage: bench_reconcile [N keys, default 1000000]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernel.h"
#include "log.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* splitmix64: distinct, well-spread hashes without a hash secret */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void metric(const char *name, double v, const char *unit, double base, const char *goal,
		   const char *pass)
{
	printf("metric=%s value=%.3f unit=%s baseline=%.3f ratio=%.3f goal=%s pass=%s\n", name, v,
	       unit, base, base > 0 ? v / base : 0, goal, pass);
}

static double timed_reconcile(struct kernel *k, const uint64_t *h, const uint32_t *slot,
			      const uint32_t *gen, size_t n)
{
	double t0 = now_s();
	int rc = kernel_keys_reconcile(k, h, slot, gen, n);

	if (rc) {
		fprintf(stderr, "bench_reconcile: reconcile failed: %s\n", strerror(-rc));
		exit(1);
	}
	return now_s() - t0;
}

static int run(struct kernel *k, size_t n)
{
	uint64_t *h = malloc(n * sizeof(*h));
	uint32_t *slot = malloc(n * sizeof(*slot)), *gen = malloc(n * sizeof(*gen));
	struct kernel_status st;
	double first, again, churn, single, t0;

	if (!h || !slot || !gen)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		h[i] = mix(i);
		slot[i] = (uint32_t)i;
		gen[i] = 1;
	}
	first = timed_reconcile(k, h, slot, gen, n);
	again = timed_reconcile(k, h, slot, gen, n);
	for (size_t i = 0; i < n; i += 10)
		h[i] = mix(i + n); /* 10 %: new hashes; the old ones become stale */
	churn = timed_reconcile(k, h, slot, gen, n);
	t0 = now_s();
	for (size_t i = 0; i < n; i++)
		kernel_key_put(k, h[i], slot[i], 2);
	single = now_s() - t0;
	kernel_status(k, &st);
	metric("reconcile_first_start_s", first, "s", single, "<2 (1M keys)",
	       n < 1000000 ? "n/a"
	       : first < 2 ? "yes"
			   : "no");
	metric("reconcile_restart_s", again, "s", single, "<2 (1M keys)",
	       n < 1000000 ? "n/a"
	       : again < 2 ? "yes"
			   : "no");
	metric("reconcile_churn10_s", churn, "s", single, "<2 (1M keys)",
	       n < 1000000 ? "n/a"
	       : churn < 2 ? "yes"
			   : "no");
	printf("metric=kernel_bytes_per_key value=%.1f unit=B baseline=%zu ratio=%.2f goal=none "
	       "pass=n/a\n",
	       (double)st.keys_bytes / (double)st.keys_max,
	       sizeof(uint64_t) + sizeof(struct tg_key_val),
	       (double)st.keys_bytes / (double)st.keys_max /
		   (double)(sizeof(uint64_t) + sizeof(struct tg_key_val)));
	printf("metric=kernel_bytes_per_slot value=%.1f unit=B baseline=%zu ratio=%.2f goal=none "
	       "pass=n/a\n",
	       (double)st.slots_bytes / (double)st.slots, sizeof(struct tg_slot),
	       (double)st.slots_bytes / (double)st.slots / (double)sizeof(struct tg_slot));
	free(h);
	free(slot);
	free(gen);
	return 0;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
	static const uint8_t secret[16];
	char pin[64];
	struct kernel_opts o = {.mode = KERNEL_MODE_TC,
				.interfaces = "lo",
				.pin_dir = pin,
				.rate_slots = (uint32_t)n,
				.secret = secret,
				.allow = ""};
	struct kernel *k = NULL;
	int rc;

	log_init("bench_reconcile", getenv("BENCH_VERBOSE") ? LOG_LVL_INFO : LOG_LVL_WARN);
	if (n == 0 || n > (1u << 24)) {
		fprintf(stderr, "usage: bench_reconcile [N keys, 1 to 16777216]\n");
		return 2;
	}
	if (geteuid() != 0) {
		printf("# bench_reconcile: needs root (BPF maps); nothing measured\n");
		return 0;
	}
	snprintf(pin, sizeof(pin), "/sys/fs/bpf/tollgate-bench-%d", (int)getpid());
	rc = kernel_open(&o, &k);
	if (rc || !k) {
		printf("# bench_reconcile: cannot load the kernel maps (%s); nothing measured\n",
		       strerror(rc ? -rc : ENOSYS));
		return rc ? 1 : 0;
	}
	printf("# %zu keys; tg_keys of %zu entries (2 per slot), batches of 8192\n", n, 2 * n);
	rc = run(k, n);
	kernel_close(k);
	kernel_detach(pin, NULL);
	return rc ? 1 : 0;
}
