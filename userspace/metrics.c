/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Prometheus metrics. Each family keeps a fixed table of label sets (series). A series is
 * interned on first use under a mutex and published by a release store of the
 * family's count; lookups scan the published prefix without a lock, and series are never
 * removed, so a found series stays valid for the life of the process. When a table is
 * full, new label sets share one series whose every label is "other". Values are relaxed
 * atomics: a render sees each counter whole, not all counters at one instant.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "util.h"

#define SERIES_MAX	256 /* label sets per family, the last one kept for "other" */
#define LABELS_MAX	3   /* labels per family */
#define LABEL_VALUE_MAX 64  /* longer label values are cut (at a UTF-8 boundary) */
#define NBUCKETS	17  /* histogram buckets, +Inf included */
#define OVERFLOW_VALUE	"other"
#define NS_PER_SEC	UINT64_C(1000000000)

enum family_kind {
	FAM_COUNTER = 0,
	FAM_HISTOGRAM,
	FAM_GAUGE, /* value holds the bits of a non-negative double */
};

struct series {
	uint64_t hash;				    /* of the label values, to skip strcmp */
	char vals[LABELS_MAX][LABEL_VALUE_MAX + 1]; /* immutable once published */
	uint64_t value;				    /* counter; gauge: double bits */
	uint64_t sum_ns;			    /* histogram: sum of observations */
	uint64_t bucket[NBUCKETS];		    /* histogram: per bucket, not cumulative */
};

struct family {
	const char *name;
	const char *help;
	enum family_kind kind;
	int nlabels;
	const char *labels[LABELS_MAX];
	const struct buckets *b; /* histograms: NULL = the request-duration buckets */
};

/* A histogram's upper bounds in ns and as printed in "le" (+Inf last, not in ns). */
struct buckets {
	int n; /* le values, +Inf included; at most NBUCKETS */
	const uint64_t *ns;
	const char *const *le;
};

/* A family's series; count is release-stored under insert_lock, read without it. */
struct table {
	uint32_t count;
	struct series set[SERIES_MAX];
};

enum family_id {
	F_HTTP_REQUESTS = 0,
	F_HTTP_DURATION,
	F_CONSUMPTION,
	F_TOKENS,
	F_RATE_LIMITED,
	F_QUOTA,
	F_UPSTREAM,
	F_PROV_FAILOVERS,
	F_PROV_ERRORS,
	F_PROV_LATENCY,
	F_BUDGET_RATIO,
	F_LIMIT_HITS,
	F_ENFORCEMENT,
	F_LIMIT_CHECK,
	F_ALERT_WEBHOOKS,
	F_TENANTS_REFUSED,
	F__COUNT,
};

/* A limit check costs microseconds: its own buckets, 0.5 us to 10 ms. */
static const uint64_t check_ns[] = {500,    1000,   2500,   5000,    10000,   25000,   50000,
				    100000, 250000, 500000, 1000000, 2500000, 10000000};
static const char *const check_le[] = {"0.0000005", "0.000001", "0.0000025", "0.000005", "0.00001",
				       "0.000025",  "0.00005",	"0.0001",    "0.00025",	 "0.0005",
				       "0.001",	    "0.0025",	"0.01",	     "+Inf"};
static const struct buckets check_buckets = {(int)TG_ARRAY_SIZE(check_le), check_ns, check_le};

