/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The provider router (userspace/router.h) on a test clock: circuit breaker transitions
 * (closed, open after N failures in a row, half-open after open_sec with a limited number of
 * probes, closed by a probe's success, open again by its failure), cooldowns after 429 and
 * Retry-After, each policy's choice (primary by priority, cost_weighted by price, then
 * priority; latency_weighted by moving latency with exploration; ties shared by weight),
 * the outbound request-rate limit, the refusals' reasons and the status snapshot.
 */
#include <errno.h>

#include "router.h"
#include "tg_test.h"

#define SEC 1000000000LL
#define T0  (1000 * SEC)

/* Up to 4 providers "a".."d", each serving model "m" (and "a" also "only-a"). */
static struct provider pv[4];
static struct model_price prices[4][2];
static struct providers ps;

/* n providers with the given priorities and prices (prompt = completion = price[i]). */
static void setup(size_t n, const uint32_t *prio, const uint64_t *price)
{
	memset(pv, 0, sizeof(pv));
	memset(prices, 0, sizeof(prices));
	for (size_t i = 0; i < n; i++) {
		snprintf(pv[i].name, sizeof(pv[i].name), "%c", (char)('a' + i));
		pv[i].priority = prio ? prio[i] : (uint32_t)i;
		pv[i].weight = 1;
		snprintf(prices[i][0].name, sizeof(prices[i][0].name), "m");
		prices[i][0].prompt_nano_per_1k = price ? price[i] : 1000;
		prices[i][0].completion_nano_per_1k = price ? price[i] : 1000;
		snprintf(prices[i][1].name, sizeof(prices[i][1].name), "only-a");
		pv[i].models = prices[i];
		pv[i].nmodels = i == 0 ? 2 : 1;
	}
	ps.v = pv;
	ps.n = n;
}

static struct router *mk(uint32_t failures, uint32_t open_sec, uint32_t probes,
			 enum route_policy pol)
{
	struct routing_cfg c;

	routing_defaults(&c);
	c.breaker_failures = failures;
	c.breaker_open_sec = open_sec;
	c.breaker_probes = probes;
	c.policy = pol;
	return router_new(&ps, &c);
}

/* The index picked for model "m" at now (excluding mask), or -1 with why filled. */
static int pick(struct router *r, uint64_t excl, int64_t now, struct router_choice *ch, char *why)
{
	char buf[256];
	int rc = router_pick(r, "m", NULL, excl, now, ch, why ? why : buf, 256);

	return rc ? -1 : ch->idx;
}

static void report(struct router *r, const struct router_choice *ch, enum router_outcome o,
		   int64_t now)
{
	router_report(r, ch, o, 10 * 1000000, 0, now);
}

static enum breaker_state state_of(struct router *r, size_t i, int64_t now)
{
	struct router_status st;

	if (router_status(r, i, now, &st) != 0) {
		TG_CHECK(!"router_status failed");
		return (enum breaker_state) - 1;
	}
	return st.state;
}

