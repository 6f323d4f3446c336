/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Providers and pricing (userspace/providers.h): the built-in mock provider and its prices,
 * the "providers" config array read strictly (each bad input's error names its field and
 * leaves the result untouched), credentials taken from the environment and never echoed in
 * an error, routing by model name, and exact costs rounded up to the nano-dollar, also for
 * token counts whose product needs 128 bits.
 */
#include <errno.h>

#include <cjson/cJSON.h>

#include "providers.h"
#include "tg_test.h"

#define SECRET	"sk-TESTSECRET-9f8e7d"
#define ENV_VAR "TG_TEST_PROVIDER_KEY"

/* A model list every row can reuse. */
#define MODELS "\"models\":[{\"name\":\"m\",\"prompt_per_1k\":1,\"completion_per_1k\":2}]"

static int parse_text(const char *json, struct providers *p, char *err, size_t errlen)
{
	cJSON *arr = cJSON_Parse(json);
	int rc;

	if (!arr) {
		snprintf(err, errlen, "(test json does not parse)");
		return -999;
	}
	rc = providers_parse(arr, p, err, errlen);
	cJSON_Delete(arr);
	return rc;
}

static void default_mock_provider(void)
{
	struct providers p = {0};
	const struct model_price *price = NULL;
	const struct provider *pv;

	TG_REQUIRE(providers_default(&p, "http://127.0.0.1:9000/v1/", PROVIDER_HTTP_1_1, NULL) == 0);
	TG_REQUIRE(p.n == 1);
	TG_CHECK_STR(p.v[0].name, "mock");
	TG_CHECK_STR(p.v[0].base_url, "http://127.0.0.1:9000/v1");
	TG_CHECK(p.v[0].api_key == NULL);
	TG_CHECK_STR(p.v[0].api_key_env, "");
	TG_CHECK_INT(p.v[0].timeout_sec, 120);
	TG_CHECK_INT(p.v[0].http, PROVIDER_HTTP_1_1);
	TG_CHECK_INT(p.v[0].nmodels, 4);
	pv = providers_route(&p, "gpt-4o-mini", &price);
	TG_REQUIRE(pv && price);
	TG_CHECK_INT(price->prompt_nano_per_1k, 150000); /* $0.15 per 1M tokens */
	TG_CHECK_INT(price->completion_nano_per_1k, 600000);
	TG_REQUIRE(providers_route(&p, "gpt-4o", &price));
	TG_CHECK_INT(price->prompt_nano_per_1k, 2500000);
	TG_CHECK_INT(price->completion_nano_per_1k, 10000000);
	TG_REQUIRE(providers_route(&p, "gpt-3.5-turbo", &price));
	TG_CHECK_INT(price->prompt_nano_per_1k, 500000);
	TG_CHECK_INT(price->completion_nano_per_1k, 1500000);
	TG_REQUIRE(providers_route(&p, "text-embedding-3-small", &price));
	TG_CHECK_INT(price->prompt_nano_per_1k, 20000);
	TG_CHECK_INT(price->completion_nano_per_1k, 0);
	providers_free(&p);
	TG_CHECK(p.v == NULL && p.n == 0);
	providers_free(&p); /* twice, and on NULL */
	providers_free(NULL);
	TG_CHECK_INT(providers_default(&p, "ftp://x", PROVIDER_HTTP_1_1, NULL), -EINVAL);
	TG_CHECK_INT(providers_default(&p, NULL, PROVIDER_HTTP_1_1, NULL), -EINVAL);
	TG_CHECK(p.v == NULL);
	/* upstream.http reaches the built-in provider */
	TG_REQUIRE(providers_default(&p, "http://127.0.0.1:9000/v1", PROVIDER_HTTP_2, NULL) == 0);
	TG_CHECK_INT(p.v[0].http, PROVIDER_HTTP_2);
	providers_free(&p);
}