static const struct family families[F__COUNT] = {
    [F_HTTP_REQUESTS] = {"http_requests_total",
			 "HTTP requests served, by listener, route and status code.",
			 FAM_COUNTER,
			 3,
			 {"listener", "route", "code"},
			 NULL},
    [F_HTTP_DURATION] = {"http_request_duration_seconds",
			 "Time from request to the last response byte, in seconds.",
			 FAM_HISTOGRAM,
			 2,
			 {"listener", "route"},
			 NULL},
    [F_CONSUMPTION] = {"consumption_requests_total",
		       "Metered calls, by endpoint, model and status.",
		       FAM_COUNTER,
		       3,
		       {"endpoint", "model", "status"},
		       NULL},
    [F_TOKENS] = {"tokens_consumed_total",
		  "Tokens consumed, by endpoint, model and type.",
		  FAM_COUNTER,
		  3,
		  {"endpoint", "model", "type"},
		  NULL},
    [F_RATE_LIMITED] = {"rate_limits_exceeded_total",
			"Requests refused by a request-rate window.",
			FAM_COUNTER,
			1,
			{"window"},
			NULL},
    [F_QUOTA] = {"quota_exceeded_total",
		 "Requests refused by a token quota or cost budget.",
		 FAM_COUNTER,
		 1,
		 {"quota"},
		 NULL},
    [F_UPSTREAM] = {"upstream_errors_total",
		    "Failed upstream calls, by error class.",
		    FAM_COUNTER,
		    1,
		    {"class"},
		    NULL},
    [F_PROV_FAILOVERS] = {"tollgate_provider_failovers_total",
			  "Calls moved to another provider after a failed attempt.",
			  FAM_COUNTER,
			  2,
			  {"from", "to"},
			  NULL},
    [F_PROV_ERRORS] = {"tollgate_provider_errors_total",
		       "Failed attempts, by provider and class (rate_limited, server_error, "
		       "timeout, connect, broken).",
		       FAM_COUNTER,
		       2,
		       {"provider", "class"},
		       NULL},
    [F_PROV_LATENCY] = {"tollgate_provider_latency_seconds",
			"Time from an attempt's submission to its answer's headers, by provider.",
			FAM_HISTOGRAM,
			1,
			{"provider"},
			NULL},
    [F_BUDGET_RATIO] = {"tollgate_budget_usage_ratio",
			"Highest usage/limit ratio among subjects, per limit.",
			FAM_GAUGE,
			1,
			{"limit"},
			NULL},
    [F_LIMIT_HITS] = {"tollgate_limit_hits_total",
		      "Calls over a limit, by limit and the action taken.",
		      FAM_COUNTER,
		      2,
		      {"limit", "action"},
		      NULL},
    [F_ENFORCEMENT] = {"tollgate_enforcement_actions_total",
		       "Enforcement actions taken (block, queue, queue_timeout, downgrade, alert, "
		       "soft).",
		       FAM_COUNTER,
		       1,
		       {"action"},
		       NULL},
    [F_LIMIT_CHECK] = {"tollgate_limit_check_duration_seconds",
		       "Time of one full limit check (every window of key, owner, tenant).",
		       FAM_HISTOGRAM,
		       0,
		       {NULL},
		       &check_buckets},
    [F_ALERT_WEBHOOKS] = {"tollgate_alert_webhooks_total",
			  "Alert webhooks by result (sent, failed after retries, dropped).",
			  FAM_COUNTER,
			  1,
			  {"result"},
			  NULL},
    [F_TENANTS_REFUSED] = {"tollgate_tenants_refused_total",
			   "Requests refused for naming a new tenant past limits.max_tenants.",
			   FAM_COUNTER,
			   0,
			   {NULL},
			   NULL},
};

static struct table tables[F__COUNT];
/* Insertions are rare (first use of a label set): one lock for every family is enough. */
static pthread_mutex_t insert_lock = PTHREAD_MUTEX_INITIALIZER;

/* Upper bounds in ns, and the same as printed in the "le" label. */
static const uint64_t bucket_ns[NBUCKETS - 1] = {
    500000,	   1000000,	   2500000,	   5000000,	   10000000,   25000000,
    50000000,	   100000000,	   250000000,	   500000000,	   1000000000, 2500000000ULL,
    5000000000ULL, 10000000000ULL, 30000000000ULL, 60000000000ULL,
};
static const char *const bucket_le[NBUCKETS] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",  "0.25",
    "0.5",    "1",     "2.5",	 "5",	  "10",	  "30",	   "60",   "+Inf",
};
static const struct buckets duration_buckets = {NBUCKETS, bucket_ns, bucket_le};

static const struct buckets *family_buckets(const struct family *f)
{
	return f->b ? f->b : &duration_buckets;
}

/* Copies a label value, cut to LABEL_VALUE_MAX bytes without splitting a UTF-8 sequence. */
static void value_copy(char *dst, const char *src)
{
	size_t n = src ? strnlen(src, LABEL_VALUE_MAX + 1) : 0;

	if (n > LABEL_VALUE_MAX) {
		n = LABEL_VALUE_MAX;
		while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--;
	}
	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

/* FNV-1a over the values, each terminated, so ("ab","c") and ("a","bc") differ. */
static uint64_t values_hash(int n, char vals[][LABEL_VALUE_MAX + 1])
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (int i = 0; i < n; i++)
		for (const char *p = vals[i];; p++) {
			h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
			if (!*p)
				break;
		}
	return h;
}