static void breaker_opens_probes_and_closes(void)
{
	struct router_choice ch;
	struct router *r;
	char why[256];

	setup(2, NULL, NULL);
	r = mk(3, 10, 1, ROUTE_PRIMARY);
	TG_REQUIRE(r);
	for (int i = 0; i < 2; i++) {
		TG_CHECK_INT(pick(r, 0, T0, &ch, NULL), 0);
		report(r, &ch, ROUTER_SERVER_ERROR, T0);
	}
	TG_CHECK_INT(state_of(r, 0, T0), BREAKER_CLOSED); /* 2 < 3 */
	TG_CHECK_INT(pick(r, 0, T0, &ch, NULL), 0);
	report(r, &ch, ROUTER_TIMEOUT, T0);
	TG_CHECK_INT(state_of(r, 0, T0), BREAKER_OPEN);
	/* open: everything goes to b; with b excluded there is nothing, and why says so */
	TG_CHECK_INT(pick(r, 0, T0 + 9 * SEC, &ch, NULL), 1);
	report(r, &ch, ROUTER_OK, T0 + 9 * SEC);
	TG_CHECK_INT(pick(r, 1u << 1, T0 + 9 * SEC, &ch, why), -1);
	TG_CHECK_STR(why, "a: circuit open");
	/* after open_sec: one probe, the next call goes to b while it is in flight */
	TG_CHECK_INT(state_of(r, 0, T0 + 10 * SEC), BREAKER_HALF_OPEN);
	TG_CHECK_INT(pick(r, 0, T0 + 10 * SEC, &ch, NULL), 0);
	TG_CHECK(ch.probe);
	struct router_choice probe = ch;
	TG_CHECK_INT(pick(r, 0, T0 + 10 * SEC, &ch, NULL), 1);
	TG_CHECK(!ch.probe);
	report(r, &ch, ROUTER_OK, T0 + 10 * SEC);
	/* the probe fails: open again for open_sec from now */
	report(r, &probe, ROUTER_CONNECT, T0 + 11 * SEC);
	TG_CHECK_INT(state_of(r, 0, T0 + 11 * SEC), BREAKER_OPEN);
	TG_CHECK_INT(pick(r, 0, T0 + 20 * SEC, &ch, NULL), 1);
	report(r, &ch, ROUTER_OK, T0 + 20 * SEC);
	/* the next probe succeeds: closed, and a takes calls again as a non-probe */
	TG_CHECK_INT(pick(r, 0, T0 + 21 * SEC, &ch, NULL), 0);
	TG_CHECK(ch.probe);
	report(r, &ch, ROUTER_OK, T0 + 21 * SEC);
	TG_CHECK_INT(state_of(r, 0, T0 + 21 * SEC), BREAKER_CLOSED);
	TG_CHECK_INT(pick(r, 0, T0 + 21 * SEC, &ch, NULL), 0);
	TG_CHECK(!ch.probe);
	report(r, &ch, ROUTER_OK, T0 + 21 * SEC);
	/* a success in between resets the count: 2 failures, 1 success, 2 failures: closed */
	for (int i = 0; i < 5; i++) {
		TG_CHECK_INT(pick(r, 0, T0 + 22 * SEC, &ch, NULL), 0);
		report(r, &ch, i == 2 ? ROUTER_CLIENT_ERROR : ROUTER_BROKEN, T0 + 22 * SEC);
	}
	TG_CHECK_INT(state_of(r, 0, T0 + 22 * SEC), BREAKER_CLOSED);
	router_free(r);
}

static void half_open_probe_limit(void)
{
	struct router_choice ch, p1, p2;
	struct router *r;
	char why[256];

	setup(2, NULL, NULL);
	r = mk(1, 5, 2, ROUTE_PRIMARY);
	TG_REQUIRE(r);
	TG_CHECK_INT(pick(r, 0, T0, &ch, NULL), 0);
	report(r, &ch, ROUTER_SERVER_ERROR, T0);
	TG_CHECK_INT(state_of(r, 0, T0), BREAKER_OPEN);
	TG_CHECK_INT(pick(r, 0, T0 + 5 * SEC, &p1, NULL), 0);
	TG_CHECK_INT(pick(r, 0, T0 + 5 * SEC, &p2, NULL), 0);
	TG_CHECK(p1.probe && p2.probe);
	/* both probe places taken: the third call goes elsewhere, and a says why */
	TG_CHECK_INT(pick(r, 0, T0 + 5 * SEC, &ch, NULL), 1);
	TG_CHECK_INT(pick(r, 1u << 1, T0 + 5 * SEC, &ch, why), -1);
	TG_CHECK_STR(why, "a: circuit half-open, probes in flight");
	/* one probe back (success): closed at once */
	report(r, &p1, ROUTER_OK, T0 + 6 * SEC);
	TG_CHECK_INT(state_of(r, 0, T0 + 6 * SEC), BREAKER_CLOSED);
	report(r, &p2, ROUTER_OK, T0 + 6 * SEC);
	TG_CHECK_INT(state_of(r, 0, T0 + 6 * SEC), BREAKER_CLOSED);
	router_free(r);
}

static const struct {
	enum router_outcome o;
	uint32_t retry_after;
	int64_t cool_sec; /* 0: no cooldown */
} cool_rows[] = {
    {ROUTER_RATE_LIMITED, 0, 30}, /* routing.provider_cooldown_sec */
    {ROUTER_RATE_LIMITED, 5, 5},  /* the provider's Retry-After wins */
    {ROUTER_RATE_LIMITED, 120, 120}, {ROUTER_SERVER_ERROR, 7, 7}, /* a 503 with Retry-After */
    {ROUTER_SERVER_ERROR, 0, 0},     {ROUTER_TIMEOUT, 0, 0},	  {ROUTER_CLIENT_ERROR, 9, 0},
};

