/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * GCRA: the exact request-rate decision (include/tollgate/gcra.h). For every interval of
 * length t the allowed count is at most burst + rate * t; a client pacing under its rate is
 * never refused; the verdict's retry-after, remaining and reset are exact; concurrent
 * compare-and-swap charging from several threads keeps the bound.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "tg_test.h"
#include "tollgate/gcra.h"
#include "util.h"

#define SEC 1000000000ULL

/* Charges one request at now against *tat as the daemon does; returns 1 if allowed. */
static int charge(__u64 *tat, __u64 now, const struct tg_gcra *g, struct tg_gcra_verdict *v)
{
	if (!tg_gcra_decide(*tat, now, g, v))
		return 0;
	*tat = v->new_tat_ns;
	return 1;
}

static void params_from_rate_and_burst(void)
{
	struct tg_gcra g = tg_gcra_params(10000, 20); /* 10 req/s, burst 20 */

	TG_CHECK_INT(g.interval_ns, SEC / 10);
	TG_CHECK_INT(g.tolerance_ns, 19 * SEC / 10);
	g = tg_gcra_params(500, 1); /* 0.5 req/s, no burst above one */
	TG_CHECK_INT(g.interval_ns, 2 * SEC);
	TG_CHECK_INT(g.tolerance_ns, 0);
	g = tg_gcra_params(1, 1000000000); /* 0.001 req/s, huge burst: capped, no wrap */
	TG_CHECK_INT(g.interval_ns, 1000 * SEC);
	TG_CHECK(g.tolerance_ns == TG_GCRA_MAX_NS);
	g = tg_gcra_params(1000000000, 1); /* 1M req/s */
	TG_CHECK_INT(g.interval_ns, 1000);
}

static void burst_then_refusal_with_exact_verdict(void)
{
	struct tg_gcra g = tg_gcra_params(10000, 20);
	struct tg_gcra_verdict v;
	__u64 tat = 0, now = 1000 * SEC;

	for (int i = 0; i < 20; i++) {
		TG_REQUIRE(charge(&tat, now, &g, &v));
		TG_CHECK_INT(v.remaining, 19 - i);
		TG_CHECK_INT(v.reset_ns, (__u64)(i + 1) * SEC / 10);
	}
	TG_CHECK(!charge(&tat, now, &g, &v));
	TG_CHECK_INT(v.retry_after_ns, SEC / 10);
	TG_CHECK_INT(v.remaining, 0);
	TG_CHECK_INT(v.reset_ns, 2 * SEC);
	TG_CHECK_INT(v.new_tat_ns, tat); /* a refusal leaves the state alone */
	/* exactly at the retry-after instant the next request passes, not a ns before */
	TG_CHECK(!charge(&tat, now + SEC / 10 - 1, &g, &v));
	TG_CHECK(charge(&tat, now + SEC / 10, &g, &v));
	TG_CHECK_INT(v.remaining, 0);
}

static void idle_bucket_refills_to_burst_only(void)
{
	struct tg_gcra g = tg_gcra_params(10000, 20);
	struct tg_gcra_verdict v;
	__u64 tat = 0, now = 5 * SEC;
	int n = 0;

	charge(&tat, now, &g, &v);
	now += 3600 * SEC; /* an hour idle earns no more than the burst */
	while (charge(&tat, now, &g, &v))
		n++;
	TG_CHECK_INT(n, 20);
}

