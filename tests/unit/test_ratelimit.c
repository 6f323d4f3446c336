/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Per-key request rates (userspace/ratelimit.h): the per-second bucket and the minute and
 * hour windows decide exactly, a refusal names its window and spends nothing (earlier
 * windows are refunded), dry runs change nothing, new limits apply to a live slot, and 4
 * threads charging one slot never get more than burst + rate * t through any window. Fake
 * clock values throughout, except the concurrency case, which checks a bound, not a time.
 */
#include <errno.h>
#include <pthread.h>

#include "ratelimit.h"
#include "tg_test.h"
#include "util.h"

#define MS  1000000ULL
#define SEC 1000000000ULL
#define T0  (1000 * SEC) /* fake CLOCK_MONOTONIC start */

static struct limits lim_of(uint64_t rps_milli, uint64_t burst, uint64_t rpm, uint64_t rph)
{
	struct limits l;

	memset(&l, 0, sizeof(l));
	l.v[LIMIT_RPS] = rps_milli;
	l.v[LIMIT_BURST] = burst;
	l.v[LIMIT_RPM] = rpm;
	l.v[LIMIT_RPH] = rph;
	return l;
}

/* n charges at one instant, then the verdict of the last one. */
struct step {
	uint64_t at_ms; /* after T0 */
	int n;
	int want_allowed; /* how many of the n pass */
	bool allowed;	  /* the last verdict */
	enum rl_window window;
	uint64_t remaining, retry_ms, reset_ms;
};

struct scenario {
	const char *name;
	uint64_t rps_milli, burst, rpm, rph;
	struct step steps[6]; /* ends at n == 0 */
};

static const struct scenario scenarios[] = {
    {"second: burst 20 at 10/s, then one per 100 ms to the ns",
     10000,
     20,
     0,
     0,
     {{0, 20, 20, true, RL_SECOND, 0, 0, 2000},
      {0, 1, 0, false, RL_SECOND, 0, 100, 2000},
      {99, 1, 0, false, RL_SECOND, 0, 1, 1901},
      {100, 1, 1, true, RL_SECOND, 0, 0, 2000},
      {100, 1, 0, false, RL_SECOND, 0, 100, 2000}}},
    {"minute: 5/min refuses the 6th though the second bucket has room",
     10000,
     20,
     5,
     0,
     {{0, 5, 5, true, RL_MINUTE, 0, 0, 60000},
      {0, 1, 0, false, RL_MINUTE, 0, 12000, 60000},
      {11999, 1, 0, false, RL_MINUTE, 0, 1, 48001},
      {12000, 1, 1, true, RL_MINUTE, 0, 0, 60000}}},
    {"hour: 3/h refuses the 4th with a 20-minute retry",
     1000,
     5,
     0,
     3,
     {{0, 3, 3, true, RL_HOUR, 0, 0, 3600000}, {0, 1, 0, false, RL_HOUR, 0, 1200000, 3600000}}},
    {"allowed: the window with the fewest left is reported, ties to the shorter",
     10000,
     20,
     20,
     0,
     {{0, 1, 1, true, RL_SECOND, 19, 0, 100},
      {0, 1, 1, true, RL_SECOND, 18, 0, 200},
      {2000, 1, 1, true, RL_MINUTE, 17, 0, 7000}}},
    {"two windows refuse: the one refusing longer is reported",
     1000,
     2,
     2,
     0,
     {{0, 2, 2, true, RL_SECOND, 0, 0, 2000}, {0, 1, 0, false, RL_MINUTE, 0, 30000, 60000}}},
};

static void run_scenario(const struct scenario *sc, struct tg_slot *slot)
{
	struct limits lim = lim_of(sc->rps_milli, sc->burst, sc->rpm, sc->rph);
	struct rl_verdict v;

	slots_assign(slot, &lim);
	for (const struct step *st = sc->steps; st->n; st++) {
		int passed = 0, failed = tg_failed;

		for (int i = 0; i < st->n; i++)
			passed += ratelimit_charge(slot, &lim, T0 + st->at_ms * MS, false, &v);
		TG_CHECK_INT(passed, st->want_allowed);
		TG_CHECK_INT(v.allowed, st->allowed);
		TG_CHECK_STR(rl_window_name(v.window), rl_window_name(st->window));
		TG_CHECK_INT(v.remaining, st->remaining);
		TG_CHECK_INT(v.retry_after_ms, st->retry_ms);
		TG_CHECK_INT(v.reset_ms, st->reset_ms);
		if (tg_failed != failed)
			printf("#   in: %s, step at %llu ms\n", sc->name,
			       (unsigned long long)st->at_ms);
	}
}

