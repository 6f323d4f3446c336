// SPDX-License-Identifier: BSD-2-Clause
/*
 * The TC ingress program (bpf/tollgate_tc.bpf.c) through bpf_prog_test_run.
 *
 * First a table of crafted frames, each with the verdict counter that must move, the return
 * value, and (for passes) the frame unchanged: parsing, the request line, the key header in
 * all its spellings and evasions, the key lookup and the read-only decision. Without sockets
 * an over-limit key ends at NO_SOCKET. Then the kernel's SipHash against the daemon's for
 * every key length, every truncation of a request, and the absorbing of a refused flow.
 *
 * Then refusals with real sockets, in a network namespace the test makes for itself (it
 * dies with the process): a listener with TCP_DEFER_ACCEPT keeps a connected client's
 * socket embryonic; a data segment crafted with that 4-tuple is refused. The 429, sent by
 * bpf_clone_redirect out of a veth the test created, is read from the veth's peer with an
 * AF_PACKET socket and compared byte for byte with the reply built here from the documented
 * format, its headers and JSON (cJSON, loaded at run time) read back, its checksums
 * recomputed independently; the packet the program returns must be the bare RST.
 */
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/pkt_cls.h>

#include "tg_bpf_test.h"
#include "tc_reply.h"
#include "tollgate/siphash.h"
#include "tollgate_tc.skel.h"

static struct tollgate_tc *skel;

#define NOW (1000 * TG_NS_PER_SEC) /* the injected clock */
#define MS 1000000ULL

static const struct tg_secret secret = { 0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL };

/* Keys and the slots they lead to. */
#define KEY_UNDER "tg_live_under_2c9f6a1b7e4d8c3a"
#define KEY_OVER "tg_live_over_5b1e9d7c3a2f6e8b"
#define KEY_MIN "tg_live_minute_8d3c1f7a9e2b4c6d"
#define KEY_HOUR "tg_live_hour_1f2e3d4c5b6a7988"
#define KEY_SOFT "tg_live_soft_9a8b7c6d5e4f3a2b"
#define KEY_STALE "tg_live_stale_4e5f6a7b8c9d0e1f"
#define KEY_OTHER "tg_live_other_00112233445566778"
#define KEY_EDGE "tg_live_edge_0f1e2d3c4b5a69788"
#define KEY_BIG "tg_live_big_8796a5b4c3d2e1f00"

enum { S_UNDER = 0, S_OVER, S_MIN, S_HOUR, S_SOFT, S_STALE, S_EDGE, S_BIG, S__COUNT };

static __u64 key_hash(const char *key, size_t len)
{
	return tg_siphash64((const __u8 *)&secret, key, len);
}

static struct tg_slot slot_of(int which)
{
	struct tg_slot s;
	const __u64 T = 100 * MS, tol = 19 * T; /* 10/s, burst 20 */

	memset(&s, 0, sizeof(s));
	s.flags = TG_SLOT_ACTIVE | TG_SLOT_KERNEL_REFUSE;
	s.key_gen = 1;
	s.win[TG_WIN_SECOND] = (struct tg_window){ 0, T, tol };
	switch (which) {
	case S_OVER:
	case S_SOFT:
	case S_STALE:
		s.win[TG_WIN_SECOND].tat_ns = NOW + tol + 250 * MS; /* retry 0.25 s */
		break;
	case S_MIN: /* 100/min refusing for 12.3 s while the second window allows */
		s.win[TG_WIN_MINUTE] = (struct tg_window){ NOW + 99 * 600 * MS + 12300 * MS,
							   600 * MS, 99 * 600 * MS };
		break;
	case S_EDGE: /* 1/s, burst 1, one ns to wait: every figure rounds up */
		s.win[TG_WIN_SECOND] = (struct tg_window){ NOW + 1, 1000 * MS, 0 };
		break;
	case S_BIG: /* 1,000,000/s, burst 2,000,000, an hour to wait */
		s.win[TG_WIN_SECOND] = (struct tg_window){ NOW + 1999999000ULL + 3600000 * MS,
							   1000, 1999999000ULL };
		break;
	case S_HOUR: /* minute refuses 0.5 s, hour 1.5 s: the hour is reported */
		s.win[TG_WIN_MINUTE] = (struct tg_window){ NOW + 99 * 600 * MS + 500 * MS,
							   600 * MS, 99 * 600 * MS };
		s.win[TG_WIN_HOUR] = (struct tg_window){ NOW + 999 * 3600 * MS + 1500 * MS,
							 3600 * MS, 999 * 3600 * MS };
		break;
	}
	if (which == S_SOFT)
		s.flags = TG_SLOT_ACTIVE;
	if (which == S_STALE)
		s.key_gen = 2;
	return s;
}

static int add_key(const char *key, size_t len, __u32 slot)
{
	return tg_bpf_set_key(skel->obj, key_hash(key, len), slot, 1);
}

/* The whole world: configuration, secret, slots, keys; nothing killed or penalised. */
static int world_set(int mode)
{
	static const char *const keys[S__COUNT] = { KEY_UNDER, KEY_OVER,  KEY_MIN,  KEY_HOUR,
						    KEY_SOFT,  KEY_STALE, KEY_EDGE, KEY_BIG };
	struct tg_config cfg = tg_bpf_config_default();
	const struct bpf_object *obj = skel->obj;
	int err;

	cfg.ports[1] = 8081;
	cfg.mode = (__u32)mode;
	err = tg_bpf_set_config(obj, &cfg);
	err = err ?: tg_bpf_set_secret(obj, secret.k0, secret.k1);
	for (int i = 0; i < S__COUNT && !err; i++) {
		struct tg_slot s = slot_of(i);

		err = tg_bpf_set_slot(obj, (__u32)i, &s);
		err = err ?: add_key(keys[i], strlen(keys[i]), (__u32)i);
	}
	err = err ?: tg_bpf_map_clear(tg_bpf_map_fd(obj, TG_MAP_KILLED));
	err = err ?: tg_bpf_map_clear(tg_bpf_map_fd(obj, TG_MAP_PENALTY));
	TG_BPF_CLOCK(skel, NOW);
	return err;
}

/* ---- the table ---------------------------------------------------------------------- */

#define RQ(hdrs)                                                                                   \
	"POST /v1/chat/completions HTTP/1.1\r\nHost: gw.example\r\n"                               \
	"Content-Type: application/json\r\n" hdrs "Content-Length: 2\r\n\r\n{}"
#define BEARER(k) "Authorization: Bearer " k "\r\n"
#define XKEY(k) "X-API-Key: " k "\r\n"

static const uint8_t ts_opts[12] = { 1, 1, 8, 10, 0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22 };
/* SACK block first, then timestamps: the option walk, not the fast path. */
static const uint8_t sack_ts_opts[20] = { 5, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1,
					   8, 10, 0x33, 0x33, 0x33, 0x33, 0x44, 0x44 };