static struct series *series_find(const struct family *f, struct table *t,
				  char vals[][LABEL_VALUE_MAX + 1], uint64_t h, uint32_t from,
				  uint32_t to)
{
	for (uint32_t i = from; i < to; i++) {
		struct series *s = &t->set[i];
		int k = 0;

		if (s->hash != h)
			continue;
		while (k < f->nlabels && strcmp(s->vals[k], vals[k]) == 0)
			k++;
		if (k == f->nlabels)
			return s;
	}
	return NULL;
}

static struct series *series_publish(const struct family *f, struct table *t, uint32_t at,
				     char vals[][LABEL_VALUE_MAX + 1], uint64_t h)
{
	struct series *s = &t->set[at];

	memcpy(s->vals, vals, sizeof(s->vals[0]) * (size_t)f->nlabels);
	s->hash = h;
	__atomic_store_n(&t->count, at + 1, __ATOMIC_RELEASE);
	return s;
}

/*
 * Called with insert_lock held after a lock-free miss over the first `seen` series: looks at
 * those published since, then adds the set, or the shared "other" set once only the last
 * place is left.
 */
static struct series *series_insert_locked(const struct family *f, struct table *t,
					   char vals[][LABEL_VALUE_MAX + 1], uint64_t h,
					   uint32_t seen)
{
	uint32_t n = __atomic_load_n(&t->count, __ATOMIC_RELAXED);
	struct series *s = series_find(f, t, vals, h, seen, n);

	if (s)
		return s;
	if (n < SERIES_MAX - 1)
		return series_publish(f, t, n, vals, h);
	for (int i = 0; i < f->nlabels; i++)
		value_copy(vals[i], OVERFLOW_VALUE);
	h = values_hash(f->nlabels, vals);
	s = series_find(f, t, vals, h, 0, n);
	if (!s && n < SERIES_MAX)
		s = series_publish(f, t, n, vals, h);
	return s;
}

/* The series for these label values (NULL counts as ""), interned on first use. */
static struct series *series_get(enum family_id id, const char *const *in)
{
	const struct family *f = &families[id];
	struct table *t = &tables[id];
	char vals[LABELS_MAX][LABEL_VALUE_MAX + 1];
	uint32_t n = __atomic_load_n(&t->count, __ATOMIC_ACQUIRE);
	struct series *s;
	uint64_t h;

	for (int i = 0; i < f->nlabels; i++)
		value_copy(vals[i], in[i]);
	h = values_hash(f->nlabels, vals);
	s = series_find(f, t, vals, h, 0, n);
	if (s)
		return s;
	pthread_mutex_lock(&insert_lock);
	s = series_insert_locked(f, t, vals, h, n);
	pthread_mutex_unlock(&insert_lock);
	return s;
}

static void counter_add(enum family_id id, const char *const *vals, uint64_t n)
{
	struct series *s = series_get(id, vals);

	if (s)
		__atomic_fetch_add(&s->value, n, __ATOMIC_RELAXED);
}

static void histogram_observe(enum family_id id, const char *const *vals, uint64_t ns)
{
	const struct buckets *bk = family_buckets(&families[id]);
	struct series *s = series_get(id, vals);
	int b = 0;

	if (!s)
		return;
	while (b < bk->n - 1 && ns > bk->ns[b])
		b++;
	__atomic_fetch_add(&s->bucket[b], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&s->sum_ns, ns, __ATOMIC_RELAXED);
}

void metrics_http(enum metrics_listener l, const char *route, unsigned status, uint64_t duration_ns)
{
	char code[21];
	const char *listener = l == METRICS_ADMIN ? "admin" : "data";

	tg_u64_dec(status, code); /* every request passes here: no snprintf */
	counter_add(F_HTTP_REQUESTS, (const char *const[]){listener, route, code}, 1);
	histogram_observe(F_HTTP_DURATION, (const char *const[]){listener, route}, duration_ns);
}

void metrics_consumption(const char *endpoint, const char *model, unsigned status,
			 uint64_t prompt_tokens, uint64_t completion_tokens)
{
	char code[12];

	snprintf(code, sizeof(code), "%u", status);
	counter_add(F_CONSUMPTION, (const char *const[]){endpoint, model, code}, 1);
	counter_add(F_TOKENS, (const char *const[]){endpoint, model, "prompt"}, prompt_tokens);
	counter_add(F_TOKENS, (const char *const[]){endpoint, model, "completion"},
		    completion_tokens);
}