static void scenarios_decide_exactly(void)
{
	struct slots *s = slots_open(4);

	TG_REQUIRE(s);
	for (size_t i = 0; i < TG_NCASES(scenarios); i++)
		run_scenario(&scenarios[i], slots_at(s, 1));
	slots_close(s);
}

/* slots_wrap: the caller's memory is the array (as the mmapped tg_slots map will be). */
static void wrapped_memory_is_the_array(void)
{
	struct tg_slot *mem = calloc(8, sizeof(*mem));
	struct limits lim = lim_of(10000, 20, 0, 0);
	struct rl_verdict v;
	struct slots *s;

	TG_REQUIRE(mem);
	errno = 0;
	TG_CHECK(slots_wrap(NULL, 8) == NULL && errno == EINVAL);
	errno = 0;
	TG_CHECK(slots_wrap(mem, 0) == NULL && errno == EINVAL);
	s = slots_wrap(mem, 8);
	TG_REQUIRE(s);
	TG_CHECK_INT(slots_capacity(s), 8);
	TG_CHECK(slots_at(s, 3) == &mem[3]);
	TG_CHECK(slots_at(s, 8) == NULL);
	slots_assign(slots_at(s, 3), &lim);
	TG_CHECK(ratelimit_charge(slots_at(s, 3), &lim, T0, false, &v));
	TG_CHECK_INT(mem[3].allowed, 1);
	TG_CHECK(mem[3].win[0].tat_ns > T0);
	TG_CHECK_INT(mem[3].flags, TG_SLOT_ACTIVE);
	slots_close(s); /* frees the wrapper only: the memory stays ours and intact */
	TG_CHECK_INT(mem[3].allowed, 1);
	mem[7].refused = 5;
	TG_CHECK_INT(mem[7].refused, 5);
	free(mem);
}

/* A limits change through slots_set_limits keeps what the key has spent. */
static void set_limits_keeps_tats(void)
{
	struct limits lim = lim_of(10000, 20, 60, 0), more = lim_of(20000, 40, 0, 3600);
	struct slots *s = slots_open(1);
	struct tg_slot *slot = slots_at(s, 0);
	struct rl_verdict v;
	uint64_t tat[3];
	uint32_t gen;

	TG_REQUIRE(s);
	slots_assign(slot, &lim);
	for (int i = 0; i < 7; i++)
		ratelimit_charge(slot, &lim, T0, false, &v);
	for (int i = 0; i < 3; i++)
		tat[i] = slot->win[i].tat_ns;
	gen = slot->key_gen;
	TG_CHECK(slots_limits_match(slot, &lim));
	TG_CHECK(!slots_limits_match(slot, &more));
	slots_set_limits(slot, &more);
	TG_CHECK(slots_limits_match(slot, &more));
	for (int i = 0; i < 3; i++)
		TG_CHECK_INT(slot->win[i].tat_ns, tat[i]);
	TG_CHECK_INT(slot->key_gen, gen);
	TG_CHECK_INT(slot->allowed, 7);
	TG_CHECK_INT(slot->win[RL_MINUTE].interval_ns, 0); /* the minute window is gone */
	TG_CHECK_INT(slot->win[RL_HOUR].interval_ns, SEC);
	/* 700 ms of debt at 10/s is 14 requests at 20/s: 26 of 40 pass at T0, then refusal */
	for (int i = 0; i < 26; i++)
		TG_CHECK(ratelimit_charge(slot, &more, T0, false, &v));
	TG_CHECK(!ratelimit_charge(slot, &more, T0, false, &v));
	slots_set_flags(slot, 0);
	TG_CHECK_INT(slots_flags(slot), 0);
	slots_close(s);
}