static void parse_good_config(void)
{
	static const char json[] =
	    "[{\"name\":\"openai\",\"base_url\":\"https://api.openai.com/v1//\","
	    "\"api_key_env\":\"" ENV_VAR "\",\"timeout_sec\":30,"
	    "\"models\":[{\"name\":\"gpt-4o-mini\",\"prompt_per_1k\":0.00015,"
	    "\"completion_per_1k\":0.0006},{\"name\":\"big\",\"prompt_per_1k\":1000,"
	    "\"completion_per_1k\":3},{\"name\":\"tiny\",\"prompt_per_1k\":0.0000000016,"
	    "\"completion_per_1k\":0.0000000014}]},"
	    "{\"name\":\"local_llm-2\",\"base_url\":\"http://10.0.0.2:8000\","
	    "\"priority\":0,\"weight\":5,\"rate_limit_per_sec\":20,\"http\":\"2\","
	    "\"ca_file\":\"/etc/passwd\","
	    "\"models\":[{\"name\":\"meta-llama/Llama-3.1-8B@v1:q4.0\",\"prompt_per_1k\":0,"
	    "\"completion_per_1k\":0.1}]}]";
	struct providers p = {0};
	char err[256] = "";

	setenv(ENV_VAR, SECRET, 1);
	TG_REQUIRE(parse_text(json, &p, err, sizeof(err)) == 0);
	TG_REQUIRE(p.n == 2);
	TG_CHECK_STR(p.v[0].name, "openai");
	TG_CHECK_STR(p.v[0].base_url, "https://api.openai.com/v1");
	TG_CHECK_STR(p.v[0].api_key_env, ENV_VAR);
	TG_CHECK_STR(p.v[0].api_key, SECRET);
	TG_CHECK_INT(p.v[0].timeout_sec, 30);
	TG_REQUIRE(p.v[0].nmodels == 3);
	TG_CHECK_INT(p.v[0].models[0].prompt_nano_per_1k, 150000);
	TG_CHECK_INT(p.v[0].models[0].completion_nano_per_1k, 600000);
	TG_CHECK_INT(p.v[0].models[1].prompt_nano_per_1k, 1000000000000LL);
	TG_CHECK_INT(p.v[0].models[1].completion_nano_per_1k, 3000000000LL);
	TG_CHECK_INT(p.v[0].models[2].prompt_nano_per_1k, 2); /* nearest nano-dollar */
	TG_CHECK_INT(p.v[0].models[2].completion_nano_per_1k, 1);
	TG_CHECK_STR(p.v[1].name, "local_llm-2");
	TG_CHECK(p.v[1].api_key == NULL);
	TG_CHECK_STR(p.v[1].api_key_env, "");
	TG_CHECK_INT(p.v[1].timeout_sec, 120);
	TG_CHECK_STR(p.v[1].models[0].name, "meta-llama/Llama-3.1-8B@v1:q4.0");
	TG_CHECK_INT(p.v[1].models[0].completion_nano_per_1k, 100000000);
	/* routing fields: defaults (priority = position) and given values */
	TG_CHECK_INT(p.v[0].priority, 0);
	TG_CHECK_INT(p.v[0].weight, 1);
	TG_CHECK_INT(p.v[0].rate_limit, 0);
	TG_CHECK_INT(p.v[1].priority, 0);
	TG_CHECK_INT(p.v[1].weight, 5);
	TG_CHECK_INT(p.v[1].rate_limit, 20);
	/* the HTTP version: 1.1 unless "http" says "2" */
	TG_CHECK_INT(p.v[0].http, PROVIDER_HTTP_1_1);
	TG_CHECK_INT(p.v[1].http, PROVIDER_HTTP_2);
	TG_CHECK_STR(p.v[0].ca_file, "");
	TG_CHECK_STR(p.v[1].ca_file, "/etc/passwd");
	providers_free(&p);
	unsetenv(ENV_VAR);
}

#define P(fields) "[{\"name\":\"a\",\"base_url\":\"http://h\"," fields "}]"
#define M(fields) P("\"models\":[{" fields "}]")