/* xorshift64*: deterministic arrivals for the property checks. */
static __u64 rnd(__u64 *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

/* Checks allowed <= burst + rate * (t_j - t_i) for every pair of allowed arrivals. */
static int bound_holds(const __u64 *t, int n, __u64 rate_milli, __u64 burst)
{
	for (int i = 0; i < n; i++) {
		for (int j = i; j < n; j++) {
			__u64 span = t[j] - t[i];
			/* count j-i+1 must satisfy (count - burst) * 1e12 <= rate_milli * span */
			__u64 count = (__u64)(j - i + 1);

			if (count > burst &&
			    (count - burst) * 1000ULL * SEC > rate_milli * span) {
				printf("#   %llu allowed in %llu ns (rate %llu milli, burst %llu)\n",
				       (unsigned long long)count, (unsigned long long)span,
				       (unsigned long long)rate_milli, (unsigned long long)burst);
				return 0;
			}
		}
	}
	return 1;
}

static void random_floods_never_exceed_rate_plus_burst(void)
{
	static const struct {
		__u64 rate_milli, burst;
	} shapes[] = {{10000, 20}, {100000, 200}, {500, 1}, {3000, 5}, {1000000, 1}};
	static __u64 allowed[4000];
	__u64 seed = 0x9e3779b97f4a7c15ULL;

	for (size_t s = 0; s < TG_NCASES(shapes); s++) {
		struct tg_gcra g = tg_gcra_params(shapes[s].rate_milli, shapes[s].burst);
		struct tg_gcra_verdict v;
		__u64 tat = 0, now = SEC;
		int n = 0;

		for (int i = 0; i < 20000 && n < 4000; i++) {
			/* bursts of back-to-back requests mixed with gaps up to 2 intervals */
			now += rnd(&seed) % 4 == 0 ? rnd(&seed) % (2 * g.interval_ns + 1) : 0;
			if (charge(&tat, now, &g, &v))
				allowed[n++] = now;
		}
		TG_CHECK(n > (int)shapes[s].burst);
		TG_CHECK(bound_holds(allowed, n, shapes[s].rate_milli, shapes[s].burst));
	}
}

static void paced_client_under_rate_is_never_refused(void)
{
	struct tg_gcra g = tg_gcra_params(10000, 20);
	struct tg_gcra_verdict v;
	__u64 tat = 0, now = SEC, step = g.interval_ns * 10 / 9; /* 90% of the rate */
	int refused = 0;

	for (int i = 0; i < 100000; i++, now += step)
		refused += !charge(&tat, now, &g, &v);
	TG_CHECK_INT(refused, 0);
	/* and exactly at the rate, with jitter that never exceeds it on average per pair */
	tat = 0;
	for (int i = 0; i < 100000; i++, now += g.interval_ns)
		refused += !charge(&tat, now, &g, &v);
	TG_CHECK_INT(refused, 0);
}

struct cas_arg {
	_Atomic __u64 *tat;
	struct tg_gcra g;
	int attempts;
	int allowed;
};

static void *cas_worker(void *p)
{
	struct cas_arg *a = p;
	struct tg_gcra_verdict v;

	for (int i = 0; i < a->attempts; i++) {
		__u64 now = (__u64)tg_now_mono_ns();
		__u64 old = atomic_load(a->tat);

		while (tg_gcra_decide(old, now, &a->g, &v)) {
			if (atomic_compare_exchange_weak(a->tat, &old, v.new_tat_ns)) {
				a->allowed++;
				break;
			}
		}
	}
	return NULL;
}

static void concurrent_cas_charging_keeps_the_bound(void)
{
	_Atomic __u64 tat = 0;
	struct cas_arg args[4];
	pthread_t th[4];
	__u64 rate_milli = 2000000, burst = 50; /* 2000/s: many refusals and passes */
	__u64 start = (__u64)tg_now_mono_ns(), end;
	int total = 0;

	for (int i = 0; i < 4; i++) {
		args[i] = (struct cas_arg){&tat, tg_gcra_params(rate_milli, burst), 200000, 0};
		pthread_create(&th[i], NULL, cas_worker, &args[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		total += args[i].allowed;
	}
	end = (__u64)tg_now_mono_ns();
	/* every request decided with a clock reading in [start, end]: at most burst + rate *
	 * (end - start) can have passed, however the threads interleaved */
	TG_CHECK((__u64)total <= burst + rate_milli * (end - start) / (1000ULL * SEC) + 1);
	TG_CHECK(total > (int)burst);
}

static const struct tg_case cases[] = {
	{"parameters from rate and burst, fractional and extreme", params_from_rate_and_burst},
	{"burst passes, then refusal with exact retry-after/remaining/reset",
	 burst_then_refusal_with_exact_verdict},
	{"an idle bucket refills to the burst, no more", idle_bucket_refills_to_burst_only},
	{"random floods: allowed <= burst + rate*t for every interval",
	 random_floods_never_exceed_rate_plus_burst},
	{"a client pacing at 90% (and 100%) of its rate is never refused",
	 paced_client_under_rate_is_never_refused},
	{"4 threads charging one word by CAS keep the bound", concurrent_cas_charging_keeps_the_bound},
};

int main(void)
{
	return tg_run("gcra", cases, TG_NCASES(cases));
}