static void slot_array_and_assignment(void)
{
	struct slots *s = slots_open(1000);
	struct limits lim = lim_of(10000, 20, 0, 0);
	struct rl_verdict v;
	struct tg_slot *slot;

	TG_REQUIRE(s);
	TG_CHECK_INT(slots_capacity(s), 1000);
	TG_CHECK(slots_at(s, 999) != NULL);
	TG_CHECK(slots_at(s, 1000) == NULL);
	slot = slots_at(s, 7);
	TG_CHECK_INT(slot->flags, 0);
	slots_assign(slot, &lim);
	TG_CHECK_INT(slot->flags, TG_SLOT_ACTIVE);
	TG_CHECK_INT(slot->key_gen, 1);
	TG_CHECK_INT(slot->win[0].interval_ns, 100 * MS);
	TG_CHECK_INT(slot->win[0].tolerance_ns, 1900 * MS);
	ratelimit_charge(slot, &lim, T0, false, &v);
	TG_CHECK_INT(slot->win[0].tat_ns, T0 + 100 * MS);
	TG_CHECK_INT(slot->allowed, 1);
	slots_assign(slot, &lim); /* a new key in the slot starts idle */
	TG_CHECK_INT(slot->key_gen, 2);
	TG_CHECK_INT(slot->win[0].tat_ns, 0);
	TG_CHECK_INT(slot->allowed, 0);
	TG_CHECK(slots_open(0) == NULL);
	slots_close(s);
	slots_close(NULL);
}

static void refusal_refunds_earlier_windows(void)
{
	static const struct {
		const char *name;
		struct limits lim;
		int fill; /* charges that pass before the refusal */
		enum rl_window window;
	} rows[] = {
	    {"minute refuses: second bucket unchanged", {.v = {10000, 20, 5, 0}}, 5, RL_MINUTE},
	    {"hour refuses: second and minute unchanged", {.v = {10000, 20, 10, 3}}, 3, RL_HOUR},
	};
	struct slots *s = slots_open(1);
	struct tg_slot *slot = slots_at(s, 0), before;
	struct rl_verdict v;

	TG_REQUIRE(s);
	for (size_t i = 0; i < TG_NCASES(rows); i++) {
		slots_assign(slot, &rows[i].lim);
		for (int n = 0; n < rows[i].fill; n++)
			TG_CHECK(ratelimit_charge(slot, &rows[i].lim, T0, false, &v));
		before = *slot;
		TG_CHECK(!ratelimit_charge(slot, &rows[i].lim, T0, false, &v));
		TG_CHECK_INT(v.window, rows[i].window);
		TG_CHECK_INT(slot->win[0].tat_ns, before.win[0].tat_ns);
		TG_CHECK_INT(slot->win[1].tat_ns, before.win[1].tat_ns);
		TG_CHECK_INT(slot->win[2].tat_ns, before.win[2].tat_ns);
		TG_CHECK_INT(slot->refused, 1);
		TG_CHECK_INT(slot->allowed, rows[i].fill);
		if (tg_failed)
			printf("#   in: %s\n", rows[i].name);
	}
	slots_close(s);
}

static bool verdict_eq(const struct rl_verdict *a, const struct rl_verdict *b)
{
	return a->allowed == b->allowed && a->window == b->window && a->limit == b->limit &&
	       a->remaining == b->remaining && a->reset_ms == b->reset_ms &&
	       a->retry_after_ms == b->retry_after_ms && a->rate == b->rate;
}

static void dry_run_changes_nothing(void)
{
	struct limits lim = lim_of(10000, 20, 30, 100);
	struct slots *s = slots_open(1);
	struct tg_slot *slot = slots_at(s, 0), before;
	struct rl_verdict dry, real;

	TG_REQUIRE(s);
	slots_assign(slot, &lim);
	for (int i = 0; i < 40; i++) {
		before = *slot;
		ratelimit_charge(slot, &lim, T0 + (uint64_t)i * MS, true, &dry);
		TG_CHECK(memcmp(&before, slot, sizeof(before)) == 0);
		/* and it predicts exactly what the real charge then does */
		ratelimit_charge(slot, &lim, T0 + (uint64_t)i * MS, false, &real);
		TG_CHECK(verdict_eq(&dry, &real));
	}
	TG_CHECK_INT(slot->allowed, 20);
	TG_CHECK_INT(slot->refused, 20);
	slots_close(s);
}