static const uint8_t tls_hello[] = { 0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1,
				     0x03, 0x03, 0x5a, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f, 0x60 };

struct tc_row {
	const char *desc;
	struct tg_pkt_spec pkt;	 /* payload from req when req is set */
	const char *req;	 /* payload text */
	int mode;		 /* 0 = TG_MODE_FULL, else the mode + 1 */
	__u32 gso_segs;		 /* test_run ctx */
	enum tg_verdict verdict; /* the counter that moves besides SEEN */
};

#define DATA .flags = TG_TH_ACK | TG_TH_PSH, .seq = 1000, .ack = 2000
#define TS .tcp_opts = ts_opts, .tcp_opts_len = sizeof(ts_opts)
#define V6 .family = 6

static const struct tc_row rows[] = {
	{ "mode off passes everything", { DATA }, RQ(BEARER(KEY_OVER)), TG_MODE_OFF + 1, 0,
	  TG_V_MODE_OFF },
	{ "ARP is not TCP", { DATA, .ethertype = 0x0806 }, RQ(""), 0, 0, TG_V_NOT_TCP },
	{ "UDP is not TCP", { DATA, .l4_proto = 17 }, RQ(BEARER(KEY_OVER)), 0, 0, TG_V_NOT_TCP },
	{ "port 22 is not guarded", { DATA, .dport = 22 }, RQ(BEARER(KEY_OVER)), 0, 0,
	  TG_V_NOT_PORT },
	{ "a SYN has no payload", { .flags = TG_TH_SYN }, NULL, 0, 0, TG_V_NO_PAYLOAD },
	{ "a bare ACK has no payload", { .flags = TG_TH_ACK, TS }, NULL, 0, 0, TG_V_NO_PAYLOAD },
	{ "first IPv4 fragment passes", { DATA, .frag_off = 0x2000 }, RQ(BEARER(KEY_OVER)), 0, 0,
	  TG_V_FRAGMENT },
	{ "later IPv4 fragment passes", { DATA, .frag_off = 0x0020 }, RQ(BEARER(KEY_OVER)), 0, 0,
	  TG_V_FRAGMENT },
	{ "IPv6 destination options header passes", { DATA, V6, .v6_ext = 60 },
	  RQ(BEARER(KEY_OVER)), 0, 0, TG_V_IPV6_EXT },
	{ "IPv6 routing header passes", { DATA, V6, .v6_ext = 43 }, RQ(BEARER(KEY_OVER)), 0, 0,
	  TG_V_IPV6_EXT },
	{ "IPv6 fragment header passes", { DATA, V6, .v6_ext = 44 }, RQ(BEARER(KEY_OVER)), 0, 0,
	  TG_V_IPV6_EXT },
	{ "GSO super-packet passes", { DATA }, RQ(BEARER(KEY_OVER)), 0, 4, TG_V_GSO },
	{ "IPv4 header length 16 is malformed", { DATA, .ihl = 4 }, RQ(BEARER(KEY_OVER)), 0, 0,
	  TG_V_MALFORMED },
	{ "TLS ClientHello is not HTTP", { DATA, .payload = tls_hello,
	  .payload_len = sizeof(tls_hello) }, NULL, 0, 0, TG_V_NOT_HTTP },
	{ "HTTP/2 preface is not HTTP/1.x", { DATA }, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0, 0,
	  TG_V_NOT_HTTP },
	{ "lower-case method is not HTTP", { DATA }, "get / HTTP/1.1\r\n" BEARER(KEY_OVER) "\r\n",
	  0, 0, TG_V_NOT_HTTP },
	{ "HTTP/3.0 is not HTTP/1.x", { DATA }, "GET / HTTP/3.0\r\n" BEARER(KEY_OVER) "\r\n", 0,
	  0, TG_V_NOT_HTTP },
	{ "body bytes are not a request line", { DATA }, "{\"model\":\"x\"}\r\n" BEARER(KEY_OVER),
	  0, 0, TG_V_NOT_HTTP },
	{ "no key header", { DATA }, RQ(""), 0, 0, TG_V_NO_KEY },
	{ "Bearer key under its limit", { DATA, TS }, RQ(BEARER(KEY_UNDER)), 0, 0,
	  TG_V_UNDER_LIMIT },
	{ "X-API-Key under its limit", { DATA }, RQ(XKEY(KEY_UNDER)), 0, 0, TG_V_UNDER_LIMIT },
	{ "HTTP/1.0 and a bare LF", { DATA }, "GET /v1/models HTTP/1.0\n" XKEY(KEY_UNDER) "\n",
	  0, 0, TG_V_UNDER_LIMIT },
	{ "AUTHORIZATION: BEARER", { DATA }, RQ("AUTHORIZATION: BEARER " KEY_UNDER "\r\n"), 0, 0,
	  TG_V_UNDER_LIMIT },
	{ "authorization: bearer", { DATA }, RQ("authorization: bearer " KEY_UNDER "\r\n"), 0, 0,
	  TG_V_UNDER_LIMIT },
	{ "x-api-key lower case", { DATA }, RQ("x-api-key: " KEY_UNDER "\r\n"), 0, 0,
	  TG_V_UNDER_LIMIT },
	{ "X-Api-KEY mixed case", { DATA }, RQ("X-Api-KEY: " KEY_UNDER "\r\n"), 0, 0,
	  TG_V_UNDER_LIMIT },
	{ "no blank after the colon", { DATA }, RQ("X-API-Key:" KEY_UNDER "\r\n"), 0, 0,
	  TG_V_UNDER_LIMIT },
	{ "tabs and blanks around the value", { DATA },
	  RQ("Authorization: \t Bearer\t \t" KEY_UNDER " \t \r\n"), 0, 0, TG_V_UNDER_LIMIT },
	{ "blanks around X-API-Key's value", { DATA }, RQ("X-API-Key: \t  " KEY_UNDER "\t \r\n"),
	  0, 0, TG_V_UNDER_LIMIT },
	{ "blank before the colon is no header", { DATA }, RQ("X-API-Key : " KEY_OVER "\r\n"), 0,
	  0, TG_V_NO_KEY },
	{ "Bearer without a blank is no key", { DATA }, RQ("Authorization: Bearer" KEY_OVER "\r\n"),
	  0, 0, TG_V_NO_KEY },
	{ "Basic scheme is no key", { DATA }, RQ("Authorization: Basic dXNlcjpwYXNz\r\n"), 0, 0,
	  TG_V_NO_KEY },
	{ "Basic plus X-API-Key: the X-API-Key", { DATA },
	  RQ("Authorization: Basic dXNlcjpwYXNz\r\n" XKEY(KEY_UNDER)), 0, 0, TG_V_UNDER_LIMIT },
	{ "unknown key", { DATA }, RQ(BEARER(KEY_OTHER)), 0, 0, TG_V_UNKNOWN_KEY },
	{ "key over limit, no socket (test_run)", { DATA }, RQ(BEARER(KEY_OVER)), 0, 0,
	  TG_V_NO_SOCKET },
	{ "minute window refuses while the second allows", { DATA }, RQ(XKEY(KEY_MIN)), 0, 0,
	  TG_V_NO_SOCKET },
	{ "not KERNEL_REFUSE: over limit, passes", { DATA }, RQ(BEARER(KEY_SOFT)), 0, 0,
	  TG_V_NOT_REFUSABLE },
	{ "stale key_gen passes", { DATA }, RQ(BEARER(KEY_STALE)), 0, 0, TG_V_STALE_KEY },
	{ "same key twice is one key", { DATA }, RQ(BEARER(KEY_OVER) XKEY(KEY_OVER)), 0, 0,
	  TG_V_NO_SOCKET },
	{ "two Authorization keys that differ pass", { DATA },
	  RQ(BEARER(KEY_UNDER) BEARER(KEY_OVER)), 0, 0, TG_V_NO_KEY },
	{ "Bearer and X-API-Key that differ pass", { DATA }, RQ(BEARER(KEY_OVER) XKEY(KEY_UNDER)),
	  0, 0, TG_V_NO_KEY },
	{ "Basic then Bearer: the daemon reads Basic", { DATA },
	  RQ("Authorization: Basic eDp5\r\n" BEARER(KEY_OVER)), 0, 0, TG_V_NO_KEY },
	{ "empty X-API-Key then a key: the daemon reads empty", { DATA },
	  RQ("X-API-Key:  \r\n" XKEY(KEY_OVER)), 0, 0, TG_V_NO_KEY },
	{ "empty X-API-Key ended by a bare LF, then a key: the daemon reads empty", { DATA },
	  "POST / HTTP/1.1\nX-API-Key:\n" XKEY(KEY_OVER) "\n", 0, 0, TG_V_NO_KEY },
	{ "folded line after the key passes", { DATA }, RQ(BEARER(KEY_OVER) " more\r\n"), 0, 0,
	  TG_V_NO_KEY },
	{ "folded line cut by the segment end: the key before it counts", { DATA },
	  "POST / HTTP/1.1\r\n" BEARER(KEY_OVER) " more", 0, 0, TG_V_NO_SOCKET },
	{ "CR at the segment end is not the header block's end: the key counts", { DATA },
	  "POST / HTTP/1.1\r\nHost: x\r\n" BEARER(KEY_OVER) "\r", 0, 0, TG_V_NO_SOCKET },
	{ "key line cut by the segment end", { DATA },
	  "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " KEY_OVER, 0, 0, TG_V_NO_KEY },
	{ "header name cut by the segment end", { DATA }, "POST / HTTP/1.1\r\nHost: x\r\nAuthor",
	  0, 0, TG_V_NO_KEY },
	{ "key line complete, header block not ended", { DATA },
	  "POST / HTTP/1.1\r\nHost: x\r\n" BEARER(KEY_OVER) "Accept: *", 0, 0, TG_V_NO_SOCKET },
	{ "request line cut by the segment end", { DATA }, "GET /v1/models?limit=10", 0, 0,
	  TG_V_NO_KEY },
	{ "key in the body is no header", { DATA },
	  "POST / HTTP/1.1\r\nContent-Length: 40\r\n\r\n" BEARER(KEY_OVER), 0, 0, TG_V_NO_KEY },
	{ "IPv6", { DATA, V6, TS }, RQ(BEARER(KEY_UNDER)), 0, 0, TG_V_UNDER_LIMIT },
	{ "IPv6 over limit, no socket", { DATA, V6 }, RQ(BEARER(KEY_OVER)), 0, 0, TG_V_NO_SOCKET },
	{ "802.1Q tag", { DATA, .vlan_tpid = { 0x8100 }, .vlan_tci = { 5 } },
	  RQ(BEARER(KEY_UNDER)), 0, 0, TG_V_UNDER_LIMIT },
	{ "QinQ tags, IPv6", { DATA, V6, .vlan_tpid = { 0x88a8, 0x8100 }, .vlan_tci = { 9, 5 } },
	  RQ(XKEY(KEY_UNDER)), 0, 0, TG_V_UNDER_LIMIT },
	{ "three tags: unknown ethertype after two",
	  { DATA, .vlan_tpid = { 0x8100, 0x8100 }, .ethertype = 0x8100 }, RQ(""), 0, 0,
	  TG_V_NOT_TCP },
	{ "IPv4 options", { DATA, .ip_opt_len = 12 }, RQ(BEARER(KEY_UNDER)), 0, 0,
	  TG_V_UNDER_LIMIT },
	{ "SACK before timestamps (option walk)",
	  { DATA, .tcp_opts = sack_ts_opts, .tcp_opts_len = sizeof(sack_ts_opts) },
	  RQ(BEARER(KEY_UNDER)), 0, 0, TG_V_UNDER_LIMIT },
	{ "mode tc refuses like full", { DATA }, RQ(BEARER(KEY_OVER)), TG_MODE_TC + 1, 0,
	  TG_V_NO_SOCKET },
};

