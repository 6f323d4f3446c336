/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests of the limits engine (budget.c) with an injected clock: reserve/settle
 * arithmetic, hard refusal with used + reserved + estimate, soft mode and the alert action
 * (allowed, annotated), per-limit actions, window rollover (calendar day, rolling hour),
 * concurrency, threads reserving on one key (exact totals, never over the budget), owner and
 * tenant subjects, restart (buckets loaded back), thresholds fired once, messages.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "budget.h"
#include "tg_test.h"
#include "windows.h"

#define T0	 1795446000 /* 2026-11-23T15:00:00Z */
#define MIDNIGHT 1795478400 /* 2026-11-24T00:00:00Z */

static struct budget *engine(enum limit_mode mode, enum limit_action action)
{
	struct budget_opts o = {true, mode, action, 800, 0, 1024, 10000};

	return budget_new(&o);
}

static void lim_zero(struct limits *l)
{
	memset(l, 0, sizeof(*l)); /* values and per-limit actions */
}

static struct budget_req req(const struct limits *l, uint64_t tokens, uint64_t cost, int64_t now)
{
	struct budget_req r = {"k7dq2m9xa4bz", l, "team:ml", NULL, {1, tokens, cost, 100, 0}, now};

	return r;
}

static void reserve_settle_arithmetic(void)
{
	struct budget *b = engine(LIMIT_MODE_HARD, LIMIT_ACT_BLOCK);
	struct limits l;
	struct budget_call c1, c2, c3;
	struct budget_verdict v;
	struct budget_req r;
	struct budget_hit st[BUDGET_STATUS_MAX];
	uint64_t actual[WIN_M__COUNT] = {1, 300, 0, 150, 20};

	TG_REQUIRE(b);
	lim_zero(&l);
	l.v[LIMIT_TPD] = 1000;
	r = req(&l, 400, 0, T0);
	TG_CHECK_INT(budget_reserve(b, &r, &c1, &v), 0);
	TG_CHECK(v.allowed && c1.held);
	TG_CHECK(v.has_tokens && v.tokens_limit == 1000 && v.tokens_remaining == 1000);
	TG_CHECK_INT(budget_reserve(b, &r, &c2, &v), 0);
	TG_CHECK(v.allowed);
	TG_CHECK_INT(v.tokens_remaining, 600);
	/* 400 + 400 reserved: another 400 would end at 1200 > 1000 */
	TG_CHECK_INT(budget_reserve(b, &r, &c3, &v), 0);
	TG_CHECK(!v.allowed && !c3.held);
	TG_CHECK_INT(v.hit.limit, LIMIT_TPD);
	TG_CHECK_INT(v.hit.used, 0);
	TG_CHECK_INT(v.hit.reserved, 800);
	TG_CHECK_INT(v.hit.estimate, 400);
	TG_CHECK_INT(v.hit.action, LIMIT_ACT_BLOCK);
	TG_CHECK_STR(v.hit.subject, "key:k7dq2m9xa4bz");
	TG_CHECK_INT(v.hit.reset_at, MIDNIGHT);
	TG_CHECK_INT(v.hit.retry_after_sec, 9 * 3600);
	/* settling the first at 300 releases its 400: used 300 + reserved 400 + 400 > 1000 */
	budget_settle(b, &c1, actual);
	TG_CHECK(!c1.held);
	TG_CHECK_INT(budget_reserve(b, &r, &c3, &v), 0);
	TG_CHECK(!v.allowed);
	budget_release(b, &c2);
	TG_CHECK_INT(budget_reserve(b, &r, &c3, &v), 0);
	TG_CHECK(v.allowed);
	TG_CHECK_INT(budget_status(b, "key:k7dq2m9xa4bz", &l, T0, st, BUDGET_STATUS_MAX), 1);
	TG_CHECK_INT(st[0].used, 300);
	TG_CHECK_INT(st[0].reserved, 400);
	budget_settle(b, &c3, actual);
	TG_CHECK_INT(budget_status(b, "key:k7dq2m9xa4bz", &l, T0, st, BUDGET_STATUS_MAX), 1);
	TG_CHECK_INT(st[0].used, 600);
	TG_CHECK_INT(st[0].reserved, 0);
	/* the owner counted the same calls, though it has no limits */
	TG_CHECK_INT(budget_status(b, "team:ml", NULL, T0, st, BUDGET_STATUS_MAX), 0);
	budget_free(b);
}

static void soft_mode_and_alert_allow_and_annotate(void)
{
	struct budget *b = engine(LIMIT_MODE_SOFT, LIMIT_ACT_BLOCK);
	struct limits l;
	struct budget_call c;
	struct budget_verdict v;
	struct budget_req r;

	TG_REQUIRE(b);
	lim_zero(&l);
	l.v[LIMIT_COST_DAY] = 1000;
	r = req(&l, 10, 5000, T0);
	TG_CHECK_INT(budget_reserve(b, &r, &c, &v), 0);
	TG_CHECK(v.allowed && v.warned && c.held);
	TG_CHECK_INT(v.warn.limit, LIMIT_COST_DAY);
	TG_CHECK_INT(v.warn.mode, LIMIT_MODE_SOFT);
	budget_release(b, &c);
	/* a key in hard mode with action alert: allowed too */
	l.v[LIMIT_MODE] = LIMIT_MODE_HARD;
	l.v[LIMIT_ACTION] = LIMIT_ACT_ALERT;
	TG_CHECK_INT(budget_reserve(b, &r, &c, &v), 0);
	TG_CHECK(v.allowed && v.warned);
	TG_CHECK_INT(v.warn.action, LIMIT_ACT_ALERT);
	budget_release(b, &c);
	l.v[LIMIT_ACTION] = LIMIT_ACT_DOWNGRADE;
	TG_CHECK_INT(budget_reserve(b, &r, &c, &v), 0);
	TG_CHECK(!v.allowed);
	TG_CHECK_INT(v.hit.action, LIMIT_ACT_DOWNGRADE);
	budget_free(b);
}

