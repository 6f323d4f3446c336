/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The admin API's JSON <-> model conversion (userspace/admin_json.c): a body is one JSON
 * object and nothing more; every field is checked and a refusal names it (unknown, missing,
 * wrong type, bad value) with the contract's code; requests_per_second takes up to 3
 * decimals (stored in milli), integer limits only whole numbers in range, null only clears
 * an override in PATCH; objects render as docs/admin-api.md shows them.
 */
#include <errno.h>

#include "admin_internal.h"
#include "tg_test.h"

#define NOW 1795000000 /* 2026-11-18T11:06:40Z: "now" for the expiry checks */

static cJSON *parse(const char *text)
{
	struct admin_err e;
	cJSON *j = NULL;

	if (admin_json_parse(text, strlen(text), false, &j, &e) != 0)
		return NULL;
	return j;
}

/* ---- bodies ---- */

static const struct {
	const char *name;
	const char *body;
	const char *code; /* NULL: accepted */
} bodies[] = {
    {"an object", "{\"a\":1}", NULL},
    {"an object with blanks around it", " \n{\"a\":1}\t\r\n ", NULL},
    {"cut short", "{\"name\":\"a\",\"owner\":", "invalid_json"},
    {"single quotes", "{'name':'a'}", "invalid_json"},
    {"trailing text", "{\"a\":1} xyz", "invalid_json"},
    {"a second object", "{\"a\":1}{}", "invalid_json"},
    {"an array", "[1,2]", "invalid_body"},
    {"a string", "\"text\"", "invalid_body"},
    {"a number", "42", "invalid_body"},
    {"null", "null", "invalid_body"},
    {"empty", "", "invalid_body"},
    {"blanks only", "   ", "invalid_body"},
};

static void bodies_must_be_one_object(void)
{
	for (size_t i = 0; i < TG_NCASES(bodies); i++) {
		struct admin_err e = {0};
		cJSON *j = NULL;
		int rc = admin_json_parse(bodies[i].body, strlen(bodies[i].body), false, &j, &e);

		if (!bodies[i].code) {
			TG_CHECK(rc == 0 && j);
		} else {
			TG_CHECK_INT(rc, -EINVAL);
			TG_CHECK_STR(e.code, bodies[i].code);
			TG_CHECK_INT(e.status, 400);
			TG_CHECK_STR(e.param, "");
			TG_CHECK(j == NULL);
		}
		if (tg_failed)
			printf("#   body case: %s\n", bodies[i].name);
		cJSON_Delete(j);
	}
}

static void empty_body_is_fine_when_optional_and_nul_is_not(void)
{
	struct admin_err e;
	cJSON *j = (cJSON *)1;

	TG_CHECK_INT(admin_json_parse("", 0, true, &j, &e), 0);
	TG_CHECK(j == NULL);
	/* a NUL inside the body would hide what follows it from the parser */
	TG_CHECK_INT(admin_json_parse("{}\0{\"x\":1}", 10, false, &j, &e), -EINVAL);
	TG_CHECK_STR(e.code, "invalid_json");
}

/* ---- limits ---- */