static const enum tg_verdict pass_verdicts[] = {
	TG_V_NOT_TCP,	    TG_V_NOT_PORT,	TG_V_NO_PAYLOAD,   TG_V_NOT_HTTP,
	TG_V_NO_KEY,	    TG_V_UNKNOWN_KEY,	TG_V_STALE_KEY,	   TG_V_ESTABLISHED,
	TG_V_NO_SOCKET,	    TG_V_UNDER_LIMIT,	TG_V_NOT_REFUSABLE, TG_V_REFUSED,
	TG_V_ABSORBED,	    TG_V_FRAGMENT,	TG_V_IPV6_EXT,	   TG_V_GSO,
	TG_V_MALFORMED,	    TG_V_REPLY_FAILED,	TG_V_MODE_OFF,
};

/* Runs a frame; checks SEEN + the one verdict counter moved. ctx may be NULL. */
static void run_counted(const uint8_t *frame, size_t len, struct __sk_buff *ctx,
			enum tg_verdict want, struct tg_bpf_out *out)
{
	__u64 before[TG_V__COUNT], after[TG_V__COUNT];
	int fd = bpf_program__fd(skel->progs.tg_tc_ingress);

	TG_CHECK_INT(tg_bpf_stats(skel->obj, before), 0);
	TG_CHECK_INT(tg_bpf_run_ctx(fd, frame, len, ctx, ctx ? sizeof(*ctx) : 0, 1, out), 0);
	TG_CHECK_INT(tg_bpf_stats(skel->obj, after), 0);
	TG_CHECK_INT(after[TG_V_SEEN] - before[TG_V_SEEN], 1);
	for (size_t i = 0; i < sizeof(pass_verdicts) / sizeof(pass_verdicts[0]); i++) {
		enum tg_verdict v = pass_verdicts[i];

		if (after[v] - before[v] != (v == want ? 1u : 0u))
			printf("#   verdict %d moved by %llu\n", v,
			       (unsigned long long)(after[v] - before[v]));
		TG_CHECK_INT(after[v] - before[v], v == want ? 1 : 0);
	}
}

