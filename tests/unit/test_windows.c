/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests of windows.c: calendar periods across their boundaries (minute, hour, day, month
 * ends, leap years, year wrap), bucket rings (reuse, late adds) and calendar and rolling
 * windows summed from them, with the instant passed in (the engine's injectable clock).
 */
#include <stdint.h>
#include <string.h>

#include "tg_test.h"
#include "windows.h"

/* Unix seconds of a UTC date and time. */
static int64_t at(int64_t y, unsigned mo, unsigned d, unsigned h, unsigned mi, unsigned s)
{
	return win_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
}

struct cal_row {
	const char *name;
	enum win_unit u;
	int64_t t, start, end;
};

static void calendar_periods_across_boundaries(void)
{
	const struct cal_row rows[] = {
	    {"epoch", WIN_DAY, 0, 0, 86400},
	    {"known date", WIN_DAY, 1795478400 + 5, 1795478400, 1795478400 + 86400},
	    {"minute: last second", WIN_MINUTE, at(2026, 11, 23, 14, 59, 59),
	     at(2026, 11, 23, 14, 59, 0), at(2026, 11, 23, 15, 0, 0)},
	    {"minute: first second", WIN_MINUTE, at(2026, 11, 23, 15, 0, 0),
	     at(2026, 11, 23, 15, 0, 0), at(2026, 11, 23, 15, 1, 0)},
	    {"hour: last second of a day", WIN_HOUR, at(2026, 11, 23, 23, 59, 59),
	     at(2026, 11, 23, 23, 0, 0), at(2026, 11, 24, 0, 0, 0)},
	    {"day: midnight belongs to the new day", WIN_DAY, at(2026, 11, 24, 0, 0, 0),
	     at(2026, 11, 24, 0, 0, 0), at(2026, 11, 25, 0, 0, 0)},
	    {"month: 30-day November", WIN_MONTH, at(2026, 11, 30, 23, 59, 59),
	     at(2026, 11, 1, 0, 0, 0), at(2026, 12, 1, 0, 0, 0)},
	    {"month: December wraps the year", WIN_MONTH, at(2026, 12, 31, 23, 59, 59),
	     at(2026, 12, 1, 0, 0, 0), at(2027, 1, 1, 0, 0, 0)},
	    {"month: January 1st", WIN_MONTH, at(2027, 1, 1, 0, 0, 0), at(2027, 1, 1, 0, 0, 0),
	     at(2027, 2, 1, 0, 0, 0)},
	    {"month: February of a leap year", WIN_MONTH, at(2028, 2, 29, 12, 0, 0),
	     at(2028, 2, 1, 0, 0, 0), at(2028, 3, 1, 0, 0, 0)},
	    {"month: February 2100 (no leap day)", WIN_MONTH, at(2100, 2, 28, 23, 0, 0),
	     at(2100, 2, 1, 0, 0, 0), at(2100, 3, 1, 0, 0, 0)},
	    {"month: February 2000 (leap century)", WIN_MONTH, at(2000, 2, 29, 0, 0, 0),
	     at(2000, 2, 1, 0, 0, 0), at(2000, 3, 1, 0, 0, 0)},
	    {"month: 31-day March", WIN_MONTH, at(2027, 3, 31, 23, 59, 59), at(2027, 3, 1, 0, 0, 0),
	     at(2027, 4, 1, 0, 0, 0)},
	};

	/* 2026-11-23 is day 20780 since the epoch (checked with date -u -d) */
	TG_CHECK_INT(win_days_from_civil(2026, 11, 23), 20780);
	TG_CHECK_INT(win_days_from_civil(2028, 3, 1) - win_days_from_civil(2028, 2, 1), 29);
	TG_CHECK_INT(win_days_from_civil(2027, 3, 1) - win_days_from_civil(2027, 2, 1), 28);
	for (size_t i = 0; i < TG_NCASES(rows); i++) {
		int64_t s = 0, e = 0;

		win_calendar(rows[i].u, rows[i].t, &s, &e);
		if (s != rows[i].start || e != rows[i].end)
			printf("#   row '%s'\n", rows[i].name);
		TG_CHECK_INT(s, rows[i].start);
		TG_CHECK_INT(e, rows[i].end);
	}
}

#define NB 8

static void ring_reuses_slots_and_drops_late_adds(void)
{
	struct win_bucket b[NB];
	struct win_ring r = {60, NB, b, NULL, 0};
	uint64_t one[WIN_M__COUNT] = {1, 10, 100, 1000, 5};

	win_ring_reset(&r);
	TG_CHECK_INT(win_ring_sum(&r, 0, 100, WIN_M_TOKENS), 0);
	TG_CHECK(win_ring_add(&r, 100, one));
	TG_CHECK(win_ring_add(&r, 100, one));
	TG_CHECK(win_ring_add(&r, 103, one));
	TG_CHECK_INT(win_ring_get(&r, 100, WIN_M_TOKENS), 20);
	TG_CHECK_INT(win_ring_sum(&r, 100, 103, WIN_M_COST), 300);
	/* 108 takes 100's slot: 100 is gone, and a late add for 100 is dropped */
	TG_CHECK(win_ring_add(&r, 108, one));
	TG_CHECK_INT(win_ring_get(&r, 100, WIN_M_TOKENS), 0);
	TG_CHECK(!win_ring_add(&r, 100, one));
	TG_CHECK_INT(win_ring_sum(&r, 100, 108, WIN_M_REQUESTS), 2);
	/* a span longer than the ring sums only what it keeps, never an aliased slot twice */
	TG_CHECK_INT(win_ring_sum(&r, 0, 108, WIN_M_REQUESTS), 2);
	TG_CHECK(win_ring_add(&r, 104, one));
	TG_CHECK_INT(win_ring_sum(&r, 101, 108, WIN_M_REQUESTS), 3);
}

static void calendar_month_window_resets_at_month_end(void)
{
	struct win_bucket b[62];
	struct win_ring r = {86400, 62, b, NULL, 0};
	struct win_def w = {WIN_MONTH, WIN_DAY, false, 0};
	uint64_t add[WIN_M__COUNT] = {1, 500, 0, 0, 0};
	int64_t last = at(2026, 11, 30, 23, 59, 59), first = at(2026, 12, 1, 0, 0, 0);
	int64_t from, to;

	win_ring_reset(&r);
	win_ring_add(&r, win_bucket_id(at(2026, 10, 31, 12, 0, 0), 86400), add); /* October */
	win_ring_add(&r, win_bucket_id(at(2026, 11, 1, 0, 0, 0), 86400), add);
	win_ring_add(&r, win_bucket_id(last, 86400), add);
	win_span(&w, last, &from, &to);
	TG_CHECK_INT(win_ring_sum(&r, from, to, WIN_M_TOKENS), 1000);
	TG_CHECK_INT(win_reset_at(&w, last), first);
	TG_CHECK_INT(win_frees_at(&w, &r, last, 1, WIN_M_TOKENS), first);
	win_span(&w, first, &from, &to);
	TG_CHECK_INT(win_ring_sum(&r, from, to, WIN_M_TOKENS), 0);
	TG_CHECK_INT(win_reset_at(&w, first), at(2027, 1, 1, 0, 0, 0));
}

static void calendar_minute_hour_day_windows_expire_at_their_end(void)
{
	struct win_bucket mb[64], hb[48];
	struct win_ring mr = {60, 64, mb, NULL, 0}, hr = {3600, 48, hb, NULL, 0};
	struct win_def minute = {WIN_MINUTE, WIN_MINUTE, false, 0};
	struct win_def hour = {WIN_HOUR, WIN_HOUR, false, 0};
	uint64_t add[WIN_M__COUNT] = {1, 7, 0, 0, 0};
	int64_t t = at(2026, 11, 23, 14, 59, 59), from, to;

	win_ring_reset(&mr);
	win_ring_reset(&hr);
	win_ring_add(&mr, win_bucket_id(t, 60), add);
	win_ring_add(&hr, win_bucket_id(t, 3600), add);
	win_span(&minute, t, &from, &to);
	TG_CHECK_INT(win_ring_sum(&mr, from, to, WIN_M_TOKENS), 7);
	win_span(&minute, t + 1, &from, &to);
	TG_CHECK_INT(win_ring_sum(&mr, from, to, WIN_M_TOKENS), 0);
	win_span(&hour, t, &from, &to);
	TG_CHECK_INT(win_ring_sum(&hr, from, to, WIN_M_TOKENS), 7);
	win_span(&hour, t + 1, &from, &to);
	TG_CHECK_INT(win_ring_sum(&hr, from, to, WIN_M_TOKENS), 0);
	TG_CHECK_INT(win_reset_at(&hour, t), t + 1);
}

static void rolling_windows_expire_bucket_by_bucket(void)
{
	struct win_bucket mb[64];
	struct win_ring mr = {60, 64, mb, NULL, 0};
	struct win_def last60 = {WIN_HOUR, WIN_MINUTE, true, 60};
	uint64_t a[WIN_M__COUNT] = {0, 0, 300, 0, 0}, c[WIN_M__COUNT] = {0, 0, 200, 0, 0};
	int64_t t0 = at(2026, 11, 23, 14, 0, 30), from, to;

	win_ring_reset(&mr);
	win_ring_add(&mr, win_bucket_id(t0, 60), a);	   /* 14:00 */
	win_ring_add(&mr, win_bucket_id(t0 + 600, 60), c); /* 14:10 */
	win_span(&last60, t0 + 3599, &from, &to);
	TG_CHECK_INT(win_ring_sum(&mr, from, to, WIN_M_COST), 500);
	/* the 14:00 bucket counts until 15:00:59 (60 previous buckets + the current one) */
	win_span(&last60, at(2026, 11, 23, 15, 0, 59), &from, &to);
	TG_CHECK_INT(win_ring_sum(&mr, from, to, WIN_M_COST), 500);
	win_span(&last60, at(2026, 11, 23, 15, 1, 0), &from, &to);
	TG_CHECK_INT(win_ring_sum(&mr, from, to, WIN_M_COST), 200);
	/* 100 must leave: the 14:00 bucket (300) leaves at 15:01; 400: also 14:10's, at 15:11 */
	TG_CHECK_INT(win_frees_at(&last60, &mr, t0 + 1800, 100, WIN_M_COST),
		     at(2026, 11, 23, 15, 1, 0));
	TG_CHECK_INT(win_frees_at(&last60, &mr, t0 + 1800, 400, WIN_M_COST),
		     at(2026, 11, 23, 15, 11, 0));
	TG_CHECK(win_frees_at(&last60, &mr, t0 + 1800, 501, WIN_M_COST) == INT64_MAX);
	TG_CHECK_INT(win_reset_at(&last60, t0), at(2026, 11, 23, 14, 1, 0));
}

static void rolling_days_cross_month_and_year(void)
{
	struct win_bucket db[62];
	struct win_ring dr = {86400, 62, db, NULL, 0};
	struct win_def last30 = {WIN_MONTH, WIN_DAY, true, 30};
	uint64_t a[WIN_M__COUNT] = {0, 1000, 0, 0, 0};
	int64_t dec15 = at(2026, 12, 15, 10, 0, 0), from, to;

	win_ring_reset(&dr);
	win_ring_add(&dr, win_bucket_id(dec15, 86400), a);
	win_span(&last30, at(2027, 1, 14, 23, 0, 0), &from, &to);
	TG_CHECK_INT(win_ring_sum(&dr, from, to, WIN_M_TOKENS), 1000);
	win_span(&last30, at(2027, 1, 15, 0, 0, 0), &from, &to);
	TG_CHECK_INT(win_ring_sum(&dr, from, to, WIN_M_TOKENS), 0);
}

/* The engine's one-walk sum equals the per-metric sum over every span, wrapped or not. */
static void sum_all_equals_sum_per_metric(void)
{
	struct win_bucket b[NB];
	struct win_ring r = {3600, NB, b, NULL, 0};
	uint64_t all[WIN_M__COUNT];
	unsigned seed = 7;

	win_ring_reset(&r);
	for (int64_t id = 990; id < 1010; id += 1 + (int64_t)(seed % 2)) {
		uint64_t add[WIN_M__COUNT];

		for (int m = 0; m < WIN_M__COUNT; m++)
			add[m] = (seed = seed * 1103515245u + 12345u) % 1000;
		win_ring_add(&r, id, add);
	}
	for (int64_t from = 995; from <= 1012; from++) {
		for (int64_t to = from - 1; to <= 1012; to++) {
			win_ring_sum_all(&r, from, to, all);
			for (int m = 0; m < WIN_M__COUNT; m++)
				TG_CHECK_INT(all[m], to < from ? 0 : win_ring_sum(&r, from, to, m));
		}
	}
}

/* Every kind of window the engine counts over (budget.c limit_window). */
static const struct win_def all_defs[] = {
    {WIN_MINUTE, WIN_MINUTE, false, 0}, {WIN_HOUR, WIN_HOUR, false, 0},
    {WIN_DAY, WIN_DAY, false, 0},	{WIN_MONTH, WIN_DAY, false, 0},
    {WIN_HOUR, WIN_MINUTE, true, 60},	{WIN_DAY, WIN_HOUR, true, 24},
    {WIN_MONTH, WIN_DAY, true, 30},	{WIN_MONTH, WIN_DAY, true, 7},
    {WIN_MONTH, WIN_DAY, true, 60},
};

struct clock_row {
	const char *name;
	int64_t before, t; /* the clock is set at before, then at t */
};

/* The cached clock gives win_span and win_reset_at of every window, whatever it held. */
static void clock_matches_calendar_across_boundaries(void)
{
	const struct clock_row rows[] = {
	    {"same minute (cached)", at(2026, 11, 23, 14, 59, 0), at(2026, 11, 23, 14, 59, 59)},
	    {"into the next minute", at(2026, 11, 23, 14, 58, 59), at(2026, 11, 23, 14, 59, 0)},
	    {"into the next hour", at(2026, 11, 23, 14, 59, 59), at(2026, 11, 23, 15, 0, 0)},
	    {"into the next day", at(2026, 11, 23, 23, 59, 59), at(2026, 11, 24, 0, 0, 0)},
	    {"into December", at(2026, 11, 30, 23, 59, 59), at(2026, 12, 1, 0, 0, 0)},
	    {"into the next year", at(2026, 12, 31, 23, 59, 59), at(2027, 1, 1, 0, 0, 0)},
	    {"onto a leap day", at(2028, 2, 28, 23, 59, 59), at(2028, 2, 29, 0, 0, 0)},
	    {"off a leap day", at(2028, 2, 29, 23, 59, 59), at(2028, 3, 1, 0, 0, 0)},
	    {"back a month (a settle of an older call)", at(2026, 12, 1, 0, 0, 0),
	     at(2026, 11, 30, 23, 59, 59)},
	    {"back within the minute", at(2026, 11, 23, 14, 59, 30), at(2026, 11, 23, 14, 59, 1)},
	    {"last second of a minute", at(2026, 11, 23, 14, 0, 1), at(2026, 11, 23, 14, 0, 59)},
	    {"before the epoch", 5, -1},
	};

	for (size_t i = 0; i < TG_NCASES(rows); i++) {
		struct win_clock c = {0};
		bool same = true;

		win_clock_set(&c, rows[i].before);
		win_clock_set(&c, rows[i].t);
		for (size_t k = 0; k < TG_NCASES(all_defs); k++) {
			int64_t f1, t1, f2, t2;

			win_span(&all_defs[k], rows[i].t, &f1, &t1);
			win_clock_span(&c, &all_defs[k], &f2, &t2);
			same = same && f1 == f2 && t1 == t2 &&
			       win_reset_at(&all_defs[k], rows[i].t) ==
				   win_clock_reset_at(&c, &all_defs[k]);
		}
		if (!same)
			printf("#   row '%s'\n", rows[i].name);
		TG_CHECK(same);
	}
}

/* Running totals of calendar and rolling windows read across their boundaries. */
struct total_row {
	const char *name;
	int64_t t;	 /* the instant the window is read at */
	unsigned def;	 /* all_defs index */
	uint64_t tokens; /* expected */
};

static void running_totals_across_boundaries(void)
{
	struct win_bucket mb[64], db[62];
	struct win_total mt[2], dt[3];
	struct win_ring mr = {60, 64, mb, mt, 2}, dr = {86400, 62, db, dt, 3};
	const int64_t adds[] = {at(2026, 10, 31, 23, 59, 59), at(2026, 11, 30, 23, 59, 30),
				at(2026, 11, 30, 23, 59, 59), at(2026, 12, 1, 0, 0, 0)};
	const struct total_row rows[] = {
	    /* each add is 1, 10, 100, 1000 tokens: the sum says which buckets were counted */
	    {"minute before its end", at(2026, 11, 30, 23, 59, 59), 0, 110},
	    {"minute after its end", at(2026, 12, 1, 0, 0, 0), 0, 1000},
	    {"month before its end", at(2026, 11, 30, 23, 59, 59), 3, 110},
	    {"month after its end", at(2026, 12, 1, 0, 0, 0), 3, 1000},
	    {"rolling hour holds the last minute", at(2026, 12, 1, 0, 30, 0), 4, 1110},
	    {"rolling hour at 00:59:59 still holds 23:59", at(2026, 12, 1, 0, 59, 59), 4, 1110},
	    {"rolling hour lets 23:59 go at 01:00", at(2026, 12, 1, 1, 0, 0), 4, 1000},
	    {"rolling hour lets 00:00 go at 01:01", at(2026, 12, 1, 1, 1, 0), 4, 0},
	    {"rolling 30 days on Nov 30 holds Oct 31", at(2026, 11, 30, 12, 0, 0), 6, 111},
	    {"rolling 30 days lets Oct 31 go on Dec 1", at(2026, 12, 1, 0, 0, 0), 6, 1110},
	    {"rolling 30 days lets Nov 30 go on Dec 31", at(2026, 12, 31, 0, 0, 0), 6, 1000},
	    {"read back in time (an older call's settle)", at(2026, 11, 30, 23, 59, 59), 6, 111},
	    {"month, back in November", at(2026, 11, 15, 0, 0, 0), 3, 0},
	    {"rolling 30 days at year's end", at(2027, 1, 1, 0, 0, 0), 6, 0},
	};
	uint64_t v = 1;

	win_ring_reset(&mr);
	win_ring_reset(&dr);
	for (size_t i = 0; i < TG_NCASES(adds); i++, v *= 10) {
		uint64_t add[WIN_M__COUNT] = {1, v, 0, 0, 0};

		win_ring_add(&mr, win_bucket_id(adds[i], 60), add);
		win_ring_add(&dr, win_bucket_id(adds[i], 86400), add);
	}
	for (size_t i = 0; i < TG_NCASES(rows); i++) {
		const struct win_def *w = &all_defs[rows[i].def];
		struct win_ring *r = w->ring_unit == WIN_MINUTE ? &mr : &dr;
		unsigned k = rows[i].def == 0 ? 0 : rows[i].def == 3 ? 0 : rows[i].def == 4 ? 1 : 2;
		struct win_clock c = {0};
		uint64_t fresh[WIN_M__COUNT];
		int64_t from, to;
		const uint64_t *sum;

		win_clock_set(&c, rows[i].t);
		win_clock_span(&c, w, &from, &to);
		sum = win_ring_total(r, k, from, to);
		win_ring_sum_all(r, from, to, fresh);
		if (sum[WIN_M_TOKENS] != rows[i].tokens)
			printf("#   row '%s'\n", rows[i].name);
		TG_CHECK_INT(sum[WIN_M_TOKENS], rows[i].tokens);
		TG_CHECK_INT(sum[WIN_M_REQUESTS], fresh[WIN_M_REQUESTS]);
	}
}

/* A bucket evicted from the ring leaves every total that counted it, even a stale one. */
static void running_totals_follow_evictions_and_puts(void)
{
	struct win_bucket b[NB];
	struct win_total t[1];
	struct win_ring r = {60, NB, b, t, 1};
	uint64_t one[WIN_M__COUNT] = {1, 10, 0, 0, 0}, four[WIN_M__COUNT] = {4, 40, 0, 0, 0};

	win_ring_reset(&r);
	win_ring_add(&r, 100, one);
	win_ring_add(&r, 103, one);
	TG_CHECK_INT(win_ring_total(&r, 0, 100, 107)[WIN_M_TOKENS], 20);
	/* 108 takes 100's slot while the total still spans 100..107 */
	win_ring_add(&r, 108, one);
	TG_CHECK_INT(t[0].sum[WIN_M_TOKENS], 10);
	TG_CHECK_INT(win_ring_total(&r, 0, 101, 108)[WIN_M_TOKENS], 20);
	/* an add to a bucket the total counts (103: 1 + 4 requests) */
	win_ring_add(&r, 103, four);
	TG_CHECK_INT(t[0].sum[WIN_M_TOKENS], 60);
	/* a late add (older than the slot holds) changes nothing */
	TG_CHECK(!win_ring_add(&r, 100, one));
	TG_CHECK_INT(win_ring_total(&r, 0, 101, 108)[WIN_M_REQUESTS], 6);
	/* a span longer than the ring is clamped, as win_ring_sum_all does */
	TG_CHECK_INT(win_ring_total(&r, 0, 0, 108)[WIN_M_TOKENS], 60);
	win_ring_reset(&r);
	TG_CHECK_INT(win_ring_total(&r, 0, 101, 108)[WIN_M_TOKENS], 0);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * Random adds, puts (late, current, far ahead), resets and reads of random spans (moving
 * forward, back, jumping, longer than the ring): every total always equals a fresh sum.
 */
static void running_totals_equal_fresh_sums_at_random(void)
{
	struct win_bucket b[NB];
	struct win_total t[3];
	struct win_ring r = {60, NB, b, t, 3};
	uint64_t seed = 0x9e3779b97f4a7c15ull, fresh[WIN_M__COUNT];
	int64_t now = 1000;
	unsigned bad = 0, reads = 0;

	win_ring_reset(&r);
	for (int step = 0; step < 200000; step++) {
		uint64_t op = rnd(&seed) % 100, v[WIN_M__COUNT];
		int64_t id = now - (int64_t)(rnd(&seed) % 12) + 2;

		for (int m = 0; m < WIN_M__COUNT; m++)
			v[m] = rnd(&seed) % 1000;
		if (op < 2)
			v[WIN_M_COST] = UINT64_MAX - rnd(&seed) % 3; /* saturation */
		if (op < 45) {
			win_ring_add(&r, id, v);
		} else if (op == 45) {
			win_ring_reset(&r);
		} else if (op < 60) {
			now += (int64_t)(rnd(&seed) % 3) - (op == 59 ? 20 : 0);
		} else {
			unsigned k = (unsigned)(rnd(&seed) % 3);
			int64_t to = now - (int64_t)(rnd(&seed) % 3);
			int64_t from = to - (int64_t)(rnd(&seed) % (op < 62 ? 20 : NB));
			const uint64_t *sum = win_ring_total(&r, k, from, to);

			win_ring_sum_all(&r, from, to, fresh);
			bad += memcmp(sum, fresh, sizeof(fresh)) != 0;
			reads++;
		}
		/* and between reads, every total kept in step with every change */
		for (unsigned k = 0; k < 3; k++) {
			if (t[k].from > t[k].to || t[k].stale)
				continue;
			win_ring_sum_all(&r, t[k].from, t[k].to, fresh);
			bad += memcmp(t[k].sum, fresh, sizeof(fresh)) != 0;
		}
	}
	printf("#   %u reads, %u mismatches\n", reads, bad);
	TG_CHECK(reads > 50000);
	TG_CHECK_INT(bad, 0);
}

static const struct tg_case cases[] = {
    {"calendar minute/hour/day/month periods across boundaries, leap years, year wrap",
     calendar_periods_across_boundaries},
    {"a ring reuses slots for newer buckets and drops late adds",
     ring_reuses_slots_and_drops_late_adds},
    {"a calendar month window empties at the first of next month",
     calendar_month_window_resets_at_month_end},
    {"calendar minute and hour windows empty at their end",
     calendar_minute_hour_day_windows_expire_at_their_end},
    {"a rolling 60-minute window lets buckets go one by one, and says when",
     rolling_windows_expire_bucket_by_bucket},
    {"a rolling 30-day window crosses the month and the year", rolling_days_cross_month_and_year},
    {"the one-walk sum of every metric equals the per-metric sums", sum_all_equals_sum_per_metric},
    {"the cached clock gives every window's span and reset across minute, hour, day, month, "
     "year and leap-day boundaries, forward and back",
     clock_matches_calendar_across_boundaries},
    {"running totals of calendar and rolling windows across boundaries and rolling expiry",
     running_totals_across_boundaries},
    {"running totals follow evictions, persisted buckets, late adds and resets",
     running_totals_follow_evictions_and_puts},
    {"running totals equal a fresh ring sum after 200,000 random changes and reads",
     running_totals_equal_fresh_sums_at_random},
};

int main(void)
{
	return tg_run("windows", cases, TG_NCASES(cases));
}