static const struct {
	const char *name;
	const char *limits; /* the "limits" object */
	bool allow_null;
	const char *code;  /* NULL: accepted */
	const char *param; /* named field on refusal */
	int field;	   /* on success: this field ... */
	uint64_t value;	   /* ... has this stored value */
} limit_cases[] = {
    {"fractional rps in milli", "{\"requests_per_second\":0.5}", false, NULL, NULL, LIMIT_RPS, 500},
    {"rps 2.5", "{\"requests_per_second\":2.5}", false, NULL, NULL, LIMIT_RPS, 2500},
    {"rps with 3 decimals", "{\"requests_per_second\":0.125}", false, NULL, NULL, LIMIT_RPS, 125},
    {"rps smallest", "{\"requests_per_second\":0.001}", false, NULL, NULL, LIMIT_RPS, 1},
    {"rps largest", "{\"requests_per_second\":1000000}", false, NULL, NULL, LIMIT_RPS, 1000000000},
    {"rps in exponent form", "{\"requests_per_second\":1e2}", false, NULL, NULL, LIMIT_RPS, 100000},
    {"rps with 4 decimals", "{\"requests_per_second\":1.2345}", false, "invalid_value",
     "limits.requests_per_second", 0, 0},
    {"rps below 0.001", "{\"requests_per_second\":0.0004}", false, "invalid_value",
     "limits.requests_per_second", 0, 0},
    {"rps 0", "{\"requests_per_second\":0}", false, "invalid_value", "limits.requests_per_second",
     0, 0},
    {"rps negative", "{\"requests_per_second\":-2}", false, "invalid_value",
     "limits.requests_per_second", 0, 0},
    {"rps over a million", "{\"requests_per_second\":1000000.001}", false, "invalid_value",
     "limits.requests_per_second", 0, 0},
    {"rps as a string", "{\"requests_per_second\":\"5\"}", false, "invalid_type",
     "limits.requests_per_second", 0, 0},
    {"burst integer", "{\"burst\":7}", false, NULL, NULL, LIMIT_BURST, 7},
    {"burst fraction", "{\"burst\":2.5}", false, "invalid_value", "limits.burst", 0, 0},
    {"burst 0", "{\"burst\":0}", false, "invalid_value", "limits.burst", 0, 0},
    {"burst over 1e9", "{\"burst\":1000000001}", false, "invalid_value", "limits.burst", 0, 0},
    {"burst as a string", "{\"burst\":\"20\"}", false, "invalid_type", "limits.burst", 0, 0},
    {"burst true", "{\"burst\":true}", false, "invalid_type", "limits.burst", 0, 0},
    {"tokens_per_month 0 (no limit)", "{\"tokens_per_month\":0}", false, NULL, NULL,
     LIMIT_TOKENS_MONTH, 0},
    {"tokens_per_month 1e15 exactly", "{\"tokens_per_month\":1000000000000000}", false, NULL, NULL,
     LIMIT_TOKENS_MONTH, 1000000000000000ull},
    {"tokens_per_month negative", "{\"tokens_per_month\":-5}", false, "invalid_value",
     "limits.tokens_per_month", 0, 0},
    {"max_concurrent negative", "{\"max_concurrent\":-1}", false, "invalid_value",
     "limits.max_concurrent", 0, 0},
    {"unknown limit", "{\"rps\":1}", false, "unknown_field", "limits.rps", 0, 0},
    {"a limit twice", "{\"burst\":1,\"burst\":2}", false, "invalid_json", "limits.burst", 0, 0},
    {"null outside PATCH", "{\"burst\":null}", false, "invalid_type", "limits.burst", 0, 0},
    {"cost in USD to nano", "{\"cost_per_day\":10.5}", false, NULL, NULL, LIMIT_COST_DAY,
     10500000000ull},
    {"cost with 9 decimals", "{\"cost_per_hour\":0.000000001}", false, NULL, NULL,
     LIMIT_COST_HOUR, 1},
    {"cost 0 (no budget)", "{\"cost_per_month\":0}", false, NULL, NULL, LIMIT_COST_MONTH, 0},
    {"cost with 10 decimals", "{\"cost_per_day\":0.0000000001}", false, "invalid_value",
     "limits.cost_per_day", 0, 0},
    {"cost negative", "{\"cost_per_day\":-1}", false, "invalid_value", "limits.cost_per_day", 0,
     0},
    {"cost over a million USD", "{\"cost_per_day\":1000001}", false, "invalid_value",
     "limits.cost_per_day", 0, 0},
    {"cost as a string", "{\"cost_per_day\":\"10\"}", false, "invalid_type",
     "limits.cost_per_day", 0, 0},
    {"cost_window rolling", "{\"cost_window\":\"rolling\"}", false, NULL, NULL,
     LIMIT_COST_WINDOW, LIMIT_WINDOW_ROLLING},
    {"cost_window unknown", "{\"cost_window\":\"weekly\"}", false, "invalid_value",
     "limits.cost_window", 0, 0},
    {"mode soft", "{\"mode\":\"soft\"}", false, NULL, NULL, LIMIT_MODE, LIMIT_MODE_SOFT},
    {"mode inherit is not a value", "{\"mode\":\"inherit\"}", false, "invalid_value",
     "limits.mode", 0, 0},
    {"mode as a number", "{\"mode\":1}", false, "invalid_type", "limits.mode", 0, 0},
    {"action queue", "{\"action\":\"queue\"}", false, NULL, NULL, LIMIT_ACTION,
     LIMIT_ACT_QUEUE},
    {"action unknown", "{\"action\":\"explode\"}", false, "invalid_value", "limits.action", 0,
     0},
    {"alert_threshold 0.85 in per-mille", "{\"alert_threshold\":0.85}", false, NULL, NULL,
     LIMIT_ALERT_THRESHOLD, 850},
    {"alert_threshold over 1", "{\"alert_threshold\":1.001}", false, "invalid_value",
     "limits.alert_threshold", 0, 0},
    {"compute seconds in ms", "{\"compute_seconds_per_month\":3600.5}", false, NULL, NULL,
     LIMIT_COMPUTE_MONTH, 3600500},
    {"token_quota_days 30", "{\"token_quota_days\":30}", false, NULL, NULL,
     LIMIT_TOKEN_QUOTA_DAYS, 30},
    {"token_quota_days 61", "{\"token_quota_days\":61}", false, "invalid_value",
     "limits.token_quota_days", 0, 0},
};

static void limits_parse_and_name_the_field(void)
{
	for (size_t i = 0; i < TG_NCASES(limit_cases); i++) {
		cJSON *o = parse(limit_cases[i].limits);
		struct admin_err e = {0};
		struct limits set;
		uint32_t clear = 0;
		int rc;

		TG_REQUIRE(o);
		rc = admin_limits_parse(o, "limits", limit_cases[i].allow_null, &set, &clear, &e);
		if (!limit_cases[i].code) {
			TG_CHECK_INT(rc, 0);
			TG_CHECK(set.v[limit_cases[i].field] == limit_cases[i].value);
		} else {
			TG_CHECK_INT(rc, -EINVAL);
			TG_CHECK_STR(e.code, limit_cases[i].code);
			TG_CHECK_STR(e.param, limit_cases[i].param);
			/* the message leads with the field, so people see which one */
			TG_CHECK(strncmp(e.msg, limit_cases[i].param, strlen(e.param)) == 0);
		}
		if (tg_failed)
			printf("#   limits case: %s\n", limit_cases[i].name);
		cJSON_Delete(o);
	}
}

static void null_clears_an_override_in_patch_only(void)
{
	cJSON *o = parse("{\"requests_per_second\":null,\"burst\":null,\"max_concurrent\":3}");
	struct admin_err e;
	struct limits set;
	uint32_t clear = 0;

	TG_REQUIRE(o);
	TG_CHECK_INT(admin_limits_parse(o, "limits", true, &set, &clear, &e), 0);
	TG_CHECK_INT(clear, (1u << LIMIT_RPS) | (1u << LIMIT_BURST));
	TG_CHECK(set.v[LIMIT_RPS] == LIMIT_UNSET && set.v[LIMIT_BURST] == LIMIT_UNSET);
	TG_CHECK(set.v[LIMIT_MAX_CONCURRENT] == 3);
	TG_CHECK(set.v[LIMIT_RPM] == LIMIT_UNSET);
	cJSON_Delete(o);
}