/*
 * The action of a key's limit over its value, through the engine: key per-limit -> key
 * action -> tier per-limit -> tier action -> limits.action (the engine's, queue here). The
 * key's effective limits come from limits_merge, as the data plane builds them.
 */
static void key_action_resolution_order(void)
{
	static const struct {
		const char *name;
		uint8_t key_act, tier_act;	  /* tokens_per_day's own actions */
		uint64_t key_action, tier_action; /* LIMIT_UNSET / 0: not set */
		enum limit_action want;
	} rows[] = {
	    {"nothing set: limits.action", 0, 0, LIMIT_UNSET, 0, LIMIT_ACT_QUEUE},
	    {"tier action", 0, 0, LIMIT_UNSET, LIMIT_ACT_DOWNGRADE, LIMIT_ACT_DOWNGRADE},
	    {"tier per-limit over tier action", 0, LIMIT_ACT_BLOCK, LIMIT_UNSET,
	     LIMIT_ACT_DOWNGRADE, LIMIT_ACT_BLOCK},
	    {"key action over tier per-limit", 0, LIMIT_ACT_BLOCK, LIMIT_ACT_DOWNGRADE, 0,
	     LIMIT_ACT_DOWNGRADE},
	    {"key per-limit over key action", LIMIT_ACT_ALERT, LIMIT_ACT_BLOCK, LIMIT_ACT_BLOCK,
	     LIMIT_ACT_BLOCK, LIMIT_ACT_ALERT},
	};
	struct budget *b = engine(LIMIT_MODE_HARD, LIMIT_ACT_QUEUE);

	TG_REQUIRE(b);
	for (size_t i = 0; i < TG_NCASES(rows); i++) {
		struct limits tier, key, eff;
		struct budget_call c;
		struct budget_verdict v;
		struct budget_req r;
		enum limit_action got;

		lim_zero(&tier);
		tier.v[LIMIT_TPD] = 100;
		tier.act[LIMIT_TPD] = rows[i].tier_act;
		tier.v[LIMIT_ACTION] = rows[i].tier_action;
		limits_clear(&key);
		key.act[LIMIT_TPD] = rows[i].key_act;
		key.v[LIMIT_ACTION] = rows[i].key_action;
		limits_merge(&tier, &key, &eff);
		r = req(&eff, 500, 0, T0); /* 500 tokens > 100: tokens_per_day is over */
		r.owner = NULL;
		r.key_id = "resolvekey01";
		TG_CHECK_INT(budget_reserve(b, &r, &c, &v), 0);
		got = v.allowed ? (v.warned ? v.warn.action : LIMIT_ACT_INHERIT) : v.hit.action;
		if (got != rows[i].want || (v.allowed ? v.warn.limit : v.hit.limit) != LIMIT_TPD) {
			printf("#   %s: got %s\n", rows[i].name, limit_action_name(got));
			tg_failed++;
		}
		budget_release(b, &c);
	}
	budget_free(b);
}

/*
 * One key, two limits: tokens_per_day has its own alert, requests_per_day inherits the
 * key's block. Over both, the call is refused by requests_per_day; over tokens only, it is
 * allowed with a warning.
 */
static void per_limit_alert_leaves_other_limits_blocking(void)
{
	struct budget *b = engine(LIMIT_MODE_HARD, LIMIT_ACT_BLOCK);
	struct limits l;
	struct budget_call c;
	struct budget_verdict v;
	struct budget_req r;
	uint64_t used[WIN_M__COUNT] = {1, 50, 0, 0, 0};

	TG_REQUIRE(b);
	lim_zero(&l);
	l.v[LIMIT_TPD] = 100;
	l.v[LIMIT_RPD] = 2;
	l.act[LIMIT_TPD] = LIMIT_ACT_ALERT;
	r = req(&l, 500, 0, T0);
	r.owner = NULL;
	TG_CHECK_INT(budget_reserve(b, &r, &c, &v), 0);
	TG_CHECK(v.allowed && v.warned);
	TG_CHECK_INT(v.warn.limit, LIMIT_TPD);
	TG_CHECK_INT(v.warn.action, LIMIT_ACT_ALERT);
	budget_settle(b, &c, used);
	TG_CHECK_INT(budget_reserve(b, &r, &c, &v), 0);
	TG_CHECK(v.allowed); /* the second request of the day, tokens still only alerted */
	budget_settle(b, &c, used);
	TG_CHECK_INT(budget_reserve(b, &r, &c, &v), 0);
	TG_CHECK(!v.allowed); /* the third: requests_per_day 2 blocks */
	TG_CHECK_INT(v.hit.limit, LIMIT_RPD);
	TG_CHECK_INT(v.hit.action, LIMIT_ACT_BLOCK);
	budget_free(b);
}

static void disabled_engine_counts_but_never_refuses(void)
{
	struct budget_opts o = {false, LIMIT_MODE_HARD, LIMIT_ACT_BLOCK, 800, 0, 1024, 10000};
	struct budget *b = budget_new(&o);
	struct limits l;
	struct budget_call c;
	struct budget_verdict v;
	struct budget_req r;

	TG_REQUIRE(b);
	lim_zero(&l);
	l.v[LIMIT_TPD] = 1;
	r = req(&l, 10, 0, T0);
	TG_CHECK_INT(budget_reserve(b, &r, &c, &v), 0);
	TG_CHECK(v.allowed && c.held);
	budget_release(b, &c);
	budget_free(b);
}