static void new_limits_apply_to_a_live_slot(void)
{
	struct limits lim = lim_of(10000, 20, 0, 0);
	struct slots *s = slots_open(1);
	struct tg_slot *slot = slots_at(s, 0);
	struct rl_verdict v;

	TG_REQUIRE(s);
	slots_assign(slot, &lim);
	for (int i = 0; i < 20; i++)
		ratelimit_charge(slot, &lim, T0, false, &v);
	TG_CHECK(!ratelimit_charge(slot, &lim, T0, false, &v));
	lim.v[LIMIT_BURST] = 40; /* raised: room again at once, kernel sees the new tolerance */
	TG_CHECK(ratelimit_charge(slot, &lim, T0, false, &v));
	TG_CHECK_INT(v.limit, 40);
	TG_CHECK_INT(v.remaining, 19); /* 21 of 40 used */
	TG_CHECK_INT(slot->win[0].tolerance_ns, 39 * 100 * MS);
	lim = lim_of(1000, 1, 0, 0); /* lowered to 1/s: refused until the debt drains */
	TG_CHECK(!ratelimit_charge(slot, &lim, T0, false, &v));
	TG_CHECK_INT(v.retry_after_ms, 2100);
	TG_CHECK_INT(slot->win[0].interval_ns, SEC);
	TG_CHECK_INT(slot->win[0].tolerance_ns, 0);
	lim = lim_of(10000, 20, 0, 0);
	TG_CHECK(ratelimit_charge(slot, &lim, T0 + 10 * SEC, false, &v));
	lim.v[LIMIT_RPM] = 2; /* a minute window added later counts from now */
	TG_CHECK(ratelimit_charge(slot, &lim, T0 + 10 * SEC, false, &v));
	TG_CHECK(ratelimit_charge(slot, &lim, T0 + 10 * SEC, false, &v));
	TG_CHECK(!ratelimit_charge(slot, &lim, T0 + 10 * SEC, false, &v));
	TG_CHECK_INT(v.window, RL_MINUTE);
	TG_CHECK_INT(v.limit, 2);
	slots_close(s);
}

static void status_reports_every_window_without_charging(void)
{
	struct limits lim = lim_of(10000, 20, 600, 0);
	struct slots *s = slots_open(1);
	struct tg_slot *slot = slots_at(s, 0), before;
	struct rl_verdict out[RL__COUNT], v;

	TG_REQUIRE(s);
	slots_assign(slot, &lim);
	ratelimit_status(slot, &lim, T0, out);
	TG_CHECK(out[RL_SECOND].allowed && out[RL_MINUTE].allowed);
	TG_CHECK_INT(out[RL_SECOND].remaining, 20);
	TG_CHECK_INT(out[RL_SECOND].reset_ms, 0);
	TG_CHECK_INT(out[RL_MINUTE].remaining, 600);
	TG_CHECK_INT(out[RL_MINUTE].limit, 600);
	for (int i = 0; i < 20; i++)
		ratelimit_charge(slot, &lim, T0, false, &v);
	before = *slot;
	ratelimit_status(slot, &lim, T0, out);
	TG_CHECK(memcmp(&before, slot, sizeof(before)) == 0);
	TG_CHECK(!out[RL_SECOND].allowed);
	TG_CHECK_INT(out[RL_SECOND].remaining, 0);
	TG_CHECK_INT(out[RL_SECOND].retry_after_ms, 100);
	TG_CHECK_INT(out[RL_SECOND].reset_ms, 2000);
	TG_CHECK(out[RL_MINUTE].allowed);
	TG_CHECK_INT(out[RL_MINUTE].remaining, 580);
	TG_CHECK_INT(out[RL_MINUTE].reset_ms, 2000); /* 20 * 100 ms */
	/* no hour window: it allows and reports zeros */
	TG_CHECK(out[RL_HOUR].allowed);
	TG_CHECK_INT(out[RL_HOUR].window, RL_HOUR);
	TG_CHECK_INT(out[RL_HOUR].limit, 0);
	TG_CHECK_INT(out[RL_HOUR].remaining, 0);
	slots_close(s);
}

static void paced_client_is_never_refused(void)
{
	struct limits lim = lim_of(10000, 1, 300, 18000); /* 10/s, 5/s, 5/s */
	struct slots *s = slots_open(1);
	struct tg_slot *slot = slots_at(s, 0);
	struct rl_verdict v;
	int refused = 0;

	TG_REQUIRE(s);
	slots_assign(slot, &lim);
	for (uint64_t i = 0; i < 20000; i++)
		refused += !ratelimit_charge(slot, &lim, T0 + i * 200 * MS, false, &v);
	TG_CHECK_INT(refused, 0);
	slots_close(s);
}

struct worker {
	struct tg_slot *slot;
	struct limits lim;
	int attempts;
	uint64_t allowed;
};