static int row_run(const struct tc_row *r)
{
	static uint8_t frame[TG_FRAME_MAX];
	static struct tg_bpf_out out;
	struct tg_pkt_spec spec = r->pkt;
	struct __sk_buff ctx;
	int len, bad = tg_failed;

	if (r->req) {
		spec.payload = r->req;
		spec.payload_len = strlen(r->req);
	}
	TG_CHECK_INT(world_set(r->mode ? r->mode - 1 : TG_MODE_FULL), 0);
	len = tg_frame_build(&spec, frame);
	TG_CHECK(len > 0);
	memset(&ctx, 0, sizeof(ctx));
	ctx.gso_segs = r->gso_segs;
	run_counted(frame, (size_t)len, r->gso_segs ? &ctx : NULL, r->verdict, &out);
	TG_CHECK_INT(out.retval, TC_ACT_UNSPEC);
	TG_CHECK_INT(out.len, len);
	TG_CHECK(memcmp(out.data, frame, (size_t)len) == 0); /* passed untouched */
	return tg_failed != bad;
}

/* ---- cases without sockets ------------------------------------------------------------ */

static void run_request(const char *req, const struct tg_pkt_spec *base, enum tg_verdict want)
{
	static uint8_t frame[TG_FRAME_MAX];
	static struct tg_bpf_out out;
	struct tg_pkt_spec spec = *base;
	int len;

	spec.payload = req;
	spec.payload_len = strlen(req);
	len = tg_frame_build(&spec, frame);
	TG_REQUIRE(len > 0);
	run_counted(frame, (size_t)len, NULL, want, &out);
	TG_CHECK_INT(out.retval, TC_ACT_UNSPEC);
}

/* The kernel's hash equals tg_siphash64 for every key length: each key is found. */
static void case_siphash_every_length(void)
{
	static char key[TG_KEY_MAX_LEN + 2], req[512];
	struct tg_pkt_spec spec = { DATA };

	TG_REQUIRE(world_set(TG_MODE_FULL) == 0);
	for (size_t n = 1; n <= TG_KEY_MAX_LEN + 1; n++) {
		int bad = tg_failed;

		for (size_t i = 0; i < n; i++)
			key[i] = (char)('!' + (i * 7 + n) % 90); /* printable, no blanks */
		key[n] = '\0';
		if (n <= TG_KEY_MAX_LEN)
			TG_REQUIRE(add_key(key, n, S_UNDER) == 0);
		snprintf(req, sizeof(req), RQ(XKEY("%s")), key);
		run_request(req, &spec, n <= TG_KEY_MAX_LEN ? TG_V_UNDER_LIMIT : TG_V_NO_KEY);
		if (tg_failed != bad)
			printf("#   key length %zu\n", n);
	}
}

/* The key header after 2 KB of other headers is beyond the scan: the daemon decides. */
static void case_key_after_2k(void)
{
	static char req[4096];
	struct tg_pkt_spec spec = { DATA };
	size_t n;

	TG_REQUIRE(world_set(TG_MODE_FULL) == 0);
	n = (size_t)snprintf(req, sizeof(req), "POST / HTTP/1.1\r\nX-Pad: ");
	memset(req + n, 'p', 2100);
	n += 2100;
	snprintf(req + n, sizeof(req) - n, "\r\n" BEARER(KEY_OVER) "\r\n");
	run_request(req, &spec, TG_V_NO_KEY);
	/* the same key just inside the scan is found */
	memset(req + 26, '\r', 1);
	memcpy(req + 27, "\n" BEARER(KEY_OVER) "X-Pad2: ", strlen(BEARER(KEY_OVER)) + 9);
	run_request(req, &spec, TG_V_NO_SOCKET);
}

/* Every cut of a request frame (tags, IPv4 options, TS) passes as malformed. */
static void truncations(const struct tg_pkt_spec *base)
{
	static uint8_t frame[TG_FRAME_MAX];
	static struct tg_bpf_out out;
	struct tg_pkt_spec spec = *base;
	int len, fd = bpf_program__fd(skel->progs.tg_tc_ingress);

	spec.payload = RQ(BEARER(KEY_OVER));
	spec.payload_len = strlen(spec.payload);
	len = tg_frame_build(&spec, frame);
	TG_REQUIRE(len > 0);
	run_counted(frame, (size_t)len, NULL, TG_V_NO_SOCKET, &out);
	for (int cut = 0; cut < len; cut++) {
		int bad = tg_failed;

		if (cut < ETH_HLEN) {
			TG_CHECK(tg_bpf_run(fd, frame, (size_t)cut, &out) < 0);
			continue;
		}
		run_counted(frame, (size_t)cut, NULL, TG_V_MALFORMED, &out);
		TG_CHECK_INT(out.retval, TC_ACT_UNSPEC);
		if (tg_failed != bad)
			printf("#   cut at %d of %d\n", cut, len);
	}
}

static void case_truncated_v4(void)
{
	struct tg_pkt_spec s = { DATA, TS, .ip_opt_len = 8, .vlan_tpid = { 0x8100 } };

	TG_REQUIRE(world_set(TG_MODE_FULL) == 0);
	truncations(&s);
}