static void owner_and_tenant_limits_with_per_limit_actions(void)
{
	struct budget *b = engine(LIMIT_MODE_HARD, LIMIT_ACT_BLOCK);
	struct limits key, team, ten, got;
	struct budget_call c;
	struct budget_verdict v;
	struct budget_req r;

	TG_REQUIRE(b);
	lim_zero(&key);
	limits_clear(&team);
	team.v[LIMIT_RP_MONTH] = 2;
	team.act[LIMIT_RP_MONTH] = LIMIT_ACT_QUEUE;
	TG_CHECK_INT(budget_set_limits(b, "team:ml", &team), 0);
	TG_CHECK_INT(budget_set_limits(b, "key:k7dq2m9xa4bz", &team), -EINVAL);
	TG_CHECK_INT(budget_set_limits(b, "tenant:bad tenant", &team), -EINVAL);
	TG_CHECK(budget_subject_limits(b, "team:ml", &got));
	TG_CHECK_INT(got.v[LIMIT_RP_MONTH], 2);
	TG_CHECK_INT(got.act[LIMIT_RP_MONTH], LIMIT_ACT_QUEUE);
	r = req(&key, 10, 0, T0);
	for (int i = 0; i < 2; i++) {
		TG_CHECK_INT(budget_reserve(b, &r, &c, &v), 0);
		TG_CHECK(v.allowed);
		budget_settle(b, &c, (uint64_t[WIN_M__COUNT]){1, 10, 0, 0, 0});
	}
	TG_CHECK_INT(budget_reserve(b, &r, &c, &v), 0);
	TG_CHECK(!v.allowed);
	TG_CHECK_STR(v.hit.subject, "team:ml");
	TG_CHECK_INT(v.hit.action, LIMIT_ACT_QUEUE);
	/* a tenant with a cost budget of its own */
	limits_clear(&ten);
	ten.v[LIMIT_COST_MONTH] = 50;
	TG_CHECK_INT(budget_set_limits(b, "tenant:acme.eu", &ten), 0);
	TG_CHECK_INT(budget_set_limits(b, "team:ml", NULL), 0);
	r.tenant = "acme.eu";
	r.est[WIN_M_COST] = 60;
	TG_CHECK_INT(budget_reserve(b, &r, &c, &v), 0);
	TG_CHECK(!v.allowed);
	TG_CHECK_STR(v.hit.subject, "tenant:acme.eu");
	TG_CHECK_INT(v.hit.limit, LIMIT_COST_MONTH);
	r.est[WIN_M_COST] = 50;
	TG_CHECK_INT(budget_reserve(b, &r, &c, &v), 0);
	TG_CHECK(v.allowed && v.has_cost && v.cost_limit == 50);
	budget_release(b, &c);
	budget_free(b);
}

static void default_daily_tokens_apply_without_a_quota(void)
{
	struct budget_opts o = {true, LIMIT_MODE_HARD, LIMIT_ACT_BLOCK, 800, 100, 1024, 10000};
	struct budget *b = budget_new(&o);
	struct limits l;
	struct budget_call c;
	struct budget_verdict v;
	struct budget_req r;

	TG_REQUIRE(b);
	lim_zero(&l);
	r = req(&l, 101, 0, T0);
	TG_CHECK_INT(budget_reserve(b, &r, &c, &v), 0);
	TG_CHECK(!v.allowed);
	TG_CHECK_INT(v.hit.limit, LIMIT_TPD);
	TG_CHECK_INT(v.hit.value, 100);
	l.v[LIMIT_TOKENS_MONTH] = 1000; /* a quota of its own: the default does not apply */
	TG_CHECK_INT(budget_reserve(b, &r, &c, &v), 0);
	TG_CHECK(v.allowed);
	budget_release(b, &c);
	budget_free(b);
}

static void windows_roll_over(void)
{
	struct budget *b = engine(LIMIT_MODE_HARD, LIMIT_ACT_BLOCK);
	struct limits l;
	struct budget_call c;
	struct budget_verdict v;
	struct budget_req r;
	int64_t midnight = MIDNIGHT;

	TG_REQUIRE(b);
	lim_zero(&l);
	l.v[LIMIT_TPD] = 100;
	l.v[LIMIT_COST_HOUR] = 1000;
	l.v[LIMIT_COST_WINDOW] = LIMIT_WINDOW_ROLLING;
	r = req(&l, 100, 1000, midnight - 1);
	TG_CHECK_INT(budget_reserve(b, &r, &c, &v), 0);
	TG_CHECK(v.allowed);
	budget_settle(b, &c, (uint64_t[WIN_M__COUNT]){1, 100, 1000, 0, 0});
	r.now = midnight - 1;
	r.est[WIN_M_COST] = 0;
	TG_CHECK_INT(budget_reserve(b, &r, &c, &v), 0);
	TG_CHECK(!v.allowed);
	TG_CHECK_INT(v.hit.limit, LIMIT_TPD);
	TG_CHECK_INT(v.hit.retry_after_sec, 1);
	/* the next day: tokens are free again, the rolling hour still holds the cost */
	r.now = midnight;
	r.est[WIN_M_COST] = 1;
	TG_CHECK_INT(budget_reserve(b, &r, &c, &v), 0);
	TG_CHECK(!v.allowed);
	TG_CHECK_INT(v.hit.limit, LIMIT_COST_HOUR);
	TG_CHECK(v.hit.rolling);
	/* the 23:59 bucket leaves the rolling hour at 01:00 (60 buckets back + the current) */
	TG_CHECK_INT(v.hit.retry_after_sec, 3600);
	r.now = midnight + 3599;
	TG_CHECK_INT(budget_reserve(b, &r, &c, &v), 0);
	TG_CHECK(!v.allowed);
	r.now = midnight + 3600;
	TG_CHECK_INT(budget_reserve(b, &r, &c, &v), 0);
	TG_CHECK(v.allowed);
	budget_release(b, &c);
	budget_free(b);
}

static void concurrency_counts_calls_in_flight(void)
{
	struct budget *b = engine(LIMIT_MODE_HARD, LIMIT_ACT_BLOCK);
	struct limits l;
	struct budget_call c[3];
	struct budget_verdict v;
	struct budget_req r;

	TG_REQUIRE(b);
	lim_zero(&l);
	l.v[LIMIT_MAX_CONCURRENT] = 2;
	r = req(&l, 1, 0, T0);
	TG_CHECK_INT(budget_reserve(b, &r, &c[0], &v), 0);
	TG_CHECK_INT(budget_reserve(b, &r, &c[1], &v), 0);
	TG_CHECK(v.allowed);
	TG_CHECK_INT(budget_reserve(b, &r, &c[2], &v), 0);
	TG_CHECK(!v.allowed);
	TG_CHECK_INT(v.hit.limit, LIMIT_MAX_CONCURRENT);
	TG_CHECK_INT(v.hit.kind, BUDGET_KIND_CONCURRENCY);
	budget_release(b, &c[0]);
	TG_CHECK_INT(budget_reserve(b, &r, &c[2], &v), 0);
	TG_CHECK(v.allowed);
	budget_release(b, &c[1]);
	budget_release(b, &c[2]);
	budget_free(b);
}