void metrics_rate_limited(const char *window)
{
	counter_add(F_RATE_LIMITED, &window, 1);
}

void metrics_quota_exceeded(const char *quota)
{
	counter_add(F_QUOTA, &quota, 1);
}

void metrics_upstream_error(const char *cls)
{
	counter_add(F_UPSTREAM, &cls, 1);
}

void metrics_provider_failover(const char *from, const char *to)
{
	counter_add(F_PROV_FAILOVERS, (const char *const[]){from, to}, 1);
}

void metrics_provider_error(const char *provider, const char *cls)
{
	counter_add(F_PROV_ERRORS, (const char *const[]){provider, cls}, 1);
}

void metrics_provider_latency(const char *provider, uint64_t ns)
{
	histogram_observe(F_PROV_LATENCY, &provider, ns);
}

void metrics_limit_hit(const char *limit, const char *action)
{
	counter_add(F_LIMIT_HITS, (const char *const[]){limit, action}, 1);
}

void metrics_enforcement(const char *action)
{
	counter_add(F_ENFORCEMENT, &action, 1);
}

void metrics_limit_check_ns(uint64_t ns)
{
	histogram_observe(F_LIMIT_CHECK, (const char *const[]){NULL}, ns);
}

void metrics_tenant_refused(void)
{
	counter_add(F_TENANTS_REFUSED, (const char *const[]){NULL}, 1);
}

void metrics_alert_webhook(const char *result)
{
	counter_add(F_ALERT_WEBHOOKS, &result, 1);
}

static uint64_t double_bits(double d)
{
	uint64_t u;

	memcpy(&u, &d, sizeof(u));
	return u;
}

static double bits_double(uint64_t u)
{
	double d;

	memcpy(&d, &u, sizeof(d));
	return d;
}

/*
 * Non-negative doubles order as their bit patterns do, so the maximum is a compare-and-swap
 * on the bits; the first use of a series publishes 0.0 (all bits zero).
 */