static void case_truncated_v6(void)
{
	struct tg_pkt_spec s = { DATA, V6, TS, .vlan_tpid = { 0x88a8, 0x8100 } };

	TG_REQUIRE(world_set(TG_MODE_FULL) == 0);
	truncations(&s);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* Puts the flow of spec in tg_killed until until_ns. */
static int kill_flow(const struct tg_pkt_spec *spec, __u64 until_ns)
{
	struct tg_flow f;
	struct tg_addr a;

	memset(&f, 0, sizeof(f));
	if (tg_bpf_addr(spec->family == 6 ? "2001:db8:1:2::1" : "10.0.0.1", &a))
		return -EINVAL;
	memcpy(f.saddr, a.addr, 16);
	if (tg_bpf_addr(spec->family == 6 ? "2001:db8:ffff::2" : "10.0.0.2", &a))
		return -EINVAL;
	memcpy(f.daddr, a.addr, 16);
	f.sport = htons(40000);
	f.dport = htons(8080);
	return bpf_map_update_elem(tg_bpf_map_fd(skel->obj, TG_MAP_KILLED), &f, &until_ns,
				   BPF_ANY);
}

/* A body segment of a refused flow becomes an ACK of it, sent back (TC_ACT_REDIRECT). */
static void absorb_one(int family)
{
	static uint8_t frame[TG_FRAME_MAX];
	static struct tg_bpf_out out;
	static const char body[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"...\"}]}";
	struct tg_pkt_spec s = { DATA, TS, .family = family, .payload = body,
				 .payload_len = sizeof(body) - 1 };
	int len, l4 = family == 6 ? 14 + 40 : 14 + 20;

	TG_REQUIRE(world_set(TG_MODE_FULL) == 0);
	TG_REQUIRE(kill_flow(&s, NOW + 1) == 0);
	len = tg_frame_build(&s, frame);
	TG_REQUIRE(len > 0);
	run_counted(frame, (size_t)len, NULL, TG_V_ABSORBED, &out);
	TG_CHECK_INT(out.retval, TC_ACT_REDIRECT);
	TG_REQUIRE(out.len == (__u32)(l4 + 32));
	TG_CHECK_INT(tg_frame_csum_check(out.data, out.len), 0);
	TG_CHECK(memcmp(out.data, frame + 6, 6) == 0 && memcmp(out.data + 6, frame, 6) == 0);
	TG_CHECK_INT(get16(out.data + l4), 8080);	/* from the listener */
	TG_CHECK_INT(get16(out.data + l4 + 2), 40000); /* to the client */
	TG_CHECK_INT(get32(out.data + l4 + 4), 2000 + REPLY_LEN + 1);
	TG_CHECK_INT(get32(out.data + l4 + 8), 1000 + sizeof(body) - 1);
	TG_CHECK_INT(out.data[l4 + 13], TG_TH_ACK);
	TG_CHECK(memcmp(out.data + l4 + 20, "\x01\x01\x08\x0a\x22\x22\x22\x22\x11\x11\x11\x11",
			12) == 0);
}

static void case_absorb_v4(void)
{
	absorb_one(4);
}

static void case_absorb_v6(void)
{
	absorb_one(6);
}

/* The client's FIN is ACKed (one more); its pure ACK and RST are dropped. */
static void case_absorb_fin_ack_rst(void)
{
	static uint8_t frame[TG_FRAME_MAX];
	static struct tg_bpf_out out;
	struct tg_pkt_spec fin = { .flags = TG_TH_FIN | TG_TH_ACK, .seq = 5000, .ack = 9000 };
	struct tg_pkt_spec ack = { .flags = TG_TH_ACK, .seq = 5001, .ack = 9000 };
	struct tg_pkt_spec rst = { .flags = TG_TH_RST, .seq = 5001 };
	int len;

	TG_REQUIRE(world_set(TG_MODE_FULL) == 0);
	TG_REQUIRE(kill_flow(&fin, NOW + 1) == 0);
	len = tg_frame_build(&fin, frame);
	run_counted(frame, (size_t)len, NULL, TG_V_ABSORBED, &out);
	TG_CHECK_INT(out.retval, TC_ACT_REDIRECT);
	TG_CHECK_INT(get32(out.data + 34 + 8), 5001);
	TG_CHECK_INT(out.data[34 + 13], TG_TH_ACK);
	TG_CHECK_INT(tg_frame_csum_check(out.data, out.len), 0);
	len = tg_frame_build(&ack, frame);
	run_counted(frame, (size_t)len, NULL, TG_V_ABSORBED, &out);
	TG_CHECK_INT(out.retval, TC_ACT_SHOT);
	len = tg_frame_build(&rst, frame);
	run_counted(frame, (size_t)len, NULL, TG_V_ABSORBED, &out);
	TG_CHECK_INT(out.retval, TC_ACT_SHOT);
}

/* An expired entry absorbs nothing; a SYN on the tuple is a new connection. */
static void case_absorb_expired_and_syn(void)
{
	static uint8_t frame[TG_FRAME_MAX];
	static struct tg_bpf_out out;
	struct tg_pkt_spec s = { DATA, .payload = RQ(BEARER(KEY_UNDER)),
				 .payload_len = strlen(RQ(BEARER(KEY_UNDER))) };
	struct tg_pkt_spec syn = { .flags = TG_TH_SYN };
	int len;

	TG_REQUIRE(world_set(TG_MODE_FULL) == 0);
	TG_REQUIRE(kill_flow(&s, NOW) == 0); /* until == now: over */
	len = tg_frame_build(&s, frame);
	run_counted(frame, (size_t)len, NULL, TG_V_UNDER_LIMIT, &out);
	TG_REQUIRE(kill_flow(&s, NOW + 1) == 0);
	len = tg_frame_build(&syn, frame);
	run_counted(frame, (size_t)len, NULL, TG_V_NO_PAYLOAD, &out);
	TG_CHECK_INT(out.retval, TC_ACT_UNSPEC);
	len = tg_frame_build(&s, frame);
	run_counted(frame, (size_t)len, NULL, TG_V_UNDER_LIMIT, &out); /* the entry went */
}

/* ---- refusals with real sockets ---------------------------------------------------------- */

static struct {
	const char *skip;	/* why the socket cases cannot run, or NULL */
	int veth, peer, cap;	/* ifindexes of tga and tgb; AF_PACKET socket on tgb */
	int defer4, est4, defer6; /* listeners */
} net;

static int listener(int family, uint16_t port, int defer)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(port),
				   .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(family, SOCK_STREAM, 0), one = 1, secs = 30;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if ((defer && setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs))) ||
	    bind(fd, family == AF_INET6 ? (struct sockaddr *)&a6 : (struct sockaddr *)&a4,
		 family == AF_INET6 ? sizeof(a6) : sizeof(a4)) ||
	    listen(fd, 16)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A private network namespace with lo up and the veth pair tga/tgb; nothing to clean up:
 * the namespace and everything in it go when the process exits. */
static void net_setup(void)
{
	struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL) };
	int one = 1;

	if (unshare(CLONE_NEWNET)) {
		net.skip = "unshare(CLONE_NEWNET) failed";
		return;
	}
	if (system("ip link set lo up && ip link add tga type veth peer name tgb && "
		   "ip link set tga up && ip link set tgb up") != 0) {
		net.skip = "ip link could not make the veth pair (iproute2 missing?)";
		return;
	}
	net.veth = (int)if_nametoindex("tga");
	net.peer = (int)if_nametoindex("tgb");
	net.cap = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	ll.sll_ifindex = net.peer;
	if (net.cap >= 0)
		setsockopt(net.cap, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one));
	net.defer4 = listener(AF_INET, 8080, 1);
	net.est4 = listener(AF_INET, 8081, 0);
	net.defer6 = listener(AF_INET6, 8080, 1);
	if (!net.veth || !net.peer || net.cap < 0 ||
	    bind(net.cap, (struct sockaddr *)&ll, sizeof(ll)) || net.defer4 < 0 ||
	    net.est4 < 0 || net.defer6 < 0)
		net.skip = "sockets for the refusal cases could not be made";
}