struct worker {
	struct budget *b;
	const struct limits *l;
	int calls, allowed;
};

/* Reserves estimate 10 and settles 7 or 10 tokens, over and over on one key. */
static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct budget_req r = req(w->l, 10, 10, T0);
	struct budget_call c;
	struct budget_verdict v;

	for (int i = 0; i < w->calls; i++) {
		if (budget_reserve(w->b, &r, &c, &v) || !v.allowed)
			continue;
		w->allowed++;
		budget_settle(w->b, &c, (uint64_t[WIN_M__COUNT]){1, i % 2 ? 7 : 10, 10, 0, 0});
	}
	return NULL;
}

static void threads_on_one_key_never_overspend(void)
{
	struct budget *b = engine(LIMIT_MODE_HARD, LIMIT_ACT_BLOCK);
	struct limits l;
	struct worker w[8];
	pthread_t th[8];
	struct budget_hit st[BUDGET_STATUS_MAX];
	uint64_t tokens = 0;
	int allowed = 0;
	size_t n;

	TG_REQUIRE(b);
	lim_zero(&l);
	l.v[LIMIT_TOKENS_MONTH] = 50000;
	l.v[LIMIT_COST_MONTH] = 45000;
	for (int i = 0; i < 8; i++) {
		w[i] = (struct worker){b, &l, 2000, 0};
		pthread_create(&th[i], NULL, worker_run, &w[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		allowed += w[i].allowed;
	}
	n = budget_status(b, "key:k7dq2m9xa4bz", &l, T0, st, BUDGET_STATUS_MAX);
	TG_REQUIRE(n == 2);
	/* exact totals: every allowed call settled, alternating 10 and 7 tokens, 10 nano-USD */
	TG_CHECK_INT(st[0].reserved, 0);
	TG_CHECK_INT(st[1].used, (uint64_t)allowed * 10);
	TG_CHECK(st[0].used <= 50000);
	TG_CHECK(st[1].used <= 45000);
	/* the cost budget is what stops them: 4500 calls of 10 */
	TG_CHECK_INT(allowed, 4500);
	for (int i = 0; i < 8; i++)
		tokens += (uint64_t)(w[i].allowed / 2) * 17 + (uint64_t)(w[i].allowed % 2) * 10;
	TG_CHECK(st[0].used >= tokens - 8 * 3 && st[0].used <= tokens + 8 * 3);
	budget_free(b);
}

static void restart_loads_persisted_buckets(void)
{
	struct budget *b = engine(LIMIT_MODE_HARD, LIMIT_ACT_BLOCK);
	struct limits l;
	struct budget_hit st[BUDGET_STATUS_MAX];
	uint64_t v[WIN_M__COUNT] = {3, 700, 2000000000, 0, 0};

	TG_REQUIRE(b);
	lim_zero(&l);
	l.v[LIMIT_TOKENS_MONTH] = 1000;
	l.v[LIMIT_COST_DAY] = 5000000000ull;
	TG_CHECK_INT(budget_load_bucket(b, "key:k7dq2m9xa4bz", WIN_DAY, T0 / 86400, v), 0);
	TG_CHECK_INT(budget_load_bucket(b, "key:k7dq2m9xa4bz", WIN_DAY, T0 / 86400 - 40, v), 0);
	TG_CHECK_INT(budget_load_bucket(b, "", WIN_DAY, 0, v), -EINVAL);
	TG_CHECK_INT(budget_status(b, "key:k7dq2m9xa4bz", &l, T0, st, BUDGET_STATUS_MAX), 2);
	TG_CHECK_INT(st[0].limit, LIMIT_TOKENS_MONTH);
	TG_CHECK_INT(st[0].used, 700); /* the bucket 40 days back is not this month */
	TG_CHECK_INT(st[1].used, 2000000000);
	budget_free(b);
}

static int events_seen, exceeded_seen;

static void on_event(const struct budget_event *ev, void *arg)
{
	(void)arg;
	if (ev->exceeded)
		exceeded_seen++;
	else
		events_seen++;
}

static void thresholds_fire_once_per_period(void)
{
	struct budget *b = engine(LIMIT_MODE_HARD, LIMIT_ACT_BLOCK);
	struct limits l;
	struct budget_call c;
	struct budget_verdict v;
	struct budget_req r;

	TG_REQUIRE(b);
	budget_on_threshold(b, on_event, NULL);
	lim_zero(&l);
	l.v[LIMIT_TPD] = 100;
	r = req(&l, 10, 0, T0);
	for (int i = 0; i < 12; i++) {
		if (budget_reserve(b, &r, &c, &v) == 0 && v.allowed)
			budget_settle(b, &c, (uint64_t[WIN_M__COUNT]){1, 10, 0, 0, 0});
	}
	TG_CHECK_INT(events_seen, 1);	/* crossed 80 once */
	TG_CHECK_INT(exceeded_seen, 1); /* refused twice, told once */
	r.now = T0 + 86400;
	for (int i = 0; i < 9; i++) {
		if (budget_reserve(b, &r, &c, &v) == 0 && v.allowed)
			budget_settle(b, &c, (uint64_t[WIN_M__COUNT]){1, 10, 0, 0, 0});
	}
	TG_CHECK_INT(events_seen, 2); /* a new day, a new crossing */
	budget_free(b);
}

static void messages_name_limit_value_used_and_reset(void)
{
	struct budget_hit h = {.subject = "key:k7dq2m9xa4bz",
			       .limit = LIMIT_COST_DAY,
			       .kind = BUDGET_KIND_COST,
			       .window = "day",
			       .value = 10000000000ull,
			       .used = 9970000000ull,
			       .reserved = 50000000,
			       .reset_at = 1795478400};
	char buf[320];

	budget_message(&h, buf, sizeof(buf));
	TG_CHECK_STR(buf, "Cost budget exceeded for key k7dq2m9xa4bz: cost_per_day 10.00 USD (used "
			  "9.97 USD, 0.05 USD reserved by calls in flight); resets at "
			  "2026-11-24T00:00:00Z");
	h.kind = BUDGET_KIND_TOKENS;
	h.limit = LIMIT_TPM;
	TG_CHECK(!budget_is_quota(LIMIT_TPM) && budget_is_quota(LIMIT_TOKENS_MONTH));
	budget_amount(BUDGET_KIND_COST, 1234567891, buf, sizeof(buf));
	TG_CHECK_STR(buf, "1.234567891 USD");
	budget_amount(BUDGET_KIND_COMPUTE, 3500, buf, sizeof(buf));
	TG_CHECK_STR(buf, "3.500 s");
	TG_CHECK(budget_tenant_valid("acme:eu-1.x"));
	TG_CHECK(!budget_tenant_valid("acme eu"));
	TG_CHECK(!budget_tenant_valid(""));
}

static void max_ratios_per_limit_over_subjects(void)
{
	struct budget *b = engine(LIMIT_MODE_HARD, LIMIT_ACT_BLOCK);
	struct limits l, team;
	struct budget_call c;
	struct budget_verdict v;
	struct budget_req r;
	double ratio[LIMIT__COUNT];

	TG_REQUIRE(b);
	lim_zero(&l);
	l.v[LIMIT_TPD] = 1000;
	limits_clear(&team);
	team.v[LIMIT_TPD] = 400;
	TG_CHECK_INT(budget_set_limits(b, "team:ml", &team), 0);
	r = req(&l, 100, 0, T0);
	TG_CHECK_INT(budget_reserve(b, &r, &c, &v), 0);
	budget_settle(b, &c, (uint64_t[WIN_M__COUNT]){1, 200, 0, 0, 0});
	budget_max_ratios(b, T0, ratio);
	/* the key is at 0.2, its team at 0.5: the gauge shows the highest */
	TG_CHECK(ratio[LIMIT_TPD] > 0.499 && ratio[LIMIT_TPD] < 0.501);
	TG_CHECK(ratio[LIMIT_COST_DAY] == 0);
	budget_free(b);
}

/* Unix seconds of a UTC date and time. */
static int64_t at(int64_t y, unsigned mo, unsigned d, unsigned h, unsigned mi, unsigned sec)
{
	return win_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
}

/* Used of limit f in subject's statuses at now (UINT64_MAX: not listed). */
static uint64_t used_of(struct budget *b, const char *subject, const struct limits *l, int64_t now,
			enum limit_field f)
{
	struct budget_hit st[BUDGET_STATUS_MAX];
	size_t n = budget_status(b, subject, l, now, st, BUDGET_STATUS_MAX);

	for (size_t i = 0; i < n; i++)
		if (st[i].limit == f)
			return st[i].used;
	return UINT64_MAX;
}

struct cross_row {
	const char *name;
	int64_t now;
	enum limit_field f;
	bool rolling; /* the key with cost_window rolling */
	uint64_t used;
};

/*
 * Calls settled just before and at a month's end (tokens 10 and 100 at 23:59:30 and
 * 23:59:59 on Nov 30, 1000 at 00:00:00 on Dec 1; the cost the same numbers), then every
 * window read at instants across minute, hour, day and month boundaries, forward and back:
 * the engine's cached periods and running totals count what the calendar says.
 */
static void windows_across_boundaries_with_cached_totals(void)
{
	struct budget *b = engine(LIMIT_MODE_HARD, LIMIT_ACT_BLOCK);
	const int64_t nov30 = at(2026, 11, 30, 23, 59, 30), dec1 = at(2026, 12, 1, 0, 0, 0);
	const struct cross_row rows[] = {
	    {"tpm before the minute ends", dec1 - 1, LIMIT_TPM, false, 110},
	    {"tpm in the new minute", dec1, LIMIT_TPM, false, 1000},
	    {"tph in the new hour", dec1 + 3599, LIMIT_TPH, false, 1000},
	    {"tph the hour after", dec1 + 3600, LIMIT_TPH, false, 0},
	    {"tpd back on Nov 30 (an older instant)", dec1 - 1, LIMIT_TPD, false, 110},
	    {"tpd on Dec 1", dec1 + 60, LIMIT_TPD, false, 1000},
	    {"tokens_per_month in November", dec1 - 1, LIMIT_TOKENS_MONTH, false, 110},
	    {"tokens_per_month in December", dec1, LIMIT_TOKENS_MONTH, false, 1000},
	    {"tokens_per_month on Dec 31", at(2026, 12, 31, 23, 59, 59), LIMIT_TOKENS_MONTH, false,
	     1000},
	    {"tokens_per_month in January", at(2027, 1, 1, 0, 0, 0), LIMIT_TOKENS_MONTH, false, 0},
	    {"cost_per_hour calendar, new hour", dec1, LIMIT_COST_HOUR, false, 1000},
	    {"cost_per_hour rolling holds 23:59 until 00:59:59", dec1 + 3599, LIMIT_COST_HOUR, true,
	     1110},
	    {"cost_per_hour rolling lets 23:59 go at 01:00", dec1 + 3600, LIMIT_COST_HOUR, true,
	     1000},
	    {"cost_per_hour rolling lets 00:00 go at 01:01", dec1 + 3660, LIMIT_COST_HOUR, true, 0},
	    {"cost_per_day rolling at 23:59 the next day", dec1 + 86340, LIMIT_COST_DAY, true,
	     1110},
	    {"cost_per_day rolling lets Nov 30 23:00 go at Dec 2 00:00", dec1 + 86400,
	     LIMIT_COST_DAY, true, 1000},
	    {"cost_per_month rolling on Dec 30", at(2026, 12, 30, 12, 0, 0), LIMIT_COST_MONTH, true,
	     1110},
	    {"cost_per_month rolling lets Nov 30 go on Dec 31", at(2026, 12, 31, 0, 0, 0),
	     LIMIT_COST_MONTH, true, 1000},
	    {"cost_per_month calendar in December", at(2026, 12, 30, 12, 0, 0), LIMIT_COST_MONTH,
	     false, 1000},
	    {"cost_per_month rolling back on Nov 30", nov30, LIMIT_COST_MONTH, true, 110},
	};
	struct limits cal, rol;
	const uint64_t amounts[] = {10, 100, 1000};
	const int64_t when[] = {nov30, dec1 - 1, dec1};

	TG_REQUIRE(b);
	lim_zero(&cal);
	for (enum limit_field f = LIMIT_TPM; f <= LIMIT_COST_MONTH; f++)
		if (f != LIMIT_TOKEN_QUOTA_DAYS && f != LIMIT_MAX_CONCURRENT && f != LIMIT_BURST)
			cal.v[f] = 1000000;
	rol = cal;
	rol.v[LIMIT_COST_WINDOW] = LIMIT_WINDOW_ROLLING;
	for (int i = 0; i < 3; i++) {
		struct budget_req r = req(&cal, 1, 1, when[i]);
		struct budget_call c;
		struct budget_verdict v;

		TG_REQUIRE(budget_reserve(b, &r, &c, &v) == 0 && v.allowed);
		budget_settle(b, &c, (uint64_t[WIN_M__COUNT]){1, amounts[i], amounts[i], 0, 0});
	}
	for (size_t i = 0; i < TG_NCASES(rows); i++) {
		uint64_t got = used_of(b, "key:k7dq2m9xa4bz", rows[i].rolling ? &rol : &cal,
				       rows[i].now, rows[i].f);

		if (got != rows[i].used)
			printf("#   row '%s'\n", rows[i].name);
		TG_CHECK_INT(got, rows[i].used);
	}
	budget_free(b);
}

/* A key's limits change between calls: its plan follows (window kinds, new limits). */
static void key_limit_changes_take_effect_on_the_next_call(void)
{
	struct budget *b = engine(LIMIT_MODE_HARD, LIMIT_ACT_BLOCK);
	struct limits l;
	struct budget_call c, c2;
	struct budget_verdict v;
	struct budget_req r;

	TG_REQUIRE(b);
	lim_zero(&l);
	l.v[LIMIT_TOKENS_MONTH] = 1000;
	r = req(&l, 600, 0, at(2026, 11, 5, 12, 0, 0));
	TG_REQUIRE(budget_reserve(b, &r, &c, &v) == 0 && v.allowed);
	budget_settle(b, &c, (uint64_t[WIN_M__COUNT]){1, 600, 0, 0, 0});
	/* December: the calendar month is empty, a 30-day quota still holds Nov 5's 600 */
	r.now = at(2026, 12, 2, 12, 0, 0);
	TG_CHECK_INT(budget_reserve(b, &r, &c, &v), 0);
	TG_CHECK(v.allowed);
	budget_release(b, &c);
	l.v[LIMIT_TOKEN_QUOTA_DAYS] = 30;
	TG_CHECK_INT(budget_reserve(b, &r, &c, &v), 0);
	TG_CHECK(!v.allowed && v.hit.limit == LIMIT_TOKENS_MONTH && v.hit.rolling);
	TG_CHECK_INT(v.hit.used, 600);
	/* 20 days: Nov 5 is out of it */
	l.v[LIMIT_TOKEN_QUOTA_DAYS] = 20;
	TG_CHECK_INT(budget_reserve(b, &r, &c, &v), 0);
	TG_CHECK(v.allowed);
	budget_release(b, &c);
	/* a new limit of another kind applies at once; removing it, too */
	r.est[WIN_M_TOKENS] = 1;
	l.v[LIMIT_RP_MONTH] = 1;
	TG_CHECK_INT(budget_reserve(b, &r, &c, &v), 0);
	TG_CHECK(v.allowed);
	TG_CHECK_INT(budget_reserve(b, &r, &c2, &v), 0);
	TG_CHECK(!v.allowed && v.hit.limit == LIMIT_RP_MONTH);
	l.v[LIMIT_RP_MONTH] = 0;
	TG_CHECK_INT(budget_reserve(b, &r, &c2, &v), 0);
	TG_CHECK(v.allowed);
	budget_release(b, &c);
	budget_release(b, &c2);
	budget_free(b);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* The window of each limit, as the contract defines it (calendar, or rolling). */
struct win_of {
	enum limit_field f;
	enum win_metric m;
	struct win_def cal, rol;
};

static const struct win_of limit_wins[] = {
    {LIMIT_TPM,
     WIN_M_TOKENS,
     {WIN_MINUTE, WIN_MINUTE, false, 0},
     {WIN_MINUTE, WIN_MINUTE, false, 0}},
    {LIMIT_TPH, WIN_M_TOKENS, {WIN_HOUR, WIN_HOUR, false, 0}, {WIN_HOUR, WIN_HOUR, false, 0}},
    {LIMIT_TPD, WIN_M_TOKENS, {WIN_DAY, WIN_DAY, false, 0}, {WIN_DAY, WIN_DAY, false, 0}},
    {LIMIT_RPD, WIN_M_REQUESTS, {WIN_DAY, WIN_DAY, false, 0}, {WIN_DAY, WIN_DAY, false, 0}},
    {LIMIT_RP_MONTH,
     WIN_M_REQUESTS,
     {WIN_MONTH, WIN_DAY, false, 0},
     {WIN_MONTH, WIN_DAY, false, 0}},
    {LIMIT_COST_HOUR, WIN_M_COST, {WIN_HOUR, WIN_HOUR, false, 0}, {WIN_HOUR, WIN_MINUTE, true, 60}},
    {LIMIT_COST_DAY, WIN_M_COST, {WIN_DAY, WIN_DAY, false, 0}, {WIN_DAY, WIN_HOUR, true, 24}},
    {LIMIT_COST_MONTH, WIN_M_COST, {WIN_MONTH, WIN_DAY, false, 0}, {WIN_MONTH, WIN_DAY, true, 30}},
    {LIMIT_BYTES_MONTH,
     WIN_M_BYTES,
     {WIN_MONTH, WIN_DAY, false, 0},
     {WIN_MONTH, WIN_DAY, false, 0}},
    {LIMIT_COMPUTE_MONTH,
     WIN_M_COMPUTE,
     {WIN_MONTH, WIN_DAY, false, 0},
     {WIN_MONTH, WIN_DAY, false, 0}},
};

/* The test's own rings: what the engine's windows must sum to, summed afresh. */
struct ref {
	struct win_bucket mb[BUDGET_RING_MINUTES], hb[BUDGET_RING_HOURS], db[BUDGET_RING_DAYS];
	struct win_ring ring[WIN_DAY + 1];
};

/* Mismatches between the engine's statuses of the key at now and the reference's sums. */
static unsigned cross_check(struct budget *b, struct ref *ref, const struct limits *l, int64_t now)
{
	bool rolling = l->v[LIMIT_COST_WINDOW] == LIMIT_WINDOW_ROLLING;
	unsigned bad = 0;

	for (size_t i = 0; i < TG_NCASES(limit_wins); i++) {
		const struct win_def *w = rolling ? &limit_wins[i].rol : &limit_wins[i].cal;
		uint64_t fresh[WIN_M__COUNT];
		int64_t from, to;

		win_span(w, now, &from, &to);
		win_ring_sum_all(&ref->ring[w->ring_unit], from, to, fresh);
		bad += used_of(b, "key:k7dq2m9xa4bz", l, now, limit_wins[i].f) !=
		       fresh[limit_wins[i].m];
	}
	return bad;
}

/* One random step: reserve a call, or settle / release one in flight. */
static void random_call(struct budget *b, struct ref *ref, struct budget_req *r,
			struct budget_call *fl, unsigned *nfl, uint64_t *seed)
{
	struct budget_verdict v;

	if (*nfl < 4 && rnd(seed) % 2) {
		if (budget_reserve(b, r, &fl[*nfl], &v) == 0 && v.allowed)
			(*nfl)++;
		return;
	}
	if (*nfl) {
		unsigned k = (unsigned)(rnd(seed) % *nfl);
		uint64_t a[WIN_M__COUNT] = {1, rnd(seed) % 5000, rnd(seed) % 90000,
					    rnd(seed) % 7000, rnd(seed) % 300};

		if (rnd(seed) % 5 == 0) {
			budget_release(b, &fl[k]);
		} else {
			for (int u = WIN_MINUTE; u <= WIN_DAY; u++)
				win_ring_add(&ref->ring[u],
					     win_bucket_id(fl[k].start, ref->ring[u].secs), a);
			budget_settle(b, &fl[k], a);
		}
		fl[k] = fl[--*nfl];
	}
}

/*
 * 30,000 random reserves, settles (in any order, of calls started up to hours before) and
 * releases while the clock moves by seconds to days (and sometimes back), the key's cost
 * window switching between calendar and rolling: after every step each window's used
 * equals a fresh sum of the test's own rings over the window the calendar gives.
 */
static void running_totals_equal_fresh_sums_at_random(void)
{
	struct budget *b = engine(LIMIT_MODE_HARD, LIMIT_ACT_BLOCK);
	struct ref *ref = calloc(1, sizeof(*ref));
	struct budget_call fl[4];
	struct limits l;
	struct budget_req r;
	uint64_t seed = 0x2545f4914f6cdd1dull;
	unsigned nfl = 0, bad = 0, checks = 0;

	TG_REQUIRE(b && ref);
	ref->ring[WIN_MINUTE] = (struct win_ring){60, BUDGET_RING_MINUTES, ref->mb, NULL, 0};
	ref->ring[WIN_HOUR] = (struct win_ring){3600, BUDGET_RING_HOURS, ref->hb, NULL, 0};
	ref->ring[WIN_DAY] = (struct win_ring){86400, BUDGET_RING_DAYS, ref->db, NULL, 0};
	for (int u = WIN_MINUTE; u <= WIN_DAY; u++)
		win_ring_reset(&ref->ring[u]);
	lim_zero(&l);
	for (size_t i = 0; i < TG_NCASES(limit_wins); i++)
		l.v[limit_wins[i].f] = UINT64_MAX / 4;
	r = req(&l, 1, 1, at(2026, 11, 30, 22, 0, 0));
	for (int step = 0; step < 30000; step++) {
		uint64_t op = rnd(&seed) % 100;

		if (op < 3)
			l.v[LIMIT_COST_WINDOW] ^= LIMIT_WINDOW_ROLLING;
		if (op < 40)
			r.now += (int64_t)(rnd(&seed) % (op < 10 ? 200000 : op < 20 ? 4000 : 70));
		else if (op < 42)
			r.now -= (int64_t)(rnd(&seed) % 7200); /* a settle's older instant */
		random_call(b, ref, &r, fl, &nfl, &seed);
		if (step % 7 == 0) {
			bad += cross_check(b, ref, &l, r.now);
			checks++;
		}
	}
	printf("#   %u cross-checks of %zu windows, %u mismatches\n", checks, TG_NCASES(limit_wins),
	       bad);
	TG_CHECK(checks > 4000);
	TG_CHECK_INT(bad, 0);
	while (nfl)
		budget_release(b, &fl[--nfl]);
	free(ref);
	budget_free(b);
}

/* One row of the tenant bound: a request naming tenant, what budget_reserve answers. */
struct tenant_row {
	const char *tenant;
	int rc;		  /* budget_reserve's */
	uint64_t tenants; /* budget_tenants after it */
};

/* Runs rows against b with key limits l; each row allowed (rc 0) or refused with nothing
 * reserved and no subject made (rc -EDQUOT). */
static void tenant_rows(struct budget *b, const struct limits *l, const struct tenant_row *rows,
			size_t n)
{
	struct budget_hit st[BUDGET_STATUS_MAX];
	struct budget_call c;
	struct budget_verdict v;

	for (size_t i = 0; i < n; i++) {
		struct budget_req r = req(l, 10, 0, T0);
		int rc;

		r.tenant = rows[i].tenant;
		rc = budget_reserve(b, &r, &c, &v);
		if (rc != rows[i].rc)
			printf("#   row %zu (%s): rc %d, want %d\n", i, rows[i].tenant, rc,
			       rows[i].rc);
		TG_CHECK_INT(rc, rows[i].rc);
		TG_CHECK(rc ? !c.held && !v.allowed : c.held && v.allowed);
		TG_CHECK_INT(budget_tenants(b), rows[i].tenants);
		budget_settle(b, &c, (uint64_t[WIN_M__COUNT]){1, 10, 0, 0, 0});
	}
	/* the refused calls reserved and counted nothing in the key: 10 tokens per allowed row */
	TG_REQUIRE(budget_status(b, "key:k7dq2m9xa4bz", l, T0, st, BUDGET_STATUS_MAX) == 1);
	TG_CHECK_INT(st[0].reserved, 0);
}

/*
 * limits.max_tenants: requests make tenant subjects up to the bound, then a new name is
 * refused (-EDQUOT: nothing reserved, no subject); known tenants keep working; tenants the
 * admin gives limits, and persisted ones, are always made and count.
 */
static void tenant_bound_refuses_new_tenants_only(void)
{
	struct budget_opts o = {true, LIMIT_MODE_HARD, LIMIT_ACT_BLOCK, 800, 0, 1024, 3};
	struct budget *b = budget_new(&o);
	struct budget_hit st[BUDGET_STATUS_MAX];
	struct limits key, vip;
	static const uint64_t bucket[WIN_M__COUNT] = {1, 5, 0, 0, 0};
	static const struct tenant_row rows[] = {
	    {"vip", 0, 1},	     /* admin-set below: counts, served */
	    {"acme", 0, 2},	     /* a new one under the bound */
	    {"globex", 0, 3},	     /* the third: the bound reached */
	    {"initech", -EDQUOT, 3}, /* a fourth: refused, not made */
	    {"acme", 0, 3},	     /* known ones keep working */
	    {"globex", 0, 3},
	    {"initech", -EDQUOT, 3}, /* still refused */
	    {"", 0, 3},		     /* no tenant: the bound does not apply */
	};

	TG_REQUIRE(b);
	lim_zero(&key);
	key.v[LIMIT_TPD] = 1000000;
	limits_clear(&vip);
	vip.v[LIMIT_RPD] = 100;
	TG_CHECK_INT(budget_set_limits(b, "tenant:vip", &vip), 0);
	tenant_rows(b, &key, rows, TG_NCASES(rows));
	TG_CHECK_INT(budget_status(b, "tenant:initech", NULL, T0, st, BUDGET_STATUS_MAX), 0);
	TG_CHECK_INT(budget_tenants(b), 3);
	/* past the bound: the admin's limits and persisted buckets still make their tenant */
	TG_CHECK_INT(budget_set_limits(b, "tenant:hooli", &vip), 0);
	TG_CHECK_INT(budget_load_bucket(b, "tenant:umbrella", WIN_DAY, T0 / 86400, bucket), 0);
	TG_CHECK_INT(budget_tenants(b), 5);
	TG_CHECK_INT(budget_status(b, "tenant:hooli", NULL, T0, st, BUDGET_STATUS_MAX), 1);
	budget_free(b);

	/* 0: no tenant from requests, the admin's still served */
	o.max_tenants = 0;
	b = budget_new(&o);
	TG_REQUIRE(b);
	TG_CHECK_INT(budget_set_limits(b, "tenant:vip", &vip), 0);
	{
		static const struct tenant_row none[] = {
		    {"acme", -EDQUOT, 1}, {"vip", 0, 1}, {"", 0, 1}};

		tenant_rows(b, &key, none, TG_NCASES(none));
	}
	budget_free(b);
}

static const struct tg_case cases[] = {
    {"reserve/settle arithmetic: used + reserved + estimate against the limit",
     reserve_settle_arithmetic},
    {"soft mode and the alert action allow and annotate; downgrade refuses",
     soft_mode_and_alert_allow_and_annotate},
    {"limits.enabled false: counted, never refused", disabled_engine_counts_but_never_refuses},
    {"a key's action: key per-limit, key action, tier per-limit, tier action, limits.action",
     key_action_resolution_order},
    {"a per-limit alert leaves the key's other limits blocking",
     per_limit_alert_leaves_other_limits_blocking},
    {"limits.max_tenants: new tenants past the bound refused, nothing made or reserved",
     tenant_bound_refuses_new_tenants_only},
    {"owner and tenant limits, per-limit actions, bad subjects refused",
     owner_and_tenant_limits_with_per_limit_actions},
    {"limits.default_daily_tokens applies only without a token quota",
     default_daily_tokens_apply_without_a_quota},
    {"a calendar day resets at midnight, a rolling hour bucket by bucket", windows_roll_over},
    {"max_concurrent counts calls in flight", concurrency_counts_calls_in_flight},
    {"8 threads on one key: exact totals, never over the budget",
     threads_on_one_key_never_overspend},
    {"restart: persisted buckets load back into the windows", restart_loads_persisted_buckets},
    {"thresholds and exceeded events fire once per period", thresholds_fire_once_per_period},
    {"messages name the limit, value, used, reserved and reset",
     messages_name_limit_value_used_and_reset},
    {"the usage ratio per limit is the highest among subjects", max_ratios_per_limit_over_subjects},
    {"cached periods and running totals across minute, hour, day, month and year ends, "
     "calendar and rolling, read forward and back",
     windows_across_boundaries_with_cached_totals},
    {"a key's changed limits (quota days, new and removed limits) apply on its next call",
     key_limit_changes_take_effect_on_the_next_call},
    {"running totals equal fresh ring sums over 30,000 random reserves, settles and clock moves",
     running_totals_equal_fresh_sums_at_random},
};

int main(void)
{
	return tg_run("budget", cases, TG_NCASES(cases));
}
