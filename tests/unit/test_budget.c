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

#include "budget.h"
#include "tg_test.h"
#include "windows.h"

#define T0	 1795446000 /* 2026-11-23T15:00:00Z */
#define MIDNIGHT 1795478400 /* 2026-11-24T00:00:00Z */

static struct budget *engine(enum limit_mode mode, enum limit_action action)
{
	struct budget_opts o = {true, mode, action, 800, 0, 1024};

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
	struct budget_opts o = {false, LIMIT_MODE_HARD, LIMIT_ACT_BLOCK, 800, 0, 1024};
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
	uint8_t act[LIMIT__COUNT] = {0}, got_act[LIMIT__COUNT];
	struct budget_call c;
	struct budget_verdict v;
	struct budget_req r;

	TG_REQUIRE(b);
	lim_zero(&key);
	limits_clear(&team);
	team.v[LIMIT_RP_MONTH] = 2;
	act[LIMIT_RP_MONTH] = LIMIT_ACT_QUEUE;
	TG_CHECK_INT(budget_set_limits(b, "team:ml", &team, act), 0);
	TG_CHECK_INT(budget_set_limits(b, "key:k7dq2m9xa4bz", &team, act), -EINVAL);
	TG_CHECK_INT(budget_set_limits(b, "tenant:bad tenant", &team, act), -EINVAL);
	TG_CHECK(budget_subject_limits(b, "team:ml", &got, got_act));
	TG_CHECK_INT(got.v[LIMIT_RP_MONTH], 2);
	TG_CHECK_INT(got_act[LIMIT_RP_MONTH], LIMIT_ACT_QUEUE);
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
	TG_CHECK_INT(budget_set_limits(b, "tenant:acme.eu", &ten, NULL), 0);
	TG_CHECK_INT(budget_set_limits(b, "team:ml", NULL, NULL), 0);
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
	struct budget_opts o = {true, LIMIT_MODE_HARD, LIMIT_ACT_BLOCK, 800, 100, 1024};
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
	TG_CHECK_INT(budget_set_limits(b, "team:ml", &team, NULL), 0);
	r = req(&l, 100, 0, T0);
	TG_CHECK_INT(budget_reserve(b, &r, &c, &v), 0);
	budget_settle(b, &c, (uint64_t[WIN_M__COUNT]){1, 200, 0, 0, 0});
	budget_max_ratios(b, T0, ratio);
	/* the key is at 0.2, its team at 0.5: the gauge shows the highest */
	TG_CHECK(ratio[LIMIT_TPD] > 0.499 && ratio[LIMIT_TPD] < 0.501);
	TG_CHECK(ratio[LIMIT_COST_DAY] == 0);
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
};

int main(void)
{
	return tg_run("budget", cases, TG_NCASES(cases));
}