/* A connected client of the listener on port; returns its fd and its port in *sport. */
static int client(int family, uint16_t port, uint16_t *sport)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(port),
				   .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_storage me;
	socklen_t len = sizeof(me);
	int fd = socket(family, SOCK_STREAM, 0);

	if (fd < 0 ||
	    connect(fd, family == AF_INET6 ? (struct sockaddr *)&a6 : (struct sockaddr *)&a4,
		    family == AF_INET6 ? sizeof(a6) : sizeof(a4)) ||
	    getsockname(fd, (struct sockaddr *)&me, &len)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*sport = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&me)->sin6_port
					  : ((struct sockaddr_in *)&me)->sin_port);
	return fd;
}

/* One frame from tgb as it was on the wire: the receive path moves a VLAN tag into
 * metadata before packet sockets see the frame, so the tag (PACKET_AUXDATA) goes back in. */
static ssize_t recv_frame(uint8_t *buf, size_t size)
{
	union {
		struct cmsghdr h;
		uint8_t b[CMSG_SPACE(sizeof(struct tpacket_auxdata))];
	} ctl;
	struct iovec iov = { .iov_base = buf + 4, .iov_len = size - 4 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl,
			    .msg_controllen = sizeof(ctl) };
	ssize_t n = recvmsg(net.cap, &m, 0);

	if (n < 12)
		return n < 0 ? -1 : 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		struct tpacket_auxdata aux;

		if (c->cmsg_level != SOL_PACKET || c->cmsg_type != PACKET_AUXDATA)
			continue;
		memcpy(&aux, CMSG_DATA(c), sizeof(aux));
		if (!(aux.tp_status & TP_STATUS_VLAN_VALID))
			break;
		memmove(buf, buf + 4, 12);
		tg_put16(buf + 12, aux.tp_vlan_tpid ? aux.tp_vlan_tpid : 0x8100);
		tg_put16(buf + 14, aux.tp_vlan_tci);
		return n + 4;
	}
	memmove(buf, buf + 4, (size_t)n);
	return n;
}

/* Reads frames on tgb until a TCP one from port sport arrives (1 s at most). */
static int capture(uint8_t *buf, size_t size, uint16_t sport)
{
	struct pollfd p = { .fd = net.cap, .events = POLLIN };

	while (poll(&p, 1, 1000) == 1) {
		ssize_t n = recv_frame(buf, size);
		size_t off = 12;

		if (n < 0)
			return -1;
		while (off + 4 <= (size_t)n &&
		       (get16(buf + off) == 0x8100 || get16(buf + off) == 0x88a8))
			off += 4;
		if (off + 2 > (size_t)n)
			continue;
		if (get16(buf + off) == 0x0800 && (size_t)n >= off + 2 + 24 && buf[off + 11] == 6 &&
		    get16(buf + off + 2 + (buf[off + 2] & 0xf) * 4) == sport)
			return (int)n;
		if (get16(buf + off) == 0x86dd && (size_t)n >= off + 2 + 44 && buf[off + 8] == 6 &&
		    get16(buf + off + 42) == sport)
			return (int)n;
	}
	return -1;
}

/* The refusals of the slots above, in the daemon's words. */
static const struct want want_over = {
	"1", "20", "2.15s", "3", "second",
	"Rate limit exceeded for this key: 20 requests per second (rate 10/s, burst 20); "
	"retry after 0.25 s (bucket full again in 2.15 s)"
};
static const struct want want_min = {
	"13", "100", "71.7s", "72", "minute",
	"Rate limit exceeded for this key: 100 requests per minute; retry after 12.3 s "
	"(bucket full again in 71.7 s)"
};
static const struct want want_hour = {
	"2", "1000", "3597.9s", "3598", "hour",
	"Rate limit exceeded for this key: 1000 requests per hour; retry after 1.5 s "
	"(bucket full again in 3597.9 s)"
};

static const struct want want_edge = {
	"1", "1", "0.001s", "1", "second",
	"Rate limit exceeded for this key: 1 request per second (rate 1/s, burst 1); "
	"retry after 0.001 s (bucket full again in 0.001 s)"
};
static const struct want want_big = {
	"3600", "2000000", "3602s", "3602", "second",
	"Rate limit exceeded for this key: 2000000 requests per second (rate 1000000/s, "
	"burst 2000000); retry after 3600.0 s (bucket full again in 3602.0 s)"
};

/* A request segment of a real connection and what must come of it. */
struct refusal {
	int family;
	uint16_t port;
	const char *key;
	const struct want *want; /* NULL: must pass as ESTABLISHED */
	int with_ts;
	int vlan;
	int ip_opt_len;
	const struct tg_slot *slot; /* replaces KEY_OVER's slot when set */
};

/* Layout of a frame: offsets of IP and TCP, from the request's spec. */
static void offsets(const struct refusal *r, int *l3, int *l4)
{
	*l3 = 14 + (r->vlan ? 4 : 0);
	*l4 = *l3 + (r->family == 6 ? 40 : 20 + r->ip_opt_len);
}