/* ---- keys ---- */

static const struct {
	const char *name;
	const char *body;
	const char *code;
	const char *param;
} key_create_bad[] = {
    {"missing name", "{\"owner\":\"team:x\"}", "missing_field", "name"},
    {"name not a string", "{\"name\":5,\"owner\":\"team:x\"}", "invalid_type", "name"},
    {"empty name", "{\"name\":\"\",\"owner\":\"team:x\"}", "invalid_value", "name"},
    {"control char in name", "{\"name\":\"bell\\u0007\",\"owner\":\"team:x\"}", "invalid_value",
     "name"},
    {"owner not a string", "{\"name\":\"a\",\"owner\":[\"team:x\"]}", "invalid_type", "owner"},
    {"owner of an unknown kind", "{\"name\":\"a\",\"owner\":\"org:x\"}", "invalid_value", "owner"},
    {"owner without an id", "{\"name\":\"a\",\"owner\":\"team:\"}", "invalid_value", "owner"},
    {"owner with a slash", "{\"name\":\"a\",\"owner\":\"team:a/b\"}", "invalid_value", "owner"},
    {"service with a blank", "{\"name\":\"a\",\"owner\":\"team:x\",\"service\":\"chat bot\"}",
     "invalid_value", "service"},
    {"tier not a name", "{\"name\":\"a\",\"owner\":\"team:x\",\"tier\":\"Gold!\"}", "invalid_value",
     "tier"},
    {"unknown field", "{\"name\":\"a\",\"owner\":\"team:x\",\"colour\":\"red\"}", "unknown_field",
     "colour"},
    {"limits not an object", "{\"name\":\"a\",\"owner\":\"team:x\",\"limits\":\"fast\"}",
     "invalid_type", "limits"},
    {"nested unknown limit", "{\"name\":\"a\",\"owner\":\"team:x\",\"limits\":{\"rps\":1}}",
     "unknown_field", "limits.rps"},
    {"expires in the past",
     "{\"name\":\"a\",\"owner\":\"team:x\",\"expires_at\":\"2001-01-01T00:00:00Z\"}",
     "invalid_value", "expires_at"},
    {"expires not a time", "{\"name\":\"a\",\"owner\":\"team:x\",\"expires_at\":\"tomorrow\"}",
     "invalid_value", "expires_at"},
    {"expires a number", "{\"name\":\"a\",\"owner\":\"team:x\",\"expires_at\":12345}",
     "invalid_type", "expires_at"},
};

static void key_create_refusals_name_the_field(void)
{
	for (size_t i = 0; i < TG_NCASES(key_create_bad); i++) {
		cJSON *o = parse(key_create_bad[i].body);
		struct admin_key_create in;
		struct admin_err e = {0};

		TG_REQUIRE(o);
		TG_CHECK_INT(admin_key_create_parse(o, NOW, &in, &e), -EINVAL);
		TG_CHECK_STR(e.code, key_create_bad[i].code);
		TG_CHECK_STR(e.param, key_create_bad[i].param);
		TG_CHECK_INT(e.status, 400);
		TG_CHECK_STR(e.type, "invalid_request_error");
		if (tg_failed)
			printf("#   create case: %s\n", key_create_bad[i].name);
		cJSON_Delete(o);
	}
}

static void key_create_takes_every_field(void)
{
	cJSON *o = parse("{\"name\":\"bot\",\"owner\":\"team:ml\",\"service\":\"chat\","
			 "\"tier\":\"premium\",\"expires_at\":\"2099-06-01T12:00:00+02:00\","
			 "\"limits\":{\"requests_per_second\":2.5,\"burst\":7}}");
	struct admin_key_create in;
	struct admin_err e;

	TG_REQUIRE(o);
	TG_REQUIRE(admin_key_create_parse(o, NOW, &in, &e) == 0);
	TG_CHECK_STR(in.spec.name, "bot");
	TG_CHECK_STR(in.spec.owner, "team:ml");
	TG_CHECK_STR(in.spec.service, "chat");
	TG_CHECK_STR(in.spec.tier, "premium");
	TG_CHECK_INT(in.spec.expires_at, 4083991200); /* 2099-06-01T10:00:00Z */
	TG_CHECK(in.spec.overrides.v[LIMIT_RPS] == 2500 && in.spec.overrides.v[LIMIT_BURST] == 7);
	TG_CHECK(in.spec.overrides.v[LIMIT_RPM] == LIMIT_UNSET);
	TG_CHECK(in.has_owner && in.has_tier && in.has_limits);
	cJSON_Delete(o);

	/* the least a consumer sends: defaults left to the registry, nothing marked given */
	o = parse("{\"name\":\"bot\"}");
	TG_REQUIRE(o);
	TG_REQUIRE(admin_key_create_parse(o, NOW, &in, &e) == 0);
	TG_CHECK(!in.spec.owner && !in.spec.service && !in.spec.tier && !in.spec.expires_at);
	TG_CHECK(!in.has_owner && !in.has_tier && !in.has_limits);
	cJSON_Delete(o);
}

