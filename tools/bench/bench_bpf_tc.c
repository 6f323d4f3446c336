// SPDX-License-Identifier: BSD-2-Clause
/*
 * Cost per packet of the TC ingress program (bpf/tollgate_tc.bpf.c), measured by the kernel
 * with bpf_prog_test_run: a TLS record to a guarded port (parse, absorb lookup, the 16-byte
 * probe, pass), an HTTP request whose key is under its limit (parse, header scan, SipHash,
 * both lookups, the GCRA decision: the path every allowed request takes), the same with the
 * key header after ~600 bytes of other headers (as SDKs send them), a request whose key is
 * unknown, and a refusal (the above plus the socket lookup, the 429 text, the clone sent out
 * of a veth and the RST). The baseline is a TC program that only returns TC_ACT_UNSPEC: the
 * test_run loop's own cost. Each pass figure is the median of BENCH_ROUNDS (default 5) runs
 * of BENCH_REPEAT (default 1,000,000) packets. A refusal changes its packet (into the RST),
 * so it is timed one run at a time, BENCH_REFUSALS (default 2,000) times, in a private
 * network namespace with a real embryonic connection; the median is printed, twice: all with
 * the same figures (tc_refusal_ns: the 429 text of the first is reused, as in a flood) and
 * each with new ones (tc_refusal_new_text_ns: formatted and summed every time).
 *
 * Prints the metric lines of tools/bench/run; asserts nothing. Needs root.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <net/if.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <linux/pkt_cls.h>

#include "tg_bpf_test.h"
#include "bench_bpf.h"
#include "tollgate/siphash.h"
#include "tollgate_tc.skel.h"

#define BENCH_GOAL_NS 300.0 /* issue 4: parser + lookup per packet under 300 ns */
#define KEY_UNDER     "tg_live_bench_under_7f3a9c1e5b2d4f60"
#define KEY_OVER      "tg_live_bench_over_1a2b3c4d5e6f7a8b"
#define MS	      1000000ULL

static const struct tg_secret secret = {0x0123456789abcdefULL, 0xfedcba9876543210ULL};

static void metric(const char *name, double v, double base, int goal)
{
	printf("metric=%s value=%.1f unit=ns baseline=%.1f ratio=%.2f", name, v, base,
	       base > 0 ? v / base : 0.0);
	if (goal)
		printf(" goal=<%.0f pass=%s", BENCH_GOAL_NS, v < BENCH_GOAL_NS ? "yes" : "no");
	printf("\n");
}

static int add_key(struct tollgate_tc *skel, const char *key, __u32 slot, __u64 tat)
{
	struct tg_slot s;

	memset(&s, 0, sizeof(s));
	s.flags = TG_SLOT_ACTIVE | TG_SLOT_KERNEL_REFUSE;
	s.key_gen = 1;
	s.win[TG_WIN_SECOND] = (struct tg_window){tat, 100 * MS, 1900 * MS};
	s.win[TG_WIN_MINUTE] = (struct tg_window){0, 600 * MS, 99 * 600 * MS};
	return tg_bpf_set_slot(skel->obj, slot, &s)
		   ?: tg_bpf_set_key(skel->obj,
				     tg_siphash64((const __u8 *)&secret, key, strlen(key)), slot,
				     1);
}

static int world_set(struct tollgate_tc *skel)
{
	struct tg_config cfg = tg_bpf_config_default();
	__u64 now = 1000 * TG_NS_PER_SEC;
	int err;

	err = tg_bpf_set_config(skel->obj, &cfg);
	err = err ?: tg_bpf_set_secret(skel->obj, secret.k0, secret.k1);
	err = err ?: add_key(skel, KEY_UNDER, 0, 0);
	err = err ?: add_key(skel, KEY_OVER, 1, now + 1900 * MS + 500 * MS);
	TG_BPF_CLOCK(skel, now);
	return err;
}

#define RQ(hdrs)                                                                                   \
	"POST /v1/chat/completions HTTP/1.1\r\nHost: gw.example\r\n"                               \
	"Content-Type: application/json\r\n" hdrs "Content-Length: 2\r\n\r\n{}"