static void cooldown_and_retry_after(void)
{
	for (size_t i = 0; i < TG_NCASES(cool_rows); i++) {
		struct router_choice ch;
		struct router_status st;
		struct router *r;
		char why[256];

		setup(2, NULL, NULL);
		r = mk(100, 30, 1, ROUTE_PRIMARY);
		TG_REQUIRE(r);
		TG_CHECK_INT(pick(r, 0, T0, &ch, NULL), 0);
		router_report(r, &ch, cool_rows[i].o, SEC / 100, cool_rows[i].retry_after, T0);
		TG_REQUIRE(router_status(r, 0, T0, &st) == 0);
		TG_CHECK_INT(st.cooldown_until_ns,
			     cool_rows[i].cool_sec ? T0 + cool_rows[i].cool_sec * SEC : 0);
		if (cool_rows[i].cool_sec) {
			int64_t last = T0 + cool_rows[i].cool_sec * SEC - 1;

			TG_CHECK_INT(pick(r, 0, last, &ch, NULL), 1);
			TG_CHECK_INT(pick(r, 1u << 1, last, &ch, why), -1);
			TG_CHECK_STR(why, "a: cooling down");
			TG_CHECK_INT(pick(r, 0, last + 1, &ch, NULL), 0);
		} else {
			TG_CHECK_INT(pick(r, 0, T0, &ch, NULL), 0);
		}
		if (tg_failed)
			printf("#   row %zu\n", i);
		router_free(r);
	}
	/* routing.retry_after "ignore": a 429 cools down for provider_cooldown_sec only */
	struct routing_cfg c;
	struct router_choice ch;
	struct router_status st;
	struct router *r;

	routing_defaults(&c);
	c.retry_after = 1;
	c.cooldown_sec = 0;
	setup(1, NULL, NULL);
	r = router_new(&ps, &c);
	TG_REQUIRE(r);
	TG_CHECK_INT(pick(r, 0, T0, &ch, NULL), 0);
	router_report(r, &ch, ROUTER_RATE_LIMITED, 1000, 120, T0);
	TG_REQUIRE(router_status(r, 0, T0, &st) == 0);
	TG_CHECK_INT(st.cooldown_until_ns, 0);
	TG_CHECK_INT(pick(r, 0, T0, &ch, NULL), 0);
	router_free(r);
}

/* router_wait_ns: the earliest end of a cooldown or open breaker among the model's providers. */
static void wait_until_a_provider_is_back(void)
{
	struct router_choice ch;
	struct router *r;

	setup(2, NULL, NULL);
	r = mk(1, 30, 1, ROUTE_PRIMARY);
	TG_REQUIRE(r);
	TG_CHECK_INT(router_wait_ns(r, "m", T0), 0); /* both available */
	TG_CHECK_INT(router_wait_ns(r, "no-such-model", T0), 0);
	TG_CHECK_INT(pick(r, 0, T0, &ch, NULL), 0);
	router_report(r, &ch, ROUTER_RATE_LIMITED, SEC / 100, 5, T0); /* a: cools down 5 s */
	TG_CHECK_INT(router_wait_ns(r, "m", T0), 0);		       /* b still can */
	TG_CHECK_INT(pick(r, 0, T0, &ch, NULL), 1);
	report(r, &ch, ROUTER_SERVER_ERROR, T0); /* b: breaker open for 30 s */
	TG_CHECK_INT(router_wait_ns(r, "m", T0), 5 * SEC);
	TG_CHECK_INT(router_wait_ns(r, "m", T0 + 2 * SEC), 3 * SEC);
	TG_CHECK_INT(router_wait_ns(r, "only-a", T0 + 2 * SEC), 3 * SEC);
	TG_CHECK_INT(router_wait_ns(r, "m", T0 + 5 * SEC), 0); /* a is back */
	router_free(r);
}

static void primary_by_priority_then_position(void)
{
	static const uint32_t prio[] = {20, 10, 30};
	struct router_choice ch;
	struct router *r;

	setup(3, prio, NULL);
	r = mk(5, 30, 1, ROUTE_PRIMARY);
	TG_REQUIRE(r);
	TG_CHECK_INT(pick(r, 0, T0, &ch, NULL), 1);
	TG_CHECK_INT(pick(r, 1u << 1, T0, &ch, NULL), 0);
	TG_CHECK_INT(pick(r, 3, T0, &ch, NULL), 2);
	TG_CHECK_INT(pick(r, 7, T0, &ch, NULL), -1);
	TG_CHECK_INT(router_pick(r, "nope", NULL, 0, T0, &ch, NULL, 0), -ENOENT);
	TG_CHECK_INT(router_pick(r, "only-a", NULL, 0, T0, &ch, NULL, 0), 0);
	TG_CHECK_INT(ch.idx, 0);
	TG_CHECK_INT(router_pick(r, "only-a", NULL, 1, T0, &ch, NULL, 0), -EAGAIN);
	router_free(r);
}