static void key_patch_refuses_owner_and_takes_nulls(void)
{
	struct admin_err e;
	struct key_patch p;
	cJSON *o = parse("{\"owner\":\"team:y\"}");

	TG_REQUIRE(o);
	TG_CHECK_INT(admin_key_patch_parse(o, NOW, &p, &e), -EINVAL);
	TG_CHECK_STR(e.code, "immutable_field");
	TG_CHECK_STR(e.param, "owner");
	cJSON_Delete(o);

	o = parse("{\"expires_at\":null,\"limits\":{\"burst\":null,\"requests_per_second\":3}}");
	TG_REQUIRE(o);
	TG_REQUIRE(admin_key_patch_parse(o, NOW, &p, &e) == 0);
	TG_CHECK(p.set_expires && p.expires_at == 0);
	TG_CHECK_INT(p.clear_mask, 1u << LIMIT_BURST);
	TG_CHECK(p.set.v[LIMIT_RPS] == 3000);
	TG_CHECK(!p.name && !p.service && !p.tier);
	cJSON_Delete(o);

	/* one bad field refuses the whole patch */
	o = parse("{\"name\":\"changed\",\"limits\":{\"requests_per_second\":3,\"burst\":-1}}");
	TG_REQUIRE(o);
	TG_CHECK_INT(admin_key_patch_parse(o, NOW, &p, &e), -EINVAL);
	TG_CHECK_STR(e.param, "limits.burst");
	cJSON_Delete(o);
}

static const struct {
	const char *body; /* NULL: no body */
	int rc;
	int64_t grace;
	const char *code;
} rotations[] = {
    {NULL, 0, -1, NULL},
    {"{}", 0, -1, NULL},
    {"{\"grace_period_sec\":0}", 0, 0, NULL},
    {"{\"grace_period_sec\":2592000}", 0, 2592000, NULL},
    {"{\"grace_period_sec\":2592001}", -EINVAL, 0, "invalid_value"},
    {"{\"grace_period_sec\":-1}", -EINVAL, 0, "invalid_value"},
    {"{\"grace_period_sec\":1.5}", -EINVAL, 0, "invalid_value"},
    {"{\"grace_period_sec\":\"soon\"}", -EINVAL, 0, "invalid_type"},
    {"{\"grace\":5}", -EINVAL, 0, "unknown_field"},
};

static void rotation_grace_is_0_to_30_days(void)
{
	for (size_t i = 0; i < TG_NCASES(rotations); i++) {
		cJSON *o = rotations[i].body ? parse(rotations[i].body) : NULL;
		struct admin_err e = {0};
		int64_t grace = 99;

		TG_CHECK_INT(admin_rotate_parse(o, &grace, &e), rotations[i].rc);
		if (rotations[i].rc == 0)
			TG_CHECK_INT(grace, rotations[i].grace);
		else
			TG_CHECK_STR(e.code, rotations[i].code);
		if (tg_failed)
			printf("#   rotation case: %s\n",
			       rotations[i].body ? rotations[i].body : "none");
		cJSON_Delete(o);
	}
}

/* ---- tiers ---- */

#define TIER_BODY(extra)                                                                           \
	"{" extra "\"requests_per_second\":1.5,\"burst\":2,\"requests_per_minute\":0,"             \
	"\"requests_per_hour\":0,\"requests_per_day\":0,\"tokens_per_minute\":0,"                  \
	"\"tokens_per_month\":0,\"max_concurrent\":0}"

static void tier_needs_every_limit_and_its_own_name(void)
{
	struct admin_err e;
	struct tier t;
	cJSON *o = parse(TIER_BODY(""));

	TG_REQUIRE(o);
	TG_CHECK_INT(admin_tier_parse(o, "gold", "", &t, &e), 0);
	TG_CHECK_STR(t.name, "gold");
	TG_CHECK(t.lim.v[LIMIT_RPS] == 1500 && t.lim.v[LIMIT_BURST] == 2);
	/* without a path name (PUT /tiers) the body must name it */
	TG_CHECK_INT(admin_tier_parse(o, NULL, "tiers[0]", &t, &e), -EINVAL);
	TG_CHECK_STR(e.code, "missing_field");
	TG_CHECK_STR(e.param, "tiers[0].name");
	cJSON_Delete(o);

	o = parse(TIER_BODY("\"name\":\"silver\","));
	TG_REQUIRE(o);
	TG_CHECK_INT(admin_tier_parse(o, "gold", "", &t, &e), -EINVAL);
	TG_CHECK_STR(e.code, "invalid_value");
	TG_CHECK_STR(e.param, "name");
	cJSON_Delete(o);

	o = parse("{\"requests_per_second\":1}");
	TG_REQUIRE(o);
	TG_CHECK_INT(admin_tier_parse(o, "gold", "", &t, &e), -EINVAL);
	TG_CHECK_STR(e.code, "missing_field");
	TG_CHECK_STR(e.param, "burst");
	cJSON_Delete(o);
}

static void tier_set_refuses_repeats_and_non_objects(void)
{
	struct admin_err e;
	struct tier *t = NULL;
	size_t n = 9;
	cJSON *o = parse(
	    "{\"tiers\":[" TIER_BODY("\"name\":\"a\",") "," TIER_BODY("\"name\":\"b\",") "]}");

	TG_REQUIRE(o);
	TG_CHECK_INT(admin_tiers_parse(o, &t, &n, &e), 0);
	TG_CHECK_INT(n, 2);
	TG_CHECK(t && !strcmp(t[0].name, "a") && !strcmp(t[1].name, "b"));
	free(t);
	cJSON_Delete(o);

	o = parse(
	    "{\"tiers\":[" TIER_BODY("\"name\":\"a\",") "," TIER_BODY("\"name\":\"a\",") "]}");
	TG_REQUIRE(o);
	TG_CHECK_INT(admin_tiers_parse(o, &t, &n, &e), -EINVAL);
	TG_CHECK_STR(e.param, "tiers[1]");
	cJSON_Delete(o);

	o = parse("{\"tiers\":[5]}");
	TG_REQUIRE(o);
	TG_CHECK_INT(admin_tiers_parse(o, &t, &n, &e), -EINVAL);
	TG_CHECK_STR(e.code, "invalid_type");
	TG_CHECK_STR(e.param, "tiers[0]");
	cJSON_Delete(o);

	o = parse("{\"tiers\":\"all\"}");
	TG_REQUIRE(o);
	TG_CHECK_INT(admin_tiers_parse(o, &t, &n, &e), -EINVAL);
	TG_CHECK_STR(e.code, "invalid_type");
	TG_CHECK_STR(e.param, "tiers");
	cJSON_Delete(o);
}