/* The 429 read on the peer: addresses, ports, numbers, flags, options, checksums, bytes. */
static void check_reply(const struct refusal *r, const uint8_t *req, const uint8_t *f, int n,
			size_t req_pay)
{
	static char want_text[REPLY_LEN + 1], got[REPLY_LEN + 1];
	int l3, l4, thl = r->with_ts ? 32 : 20;

	offsets(r, &l3, &l4);
	TG_REQUIRE(n == l4 + thl + REPLY_LEN);
	TG_CHECK_INT(tg_frame_csum_check(f, (size_t)n), 0);
	TG_CHECK(memcmp(f, req + 6, 6) == 0 && memcmp(f + 6, req, 6) == 0); /* MACs swapped */
	TG_CHECK(memcmp(f + 12, req + 12, (size_t)(l3 - 12)) == 0); /* tags, ethertype */
	if (r->family == 6) {
		TG_CHECK(memcmp(f + l3 + 8, req + l3 + 24, 16) == 0);
		TG_CHECK(memcmp(f + l3 + 24, req + l3 + 8, 16) == 0);
		TG_CHECK_INT(get16(f + l3 + 4), thl + REPLY_LEN);
	} else {
		TG_CHECK(memcmp(f + l3 + 12, req + l3 + 16, 4) == 0);
		TG_CHECK(memcmp(f + l3 + 16, req + l3 + 12, 4) == 0);
		TG_CHECK_INT(f[l3] & 0xf, (20 + r->ip_opt_len) / 4);
		TG_CHECK_INT(get16(f + l3 + 2), l4 - l3 + thl + REPLY_LEN);
		for (int i = 0; i < r->ip_opt_len; i++)
			TG_CHECK_INT(f[l3 + 20 + i], 0); /* options not reflected */
	}
	TG_CHECK_INT(get16(f + l4), get16(req + l4 + 2));
	TG_CHECK_INT(get16(f + l4 + 2), get16(req + l4));
	TG_CHECK_INT(get32(f + l4 + 4), get32(req + l4 + 8));		 /* seq = their ack */
	TG_CHECK_INT(get32(f + l4 + 8), get32(req + l4 + 4) + req_pay); /* ack = all of it */
	TG_CHECK_INT(f[l4 + 12] >> 4, thl / 4);
	TG_CHECK_INT(f[l4 + 13], TG_TH_FIN | TG_TH_PSH | TG_TH_ACK);
	if (r->with_ts) {
		TG_CHECK(memcmp(f + l4 + 20, "\x01\x01\x08\x0a", 4) == 0);
		TG_CHECK(memcmp(f + l4 + 24, req + l4 + 28, 4) == 0); /* TSval = their TSecr */
		TG_CHECK(memcmp(f + l4 + 28, req + l4 + 24, 4) == 0); /* TSecr = their TSval */
	}
	memcpy(got, f + l4 + thl, REPLY_LEN);
	got[REPLY_LEN] = '\0';
	expected_reply(r->want, want_text);
	if (strcmp(got, want_text) != 0)
		printf("#   got reply:\n%s\n#   expected:\n%s\n", got, want_text);
	TG_CHECK(strcmp(got, want_text) == 0);
	check_http(got, r->want);
}

/* The packet the program returns to the stack: a bare RST of the request's direction. */
static void check_rst(const struct refusal *r, const uint8_t *req, const struct tg_bpf_out *o)
{
	int l3, l4;

	offsets(r, &l3, &l4);
	TG_REQUIRE(o->len == (__u32)(l4 + 20));
	TG_CHECK_INT(o->retval, TC_ACT_OK);
	TG_CHECK_INT(tg_frame_csum_check(o->data, o->len), 0);
	TG_CHECK(memcmp(o->data, req, 12) == 0); /* MACs as received */
	TG_CHECK(memcmp(o->data + l3 + (r->family == 6 ? 8 : 12), req + l3 + (r->family == 6 ? 8 : 12),
			r->family == 6 ? 32 : 8) == 0);
	TG_CHECK(memcmp(o->data + l4, req + l4, 4) == 0); /* ports as received */
	TG_CHECK_INT(get32(o->data + l4 + 4), get32(req + l4 + 4)); /* seq = the request's */
	TG_CHECK_INT(o->data[l4 + 12] >> 4, 5);
	TG_CHECK_INT(o->data[l4 + 13], TG_TH_RST);
}

/* One request on a fresh connection to r->port, through the program with ctx ifindex tga. */
static void refusal_run(const struct refusal *r)
{
	static uint8_t req[TG_FRAME_MAX], got[TG_FRAME_MAX];
	static struct tg_bpf_out out;
	static char payload[512];
	const char *lo = r->family == 6 ? "::1" : "127.0.0.1";
	struct tg_pkt_spec s = { .family = r->family, .saddr = lo, .daddr = lo, .dport = r->port,
				 .flags = TG_TH_ACK | TG_TH_PSH, .seq = 0x11223344,
				 .ack = 0x55667788, .ip_opt_len = (uint8_t)r->ip_opt_len };
	struct __sk_buff ctx = { .ifindex = (__u32)net.veth };
	int cfd, afd = -1, len, n;

	if (net.skip)
		TG_SKIP(net.skip);
	TG_REQUIRE(world_set(TG_MODE_FULL) == 0);
	if (r->slot)
		TG_REQUIRE(tg_bpf_set_slot(skel->obj, S_OVER, r->slot) == 0);
	cfd = client(r->family == 6 ? AF_INET6 : AF_INET, r->port, &s.sport);
	TG_REQUIRE(cfd >= 0);
	if (!r->want)
		afd = accept(net.est4, NULL, NULL);
	snprintf(payload, sizeof(payload), RQ(BEARER("%s")), r->key);
	s.payload = payload;
	s.payload_len = strlen(payload);
	if (r->with_ts) {
		s.tcp_opts = ts_opts;
		s.tcp_opts_len = sizeof(ts_opts);
	}
	if (r->vlan) {
		s.vlan_tpid[0] = 0x8100;
		s.vlan_tci[0] = 42;
	}
	len = tg_frame_build(&s, req);
	run_counted(req, (size_t)len, &ctx, r->want ? TG_V_REFUSED : TG_V_ESTABLISHED, &out);
	if (r->want) {
		n = capture(got, sizeof(got), r->port);
		TG_CHECK(n > 0);
		if (n > 0)
			check_reply(r, req, got, n, s.payload_len);
		check_rst(r, req, &out);
	} else {
		TG_CHECK_INT(out.retval, TC_ACT_UNSPEC);
		TG_CHECK(out.len == (__u32)len && memcmp(out.data, req, (size_t)len) == 0);
	}
	close(cfd);
	if (afd >= 0)
		close(afd);
}

static void case_refuse_v4(void)
{
	struct refusal r = { 4, 8080, KEY_OVER, &want_over, 1, 0, 0, NULL };

	refusal_run(&r);
}

static void case_refuse_v4_no_ts_vlan_opts(void)
{
	struct refusal r = { 4, 8080, KEY_OVER, &want_over, 0, 1, 8, NULL };

	refusal_run(&r);
}

static void case_refuse_v6(void)
{
	struct refusal r = { 6, 8080, KEY_OVER, &want_over, 1, 0, 0, NULL };

	refusal_run(&r);
}

static void case_refuse_minute(void)
{
	struct refusal r = { 4, 8080, KEY_MIN, &want_min, 1, 0, 0, NULL };

	refusal_run(&r);
}

static void case_refuse_hour_longest(void)
{
	struct refusal r = { 6, 8080, KEY_HOUR, &want_hour, 0, 1, 0, NULL };

	refusal_run(&r);
}

static void case_refuse_rounding(void)
{
	struct refusal r = { 4, 8080, KEY_EDGE, &want_edge, 1, 0, 0, NULL };

	refusal_run(&r);
}

static void case_refuse_big_numbers(void)
{
	struct refusal r = { 6, 8080, KEY_BIG, &want_big, 1, 0, 0, NULL };

	refusal_run(&r);
}