static void *charge_worker(void *p)
{
	struct worker *w = p;
	struct rl_verdict v;

	for (int i = 0; i < w->attempts; i++)
		w->allowed +=
		    ratelimit_charge(w->slot, &w->lim, (uint64_t)tg_now_mono_ns(), false, &v);
	return NULL;
}

/* requests allowed by a window of `per` requests per period over elapsed ns, plus its burst */
static uint64_t window_bound(uint64_t burst, uint64_t per, uint64_t period_ns, uint64_t elapsed)
{
	return burst + (uint64_t)((unsigned __int128)per * elapsed / period_ns) + 1;
}

static void four_threads_keep_every_window_bound(void)
{
	static const struct {
		const char *name;
		struct limits lim;
		uint64_t min_allowed; /* at least the binding window's burst gets through */
	} rows[] = {
	    {"second binds (2000/s burst 50)", {.v = {2000000, 50, 600000, 0}}, 50},
	    {"second at 1M/s burst 1: many allowed charges contend",
	     {.v = {1000000000, 1, 0, 0}},
	     1},
	    {"minute binds (300/min)", {.v = {1000000000, 1000, 300, 0}}, 300},
	    {"hour binds (200/h)", {.v = {1000000000, 1000, 100000, 200}}, 200},
	};
	struct slots *s = slots_open(1);

	TG_REQUIRE(s);
	for (size_t r = 0; r < TG_NCASES(rows); r++) {
		const struct limits *l = &rows[r].lim;
		struct worker w[4];
		pthread_t th[4];
		uint64_t start, elapsed, total = 0;

		slots_assign(slots_at(s, 0), l);
		start = (uint64_t)tg_now_mono_ns();
		for (int i = 0; i < 4; i++) {
			w[i] = (struct worker){slots_at(s, 0), *l, 100000, 0};
			TG_REQUIRE(pthread_create(&th[i], NULL, charge_worker, &w[i]) == 0);
		}
		for (int i = 0; i < 4; i++) {
			pthread_join(th[i], NULL);
			total += w[i].allowed;
		}
		elapsed = (uint64_t)tg_now_mono_ns() - start;
		TG_CHECK(total <=
			 window_bound(l->v[LIMIT_BURST], l->v[LIMIT_RPS], 1000 * SEC, elapsed));
		if (l->v[LIMIT_RPM])
			TG_CHECK(total <=
				 window_bound(l->v[LIMIT_RPM], l->v[LIMIT_RPM], 60 * SEC, elapsed));
		if (l->v[LIMIT_RPH])
			TG_CHECK(total <= window_bound(l->v[LIMIT_RPH], l->v[LIMIT_RPH], 3600 * SEC,
						       elapsed));
		TG_CHECK(total >= rows[r].min_allowed);
		TG_CHECK_INT(slots_at(s, 0)->allowed, total);
		TG_CHECK_INT(slots_at(s, 0)->allowed + slots_at(s, 0)->refused, 400000);
		if (tg_failed)
			printf("#   in: %s: %llu allowed in %llu ns\n", rows[r].name,
			       (unsigned long long)total, (unsigned long long)elapsed);
	}
	slots_close(s);
}

struct hdrs {
	int n;
	char name[8][40];
	char value[8][40];
};

static void add_hdr(void *ctx, const char *name, const char *value)
{
	struct hdrs *h = ctx;

	if (h->n < 8) {
		snprintf(h->name[h->n], sizeof(h->name[0]), "%s", name);
		snprintf(h->value[h->n], sizeof(h->value[0]), "%s", value);
	}
	h->n++;
}

static const char *hdr(const struct hdrs *h, const char *name)
{
	for (int i = 0; i < h->n && i < 8; i++)
		if (strcmp(h->name[i], name) == 0)
			return h->value[i];
	return NULL;
}