/* ---- admin tokens ---- */

static const struct {
	const char *body;
	const char *code; /* NULL: accepted */
	const char *param;
} tokens[] = {
    {"{\"name\":\"t\",\"role\":\"viewer\"}", NULL, NULL},
    {"{\"name\":\"t\",\"role\":\"consumer\",\"consumer\":\"acme\",\"tier\":\"gold\"}", NULL, NULL},
    {"{\"name\":\"t\",\"role\":\"root\"}", "invalid_value", "role"},
    {"{\"role\":\"viewer\"}", "missing_field", "name"},
    {"{\"name\":\"t\"}", "missing_field", "role"},
    {"{\"name\":\"t\",\"role\":\"consumer\"}", "missing_field", "consumer"},
    {"{\"name\":\"t\",\"role\":\"consumer\",\"consumer\":\"a b\"}", "invalid_value", "consumer"},
    {"{\"name\":\"t\",\"role\":\"viewer\",\"consumer\":\"acme\"}", "invalid_value", "consumer"},
    {"{\"name\":\"t\",\"role\":\"admin\",\"tier\":\"basic\"}", "invalid_value", "tier"},
    {"{\"name\":\"t\",\"role\":\"viewer\",\"scope\":\"all\"}", "unknown_field", "scope"},
};

static void token_fields_follow_the_role(void)
{
	for (size_t i = 0; i < TG_NCASES(tokens); i++) {
		cJSON *o = parse(tokens[i].body);
		struct admin_err e = {0};
		struct token_spec s;
		int rc;

		TG_REQUIRE(o);
		rc = admin_token_parse(o, &s, &e);
		if (!tokens[i].code) {
			TG_CHECK_INT(rc, 0);
		} else {
			TG_CHECK_INT(rc, -EINVAL);
			TG_CHECK_STR(e.code, tokens[i].code);
			TG_CHECK_STR(e.param, tokens[i].param);
		}
		if (tg_failed)
			printf("#   token case: %s\n", tokens[i].body);
		cJSON_Delete(o);
	}
}

/* ---- list query ---- */

static const struct {
	const char *k, *v;
	bool ok;
} queries[] = {
    {"owner", "team:ml", true},	     {"owner", "nobody", false},    {"service", "chat", true},
    {"service", "a b", false},	     {"tier", "basic", true},	    {"tier", "Basic", false},
    {"status", "expired", true},     {"status", "sleeping", false}, {"limit", "1", true},
    {"limit", "1000", true},	     {"limit", "0", false},	    {"limit", "1001", false},
    {"limit", "ten", false},	     {"limit", "", false},	    {"limit", "5x", false},
    {"after", "k7dq2m9xa4bz", true}, {"after", "", true},	    {"after", "K7DQ", false},
    {"colour", "red", false},
};

static void list_query_names_the_bad_parameter(void)
{
	struct admin_list_query q;
	struct keys_filter f;
	struct admin_err e;

	for (size_t i = 0; i < TG_NCASES(queries); i++) {
		admin_list_query_init(&q);
		e.param[0] = '\0';
		TG_CHECK_INT(admin_list_query_add(&q, queries[i].k, queries[i].v, &e),
			     queries[i].ok ? 0 : -EINVAL);
		if (!queries[i].ok) {
			TG_CHECK_STR(e.code, "invalid_query");
			TG_CHECK_STR(e.param, queries[i].k);
		}
		if (tg_failed)
			printf("#   query case: %s=%s\n", queries[i].k, queries[i].v);
	}
	admin_list_query_init(&q);
	TG_CHECK_INT(q.limit, 50);
	TG_CHECK_INT(admin_list_query_add(&q, "status", "revoked", &e), 0);
	TG_CHECK_INT(admin_list_query_add(&q, "status", "active", &e), -EINVAL); /* repeated */
	admin_list_query_filter(&q, &f);
	TG_CHECK(f.owner == NULL && f.service == NULL && f.tier == NULL);
	TG_CHECK_INT(f.status, KEY_REVOKED);
}

/* ---- rendering ---- */

static char *render(cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);

	cJSON_Delete(o);
	return s;
}