/* What the OpenAI Python SDK sends before its Authorization header, roughly. */
#define SDK_HDRS                                                                                   \
	"Accept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\nAccept: application/json\r\n" \
	"User-Agent: OpenAI/Python 1.51.0\r\nX-Stainless-Lang: python\r\n"                         \
	"X-Stainless-Package-Version: 1.51.0\r\nX-Stainless-OS: Linux\r\n"                         \
	"X-Stainless-Arch: x64\r\nX-Stainless-Runtime: CPython\r\n"                                \
	"X-Stainless-Runtime-Version: 3.11.7\r\nX-Stainless-Async: false\r\n"                      \
	"X-Stainless-Retry-Count: 0\r\nX-Stainless-Read-Timeout: 600\r\n"

static const uint8_t ts_opts[12] = {1, 1, 8, 10, 0, 0, 1, 0, 0, 0, 2, 0};
static const uint8_t tls[64] = {0x17, 0x03, 0x03, 0x00, 0x3b}; /* TLS application data */

/* The TC program per passing packet, next to the baseline. */
static int bench_passes(struct tollgate_tc *skel, int base_fd, int rounds, int repeat)
{
	static const char under[] = RQ("Authorization: Bearer " KEY_UNDER "\r\n");
	static const char sdk[] = RQ(SDK_HDRS "Authorization: Bearer " KEY_UNDER "\r\n");
	static const char unknown[] = RQ("Authorization: Bearer tg_live_nobody_0000000000\r\n");
	struct tg_pkt_spec s = {.flags = TG_TH_ACK | TG_TH_PSH,
				.seq = 1,
				.ack = 1,
				.tcp_opts = ts_opts,
				.tcp_opts_len = sizeof(ts_opts)};
	int fd = bpf_program__fd(skel->progs.tg_tc_ingress);
	double base, v[4];

	s.payload = tls;
	s.payload_len = sizeof(tls);
	base = bench_median(base_fd, &s, rounds, repeat, TC_ACT_UNSPEC);
	v[0] = bench_median(fd, &s, rounds, repeat, TC_ACT_UNSPEC);
	s.payload = under;
	s.payload_len = sizeof(under) - 1;
	v[1] = bench_median(fd, &s, rounds, repeat, TC_ACT_UNSPEC);
	s.payload = sdk;
	s.payload_len = sizeof(sdk) - 1;
	v[2] = bench_median(fd, &s, rounds, repeat, TC_ACT_UNSPEC);
	s.payload = unknown;
	s.payload_len = sizeof(unknown) - 1;
	v[3] = bench_median(fd, &s, rounds, repeat, TC_ACT_UNSPEC);
	if (base < 0 || v[0] < 0 || v[1] < 0 || v[2] < 0 || v[3] < 0)
		return -1;
	printf("# bench_bpf_tc: TC ingress program, median of %d x %d test_run packets "
	       "(%zu- and %zu-byte requests)\n",
	       rounds, repeat, sizeof(under) - 1, sizeof(sdk) - 1);
	metric("tc_not_http_ns", v[0], base, 1);
	metric("tc_under_limit_ns", v[1], base, 1);
	metric("tc_under_limit_sdk_headers_ns", v[2], base, 1);
	metric("tc_unknown_key_ns", v[3], base, 1);
	return 0;
}

/* The verifier's work for the program (all its functions): the cost of a change to the scan
 * shows here too. */
static void verified_insns(struct tollgate_tc *skel)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(bpf_program__fd(skel->progs.tg_tc_ingress), &info, &len) == 0)
		printf(
		    "# bench_bpf_tc: tg_tc_ingress verified in %u instructions, %u bytes jited\n",
		    info.verified_insns, info.jited_prog_len);
}

/* A private netns with lo and a veth (tga/tgb); a deferred listener on 127.0.0.1:8080 and a
 * connected client: its port, or -1. The namespace dies with the process. */
static int refusal_world(int *ifindex)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(8080),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int l, c, secs = 30;

	if (unshare(CLONE_NEWNET) ||
	    system("ip link set lo up && ip link add tga type veth peer name tgb && "
		   "ip link set tga up && ip link set tgb up") != 0)
		return -1;
	*ifindex = (int)if_nametoindex("tga");
	l = socket(AF_INET, SOCK_STREAM, 0);
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || c < 0 || setsockopt(l, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs)) ||
	    bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 4) ||
	    connect(c, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(c, (struct sockaddr *)&a, &alen))
		return -1;
	return ntohs(a.sin_port); /* both sockets stay open until exit */
}

