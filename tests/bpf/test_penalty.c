// SPDX-License-Identifier: BSD-2-Clause
/*
 * The penalty bookkeeping of bpf/lib/penalty.h (tg_penalty_note_refusal, which the TC
 * program calls after each kernel 429), driven through the test-only probe
 * bpf/test/penalty_probe.bpf.c with the injected clock: each row is a schedule of refusals
 * per one-second window and the tg_penalty entry it must leave. Then the XDP program,
 * sharing the probe's maps as the pinned maps are shared in production, drops the SYNs of
 * a source the bookkeeping penalised, until the penalty ends.
 */
#include "tg_bpf_test.h"
#include "test/penalty_probe.skel.h"
#include "tollgate_xdp.skel.h"

static struct penalty_probe *probe;
static struct tollgate_xdp *xdp;

#define BASE_NS (100 * TG_NS_PER_SEC) /* the first window starts here */
#define MAX_WINDOWS 10
#define T100MS 100000000ULL	      /* 10 requests/s */

struct pen_row {
	const char *desc;
	const char *src;     /* refused client */
	const char *src2;    /* NULL, or a second client taking every other refusal */
	const char *key;     /* the tg_penalty entry checked */
	__u64 interval_ns[3]; /* the key's windows: second, minute, hour (0 = undefined) */
	__u32 multiple_milli; /* 0 means the default 2000 */
	int after_sec;	      /* -1 means the default 3 */
	int mode;	      /* 0 means full */
	const char *allow;    /* allow-listed prefix or NULL */
	int windows[MAX_WINDOWS]; /* refusals in each successive window; -1 ends */
	int entry;	      /* 1 if key must have an entry */
	int pen_window;	      /* window whose first refusal penalised (until = its start + 60 s), or -1 */
	__u32 strikes;	      /* expected strikes */
	__u64 total;	      /* expected refusals_total */
	int penalised;	      /* expected TG_V_PENALISED increase */
};

#define V4 "10.0.0.1"
#define END -1
#define RATE10 { T100MS, 0, 0 }

static const struct pen_row rows[] = {
	{ "at the threshold (20/s = 2 x 10/s) for 5 windows: never penalised", V4, NULL, V4,
	  RATE10, 0, -1, 0, NULL, { 20, 20, 20, 20, 20, 1, END }, 1, -1, 0, 101, 0 },
	{ "one above (21/s) for 3 windows: penalised at the 4th window", V4, NULL, V4, RATE10, 0,
	  -1, 0, NULL, { 21, 21, 21, 1, END }, 1, 3, 0, 64, 1 },
	{ "above for only 2 windows: 2 strikes, no penalty", V4, NULL, V4, RATE10, 0, -1, 0, NULL,
	  { 21, 21, 1, END }, 1, -1, 2, 43, 0 },
	{ "a window under the threshold resets the strikes", V4, NULL, V4, RATE10, 0, -1, 0, NULL,
	  { 21, 21, 5, 21, 21, 1, END }, 1, -1, 2, 90, 0 },
	{ "a quiet window (no refusal) resets the strikes", V4, NULL, V4, RATE10, 0, -1, 0, NULL,
	  { 21, 21, 0, 21, 1, END }, 1, -1, 1, 64, 0 },
	{ "still above while penalised: extended, counted once", V4, NULL, V4, RATE10, 0, -1, 0,
	  NULL, { 21, 21, 21, 21, 21, 21, 21, 1, END }, 1, 6, 1, 148, 1 },
	{ "allow-listed source: no entry, never penalised", V4, NULL, V4, RATE10, 0, -1, 0,
	  "10.0.0.0/8", { 50, 50, 50, 50, 1, END }, 0, -1, 0, 0, 0 },
	{ "allow list of another prefix does not help", V4, NULL, V4, RATE10, 0, -1, 0,
	  "10.1.0.0/16", { 21, 21, 21, 1, END }, 1, 3, 0, 64, 1 },
	{ "mode tc: refusals are not counted", V4, NULL, V4, RATE10, 0, -1, TG_MODE_TC, NULL,
	  { 50, 50, 50, 50, 1, END }, 0, -1, 0, 0, 0 },
	{ "IPv6: two addresses of one /64 count together", "2001:db8:1:2::1", "2001:db8:1:2::2",
	  "2001:db8:1:2::", RATE10, 0, -1, 0, NULL, { 22, 22, 22, 1, END }, 1, 3, 0, 67, 1 },
	{ "IPv4: two addresses count apart", V4, "10.0.0.2", V4, RATE10, 0, -1, 0, NULL,
	  { 40, 40, 40, 1, END }, 1, -1, 0, 61, 0 },
	{ "rate from the minute window when the key has no second window", V4, NULL, V4,
	  { 0, T100MS, 0 }, 0, -1, 0, NULL, { 21, 21, 21, 1, END }, 1, 3, 0, 64, 1 },
	{ "multiple 1.5: 16/s above 15/s is a strike", V4, NULL, V4, RATE10, 1500, -1, 0, NULL,
	  { 16, 16, 16, 1, END }, 1, 3, 0, 49, 1 },
	{ "multiple 1.5: 15/s is not", V4, NULL, V4, RATE10, 1500, -1, 0, NULL,
	  { 15, 15, 15, 1, END }, 1, -1, 0, 46, 0 },
	{ "penalty_after_sec 1: one window above suffices", V4, NULL, V4, RATE10, 0, 1, 0, NULL,
	  { 21, 1, END }, 1, 1, 0, 22, 1 },
	{ "penalty_after_sec 0 disables the box", V4, NULL, V4, RATE10, 0, 0, 0, NULL,
	  { 50, 50, 50, 1, END }, 1, -1, 3, 151, 0 },
	{ "a key without any rate window never penalises", V4, NULL, V4, { 0, 0, 0 }, 0, -1, 0,
	  NULL, { 50, 50, 50, 50, 1, END }, 1, -1, 0, 201, 0 },
};