static void cost_by_price_then_priority(void)
{
	static const uint32_t prio[] = {0, 1, 2};
	static const uint64_t price[] = {3000, 1000, 1000};
	struct router_choice ch;
	struct router *r;

	setup(3, prio, price);
	r = mk(5, 30, 1, ROUTE_COST);
	TG_REQUIRE(r);
	TG_CHECK_INT(pick(r, 0, T0, &ch, NULL), 1); /* cheapest; b before c by priority */
	TG_CHECK(ch.price == &prices[1][0]);
	TG_CHECK_INT(pick(r, 1u << 1, T0, &ch, NULL), 2);
	TG_CHECK_INT(pick(r, 6, T0, &ch, NULL), 0);
	router_free(r);
	/* the per-model override: the same router config with primary, "m" cost_weighted */
	struct routing_cfg c;
	routing_defaults(&c);
	c.nmodels = 1;
	snprintf(c.models[0].name, sizeof(c.models[0].name), "m");
	c.models[0].policy = ROUTE_COST;
	r = router_new(&ps, &c);
	TG_REQUIRE(r);
	TG_CHECK_INT(pick(r, 0, T0, &ch, NULL), 1);
	router_free(r);
}

static void latency_prefers_faster_and_explores(void)
{
	int counts[2] = {0, 0};
	struct router_choice ch;
	struct router *r;

	setup(2, NULL, NULL);
	r = mk(5, 30, 1, ROUTE_LATENCY);
	TG_REQUIRE(r);
	/* unmeasured first: both get measured (a 200 ms, b 20 ms) */
	for (int i = 0; i < 2; i++) {
		TG_CHECK(pick(r, 0, T0, &ch, NULL) >= 0);
		router_report(r, &ch, ROUTER_OK, ch.idx == 0 ? 200000000 : 20000000, 0, T0 + i);
	}
	for (int i = 0; i < 100; i++) {
		int k = pick(r, 0, T0 + SEC + i, &ch, NULL);

		TG_REQUIRE(k >= 0);
		counts[k]++;
		router_report(r, &ch, ROUTER_OK, k == 0 ? 200000000 : 20000000, 0, T0 + SEC + i);
	}
	/* b is faster; a still gets the exploration picks (1 in ROUTER_EXPLORE_EVERY) */
	TG_CHECK(counts[1] >= 85);
	TG_CHECK(counts[0] >= 5 && counts[0] <= 15);
	/*
	 * a recovers (now 5 ms): its exploration measurements pull its moving latency down
	 * (by 30% of the gap each) until it is the faster one and gets the traffic back
	 */
	counts[0] = counts[1] = 0;
	for (int i = 0; i < 200; i++) {
		int k = pick(r, 0, T0 + 2 * SEC + i, &ch, NULL);

		TG_REQUIRE(k >= 0);
		if (i >= 150)
			counts[k]++;
		router_report(r, &ch, ROUTER_OK, k == 0 ? 5000000 : 20000000, 0, T0 + 2 * SEC + i);
	}
	TG_CHECK(counts[0] >= 40);
	router_free(r);
}

static void ties_shared_by_weight(void)
{
	static const uint32_t prio[] = {1, 1, 2};
	int counts[3] = {0, 0, 0};
	struct router_choice ch;
	struct router *r;

	setup(3, prio, NULL);
	pv[0].weight = 3;
	pv[1].weight = 1;
	r = mk(5, 30, 1, ROUTE_PRIMARY);
	TG_REQUIRE(r);
	for (int i = 0; i < 40; i++) {
		int k = pick(r, 0, T0, &ch, NULL);

		TG_REQUIRE(k >= 0);
		counts[k]++;
	}
	TG_CHECK_INT(counts[0], 30);
	TG_CHECK_INT(counts[1], 10);
	TG_CHECK_INT(counts[2], 0);
	router_free(r);
}