static const struct {
	const char *json;
	const char *want; /* the start of the error: the field path and why */
} bad_rows[] = {
    {"{}", "providers: must be a non-empty array"},
    {"[]", "providers: must be a non-empty array"},
    {"[1]", "providers[0]: must be an object"},
    {P(MODELS ",\"modle\":1"), "providers[0].modle: unknown field"},
    {P(MODELS ",\"name\":\"b\""), "providers[0].name: duplicate field"},
    {"[{\"base_url\":\"http://h\"," MODELS "}]", "providers[0].name: required"},
    {"[{\"name\":\"OpenAI\",\"base_url\":\"http://h\"," MODELS "}]", "providers[0].name: must be"},
    {"[{\"name\":\"a.b\",\"base_url\":\"http://h\"," MODELS "}]", "providers[0].name: must be"},
    {"[{\"name\":\"abcdefghijklmnopqrstuvwxyz0123456\",\"base_url\":\"http://h\"," MODELS "}]",
     "providers[0].name: must be"},
    {"[{\"name\":\"a\",\"base_url\":\"http://h\"," MODELS "},"
     "{\"name\":\"a\",\"base_url\":\"http://h\"," MODELS "}]",
     "providers[1].name: duplicate provider 'a'"},
    {"[{\"name\":\"a\"," MODELS "}]", "providers[0].base_url: required"},
    {"[{\"name\":\"a\",\"base_url\":\"ftp://h\"," MODELS "}]", "providers[0].base_url: must be"},
    {"[{\"name\":\"a\",\"base_url\":\"http://\"," MODELS "}]", "providers[0].base_url: must be"},
    {"[{\"name\":\"a\",\"base_url\":\"http:///x\"," MODELS "}]", "providers[0].base_url: must be"},
    {"[{\"name\":\"a\",\"base_url\":\"http://h x\"," MODELS "}]", "providers[0].base_url: must be"},
    {"[{\"name\":\"a\",\"base_url\":7," MODELS "}]", "providers[0].base_url: must be"},
    {P(MODELS ",\"api_key_env\":\"openai_key\""), "providers[0].api_key_env: must be"},
    {P(MODELS ",\"api_key_env\":\"A-B\""), "providers[0].api_key_env: must be"},
    {P(MODELS
       ",\"api_key_env\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\""),
     "providers[0].api_key_env: must be"},
    {P(MODELS ",\"api_key_env\":\"TG_TEST_SURELY_UNSET_VAR\""),
     "providers[0].api_key_env: environment variable TG_TEST_SURELY_UNSET_VAR is not set"},
    {P(MODELS ",\"timeout_sec\":0"), "providers[0].timeout_sec: must be a whole number"},
    {P(MODELS ",\"timeout_sec\":3601"), "providers[0].timeout_sec: must be a whole number"},
    {P(MODELS ",\"timeout_sec\":1.5"), "providers[0].timeout_sec: must be a whole number"},
    {P(MODELS ",\"timeout_sec\":\"10\""), "providers[0].timeout_sec: must be a whole number"},
    {P("\"timeout_sec\":10"), "providers[0].models: must be a non-empty array"},
    {P("\"models\":[]"), "providers[0].models: must be a non-empty array"},
    {P("\"models\":{}"), "providers[0].models: must be a non-empty array"},
    {P("\"models\":[\"gpt-4o\"]"), "providers[0].models[0]: must be an object"},
    {M("\"prompt_per_1k\":1,\"completion_per_1k\":1"), "providers[0].models[0].name: required"},
    {M("\"name\":\"a b\",\"prompt_per_1k\":1,\"completion_per_1k\":1"),
     "providers[0].models[0].name: must be"},
    {M("\"name\":\"m\",\"prompt_per_1k\":1,\"completion_per_1k\":1,\"price\":2"),
     "providers[0].models[0].price: unknown field"},
    {M("\"name\":\"m\",\"prompt_per_1k\":-0.001,\"completion_per_1k\":1"),
     "providers[0].models[0].prompt_per_1k: must be a number >= 0"},
    {M("\"name\":\"m\",\"prompt_per_1k\":\"0.1\",\"completion_per_1k\":1"),
     "providers[0].models[0].prompt_per_1k: must be a number >= 0"},
    {M("\"name\":\"m\",\"prompt_per_1k\":1000.5,\"completion_per_1k\":1"),
     "providers[0].models[0].prompt_per_1k: must be at most 1000"},
    {M("\"name\":\"m\",\"completion_per_1k\":1"), "providers[0].models[0].prompt_per_1k: required"},
    {M("\"name\":\"m\",\"prompt_per_1k\":1"), "providers[0].models[0].completion_per_1k: required"},
    {P("\"models\":[{\"name\":\"m\",\"prompt_per_1k\":1,\"completion_per_1k\":1},"
       "{\"name\":\"m\",\"prompt_per_1k\":2,\"completion_per_1k\":2}]"),
     "providers[0].models[1].name: duplicate model 'm'"},
    {P(MODELS ",\"priority\":-1"), "providers[0].priority: must be a whole number from 0"},
    {P(MODELS ",\"priority\":1.5"), "providers[0].priority: must be a whole number from 0"},
    {P(MODELS ",\"weight\":0"), "providers[0].weight: must be a whole number from 1 to 1000"},
    {P(MODELS ",\"weight\":1001"), "providers[0].weight: must be a whole number from 1"},
    {P(MODELS ",\"weight\":\"2\""), "providers[0].weight: must be a whole number"},
    {P(MODELS ",\"http\":\"3\""), "providers[0].http: must be \"1.1\" or \"2\""},
    {P(MODELS ",\"http\":2"), "providers[0].http: must be \"1.1\" or \"2\""},
    {P(MODELS ",\"http\":\"HTTP/2\""), "providers[0].http: must be \"1.1\" or \"2\""},
    {P(MODELS ",\"ca_file\":\"/nonexistent/ca.pem\""),
     "providers[0].ca_file: must name a readable file"},
    {P(MODELS ",\"ca_file\":7"), "providers[0].ca_file: must name a readable file"},
    {P(MODELS ",\"rate_limit_per_sec\":-3"),
     "providers[0].rate_limit_per_sec: must be a whole number from 0 to 1000000"},
    {"[{\"name\":\"a\",\"base_url\":\"http://h\",\"api_key_env\":\"" ENV_VAR "\"," MODELS "},"
     "{\"name\":\"b\",\"base_url\":\"http://h\"," MODELS ",\"x\":1}]",
     "providers[1].x: unknown field"},
};