void metrics_budget_ratio(const char *limit, double ratio)
{
	struct series *s;
	uint64_t want, cur;

	if (!(ratio >= 0) || ratio > 1e15)
		return;
	s = series_get(F_BUDGET_RATIO, &limit);
	if (!s)
		return;
	want = double_bits(ratio);
	cur = __atomic_load_n(&s->value, __ATOMIC_RELAXED);
	while (cur < want && !__atomic_compare_exchange_n(&s->value, &cur, want, true,
							  __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

void metrics_budget_ratio_set(const char *limit, double ratio)
{
	struct series *s;

	if (!(ratio >= 0) || ratio > 1e15)
		return;
	s = series_get(F_BUDGET_RATIO, &limit);
	if (s)
		__atomic_store_n(&s->value, double_bits(ratio), __ATOMIC_RELAXED);
}

/* A label value as the exposition format wants it: \ " and newline escaped. */
static void put_escaped(FILE *out, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\')
			fputs("\\\\", out);
		else if (*v == '"')
			fputs("\\\"", out);
		else if (*v == '\n')
			fputs("\\n", out);
		else
			fputc(*v, out);
	}
}

/* {a="x",b="y"[,le="..."]}; nothing for a family without labels and no le. */
static void put_labels(FILE *out, const struct family *f, const struct series *s, const char *le)
{
	if (f->nlabels == 0 && !le)
		return;
	fputc('{', out);
	for (int i = 0; i < f->nlabels; i++) {
		fprintf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
		put_escaped(out, s->vals[i]);
		fputc('"', out);
	}
	if (le)
		fprintf(out, "%sle=\"%s\"", f->nlabels ? "," : "", le);
	fputc('}', out);
}

/* Cumulative buckets; _count is the +Inf bucket so the two always agree. */
static void render_histogram(FILE *out, const struct family *f, const struct series *s)
{
	const struct buckets *bk = family_buckets(f);
	uint64_t cum = 0, sum = __atomic_load_n(&s->sum_ns, __ATOMIC_RELAXED);

	for (int b = 0; b < bk->n; b++) {
		cum += __atomic_load_n(&s->bucket[b], __ATOMIC_RELAXED);
		fprintf(out, "%s_bucket", f->name);
		put_labels(out, f, s, bk->le[b]);
		fprintf(out, " %" PRIu64 "\n", cum);
	}
	fprintf(out, "%s_sum", f->name);
	put_labels(out, f, s, NULL);
	fprintf(out, " %" PRIu64 ".%09" PRIu64 "\n", sum / NS_PER_SEC, sum % NS_PER_SEC);
	fprintf(out, "%s_count", f->name);
	put_labels(out, f, s, NULL);
	fprintf(out, " %" PRIu64 "\n", cum);
}

static void render_family(FILE *out, const struct family *f, const struct table *t)
{
	uint32_t n = __atomic_load_n(&t->count, __ATOMIC_ACQUIRE);

	static const char *const kinds[] = {
	    [FAM_COUNTER] = "counter", [FAM_HISTOGRAM] = "histogram", [FAM_GAUGE] = "gauge"};

	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, kinds[f->kind]);
	for (uint32_t i = 0; i < n; i++) {
		const struct series *s = &t->set[i];

		if (f->kind == FAM_HISTOGRAM) {
			render_histogram(out, f, s);
			continue;
		}
		fputs(f->name, out);
		put_labels(out, f, s, NULL);
		if (f->kind == FAM_GAUGE)
			fprintf(out, " %.6g\n",
				bits_double(__atomic_load_n(&s->value, __ATOMIC_RELAXED)));
		else
			fprintf(out, " %" PRIu64 "\n",
				__atomic_load_n(&s->value, __ATOMIC_RELAXED));
	}
}

static int (*kernel_read)(void *ctx, struct metrics_kernel *out);
static void *kernel_ctx;

void metrics_set_kernel(int (*read)(void *ctx, struct metrics_kernel *out), void *ctx)
{
	kernel_read = read;
	kernel_ctx = ctx;
}

static void render_kernel(FILE *out)
{
	struct metrics_kernel k = {0};

	if (!kernel_read || kernel_read(kernel_ctx, &k))
		return;
	fputs("# HELP tollgate_kernel_packets_total Packets the kernel programs counted, by "
	      "verdict (summed over CPUs)\n# TYPE tollgate_kernel_packets_total counter\n",
	      out);
	for (size_t i = 0; i < k.n && i < METRICS_KERNEL_MAX; i++)
		fprintf(out, "tollgate_kernel_packets_total{verdict=\"%s\"} %" PRIu64 "\n",
			k.verdict[i], k.packets[i]);
	fprintf(out,
		"# HELP tollgate_kernel_penalty_box_entries Sources in the XDP penalty box "
		"map\n# TYPE tollgate_kernel_penalty_box_entries gauge\n"
		"tollgate_kernel_penalty_box_entries %" PRIu64 "\n",
		k.penalty_entries);
}

static void (*refresh_fn)(void *ctx);
static void *refresh_ctx;

void metrics_set_refresh(void (*fn)(void *ctx), void *ctx)
{
	refresh_fn = fn;
	refresh_ctx = ctx;
}

static int (*providers_read)(void *ctx, struct metrics_providers *out);
static void *providers_ctx;

void metrics_set_providers(int (*read)(void *ctx, struct metrics_providers *out), void *ctx)
{
	providers_read = read;
	providers_ctx = ctx;
}

static void render_providers(FILE *out)
{
	struct metrics_providers p = {0};

	if (!providers_read || providers_read(providers_ctx, &p))
		return;
	fputs("# HELP tollgate_provider_breaker_state Circuit breaker of each provider: 0 closed, "
	      "1 half-open, 2 open\n# TYPE tollgate_provider_breaker_state gauge\n", out);
	for (size_t i = 0; i < p.n && i < METRICS_PROVIDERS_MAX; i++) {
		fputs("tollgate_provider_breaker_state{provider=\"", out);
		put_escaped(out, p.name[i]);
		fprintf(out, "\"} %u\n", p.breaker[i]);
	}
}

char *metrics_render(size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *out;

	if (refresh_fn)
		refresh_fn(refresh_ctx);
	out = open_memstream(&buf, &n);
	if (!out)
		return NULL;
	for (int i = 0; i < F__COUNT; i++)
		render_family(out, &families[i], &tables[i]);
	render_kernel(out);
	render_providers(out);
	if (fclose(out) != 0) {
		free(buf);
		errno = ENOMEM;
		return NULL;
	}
	if (len)
		*len = n;
	return buf;
}