static void key_object_has_overrides_and_effective_limits(void)
{
	struct key_record r = {.id = "k7dq2m9xa4bz",
			       .name = "bot",
			       .owner = "team:ml",
			       .service = "chat",
			       .tier = "basic",
			       .created_at = 1795000000,
			       .expires_at = 1795000100};
	char *s;

	limits_clear(&r.overrides);
	r.overrides.v[LIMIT_RPS] = 2500;
	r.overrides.v[LIMIT_TOKENS_MONTH] = 1000000000000000ull;
	r.overrides.act[LIMIT_TPM] = LIMIT_ACT_ALERT;
	s = render(admin_key_json(&r, &model_default_tiers[0].lim, 1795000000));
	TG_REQUIRE(s);
	TG_CHECK(strstr(s, "\"actions\":{\"tokens_per_minute\":\"alert\"}"));
	TG_CHECK(strstr(s, "\"effective_actions\":{\"tokens_per_minute\":\"alert\"}"));
	TG_CHECK(strstr(s, "\"object\":\"api_key\",\"id\":\"k7dq2m9xa4bz\","
			   "\"prefix\":\"tg_k7dq2m9xa4bz_\""));
	TG_CHECK(strstr(s, "\"limits\":{\"requests_per_second\":2.5,"
			   "\"tokens_per_month\":1000000000000000}"));
	TG_CHECK(strstr(s, "\"effective_limits\":{\"requests_per_second\":2.5,\"burst\":20,"));
	TG_CHECK(strstr(s, "\"status\":\"active\""));
	TG_CHECK(strstr(s, "\"created_at\":\"2026-11-18T"));
	TG_CHECK(strstr(s, "\"revoked_at\":null,\"last_used_at\":null,\"rotated_at\":null,"
			   "\"previous_valid_until\":null"));
	TG_CHECK(!strstr(s, "\"key\""));
	cJSON_free(s);

	/* status is computed at the time asked: past expires_at it is expired */
	s = render(admin_key_json(&r, NULL, 1795000100));
	TG_REQUIRE(s);
	TG_CHECK(strstr(s, "\"status\":\"expired\""));
	TG_CHECK(strstr(s, "\"effective_limits\":null"));
	cJSON_free(s);
}

static void tier_and_token_objects(void)
{
	struct tier t = {.name = "gold"};
	struct token_record c = {.id = "a3k9x0c2m1qz",
				 .name = "ci",
				 .role = ROLE_CONSUMER,
				 .consumer = "acme",
				 .tier = "basic",
				 .created_at = 1795000000};
	struct token_record v = {
	    .id = "bootstrap", .name = "b", .role = ROLE_VIEWER, .revoked_at = 1795000000};
	char *s;

	for (int f = 0; f < LIMIT__COUNT; f++)
		t.lim.v[f] = 0;
	t.lim.v[LIMIT_RPS] = 125;
	t.lim.v[LIMIT_BURST] = 1;
	t.lim.act[LIMIT_TPM] = LIMIT_ACT_ALERT;
	s = render(admin_tier_json(&t));
	TG_REQUIRE(s);
	TG_CHECK_STR(s, "{\"object\":\"tier\",\"name\":\"gold\",\"requests_per_second\":0.125,"
			"\"burst\":1,\"requests_per_minute\":0,\"requests_per_hour\":0,"
			"\"requests_per_day\":0,\"tokens_per_minute\":0,\"tokens_per_month\":0,"
			"\"max_concurrent\":0,\"actions\":{\"tokens_per_minute\":\"alert\"}}");
	cJSON_free(s);
	t.lim.act[LIMIT_TPM] = 0; /* no action of its own: no "actions" member */
	s = render(admin_tier_json(&t));
	TG_REQUIRE(s);
	TG_CHECK(strstr(s, "actions") == NULL);
	cJSON_free(s);

	s = render(admin_token_json(&c));
	TG_REQUIRE(s);
	TG_CHECK(strstr(s, "\"role\":\"consumer\",\"consumer\":\"acme\",\"tier\":\"basic\","
			   "\"status\":\"active\""));
	cJSON_free(s);
	s = render(admin_token_json(&v));
	TG_REQUIRE(s);
	TG_CHECK(!strstr(s, "consumer\"") && !strstr(s, "\"tier\""));
	TG_CHECK(strstr(s, "\"status\":\"revoked\""));
	cJSON_free(s);
}

/* ---- per-limit actions ---- */

static const struct {
	const char *name;
	const char *actions;
	bool allow_null;
	const char *code;  /* NULL: accepted */
	const char *param; /* refused: the member named */
	enum limit_field field;
	uint8_t want; /* accepted: set[field] (0 with allow_null: a clear bit) */
} action_cases[] = {
    {"alert on tokens_per_minute", "{\"tokens_per_minute\":\"alert\"}", false, NULL, NULL,
     LIMIT_TPM, LIMIT_ACT_ALERT},
    {"block on requests_per_second", "{\"requests_per_second\":\"block\"}", false, NULL, NULL,
     LIMIT_RPS, LIMIT_ACT_BLOCK},
    {"queue on max_concurrent", "{\"max_concurrent\":\"queue\"}", false, NULL, NULL,
     LIMIT_MAX_CONCURRENT, LIMIT_ACT_QUEUE},
    {"null clears in PATCH", "{\"cost_per_day\":null}", true, NULL, NULL, LIMIT_COST_DAY, 0},
    {"null outside PATCH", "{\"cost_per_day\":null}", false, "invalid_type", "actions.cost_per_day",
     0, 0},
    {"unknown action", "{\"tokens_per_minute\":\"explode\"}", false, "invalid_value",
     "actions.tokens_per_minute", 0, 0},
    {"inherit is not an action", "{\"tokens_per_minute\":\"inherit\"}", true, "invalid_value",
     "actions.tokens_per_minute", 0, 0},
    {"action as a number", "{\"tokens_per_minute\":1}", false, "invalid_type",
     "actions.tokens_per_minute", 0, 0},
    {"unknown limit", "{\"tokens_per_week\":\"alert\"}", false, "unknown_field",
     "actions.tokens_per_week", 0, 0},
    {"burst takes no action", "{\"burst\":\"alert\"}", false, "invalid_field", "actions.burst", 0,
     0},
    {"mode takes no action", "{\"mode\":\"block\"}", false, "invalid_field", "actions.mode", 0, 0},
    {"a limit twice", "{\"tokens_per_minute\":\"alert\",\"tokens_per_minute\":\"block\"}", false,
     "duplicate_field", "actions.tokens_per_minute", 0, 0},
};

