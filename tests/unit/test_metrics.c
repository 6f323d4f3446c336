/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Prometheus metrics (userspace/metrics.h): counters count, histogram observations land in
 * the right bucket with cumulative counts, label values are escaped, a full label table
 * sends new label sets to "other", 4 threads recording at once sum exactly, and every line
 * of the rendered text is a HELP, TYPE or `name{labels} value` sample. The metrics are
 * process-global, so each case uses label values no other case uses.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>

#include "budget.h"
#include "metrics.h"
#include "tg_test.h"

#define MS  1000000ULL
#define SEC 1000000000ULL

/*
 * The value of the sample written exactly as `series` (name and labels), or -1 if absent.
 * Returned as a double since _sum is fractional; every count here is well below 2^53.
 */
static double sample(const char *series)
{
	size_t len, n = strlen(series);
	char *text = metrics_render(&len), *line;
	double v = -1;

	if (!text)
		return -2;
	for (line = text; line && *line;
	     line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		if (strncmp(line, series, n) == 0 && line[n] == ' ') {
			v = strtod(line + n + 1, NULL);
			break;
		}
	}
	free(text);
	return v;
}

static void counters_count(void)
{
	static const struct {
		const char *series;
		double want;
	} rows[] = {
	    {"http_requests_total{listener=\"data\",route=\"/v1/chat/completions\",code=\"200\"}",
	     3},
	    {"http_requests_total{listener=\"data\",route=\"/v1/chat/completions\",code=\"429\"}",
	     1},
	    {"http_requests_total{listener=\"admin\",route=\"/api/v1/keys\",code=\"404\"}", 1},
	    {"consumption_requests_total{endpoint=\"chat\",model=\"gpt-4o\",status=\"200\"}", 2},
	    {"tokens_consumed_total{endpoint=\"chat\",model=\"gpt-4o\",type=\"prompt\"}", 20},
	    {"tokens_consumed_total{endpoint=\"chat\",model=\"gpt-4o\",type=\"completion\"}", 10},
	    {"rate_limits_exceeded_total{window=\"second\"}", 2},
	    {"rate_limits_exceeded_total{window=\"minute\"}", 1},
	    {"upstream_errors_total{class=\"timeout\"}", 1},
	    {"http_requests_total{listener=\"admin\",route=\"/v1/chat/completions\",code=\"200\"}",
	     -1},
	};

	for (int i = 0; i < 3; i++)
		metrics_http(METRICS_DATA, "/v1/chat/completions", 200, 5 * MS);
	metrics_http(METRICS_DATA, "/v1/chat/completions", 429, 0);
	metrics_http(METRICS_ADMIN, "/api/v1/keys", 404, MS);
	metrics_consumption("chat", "gpt-4o", 200, 10, 5);
	metrics_consumption("chat", "gpt-4o", 200, 10, 5);
	metrics_rate_limited("second");
	metrics_rate_limited("second");
	metrics_rate_limited("minute");
	metrics_upstream_error("timeout");
	for (size_t i = 0; i < TG_NCASES(rows); i++) {
		double got = sample(rows[i].series);

		TG_CHECK(got == rows[i].want);
		if (got != rows[i].want)
			printf("#   %s is %g, expected %g\n", rows[i].series, got, rows[i].want);
	}
}

static void histogram_buckets_are_cumulative(void)
{
	static const uint64_t obs[] = {0, 500000, 500001, SEC, 61 * SEC, 30 * SEC};
	static const struct {
		const char *le;
		double want;
	} rows[] = {
	    {"0.0005", 2}, /* 0 and exactly 0.5 ms: le is "less than or equal" */
	    {"0.001", 3},  {"0.0025", 3}, {"0.5", 3}, {"1", 4},	   {"2.5", 4},
	    {"10", 4},	   {"30", 5},	  {"60", 5},  {"+Inf", 6},
	};
	char series[160];

	for (size_t i = 0; i < TG_NCASES(obs); i++)
		metrics_http(METRICS_ADMIN, "/hist", 200, obs[i]);
	for (size_t i = 0; i < TG_NCASES(rows); i++) {
		snprintf(series, sizeof(series),
			 "http_request_duration_seconds_bucket{listener=\"admin\",route=\"/hist\","
			 "le=\"%s\"}",
			 rows[i].le);
		TG_CHECK(sample(series) == rows[i].want);
	}
	TG_CHECK(
	    sample("http_request_duration_seconds_count{listener=\"admin\",route=\"/hist\"}") == 6);
	/* 0 + 0.0005 + 0.000500001 + 1 + 61 + 30 s, printed exactly */
	TG_CHECK(sample("http_request_duration_seconds_sum{listener=\"admin\",route=\"/hist\"}") ==
		 92.001000001);
	TG_CHECK(sample("http_requests_total{listener=\"admin\",route=\"/hist\",code=\"200\"}") ==
		 6);
}