/* Resets the maps to the row's world: configuration, slot 0, allow list; no entries. */
static int world_set(const struct pen_row *r)
{
	struct tg_config cfg = tg_bpf_config_default();
	struct tg_slot slot;
	const struct bpf_object *obj = probe->obj;
	int err;

	if (r->multiple_milli)
		cfg.penalty_multiple_milli = r->multiple_milli;
	if (r->after_sec >= 0)
		cfg.penalty_after_sec = (__u32)r->after_sec;
	if (r->mode)
		cfg.mode = (__u32)r->mode;
	memset(&slot, 0, sizeof(slot));
	slot.flags = TG_SLOT_ACTIVE | TG_SLOT_KERNEL_REFUSE;
	for (int w = 0; w < TG_WIN__COUNT; w++) {
		slot.win[w].interval_ns = r->interval_ns[w];
		slot.win[w].tolerance_ns = r->interval_ns[w] * 4;
	}
	err = tg_bpf_set_config(obj, &cfg);
	err = err ?: tg_bpf_set_slot(obj, 0, &slot);
	err = err ?: tg_bpf_map_clear(tg_bpf_map_fd(obj, TG_MAP_PENALTY));
	err = err ?: tg_bpf_map_clear(tg_bpf_map_fd(obj, TG_MAP_ALLOW));
	if (!err && r->allow)
		err = tg_bpf_allow_add(obj, r->allow);
	probe->bss->probe_slot = 0;
	return err;
}

/* One refusal from addr at now through the probe. */
static int refuse(const char *addr, __u64 now)
{
	static const uint8_t frame[64];
	struct tg_bpf_out out;
	int err;

	if (tg_bpf_addr(addr, &probe->bss->probe_src))
		return -EINVAL;
	TG_BPF_CLOCK(probe, now);
	err = tg_bpf_run(bpf_program__fd(probe->progs.penalty_probe), frame, sizeof(frame), &out);
	return err ? err : out.retval == XDP_PASS ? 0 : -EIO;
}

/* Plays the row's schedule: refusals of window k at BASE + k s + j ms. */
static int schedule_play(const struct pen_row *r)
{
	for (int k = 0; k < MAX_WINDOWS && r->windows[k] != END; k++)
		for (int j = 0; j < r->windows[k]; j++) {
			const char *who = r->src2 && (j & 1) ? r->src2 : r->src;
			int err = refuse(who, BASE_NS + (__u64)k * TG_NS_PER_SEC + (__u64)j * 1000000);

			if (err)
				return err;
		}
	return 0;
}

static int row_run(const struct pen_row *r)
{
	__u64 before[TG_V__COUNT], after[TG_V__COUNT];
	struct tg_penalty p;
	int bad = tg_failed, err;

	TG_CHECK_INT(world_set(r), 0);
	TG_CHECK_INT(tg_bpf_stats(probe->obj, before), 0);
	TG_CHECK_INT(schedule_play(r), 0);
	TG_CHECK_INT(tg_bpf_stats(probe->obj, after), 0);
	TG_CHECK_INT(after[TG_V_PENALISED] - before[TG_V_PENALISED], r->penalised);
	err = tg_bpf_penalty_get(probe->obj, r->key, &p);
	if (!r->entry) {
		TG_CHECK_INT(err, -ENOENT);
		TG_CHECK_INT(tg_bpf_map_clear(tg_bpf_map_fd(probe->obj, TG_MAP_PENALTY)), 0);
		return tg_failed != bad;
	}
	TG_CHECK_INT(err, 0);
	if (err)
		return 1;
	TG_CHECK_INT(p.refusals_total, r->total);
	TG_CHECK_INT(p.strikes, r->strikes);
	TG_CHECK_INT(p.dropped_total, 0);
	TG_CHECK_INT(p.until_ns, r->pen_window < 0 ? 0
						 : BASE_NS + (__u64)r->pen_window * TG_NS_PER_SEC +
							   60 * TG_NS_PER_SEC);
	return tg_failed != bad;
}