static void parse_bad_inputs_name_the_field(void)
{
	struct providers sentinel = {(struct provider *)&sentinel, 12345}, p;
	char err[256];

	setenv(ENV_VAR, SECRET, 1);
	for (size_t i = 0; i < TG_NCASES(bad_rows); i++) {
		int rc;

		p = sentinel;
		strcpy(err, "(none)");
		rc = parse_text(bad_rows[i].json, &p, err, sizeof(err));
		TG_CHECK_INT(rc, -EINVAL);
		TG_CHECK(p.v == sentinel.v && p.n == sentinel.n); /* untouched */
		TG_CHECK(strncmp(err, bad_rows[i].want, strlen(bad_rows[i].want)) == 0);
		TG_CHECK(strstr(err, SECRET) == NULL);
		if (rc != -EINVAL || strncmp(err, bad_rows[i].want, strlen(bad_rows[i].want)) != 0)
			printf("#   row %zu: got \"%s\"\n", i, err);
	}
	unsetenv(ENV_VAR);
}

static void credentials_never_in_error_text(void)
{
	static const char bad_value[] = "sk-HIDDEN\r\nX-Evil: 1";
	struct providers p = {0};
	char err[256];

	/* set but empty counts as unset; the error names the variable only */
	setenv(ENV_VAR, "", 1);
	TG_CHECK_INT(parse_text(P(MODELS ",\"api_key_env\":\"" ENV_VAR "\""), &p, err, sizeof(err)),
		     -EINVAL);
	TG_CHECK(strstr(err, ENV_VAR " is not set") != NULL);
	/* a value that would inject headers is refused without being shown */
	setenv(ENV_VAR, bad_value, 1);
	TG_CHECK_INT(parse_text(P(MODELS ",\"api_key_env\":\"" ENV_VAR "\""), &p, err, sizeof(err)),
		     -EINVAL);
	TG_CHECK(strstr(err, ENV_VAR) != NULL);
	TG_CHECK(strstr(err, "HIDDEN") == NULL);
	TG_CHECK(p.v == NULL);
	/* read at parse time: changing the environment later changes nothing */
	setenv(ENV_VAR, SECRET, 1);
	TG_REQUIRE(parse_text(P(MODELS ",\"api_key_env\":\"" ENV_VAR "\""), &p, err, sizeof(err)) ==
		   0);
	setenv(ENV_VAR, "sk-other", 1);
	TG_CHECK_STR(p.v[0].api_key, SECRET);
	providers_free(&p);
	unsetenv(ENV_VAR);
}