static void headers_for_allowed_and_refused(void)
{
	static const struct {
		struct rl_verdict v;
		int n; /* headers expected */
		const char *limit, *remaining, *reset, *reset_s, *retry;
	} rows[] = {
	    {{true, RL_SECOND, 20, 19, 100, 0, 10.0}, 6, "20", "19", "0.1s", "1", NULL},
	    {{false, RL_SECOND, 20, 0, 2000, 100, 10.0}, 7, "20", "0", "2s", "2", "1"},
	    {{false, RL_MINUTE, 600, 0, 60000, 1500, 600.0}, 7, "600", "0", "60s", "60", "2"},
	    {{false, RL_SECOND, 5, 0, 20, 0, 1000.0}, 7, "5", "0", "0.02s", "1", "1"},
	    {{true, RL_HOUR, 100, 42, 1234567, 0, 100.0},
	     6,
	     "100",
	     "42",
	     "1234.567s",
	     "1235",
	     NULL},
	};

	for (size_t i = 0; i < TG_NCASES(rows); i++) {
		struct hdrs h = {0};

		ratelimit_headers(&rows[i].v, add_hdr, &h);
		TG_CHECK_INT(h.n, rows[i].n);
		TG_CHECK_STR(hdr(&h, "x-ratelimit-limit-requests"), rows[i].limit);
		TG_CHECK_STR(hdr(&h, "x-ratelimit-remaining-requests"), rows[i].remaining);
		TG_CHECK_STR(hdr(&h, "x-ratelimit-reset-requests"), rows[i].reset);
		TG_CHECK_STR(hdr(&h, "X-RateLimit-Limit"), rows[i].limit);
		TG_CHECK_STR(hdr(&h, "X-RateLimit-Remaining"), rows[i].remaining);
		TG_CHECK_STR(hdr(&h, "X-RateLimit-Reset"), rows[i].reset_s);
		if (rows[i].retry)
			TG_CHECK_STR(hdr(&h, "Retry-After"), rows[i].retry);
		else
			TG_CHECK(hdr(&h, "Retry-After") == NULL);
	}
}

static void message_names_window_value_and_times(void)
{
	static const struct {
		struct rl_verdict v;
		const char *want;
	} rows[] = {
	    {{false, RL_SECOND, 20, 0, 2000, 100, 10.0},
	     "Rate limit exceeded for key k7dq2m9xa4bz: 20 requests per second (rate 10/s, "
	     "burst 20); retry after 0.1 s (bucket full again in 2.0 s)"},
	    {{false, RL_SECOND, 1, 0, 2000, 1999, 0.5},
	     "Rate limit exceeded for key k7dq2m9xa4bz: 1 request per second (rate 0.5/s, "
	     "burst 1); retry after 1.999 s (bucket full again in 2.0 s)"},
	    {{false, RL_MINUTE, 600, 0, 60000, 100, 600.0},
	     "Rate limit exceeded for key k7dq2m9xa4bz: 600 requests per minute; retry after "
	     "0.1 s (bucket full again in 60.0 s)"},
	    {{false, RL_HOUR, 3, 0, 3600000, 1200000, 3.0},
	     "Rate limit exceeded for key k7dq2m9xa4bz: 3 requests per hour; retry after "
	     "1200.0 s (bucket full again in 3600.0 s)"},
	};
	char buf[256];

	for (size_t i = 0; i < TG_NCASES(rows); i++) {
		ratelimit_message(&rows[i].v, "k7dq2m9xa4bz", buf, sizeof(buf));
		TG_CHECK_STR(buf, rows[i].want);
	}
	ratelimit_message(&rows[0].v, "k7dq2m9xa4bz", buf, 16); /* truncates, terminated */
	TG_CHECK_INT(strlen(buf), 15);
	TG_CHECK_STR(rl_window_name(RL_MINUTE), "minute");
}

static const struct tg_case cases[] = {
    {"slot array: bounds, assignment zeroes state and bumps key_gen", slot_array_and_assignment},
    {"second, minute, hour windows decide exactly (table)", scenarios_decide_exactly},
    {"a refusal by a later window refunds the earlier ones", refusal_refunds_earlier_windows},
    {"dry run changes nothing and predicts the real charge", dry_run_changes_nothing},
    {"changed limits take effect on a live slot", new_limits_apply_to_a_live_slot},
    {"slots_wrap: borrowed memory is the array; close leaves it", wrapped_memory_is_the_array},
    {"slots_set_limits: new parameters, TATs and key_gen kept", set_limits_keeps_tats},
    {"status reports all windows without charging", status_reports_every_window_without_charging},
    {"a client pacing under every window is never refused", paced_client_is_never_refused},
    {"4 threads x 100k charges: allowed <= burst + rate*t in every window",
     four_threads_keep_every_window_bound},
    {"headers for allowed and refused verdicts", headers_for_allowed_and_refused},
    {"refusal message names window, value and retry time", message_names_window_value_and_times},
};

int main(void)
{
	return tg_run("ratelimit", cases, TG_NCASES(cases));
}