static void actions_parse_and_name_the_member(void)
{
	for (size_t i = 0; i < TG_NCASES(action_cases); i++) {
		cJSON *o = parse(action_cases[i].actions);
		struct admin_err e = {0};
		uint8_t set[LIMIT__COUNT];
		uint32_t clear = 0;
		int rc;

		TG_REQUIRE(o);
		rc = admin_actions_parse(o, "actions", action_cases[i].allow_null, set, &clear, &e);
		if (!action_cases[i].code) {
			TG_CHECK_INT(rc, 0);
			TG_CHECK_INT(set[action_cases[i].field], action_cases[i].want);
			TG_CHECK_INT(clear, action_cases[i].want ? 0 : 1u << action_cases[i].field);
		} else {
			TG_CHECK_INT(rc, -EINVAL);
			TG_CHECK_STR(e.code, action_cases[i].code);
			TG_CHECK_STR(e.param, action_cases[i].param);
			TG_CHECK(strncmp(e.msg, e.param, strlen(e.param)) == 0);
		}
		if (tg_failed)
			printf("#   actions case: %s\n", action_cases[i].name);
		cJSON_Delete(o);
	}
}

/* Keys take "actions" at creation and in PATCH (null removes one); tiers in their object. */
static void keys_and_tiers_take_actions(void)
{
	cJSON *o = parse("{\"name\":\"a\",\"owner\":\"team:x\",\"actions\":{\"tokens_per_minute\":"
			 "\"alert\"}}");
	struct admin_key_create in;
	struct admin_err e = {0};
	struct key_patch p;
	struct tier *t = NULL, one;
	size_t n = 0;

	TG_REQUIRE(o);
	TG_CHECK_INT(admin_key_create_parse(o, NOW, &in, &e), 0);
	TG_CHECK_INT(in.spec.overrides.act[LIMIT_TPM], LIMIT_ACT_ALERT);
	TG_CHECK_INT(in.spec.overrides.act[LIMIT_TPD], 0);
	TG_CHECK(in.spec.overrides.v[LIMIT_TPM] == LIMIT_UNSET); /* an action is not a value */
	TG_CHECK(in.has_limits);
	cJSON_Delete(o);

	o = parse("{\"actions\":{\"tokens_per_minute\":null,\"cost_per_day\":\"queue\"}}");
	TG_REQUIRE(o);
	TG_CHECK_INT(admin_key_patch_parse(o, NOW, &p, &e), 0);
	TG_CHECK_INT(p.clear_act_mask, 1u << LIMIT_TPM);
	TG_CHECK_INT(p.set.act[LIMIT_COST_DAY], LIMIT_ACT_QUEUE);
	TG_CHECK_INT(p.clear_mask, 0);
	cJSON_Delete(o);

	o = parse("{\"actions\":{\"burst\":\"alert\"}}");
	TG_REQUIRE(o);
	TG_CHECK_INT(admin_key_patch_parse(o, NOW, &p, &e), -EINVAL);
	TG_CHECK_STR(e.param, "actions.burst");
	cJSON_Delete(o);

	o = parse("{\"tiers\":[" TIER_BODY("\"name\":\"gold\",\"actions\":{\"tokens_per_month\":"
					   "\"alert\"},") "]}");
	TG_REQUIRE(o);
	TG_CHECK_INT(admin_tiers_parse(o, &t, &n, &e), 0);
	TG_CHECK(n == 1 && t && t[0].lim.act[LIMIT_TOKENS_MONTH] == LIMIT_ACT_ALERT);
	free(t);
	cJSON_Delete(o);

	/* a bad tier action names the tier's member; a tier is whole: no null */
	o = parse("{\"tiers\":[" TIER_BODY("\"name\":\"gold\",\"actions\":{\"tokens_per_month\":"
					   "null},") "]}");
	TG_REQUIRE(o);
	TG_CHECK_INT(admin_tiers_parse(o, &t, &n, &e), -EINVAL);
	TG_CHECK_STR(e.param, "tiers[0].actions.tokens_per_month");
	cJSON_Delete(o);
	o = parse(TIER_BODY("\"actions\":{\"tokens_per_fortnight\":\"alert\"},"));
	TG_REQUIRE(o);
	TG_CHECK_INT(admin_tier_parse(o, "gold", "", &one, &e), -EINVAL);
	TG_CHECK_STR(e.param, "actions.tokens_per_fortnight");
	TG_CHECK_STR(e.code, "unknown_field");
	cJSON_Delete(o);
}