static void outbound_rate_limit(void)
{
	struct router_choice ch;
	struct router_status st;
	struct router *r;
	char why[256];
	int to_a = 0;

	setup(2, NULL, NULL);
	pv[0].rate_limit = 2; /* 2 per second, burst 2 */
	r = mk(5, 30, 1, ROUTE_PRIMARY);
	TG_REQUIRE(r);
	TG_CHECK_INT(pick(r, 0, T0, &ch, NULL), 0);
	TG_CHECK_INT(pick(r, 0, T0, &ch, NULL), 0);
	TG_CHECK_INT(pick(r, 0, T0, &ch, NULL), 1); /* a's bucket is empty */
	TG_CHECK_INT(pick(r, 1u << 1, T0, &ch, why), -1);
	TG_CHECK_STR(why, "a: outbound rate limit");
	TG_CHECK_INT(pick(r, 0, T0 + SEC / 2, &ch, NULL), 0); /* one more after 1/rate */
	TG_CHECK_INT(pick(r, 0, T0 + SEC / 2, &ch, NULL), 1);
	/* over 10 s of calls every 10 ms, a gets at most burst + rate x 10 s */
	for (int64_t t = T0 + SEC; t < T0 + 11 * SEC; t += SEC / 100)
		to_a += pick(r, 0, t, &ch, NULL) == 0;
	TG_CHECK(to_a <= 2 + 20 && to_a >= 20);
	TG_REQUIRE(router_status(r, 0, T0, &st) == 0);
	TG_CHECK(st.rate_limited_skips > 900);
	router_free(r);
}

static void status_counts_latency_and_error_rate(void)
{
	struct router_choice ch;
	struct router_status st;
	struct router *r;

	setup(1, NULL, NULL);
	r = mk(100, 30, 1, ROUTE_PRIMARY);
	TG_REQUIRE(r);
	for (int i = 0; i < 10; i++) {
		TG_REQUIRE(pick(r, 0, T0, &ch, NULL) == 0);
		router_report(r, &ch, i < 3 ? ROUTER_SERVER_ERROR : ROUTER_OK,
			      (int64_t)(i + 1) * 1000000, 0, T0);
	}
	TG_REQUIRE(router_status(r, 0, T0, &st) == 0);
	TG_CHECK_INT(st.requests, 10);
	TG_CHECK_INT(st.outcomes[ROUTER_SERVER_ERROR], 3);
	TG_CHECK_INT(st.outcomes[ROUTER_OK], 7);
	TG_CHECK(st.error_rate > 0.29 && st.error_rate < 0.31);
	TG_CHECK(st.measured);
	TG_CHECK(st.p50_ms > 6.9 && st.p50_ms < 8.1); /* of 4..10 ms */
	TG_CHECK(st.ewma_ms > 4 && st.ewma_ms < 10);
	TG_CHECK_INT(st.state, BREAKER_CLOSED);
	TG_CHECK_INT(router_status(r, 1, T0, &st), -ERANGE);
	TG_CHECK_STR(router_outcome_name(ROUTER_RATE_LIMITED), "rate_limited");
	TG_CHECK_STR(breaker_state_name(BREAKER_HALF_OPEN), "half_open");
	TG_CHECK(router_outcome_retryable(ROUTER_CONNECT));
	TG_CHECK(!router_outcome_retryable(ROUTER_CLIENT_ERROR));
	router_free(r);
}

static const struct tg_case cases[] = {
    {"a 503's wait: the earliest cooldown or open breaker to end", wait_until_a_provider_is_back},
    {"breaker: opens after N failures in a row, probes after open_sec, closes or reopens",
     breaker_opens_probes_and_closes},
    {"breaker: half-open lets at most breaker_probes calls through at once", half_open_probe_limit},
    {"cooldown: 429 for Retry-After or provider_cooldown_sec; 503 Retry-After; else none",
     cooldown_and_retry_after},
    {"primary: lowest priority first, then the next; unknown model -ENOENT",
     primary_by_priority_then_position},
    {"cost_weighted: cheapest for the model, ties by priority; per-model override",
     cost_by_price_then_priority},
    {"latency_weighted: faster provider preferred, exploration measures the other",
     latency_prefers_faster_and_explores},
    {"ties share the calls by weight (3:1)", ties_shared_by_weight},
    {"outbound rate limit: a provider is never sent more than its rate", outbound_rate_limit},
    {"status: requests, outcomes, error rate, median and moving latency",
     status_counts_latency_and_error_rate},
};

int main(void)
{
	return tg_run("router", cases, TG_NCASES(cases));
}