static void label_values_are_escaped(void)
{
	static const struct {
		const char *raw, *escaped;
	} rows[] = {
	    {"we\"ird", "we\\\"ird"},
	    {"back\\slash", "back\\\\slash"},
	    {"two\nlines", "two\\nlines"},
	    {"all\\\"\n", "all\\\\\\\"\\n"},
	    {"", ""},
	    {"caf\xc3\xa9", "caf\xc3\xa9"}, /* UTF-8 passes as is */
	};
	char series[200];

	for (size_t i = 0; i < TG_NCASES(rows); i++) {
		metrics_consumption("esc", rows[i].raw, 200, 1, 0);
		snprintf(series, sizeof(series),
			 "consumption_requests_total{endpoint=\"esc\",model=\"%s\",status=\"200\"}",
			 rows[i].escaped);
		TG_CHECK(sample(series) == 1);
	}
	metrics_consumption("esc", NULL, 200, 0, 0); /* NULL counts as "" */
	TG_CHECK(sample("consumption_requests_total{endpoint=\"esc\",model=\"\",status=\"200\"}") ==
		 2);
}

static void long_values_are_cut_at_64_bytes(void)
{
	char a[100], b[100], series[200];

	memset(a, 'r', sizeof(a) - 1);
	a[sizeof(a) - 1] = '\0';
	memcpy(b, a, sizeof(b));
	b[80] = 'X'; /* differs only past the cut: same series */
	metrics_upstream_error(a);
	metrics_upstream_error(b);
	snprintf(series, sizeof(series), "upstream_errors_total{class=\"%.64s\"}", a);
	TG_CHECK(sample(series) == 2);
	/* a two-byte character straddling byte 64 is dropped whole, not split */
	memset(a, 's', 63);
	memcpy(a + 63, "\xc3\xa9tail", 7);
	metrics_upstream_error(a);
	snprintf(series, sizeof(series), "upstream_errors_total{class=\"%.63s\"}", a);
	TG_CHECK(sample(series) == 1);
}

static void full_table_overflows_to_other(void)
{
	char name[32], series[96];

	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "q%d", i);
		metrics_quota_exceeded(name);
	}
	/* 256 places: 255 label sets, the last place is "other" */
	TG_CHECK(sample("quota_exceeded_total{quota=\"q0\"}") == 1);
	TG_CHECK(sample("quota_exceeded_total{quota=\"q254\"}") == 1);
	TG_CHECK(sample("quota_exceeded_total{quota=\"q255\"}") == -1);
	TG_CHECK(sample("quota_exceeded_total{quota=\"other\"}") == 45);
	metrics_quota_exceeded("q10"); /* known sets keep counting on their own */
	metrics_quota_exceeded("q999");
	metrics_quota_exceeded("other");
	TG_CHECK(sample("quota_exceeded_total{quota=\"q10\"}") == 2);
	TG_CHECK(sample("quota_exceeded_total{quota=\"other\"}") == 47);
	for (int i = 0; i < 255; i++) {
		snprintf(series, sizeof(series), "quota_exceeded_total{quota=\"q%d\"}", i);
		if (sample(series) < 1) {
			TG_CHECK(!"every one of the first 255 sets has its own series");
			break;
		}
	}
}

static const char *const classes[8] = {"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"};

static void *record_worker(void *arg)
{
	(void)arg;
	for (int j = 0; j < 100000; j++) {
		metrics_upstream_error(classes[j % 8]);
		metrics_http(METRICS_DATA, "/conc", 200, j % 2 ? MS : 2 * SEC);
	}
	return NULL;
}