/* SYN from addr through the XDP program (sharing the probe's maps) at now. */
static int xdp_syn(const char *addr, __u64 now)
{
	struct tg_pkt_spec s = { .flags = TG_TH_SYN, .saddr = addr };
	static uint8_t frame[TG_FRAME_MAX];
	static struct tg_bpf_out out;
	int len = tg_frame_build(&s, frame), err;

	if (len < 0)
		return len;
	TG_BPF_CLOCK(xdp, now);
	err = tg_bpf_run(bpf_program__fd(xdp->progs.tg_xdp_penalty), frame, (size_t)len, &out);
	return err ? err : out.retval;
}

/* The whole rung: refusals penalise, the XDP program drops that source's SYNs (not
 * another's) until the penalty ends, then passes them again. */
static void case_refusals_then_xdp_drops(void)
{
	const struct pen_row *r = &rows[1];
	__u64 t_pen = BASE_NS + 3 * TG_NS_PER_SEC, until = t_pen + 60 * TG_NS_PER_SEC;
	struct tg_penalty p;

	TG_REQUIRE(world_set(r) == 0);
	TG_CHECK_INT(xdp_syn(V4, t_pen - 1), XDP_PASS); /* before any refusal */
	TG_REQUIRE(schedule_play(r) == 0);
	TG_CHECK_INT(xdp_syn(V4, t_pen + 1), XDP_DROP);
	TG_CHECK_INT(xdp_syn("10.0.0.2", t_pen + 1), XDP_PASS);
	TG_CHECK_INT(xdp_syn(V4, until - 1), XDP_DROP);
	TG_CHECK_INT(xdp_syn(V4, until), XDP_PASS);
	TG_REQUIRE(tg_bpf_penalty_get(probe->obj, V4, &p) == 0);
	TG_CHECK_INT(p.dropped_total, 2);
}

/* After a penalty, a source starts from no strikes: it takes after_sec windows again. */
static void case_after_penalty_strikes_start_over(void)
{
	const struct pen_row *r = &rows[1];
	__u64 t = BASE_NS + 70 * TG_NS_PER_SEC; /* the penalty (until BASE + 63 s) is over */
	struct tg_penalty p;

	TG_REQUIRE(world_set(r) == 0);
	TG_REQUIRE(schedule_play(r) == 0);
	for (int k = 0; k < 2; k++)
		for (int j = 0; j < 21; j++)
			TG_REQUIRE(refuse(V4, t + (__u64)k * TG_NS_PER_SEC + (__u64)j * 1000000) == 0);
	TG_REQUIRE(refuse(V4, t + 2 * TG_NS_PER_SEC) == 0);
	TG_REQUIRE(tg_bpf_penalty_get(probe->obj, V4, &p) == 0);
	/* The gap before t was quiet: strikes reset, then two windows above: 2 strikes. */
	TG_CHECK_INT(p.strikes, 2);
	TG_CHECK_INT(p.until_ns, BASE_NS + 63 * TG_NS_PER_SEC);
	TG_CHECK_INT(xdp_syn(V4, t + 2 * TG_NS_PER_SEC), XDP_PASS);
}

static const struct tg_case cases[] = {
	{ "refusals penalise; XDP drops that source's SYNs until the penalty ends",
	  case_refusals_then_xdp_drops },
	{ "after a penalty the strikes start over", case_after_penalty_strikes_start_over },
};

int main(void)
{
	const char *why = tg_bpf_env_problem();
	int rc = 1;

	if (why)
		return tg_bpf_unavailable("bpf/penalty", why);
	probe = penalty_probe__open();
	if (!probe || tg_bpf_unpin_all(probe->obj) || penalty_probe__load(probe)) {
		printf("not ok - bpf/penalty: penalty_probe does not load (see libbpf lines above)\n");
		goto out;
	}
	xdp = tollgate_xdp__open();
	if (!xdp || tg_bpf_unpin_all(xdp->obj) || tg_bpf_share_maps(xdp->obj, probe->obj) ||
	    tollgate_xdp__load(xdp)) {
		printf("not ok - bpf/penalty: tollgate_xdp does not load sharing the probe's maps\n");
		goto out;
	}
	rc = TG_ROWS_RUN("bpf/penalty", rows, row_run);
	rc |= tg_run("bpf/penalty", cases, TG_NCASES(cases));
out:
	tollgate_xdp__destroy(xdp);
	penalty_probe__destroy(probe);
	return rc;
}