static void case_established_passes(void)
{
	struct refusal r = { 4, 8081, KEY_OVER, NULL, 1, 0, 0, NULL };

	refusal_run(&r);
}

/* After a refusal: the flow is in tg_killed, the source counted for the penalty box. */
static void case_refusal_records(void)
{
	struct refusal r = { 4, 8080, KEY_OVER, &want_over, 1, 0, 0, NULL };
	int fd = tg_bpf_map_fd(skel->obj, TG_MAP_KILLED);
	struct tg_penalty p;
	struct tg_flow f, next;
	__u64 until = 0;

	refusal_run(&r);
	if (net.skip)
		return;
	TG_REQUIRE(bpf_map_get_next_key(fd, NULL, &next) == 0);
	f = next;
	TG_CHECK(bpf_map_get_next_key(fd, &f, &next) != 0); /* exactly one */
	TG_CHECK_INT(bpf_map_lookup_elem(fd, &f, &until), 0);
	TG_CHECK(until > NOW);
	TG_CHECK_INT(ntohs(f.dport), 8080);
	TG_CHECK_INT(tg_bpf_penalty_get(skel->obj, "127.0.0.1", &p), 0);
	TG_CHECK_INT(p.refusals_total, 1);
}

/*
 * The 429's text and checksum are kept per CPU from one refusal to the next and reused when
 * the next refusal's figures are the same (reply.h, tg_reply_prepare). Refusals in a row on
 * one CPU, each differing from the one before in one figure only (or in none), must each
 * still be exact on the wire: a reused text is never a stale one.
 */
static void case_refuse_text_reuse(void)
{
	static const struct want w_reset = {
		"1", "20", "2.151s", "3", "second",
		"Rate limit exceeded for this key: 20 requests per second (rate 10/s, burst 20); "
		"retry after 0.25 s (bucket full again in 2.151 s)"
	};
	static const struct want w_retry = {
		"1", "20", "2.15s", "3", "second",
		"Rate limit exceeded for this key: 20 requests per second (rate 10/s, burst 20); "
		"retry after 0.249 s (bucket full again in 2.15 s)"
	};
	static const struct want w_rate = {
		"1", "20", "2.15s", "3", "second",
		"Rate limit exceeded for this key: 20 requests per second (rate 10.101/s, burst "
		"20); retry after 0.25 s (bucket full again in 2.15 s)"
	};
	const __u64 T = 100 * MS, tol = 19 * T;
	struct tg_slot reset = slot_of(S_OVER), retry = reset, rate = reset;
	const struct refusal seq[] = {
		{ 4, 8080, KEY_OVER, &want_over, 1, 0, 0, NULL },
		{ 4, 8080, KEY_OVER, &want_over, 1, 0, 0, NULL }, /* the same figures */
		{ 6, 8080, KEY_OVER, &want_over, 0, 1, 0, NULL }, /* same text, other frame */
		{ 4, 8080, KEY_OVER, &w_reset, 1, 0, 0, &reset },
		{ 4, 8080, KEY_OVER, &w_retry, 1, 0, 0, &retry },
		{ 4, 8080, KEY_OVER, &w_rate, 1, 0, 0, &rate },
		{ 4, 8080, KEY_OVER, &want_over, 1, 0, 0, NULL },
	};
	cpu_set_t all, one;

	/* reset + 1 ms: tat and tolerance both 1 ms later (the limit stays 20) */
	reset.win[TG_WIN_SECOND] = (struct tg_window){ NOW + tol + 251 * MS, T, tol + MS };
	/* retry - 1 ms: the tolerance 1 ms longer, tat as before */
	retry.win[TG_WIN_SECOND] = (struct tg_window){ NOW + tol + 250 * MS, T, tol + MS };
	/* 99 ms per request: rate 10.101/s; limit 20, retry and reset as before */
	rate.win[TG_WIN_SECOND] = (struct tg_window){ NOW + tol + 250 * MS, 99 * MS, tol };
	TG_REQUIRE(sched_getaffinity(0, sizeof(all), &all) == 0);
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	TG_REQUIRE(sched_setaffinity(0, sizeof(one), &one) == 0);
	for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++)
		refusal_run(&seq[i]);
	sched_setaffinity(0, sizeof(all), &all);
}

static const struct tg_case cases[] = {
	{ "kernel SipHash equals tg_siphash64 for keys of 1..128 bytes (129: too long)",
	  case_siphash_every_length },
	{ "key header after 2 KB of other headers: the daemon decides", case_key_after_2k },
	{ "every truncation of a VLAN IPv4 request with options passes", case_truncated_v4 },
	{ "every truncation of a QinQ IPv6 request passes", case_truncated_v6 },
	{ "IPv4 body segment of a refused flow is ACKed back", case_absorb_v4 },
	{ "IPv6 body segment of a refused flow is ACKed back", case_absorb_v6 },
	{ "refused flow: FIN ACKed, bare ACK and RST dropped", case_absorb_fin_ack_rst },
	{ "refused flow: expired entry and new SYN end the absorbing",
	  case_absorb_expired_and_syn },
	{ "IPv4 embryonic over limit: exact 429 on the wire, RST to the socket", case_refuse_v4 },
	{ "IPv4 with VLAN tag, IP options, no timestamps: 429 and RST",
	  case_refuse_v4_no_ts_vlan_opts },
	{ "IPv6 embryonic over limit: exact 429 and RST", case_refuse_v6 },
	{ "minute window refusing: 429 names the minute", case_refuse_minute },
	{ "minute and hour refusing: 429 names the longer (hour)", case_refuse_hour_longest },
	{ "1 ns to wait: singular, every figure rounded up", case_refuse_rounding },
	{ "large limits and an hour to wait", case_refuse_big_numbers },
	{ "over limit on an accepted connection passes (ESTABLISHED)", case_established_passes },
	{ "a refusal records the flow and counts the source", case_refusal_records },
	{ "refusals in a row differing in one figure or none: each 429 exact (text reuse)",
	  case_refuse_text_reuse },
};

int main(void)
{
	const char *why = tg_bpf_env_problem();
	int rc;

	if (why)
		return tg_bpf_unavailable("bpf/tc", why);
	skel = tollgate_tc__open();
	if (!skel || tg_bpf_unpin_all(skel->obj) || tollgate_tc__load(skel)) {
		printf("not ok - bpf/tc: tollgate_tc does not load (see libbpf lines above)\n");
		tollgate_tc__destroy(skel);
		return 1;
	}
	net_setup();
	rc = TG_ROWS_RUN("bpf/tc", rows, row_run);
	rc |= tg_run("bpf/tc", cases, TG_NCASES(cases));
	tollgate_tc__destroy(skel);
	return rc;
}