static void concurrent_recording_sums_exactly(void)
{
	pthread_t th[4];
	char series[64];

	for (int i = 0; i < 4; i++)
		TG_REQUIRE(pthread_create(&th[i], NULL, record_worker, NULL) == 0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	for (int c = 0; c < 8; c++) {
		snprintf(series, sizeof(series), "upstream_errors_total{class=\"%s\"}", classes[c]);
		TG_CHECK(sample(series) == 50000);
	}
	TG_CHECK(sample("http_requests_total{listener=\"data\",route=\"/conc\",code=\"200\"}") ==
		 400000);
	TG_CHECK(sample("http_request_duration_seconds_bucket{listener=\"data\",route=\"/conc\","
			"le=\"0.001\"}") == 200000);
	TG_CHECK(sample("http_request_duration_seconds_bucket{listener=\"data\",route=\"/conc\","
			"le=\"+Inf\"}") == 400000);
	TG_CHECK(sample("http_request_duration_seconds_sum{listener=\"data\",route=\"/conc\"}") ==
		 400200); /* 200000 * (0.001 + 2) s */
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* ; returns the end or NULL. */
static const char *metric_name_end(const char *p)
{
	if (!(isalpha((unsigned char)*p) || *p == '_' || *p == ':'))
		return NULL;
	while (isalnum((unsigned char)*p) || *p == '_' || *p == ':')
		p++;
	return p;
}

/* {name="value",...} with only \\ \" \n escapes; returns the end or NULL. */
static const char *labels_end(const char *p)
{
	if (*p != '{')
		return p;
	for (p++; *p != '}'; p++) {
		if (!(p = metric_name_end(p)) || *p++ != '=' || *p++ != '"')
			return NULL;
		for (; *p != '"'; p++) {
			if (*p == '\n' || !*p)
				return NULL;
			if (*p == '\\' && (!p[1] || !strchr("\\\"n", *++p)))
				return NULL;
		}
		if (p[1] != ',' && p[1] != '}')
			return NULL;
		p += p[1] == ',';
	}
	return p + 1;
}

/* A sample line: name, optional labels, one space, a number, nothing else. */
static bool sample_line_ok(const char *line, const char *family, bool histogram)
{
	const char *p = metric_name_end(line), *suffix;
	char *end;
	size_t n = strlen(family);

	if (!p || strncmp(line, family, n) != 0)
		return false;
	suffix = line + n;
	if (suffix != p &&
	    !(histogram && (strncmp(suffix, "_bucket", 7) == 0 || strncmp(suffix, "_sum", 4) == 0 ||
			    strncmp(suffix, "_count", 6) == 0)))
		return false;
	p = labels_end(p);
	if (!p || *p++ != ' ')
		return false;
	strtod(p, &end);
	return end != p && *end == '\0';
}

static void output_parses_line_by_line(void)
{
	size_t len;
	char *text = metrics_render(&len), *save = NULL;
	char family[64] = "";
	bool histogram = false;
	int samples = 0, types = 0;

	TG_REQUIRE(text);
	TG_CHECK_INT(strlen(text), len);
	TG_CHECK(len > 0 && text[len - 1] == '\n');
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char kind[16];

		if (strncmp(line, "# HELP ", 7) == 0) {
			TG_CHECK(sscanf(line, "# HELP %63s", family) == 1);
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			char name[64];

			TG_CHECK(sscanf(line, "# TYPE %63s %15s", name, kind) == 2);
			TG_CHECK_STR(name, family); /* TYPE follows its HELP */
			TG_CHECK(strcmp(kind, "counter") == 0 || strcmp(kind, "histogram") == 0 ||
				 strcmp(kind, "gauge") == 0);
			histogram = strcmp(kind, "histogram") == 0;
			types++;
			continue;
		}
		samples++;
		if (!sample_line_ok(line, family, histogram)) {
			TG_CHECK(!"sample line is name{labels} value of the current family");
			printf("#   bad line: %s\n", line);
		}
	}
	TG_CHECK_INT(types, 16);
	TG_CHECK(samples > 300);
	free(text);
}

static int two_providers(void *ctx, struct metrics_providers *out)
{
	(void)ctx;
	out->n = 2;
	out->name[0] = "pa";
	out->breaker[0] = 2;
	out->name[1] = "pb";
	out->breaker[1] = 0;
	return 0;
}

static void provider_families(void)
{
	metrics_provider_failover("pa", "pb");
	metrics_provider_failover("pa", "pb");
	metrics_provider_failover("pb", "pa");
	metrics_provider_error("pa", "server_error");
	metrics_provider_error("pa", "timeout");
	metrics_provider_error("pa", "server_error");
	metrics_provider_latency("pb", 3 * MS);
	metrics_provider_latency("pb", 700 * MS);
	TG_CHECK(sample("tollgate_provider_failovers_total{from=\"pa\",to=\"pb\"}") == 2);
	TG_CHECK(sample("tollgate_provider_failovers_total{from=\"pb\",to=\"pa\"}") == 1);
	TG_CHECK(sample("tollgate_provider_errors_total{provider=\"pa\",class=\"server_error\"}") ==
		 2);
	TG_CHECK(sample("tollgate_provider_errors_total{provider=\"pa\",class=\"timeout\"}") == 1);
	TG_CHECK(sample("tollgate_provider_latency_seconds_bucket{provider=\"pb\",le=\"0.005\"}") ==
		 1);
	TG_CHECK(sample("tollgate_provider_latency_seconds_count{provider=\"pb\"}") == 2);
	/* the breaker gauge comes from its source, only while one is set */
	TG_CHECK(sample("tollgate_provider_breaker_state{provider=\"pa\"}") == -1);
	metrics_set_providers(two_providers, NULL);
	TG_CHECK(sample("tollgate_provider_breaker_state{provider=\"pa\"}") == 2);
	TG_CHECK(sample("tollgate_provider_breaker_state{provider=\"pb\"}") == 0);
	metrics_set_providers(NULL, NULL);
	TG_CHECK(sample("tollgate_provider_breaker_state{provider=\"pb\"}") == -1);
}

/* The limit families (issue 5): counters by limit and action, enforcement, webhooks. */
static void limit_counters_count(void)
{
	static const struct {
		const char *series;
		double want;
	} rows[] = {
	    {"tollgate_limit_hits_total{limit=\"cost_per_day\",action=\"block\"}", 2},
	    {"tollgate_limit_hits_total{limit=\"cost_per_day\",action=\"soft\"}", 1},
	    {"tollgate_limit_hits_total{limit=\"max_concurrent\",action=\"queue\"}", 1},
	    {"tollgate_enforcement_actions_total{action=\"block\"}", 2},
	    {"tollgate_enforcement_actions_total{action=\"queue_timeout\"}", 1},
	    {"tollgate_enforcement_actions_total{action=\"downgrade\"}", -1},
	    {"tollgate_alert_webhooks_total{result=\"sent\"}", 3},
	    {"tollgate_alert_webhooks_total{result=\"dropped\"}", 1},
	    {"tollgate_tenants_refused_total", 2},
	};

	metrics_limit_hit("cost_per_day", "block");
	metrics_limit_hit("cost_per_day", "block");
	metrics_limit_hit("cost_per_day", "soft");
	metrics_limit_hit("max_concurrent", "queue");
	metrics_enforcement("block");
	metrics_enforcement("block");
	metrics_enforcement("queue_timeout");
	for (int i = 0; i < 3; i++)
		metrics_alert_webhook("sent");
	metrics_alert_webhook("dropped");
	metrics_tenant_refused();
	metrics_tenant_refused();
	for (size_t i = 0; i < TG_NCASES(rows); i++) {
		double got = sample(rows[i].series);

		TG_CHECK(got == rows[i].want);
		if (got != rows[i].want)
			printf("#   %s is %g, expected %g\n", rows[i].series, got, rows[i].want);
	}
}

/* The check histogram has microsecond buckets of its own and no labels. */
static void limit_check_histogram_buckets(void)
{
	static const uint64_t obs[] = {300, 500, 900, 4000, 20000, 2000000, 50000000};
	static const struct {
		const char *le;
		double want;
	} rows[] = {
	    {"0.0000005", 2}, {"0.000001", 3}, {"0.000005", 4}, {"0.000025", 5},
	    {"0.0025", 6},    {"0.01", 6},     {"+Inf", 7},
	};
	char series[128];

	for (size_t i = 0; i < TG_NCASES(obs); i++)
		metrics_limit_check_ns(obs[i]);
	for (size_t i = 0; i < TG_NCASES(rows); i++) {
		snprintf(series, sizeof(series),
			 "tollgate_limit_check_duration_seconds_bucket{le=\"%s\"}", rows[i].le);
		TG_CHECK(sample(series) == rows[i].want);
		if (sample(series) != rows[i].want)
			printf("#   %s is %g, expected %g\n", series, sample(series), rows[i].want);
	}
	TG_CHECK(sample("tollgate_limit_check_duration_seconds_count") == 7);
	/* 300 + 500 + 900 + 4000 + 20000 + 2000000 + 50000000 ns */
	TG_CHECK(sample("tollgate_limit_check_duration_seconds_sum") == 0.0520257);
}

/* The ratio gauge keeps the highest value per limit; _set replaces it; junk is ignored. */
static void budget_ratio_keeps_the_max(void)
{
	metrics_budget_ratio("cost_per_hour", 0.25);
	metrics_budget_ratio("cost_per_hour", 0.8);
	metrics_budget_ratio("cost_per_hour", 0.5);
	metrics_budget_ratio("cost_per_hour", -1);
	metrics_budget_ratio("cost_per_hour", 0.0 / 0.0);
	metrics_budget_ratio("tokens_per_day", 1.5);
	TG_CHECK(sample("tollgate_budget_usage_ratio{limit=\"cost_per_hour\"}") == 0.8);
	TG_CHECK(sample("tollgate_budget_usage_ratio{limit=\"tokens_per_day\"}") == 1.5);
	metrics_budget_ratio_set("cost_per_hour", 0.1);
	TG_CHECK(sample("tollgate_budget_usage_ratio{limit=\"cost_per_hour\"}") == 0.1);
	metrics_budget_ratio("cost_per_hour", 0.05);
	TG_CHECK(sample("tollgate_budget_usage_ratio{limit=\"cost_per_hour\"}") == 0.1);
	metrics_budget_ratio("zero_first", 0);
	TG_CHECK(sample("tollgate_budget_usage_ratio{limit=\"zero_first\"}") == 0);
}

/* The gauge from the engine: per limit, the highest ratio among subjects, at each render. */
static void budget_ratios_from_the_engine(void)
{
	struct budget_opts o = {true, LIMIT_MODE_HARD, LIMIT_ACT_BLOCK, 800, 0, 1024, 10000};
	struct budget *b = budget_new(&o);
	struct limits team, key;
	struct budget_call c1 = {0}, c2 = {0};
	struct budget_verdict v;
	struct budget_req r = {
	    .key_id = "ratiokey0001", .key_limits = &key, .owner = "team:ratio", .now = 1795400000};
	double out[LIMIT__COUNT];

	TG_REQUIRE(b);
	memset(&key, 0, sizeof(key));
	key.v[LIMIT_TPD] = 1000; /* the key: 300 of 1000 reserved below */
	limits_clear(&team);
	team.v[LIMIT_TPD] = 400; /* the team: 300 of 400 */
	team.v[LIMIT_RPD] = 10;	 /* 1 of 10 */
	TG_REQUIRE(budget_set_limits(b, "team:ratio", &team) == 0);
	r.est[WIN_M_REQUESTS] = 1;
	r.est[WIN_M_TOKENS] = 300;
	TG_REQUIRE(budget_reserve(b, &r, &c1, &v) == 0 && v.allowed);
	budget_max_ratios(b, r.now, out);
	TG_CHECK(out[LIMIT_TPD] == 0.75); /* the team's, higher than the key's 0.3 */
	TG_CHECK(out[LIMIT_RPD] == 0.1);
	TG_CHECK(out[LIMIT_COST_DAY] == 0); /* nobody has it */
	r.key_id = "ratiokey0002";
	r.est[WIN_M_TOKENS] = 100;
	TG_REQUIRE(budget_reserve(b, &r, &c2, &v) == 0 && v.allowed);
	budget_max_ratios(b, r.now, out);
	TG_CHECK(out[LIMIT_TPD] == 1.0);
	budget_release(b, &c1);
	budget_release(b, &c2);
	budget_max_ratios(b, r.now, out);
	TG_CHECK(out[LIMIT_TPD] == 0); /* released: nothing used any more */
	budget_free(b);
}

static const struct tg_case cases[] = {
    {"counters count what was recorded", counters_count},
    {"histogram: bucket placement, cumulative counts, exact sum", histogram_buckets_are_cumulative},
    {"label values are escaped (backslash, quote, newline)", label_values_are_escaped},
    {"long label values are cut at 64 bytes on a UTF-8 boundary", long_values_are_cut_at_64_bytes},
    {"a full label table sends new label sets to \"other\"", full_table_overflows_to_other},
    {"4 threads recording at once sum exactly", concurrent_recording_sums_exactly},
    {"limit hits, enforcement actions and webhooks count", limit_counters_count},
    {"limit check histogram: microsecond buckets, no labels", limit_check_histogram_buckets},
    {"budget ratio gauge keeps the highest value per limit", budget_ratio_keeps_the_max},
    {"the engine's highest usage ratio per limit, among subjects", budget_ratios_from_the_engine},
    {"every line is HELP, TYPE or name{labels} value", output_parses_line_by_line},
    {"provider families: failovers, errors by class, latency, breaker state gauge",
     provider_families},
};

int main(void)
{
	return tg_run("metrics", cases, TG_NCASES(cases));
}