static void routing_picks_the_first_provider_serving_the_model(void)
{
	static const char json[] =
	    "[{\"name\":\"one\",\"base_url\":\"http://one\",\"models\":["
	    "{\"name\":\"shared\",\"prompt_per_1k\":1,\"completion_per_1k\":1}]},"
	    "{\"name\":\"two\",\"base_url\":\"http://two\",\"models\":["
	    "{\"name\":\"only-two\",\"prompt_per_1k\":2,\"completion_per_1k\":2},"
	    "{\"name\":\"shared\",\"prompt_per_1k\":3,\"completion_per_1k\":3}]}]";
	static const struct {
		const char *model, *provider;
		uint64_t prompt_nano;
	} rows[] = {
	    {"shared", "one", 1000000000},
	    {"only-two", "two", 2000000000},
	    {"Shared", NULL, 0}, /* names are case-sensitive */
	    {"", NULL, 0},
	};
	struct providers p = {0};
	char err[256];

	TG_REQUIRE(parse_text(json, &p, err, sizeof(err)) == 0);
	for (size_t i = 0; i < TG_NCASES(rows); i++) {
		const struct model_price *price = NULL;
		const struct provider *pv = providers_route(&p, rows[i].model, &price);

		if (!rows[i].provider) {
			TG_CHECK(pv == NULL && price == NULL);
			continue;
		}
		TG_REQUIRE(pv && price);
		TG_CHECK_STR(pv->name, rows[i].provider);
		TG_CHECK_INT(price->prompt_nano_per_1k, rows[i].prompt_nano);
	}
	TG_CHECK(providers_route(&p, "shared", NULL) == &p.v[0]);
	TG_CHECK(providers_route(&p, NULL, NULL) == NULL);
	providers_free(&p);
}

static void costs_are_exact_and_round_up(void)
{
	static const struct {
		const char *name;
		uint64_t prompt_per_1k, completion_per_1k, prompt, completion;
		uint64_t want_prompt, want_completion, want_total;
	} rows[] = {
	    {"gpt-4o-mini 1000+500", 150000, 600000, 1000, 500, 150000, 300000, 450000},
	    {"one token", 150000, 600000, 1, 1, 150, 600, 750},
	    {"fraction rounds up", 1, 333, 1, 3, 1, 1, 2},
	    {"exact thousand does not round", 1, 1, 1000, 2000, 1, 2, 3},
	    {"one past rounds up", 1, 1, 1001, 0, 2, 0, 2},
	    {"zero tokens cost nothing", 150000, 600000, 0, 0, 0, 0, 0},
	    {"free model", 0, 0, 123456789, 987654321, 0, 0, 0},
	    {"product over 2^64, result fits", 4000000, 1000, 4000000000000000ULL, 7,
	     16000000000000000000ULL, 7, 16000000000000000007ULL},
	    {"max tokens at $1e-6/1K", 1000, 0, UINT64_MAX, 0, UINT64_MAX, 0, UINT64_MAX},
	    {"saturates", 10000000, 10000000, UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX,
	     UINT64_MAX},
	};
	struct cost c;

	for (size_t i = 0; i < TG_NCASES(rows); i++) {
		struct model_price m = {"m", rows[i].prompt_per_1k, rows[i].completion_per_1k};

		pricing_cost(&m, rows[i].prompt, rows[i].completion, &c);
		TG_CHECK(c.prompt_nano == rows[i].want_prompt);
		TG_CHECK(c.completion_nano == rows[i].want_completion);
		TG_CHECK(c.total_nano == rows[i].want_total);
		if (c.prompt_nano != rows[i].want_prompt || c.total_nano != rows[i].want_total)
			printf("#   %s: %" PRIu64 " + %" PRIu64 " = %" PRIu64 "\n", rows[i].name,
			       c.prompt_nano, c.completion_nano, c.total_nano);
	}
	pricing_cost(NULL, 5, 5, &c); /* unpriced: free */
	TG_CHECK(c.total_nano == 0);
}

