/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Prometheus metrics, rendered as text at /metrics on the admin listener. Counters are
 * atomics in fixed-size tables of label sets; a label set is interned on first use, and
 * once a family's table is full new label sets are counted under "other", so labels stay
 * low-cardinality (there are no per-key labels): route, status code, window, endpoint,
 * model (bounded by the configured model list). Recording is thread-safe and lock-free
 * after a label set's first use.
 */
#ifndef TG_METRICS_H
#define TG_METRICS_H

#include <stddef.h>
#include <stdint.h>

enum metrics_listener {
	METRICS_DATA = 0,
	METRICS_ADMIN,
};

/* One finished HTTP request: http_requests_total and http_request_duration_seconds. */
void metrics_http(enum metrics_listener l, const char *route, unsigned status,
		  uint64_t duration_ns);
/* One metered call: consumption_requests_total{endpoint,model,status} and
 * tokens_consumed_total{endpoint,model,type="prompt"|"completion"}. */
void metrics_consumption(const char *endpoint, const char *model, unsigned status,
			 uint64_t prompt_tokens, uint64_t completion_tokens);
/* rate_limits_exceeded_total{window} */
void metrics_rate_limited(const char *window);
/* quota_exceeded_total{quota} */
void metrics_quota_exceeded(const char *quota);
/* tollgate_tenants_refused_total: requests naming a new tenant past limits.max_tenants */
void metrics_tenant_refused(void);
/* Upstream errors by class: upstream_errors_total{class="timeout"|"connect"|"status"|...} */
void metrics_upstream_error(const char *cls);

/* ---- providers (router.h): failover, errors, latency, breaker state ---- */

/* tollgate_provider_failovers_total{from,to}: a call moved from one provider to the next. */
void metrics_provider_failover(const char *from, const char *to);
/* tollgate_provider_errors_total{provider,class}: a failed attempt, by router outcome name. */
void metrics_provider_error(const char *provider, const char *cls);
/* tollgate_provider_latency_seconds{provider}: an attempt's time to the answer's headers. */
void metrics_provider_latency(const char *provider, uint64_t ns);

#define METRICS_PROVIDERS_MAX 64
struct metrics_providers {
	size_t n;
	const char *name[METRICS_PROVIDERS_MAX];
	unsigned breaker[METRICS_PROVIDERS_MAX]; /* 0 closed, 1 half-open, 2 open */
};

/*
 * Sets the source of the gauge tollgate_provider_breaker_state{provider}, read when /metrics
 * is rendered (read fills *out and returns 0). NULL: no such gauge. Call before the admin
 * listener starts.
 */
void metrics_set_providers(int (*read)(void *ctx, struct metrics_providers *out), void *ctx);
/* ---- limits (issue 5): token quotas, budgets, enforcement actions, alerts ---- */

/*
 * A limit refused or acted on a call: tollgate_limit_hits_total{limit,action}; limit is
 * the limit's JSON name ("cost_per_day"), action what was done (block, queue,
 * queue_timeout, downgrade, alert, soft).
 */
void metrics_limit_hit(const char *limit, const char *action);
/* tollgate_enforcement_actions_total{action} (block|queue|queue_timeout|downgrade|alert|soft) */
void metrics_enforcement(const char *action);
/* One full limit check (reserve of every window): tollgate_limit_check_duration_seconds. */
void metrics_limit_check_ns(uint64_t ns);
/*
 * tollgate_budget_usage_ratio{limit}: the highest used/value ratio seen among subjects for
 * this limit (no per-subject labels). metrics_budget_ratio keeps the maximum of what it is
 * given; metrics_budget_ratio_set replaces it (for an engine that recomputes the maximum,
 * e.g. at each rendering, see metrics_set_refresh). Negative or NaN ratios are ignored.
 */
void metrics_budget_ratio(const char *limit, double ratio);
void metrics_budget_ratio_set(const char *limit, double ratio);
/*
 * Sets a function metrics_render calls first (on the scraping thread), to bring gauges up
 * to date (e.g. metrics_budget_ratio_set from the limits engine). NULL: none. Call before
 * the admin listener starts.
 */
void metrics_set_refresh(void (*fn)(void *ctx), void *ctx);
/* tollgate_alert_webhooks_total{result="sent"|"failed"|"dropped"} */
void metrics_alert_webhook(const char *result);

/* What the kernel fast path counts, read when /metrics is rendered. */
#define METRICS_KERNEL_MAX 32
struct metrics_kernel {
	size_t n;				 /* verdict counters filled */
	const char *verdict[METRICS_KERNEL_MAX]; /* label value: "refused", "under_limit", ... */
	uint64_t packets[METRICS_KERNEL_MAX];	 /* summed over CPUs */
	uint64_t penalty_entries;		 /* sources in the penalty box map */
};

/*
 * Sets the source of the kernel families, tollgate_kernel_packets_total{verdict} (counter)
 * and tollgate_kernel_penalty_box_entries (gauge): read fills *out and returns 0, or
 * non-zero to leave them out of this rendering. read NULL (the default): no kernel
 * families, as with kernel.mode=off. Call before the admin listener starts.
 */
void metrics_set_kernel(int (*read)(void *ctx, struct metrics_kernel *out), void *ctx);

/*
 * Renders every metric in Prometheus text exposition format 0.0.4 into a malloc'd buffer
 * (the caller frees) and its length. Returns NULL on allocation failure.
 */
char *metrics_render(size_t *len);

#endif /* TG_METRICS_H */