/* Without limits.downgrade, a downgrade action - default or per limit - names its field. */
static void downgrade_needs_a_map(void)
{
	static const struct {
		const char *name;
		uint64_t action;
		enum limit_field f; /* gets act, LIMIT__COUNT: none */
		uint8_t act;
		bool configured;
		const char *lp, *ap;
		const char *param; /* NULL: accepted */
	} rows[] = {
	    {"per-limit downgrade, no map", LIMIT_UNSET, LIMIT_TPM, LIMIT_ACT_DOWNGRADE, false,
	     "limits", "actions", "actions.tokens_per_minute"},
	    {"key action downgrade, no map", LIMIT_ACT_DOWNGRADE, LIMIT__COUNT, 0, false, "limits",
	     "actions", "limits.action"},
	    {"tier action downgrade, no map", LIMIT_ACT_DOWNGRADE, LIMIT__COUNT, 0, false, "",
	     "actions", "action"},
	    {"tier in a set, per-limit", 0, LIMIT_COST_DAY, LIMIT_ACT_DOWNGRADE, false, "tiers[2]",
	     "tiers[2].actions", "tiers[2].actions.cost_per_day"},
	    {"downgrade with a map", LIMIT_ACT_DOWNGRADE, LIMIT_TPM, LIMIT_ACT_DOWNGRADE, true,
	     "limits", "actions", NULL},
	    {"alert and block need no map", LIMIT_ACT_BLOCK, LIMIT_TPM, LIMIT_ACT_ALERT, false,
	     "limits", "actions", NULL},
	};

	for (size_t i = 0; i < TG_NCASES(rows); i++) {
		uint8_t act[LIMIT__COUNT] = {0};
		struct admin_err e = {0};
		int rc;

		if (rows[i].f < LIMIT__COUNT)
			act[rows[i].f] = rows[i].act;
		rc = admin_downgrade_check(rows[i].action, act, rows[i].lp, rows[i].ap,
					   rows[i].configured, &e);
		TG_CHECK_INT(rc, rows[i].param ? -EINVAL : 0);
		if (rows[i].param) {
			TG_CHECK_STR(e.param, rows[i].param);
			TG_CHECK_STR(e.code, "downgrade_not_configured");
			TG_CHECK(strstr(e.msg, "limits.downgrade") != NULL);
		}
		if (tg_failed)
			printf("#   downgrade case: %s\n", rows[i].name);
	}
}

static void escaped_nul_and_secret_names_are_refused_unechoed(void)
{
	static const char nul_body[] = "{\"name\":\"ab\\u0000cd\"}";
	static const char ok_body[] = "{\"name\":\"ab\\\\u0000cd\"}"; /* a backslash, then text */
	static const char key[] = "tg_k7dq2m9xa4bz_T0Qy1k9etUBgQEqjNtpqhBa50ZmR2qbgIP1PslaMfKF";
	struct admin_list_query q;
	struct key_patch p;
	struct admin_err e;
	char body[256];
	cJSON *o = NULL;

	TG_CHECK_INT(admin_json_parse(nul_body, strlen(nul_body), false, &o, &e), -EINVAL);
	TG_CHECK_INT(e.status, 400);
	TG_CHECK(o == NULL);
	TG_CHECK_INT(admin_json_parse(ok_body, strlen(ok_body), false, &o, &e), 0);
	cJSON_Delete(o);
	o = NULL;
	/* an API key pasted as a field name or query name is never repeated in the error */
	snprintf(body, sizeof(body), "{\"%s\": 1}", key);
	TG_REQUIRE(admin_json_parse(body, strlen(body), false, &o, &e) == 0);
	TG_CHECK_INT(admin_key_patch_parse(o, NOW, &p, &e), -EINVAL);
	TG_CHECK_STR(e.code, "unknown_field");
	TG_CHECK(strstr(e.msg, "k7dq2m9xa4bz") == NULL && strstr(e.param, "k7dq2m9xa4bz") == NULL);
	cJSON_Delete(o);
	memset(&q, 0, sizeof(q));
	TG_CHECK_INT(admin_list_query_add(&q, key, "1", &e), -EINVAL);
	TG_CHECK(strstr(e.msg, "k7dq2m9xa4bz") == NULL && strstr(e.param, "k7dq2m9xa4bz") == NULL);
	/* an ordinary unknown name is still named */
	TG_CHECK_INT(admin_list_query_add(&q, "colour", "1", &e), -EINVAL);
	TG_CHECK_STR(e.param, "colour");
}

int main(void)
{
	static const struct tg_case cases[] = {
	    {"a body is exactly one JSON object", bodies_must_be_one_object},
	    {"an empty body is fine when optional; a NUL byte is not JSON",
	     empty_body_is_fine_when_optional_and_nul_is_not},
	    {"limits: milli rps with up to 3 decimals, whole integers in range, fields named",
	     limits_parse_and_name_the_field},
	    {"null clears an override in PATCH only", null_clears_an_override_in_patch_only},
	    {"key creation refusals name the field and code", key_create_refusals_name_the_field},
	    {"key creation takes every documented field", key_create_takes_every_field},
	    {"PATCH refuses owner, takes nulls, and refuses all for one bad field",
	     key_patch_refuses_owner_and_takes_nulls},
	    {"rotation grace is 0 to 30 days, default without a body",
	     rotation_grace_is_0_to_30_days},
	    {"a tier needs every limit and its own name", tier_needs_every_limit_and_its_own_name},
	    {"a tier set refuses repeated names and non-objects",
	     tier_set_refuses_repeats_and_non_objects},
	    {"admin token fields follow the role", token_fields_follow_the_role},
	    {"list query parameters are checked and named", list_query_names_the_bad_parameter},
	    {"key object: overrides, effective limits, status, times",
	     key_object_has_overrides_and_effective_limits},
	    {"tier and admin token objects", tier_and_token_objects},
	    {"an escaped NUL is refused; a secret pasted as a name is not echoed",
	     escaped_nul_and_secret_names_are_refused_unechoed},
	    {"actions: known actions on limits that take one, members named",
	     actions_parse_and_name_the_member},
	    {"keys take actions at creation and in PATCH, tiers in their object",
	     keys_and_tiers_take_actions},
	    {"a downgrade action without limits.downgrade is refused, naming the field",
	     downgrade_needs_a_map},
	};

	return tg_run("admin_json", cases, TG_NCASES(cases));
}