static const struct {
	const char *json;
	const char *which;
	const char *want; /* "" = accepted */
} override_rows[] = {
    {"{\"gpt-4\":\"cost_weighted\",\"m/x:1\":\"latency_weighted\"}", "models", ""},
    {"{\"svc-a\":\"primary\"}", "services", ""},
    {"{}", "models", ""},
    {"[]", "models", "routing.models: must be an object"},
    {"\"cost_weighted\"", "services", "routing.services: must be an object"},
    {"{\"gpt-4\":\"cheapest\"}", "models", "routing.models.gpt-4: must be primary, "},
    {"{\"gpt-4\":1}", "models", "routing.models.gpt-4: must be primary, "},
    {"{\"a b\":\"primary\"}", "models", "routing.models.a b: not a valid model name"},
    {"{\"a/b\":\"primary\"}", "services", "routing.services.a/b: not a valid service"},
    {"{\"x\":\"primary\",\"x\":\"cost_weighted\"}", "models", "routing.models.x: duplicate"},
};

static void routing_overrides_and_policy_choice(void)
{
	struct routing_cfg r;
	char err[256];

	for (size_t i = 0; i < TG_NCASES(override_rows); i++) {
		cJSON *o = cJSON_Parse(override_rows[i].json);
		int rc;

		TG_REQUIRE(o);
		routing_defaults(&r);
		strcpy(err, "");
		rc = routing_overrides_parse(o, override_rows[i].which, &r, err, sizeof(err));
		cJSON_Delete(o);
		if (!override_rows[i].want[0]) {
			TG_CHECK_INT(rc, 0);
			continue;
		}
		TG_CHECK_INT(rc, -EINVAL);
		TG_CHECK(strncmp(err, override_rows[i].want, strlen(override_rows[i].want)) == 0);
		TG_CHECK_INT(r.nmodels + r.nservices, 0); /* nothing changed */
		if (strncmp(err, override_rows[i].want, strlen(override_rows[i].want)) != 0)
			printf("#   row %zu: got \"%s\"\n", i, err);
	}
	routing_defaults(&r);
	TG_CHECK_INT(r.max_attempts, 3);
	TG_CHECK_INT(r.cooldown_sec, 30);
	TG_CHECK_INT(r.breaker_failures, 5);
	TG_CHECK_INT(r.breaker_open_sec, 30);
	TG_CHECK_INT(r.breaker_probes, 1);
	r.policy = ROUTE_LATENCY;
	cJSON *m = cJSON_Parse("{\"gpt-4\":\"cost_weighted\",\"g\":\"primary\"}");
	cJSON *s = cJSON_Parse("{\"svc\":\"primary\"}");
	TG_REQUIRE(m && s);
	TG_CHECK_INT(routing_overrides_parse(m, "models", &r, err, sizeof(err)), 0);
	TG_CHECK_INT(routing_overrides_parse(s, "services", &r, err, sizeof(err)), 0);
	cJSON_Delete(m);
	cJSON_Delete(s);
	TG_CHECK_INT(routing_policy_for(&r, "gpt-4", "other"), ROUTE_COST);
	TG_CHECK_INT(routing_policy_for(&r, "gpt-4", "svc"), ROUTE_PRIMARY); /* service first */
	TG_CHECK_INT(routing_policy_for(&r, "gpt-4o", "other"), ROUTE_LATENCY);
	TG_CHECK_INT(routing_policy_for(&r, "g", NULL), ROUTE_PRIMARY);
}

static const struct tg_case cases[] = {
    {"default: provider mock with the default models and prices", default_mock_provider},
    {"parse: a good config with every field", parse_good_config},
    {"parse: each bad input is refused, names its field, changes nothing",
     parse_bad_inputs_name_the_field},
    {"credentials come from the environment and never appear in errors",
     credentials_never_in_error_text},
    {"routing: the first provider serving the model",
     routing_picks_the_first_provider_serving_the_model},
    {"cost: exact, rounded up per part, 128-bit products, saturating",
     costs_are_exact_and_round_up},
    {"routing: overrides parsed strictly; service, then model, then the default",
     routing_overrides_and_policy_choice},
};

int main(void)
{
	return tg_run("providers", cases, TG_NCASES(cases));
}