/*
 * Refusals one run at a time (each turns its packet into the RST); the median run. With
 * new_text, the clock moves 1 ms between runs, so that each 429 has other figures than the
 * one before and is formatted and summed anew; without, all have the same figures (a flood
 * within one millisecond) and the per-CPU text of the first is reused (reply.h).
 */
static int bench_refusal(struct tollgate_tc *skel, int n, int new_text, int port, int ifindex)
{
	static const char over[] = RQ("Authorization: Bearer " KEY_OVER "\r\n");
	static uint8_t frame[TG_FRAME_MAX];
	static struct tg_bpf_out out;
	static __u32 d[100000];
	struct tg_pkt_spec s = {.saddr = "127.0.0.1",
				.daddr = "127.0.0.1",
				.flags = TG_TH_ACK | TG_TH_PSH,
				.seq = 7,
				.ack = 9,
				.tcp_opts = ts_opts,
				.tcp_opts_len = sizeof(ts_opts),
				.payload = over,
				.payload_len = sizeof(over) - 1};
	int len, fd;
	int killed = tg_bpf_map_fd(skel->obj, TG_MAP_KILLED);
	struct __sk_buff ctx;

	if (port < 0 || !ifindex) {
		printf("# bench_bpf_tc: refusal not measured (no private netns or veth)\n");
		return 0;
	}
	s.sport = (uint16_t)port;
	len = tg_frame_build(&s, frame);
	fd = bpf_program__fd(skel->progs.tg_tc_ingress);
	if (n > (int)(sizeof(d) / sizeof(d[0])))
		n = (int)(sizeof(d) / sizeof(d[0]));
	for (int i = 0; i < n; i++) {
		memset(&ctx, 0, sizeof(ctx));
		ctx.ifindex = (__u32)ifindex;
		/* within the key's 500 ms of refusals (world_set) */
		TG_BPF_CLOCK(skel, 1000 * TG_NS_PER_SEC + (new_text ? (__u64)(i % 400) * MS : 0));
		if (tg_bpf_map_clear(killed) ||
		    tg_bpf_run_ctx(fd, frame, (size_t)len, &ctx, sizeof(ctx), 1, &out) ||
		    out.len != (__u32)(14 + 20 + 20)) {
			fprintf(stderr, "bench_bpf_tc: refusal %d did not happen\n", i);
			return -1;
		}
		d[i] = out.duration_ns;
	}
	qsort(d, (size_t)n, sizeof(d[0]), bench_cmp_u32);
	printf("# bench_bpf_tc: refusal (429 sent, RST), %s, median of %d single runs\n",
	       new_text ? "each with new figures (429 formatted and summed)"
			: "the same figures each time (the 429 text reused)",
	       n);
	metric(new_text ? "tc_refusal_new_text_ns" : "tc_refusal_ns", d[n / 2], 0, 0);
	return 0;
}

int main(void)
{
	int rounds = bench_env_int("BENCH_ROUNDS", 5);
	int repeat = bench_env_int("BENCH_REPEAT", 1000000);
	const char *why = tg_bpf_env_problem();
	struct tollgate_tc *skel = NULL;
	int refusals = bench_env_int("BENCH_REFUSALS", 2000);
	int base_fd = -1, rc = 1, port, ifindex = 0;

	if (why) {
		fprintf(stderr, "bench_bpf_tc: %s\n", why);
		return 1;
	}
	if (rounds > 64)
		rounds = 64;
	skel = tollgate_tc__open();
	if (!skel || tg_bpf_unpin_all(skel->obj) || tollgate_tc__load(skel) || world_set(skel))
		goto out;
	verified_insns(skel);
	base_fd = bench_baseline_prog(BPF_PROG_TYPE_SCHED_CLS, TC_ACT_UNSPEC);
	if (base_fd < 0 || bench_passes(skel, base_fd, rounds, repeat))
		goto out;
	port = refusal_world(&ifindex);
	if (bench_refusal(skel, refusals, 0, port, ifindex) ||
	    bench_refusal(skel, refusals, 1, port, ifindex))
		goto out;
	rc = 0;
out:
	if (rc)
		fprintf(stderr, "bench_bpf_tc: setup or run failed\n");
	if (base_fd >= 0)
		close(base_fd);
	tollgate_tc__destroy(skel);
	return rc;
}
