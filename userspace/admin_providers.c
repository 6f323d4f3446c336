/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * GET /api/v1/providers as JSON: the routing settings in force, then per provider its
 * settings (name, base URL, models, priority, weight, outbound rate limit; never the
 * credential nor the variable holding it) and its health from the router (breaker state,
 * failures in a row, when an open breaker starts probing, cooldown, moving and median
 * latency, recent error rate, attempts and their outcomes by class).
 */
#include <cjson/cJSON.h>

#include "admin_internal.h"
#include "router.h"
#include "util.h"

/* A CLOCK_MONOTONIC instant as RFC 3339 wall-clock time, or null when 0. */
static bool add_instant(cJSON *o, const char *name, int64_t mono_ns, int64_t now_mono,
			int64_t now_unix)
{
	char buf[32];
	int64_t secs;

	if (!mono_ns)
		return cJSON_AddNullToObject(o, name) != NULL;
	secs = (mono_ns - now_mono + 999999999) / 1000000000;
	tg_rfc3339_format(now_unix + secs, buf);
	return cJSON_AddStringToObject(o, name, buf) != NULL;
}

static bool add_ms(cJSON *o, const char *name, bool known, double ms)
{
	return (known ? cJSON_AddNumberToObject(o, name, (double)(int64_t)(ms * 1000) / 1000)
		      : cJSON_AddNullToObject(o, name)) != NULL;
}

static cJSON *models_json(const struct provider *p)
{
	cJSON *arr = cJSON_CreateArray();

	for (size_t i = 0; arr && i < p->nmodels; i++) {
		cJSON *s = cJSON_CreateString(p->models[i].name);

		if (!s || !cJSON_AddItemToArray(arr, s)) {
			cJSON_Delete(s);
			cJSON_Delete(arr);
			return NULL;
		}
	}
	return arr;
}

/* Attempts by outcome class, the successful ones included. */
static cJSON *outcomes_json(const struct router_status *st)
{
	cJSON *o = cJSON_CreateObject();

	for (int i = 0; o && i < ROUTER__COUNT; i++) {
		if (!cJSON_AddNumberToObject(o, router_outcome_name((enum router_outcome)i),
					     (double)st->outcomes[i])) {
			cJSON_Delete(o);
			return NULL;
		}
	}
	return o;
}

static cJSON *provider_json(const struct router_status *st, int64_t now_mono, int64_t now_unix)
{
	const struct provider *p = st->prov;
	cJSON *o = cJSON_CreateObject(), *lat = NULL;
	bool ok = o && cJSON_AddStringToObject(o, "name", p->name) &&
		  cJSON_AddStringToObject(o, "base_url", p->base_url) &&
		  cJSON_AddItemToObject(o, "models", models_json(p)) &&
		  cJSON_AddNumberToObject(o, "priority", p->priority) &&
		  cJSON_AddNumberToObject(o, "weight", p->weight) &&
		  cJSON_AddNumberToObject(o, "rate_limit_per_sec", p->rate_limit) &&
		  cJSON_AddStringToObject(o, "http", provider_http_names[p->http]) &&
		  cJSON_AddStringToObject(o, "breaker", breaker_state_name(st->state)) &&
		  cJSON_AddNumberToObject(o, "failures_in_row", st->failures_in_row) &&
		  add_instant(o, "open_until", st->state == BREAKER_OPEN ? st->open_until_ns : 0,
			      now_mono, now_unix) &&
		  add_instant(o, "cooldown_until", st->cooldown_until_ns, now_mono, now_unix) &&
		  (lat = cJSON_AddObjectToObject(o, "latency_ms")) &&
		  add_ms(lat, "ewma", st->measured, st->ewma_ms) &&
		  add_ms(lat, "p50", st->measured, st->p50_ms) &&
		  cJSON_AddNumberToObject(o, "error_rate",
					  (double)(int64_t)(st->error_rate * 1000) / 1000) &&
		  cJSON_AddNumberToObject(o, "requests", (double)st->requests) &&
		  cJSON_AddItemToObject(o, "outcomes", outcomes_json(st)) &&
		  cJSON_AddNumberToObject(o, "rate_limited_skips", (double)st->rate_limited_skips);

	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static cJSON *overrides_json(const struct route_override *v, size_t n)
{
	cJSON *o = cJSON_CreateObject();

	for (size_t i = 0; o && i < n; i++) {
		if (!cJSON_AddStringToObject(o, v[i].name, route_policy_names[v[i].policy])) {
			cJSON_Delete(o);
			return NULL;
		}
	}
	return o;
}

static cJSON *routing_json(const struct routing_cfg *c)
{
	cJSON *o = cJSON_CreateObject();
	bool ok = o && cJSON_AddStringToObject(o, "policy", route_policy_names[c->policy]) &&
		  cJSON_AddItemToObject(o, "models", overrides_json(c->models, c->nmodels)) &&
		  cJSON_AddItemToObject(o, "services", overrides_json(c->services, c->nservices)) &&
		  cJSON_AddNumberToObject(o, "max_attempts", c->max_attempts) &&
		  cJSON_AddNumberToObject(o, "provider_cooldown_sec", c->cooldown_sec) &&
		  cJSON_AddNumberToObject(o, "breaker_failures", c->breaker_failures) &&
		  cJSON_AddNumberToObject(o, "breaker_open_sec", c->breaker_open_sec) &&
		  cJSON_AddNumberToObject(o, "breaker_probes", c->breaker_probes) &&
		  cJSON_AddNumberToObject(o, "call_timeout_sec", c->call_timeout_sec) &&
		  cJSON_AddStringToObject(o, "retry_after", c->retry_after ? "ignore" : "respect");

	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

cJSON *admin_providers_json(struct router *r)
{
	int64_t now_mono = tg_now_mono_ns(), now_unix = tg_now_unix();
	cJSON *o = cJSON_CreateObject(), *arr = NULL;
	struct router_status st;

	if (!o || !r || !cJSON_AddItemToObject(o, "routing", routing_json(router_cfg(r))) ||
	    !(arr = cJSON_AddArrayToObject(o, "data")))
		goto fail;
	for (size_t i = 0; i < router_count(r); i++) {
		cJSON *p;

		if (router_status(r, i, now_mono, &st))
			goto fail;
		p = provider_json(&st, now_mono, now_unix);
		if (!p || !cJSON_AddItemToArray(arr, p)) {
			cJSON_Delete(p);
			goto fail;
		}
	}
	return o;
fail:
	cJSON_Delete(o);
	return NULL;
}
