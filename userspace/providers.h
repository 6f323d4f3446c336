/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Upstream LLM providers and their prices, from the "providers" array of the config file:
 *
 *   "providers": [{"name": "openai", "base_url": "https://api.openai.com/v1",
 *                  "api_key_env": "OPENAI_API_KEY", "timeout_sec": 120,
 *                  "models": [{"name": "gpt-4o-mini", "prompt_per_1k": 0.00015,
 *                              "completion_per_1k": 0.0006}]}]
 *
 * Each provider may also set "priority" (lower is tried first; default its position in the
 * array), "weight" (1-1000, default 1: shares traffic among providers of equal priority or
 * price), "rate_limit_per_sec" (outbound requests per second it is sent, 0 = no limit) and
 * "http" ("1.1", the default, or "2": HTTP/2, which carries many calls on one connection;
 * over http:// that is cleartext HTTP/2 with prior knowledge, so the upstream must speak it)
 * and "ca_file" (a PEM file of the certificate authorities an https:// upstream is verified
 * against, instead of the system's: a private CA; it must be readable at load).
 * Several providers may serve one model; the router (router.h) chooses among them by the
 * routing policy (struct routing_cfg, the config's "routing" section).
 *
 * Without that array one provider, "mock", serves the default models at
 * upstream.default_url (http://127.0.0.1:9000/v1, where `make run` starts mock-llm).
 * Credentials are read from the named environment variable at load, kept in memory only,
 * and never logged or shown. Prices are held as integer nano-dollars per 1K tokens so
 * costs add up exactly; pure functions, no I/O beyond getenv and checking that a ca_file can
 * be read.
 */
#ifndef TG_PROVIDERS_H
#define TG_PROVIDERS_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;

#define PROVIDER_NAME_MAX 32
#define MODEL_NAME_MAX 64
#define PROVIDERS_MAX 64 /* the router keeps a call's tried providers in a 64-bit mask */

struct model_price {
	char name[MODEL_NAME_MAX + 1];
	uint64_t prompt_nano_per_1k;	 /* USD 1e-9 per 1000 prompt tokens */
	uint64_t completion_nano_per_1k; /* USD 1e-9 per 1000 completion tokens */
};

enum provider_http {
	PROVIDER_HTTP_1_1 = 0, /* one call per connection at a time (keep-alive reuse) */
	PROVIDER_HTTP_2,       /* calls multiplexed over few connections */
};

/* "1.1" and "2", indexed by enum provider_http, NULL-terminated (the config's names too). */
extern const char *const provider_http_names[];

struct provider {
	char name[PROVIDER_NAME_MAX + 1];
	char base_url[256];	 /* e.g. "http://127.0.0.1:9000/v1", no trailing slash */
	char api_key_env[64];	 /* "" = no credential */
	char *api_key;		 /* from the environment; NULL if none; wiped on free */
	uint32_t timeout_sec;	 /* whole upstream call, default 120 */
	uint32_t priority;	 /* lower first; default the index in the array */
	uint32_t weight;	 /* 1..1000, default 1 */
	uint32_t rate_limit;	 /* outbound requests per second, 0 = none */
	enum provider_http http; /* the HTTP version calls are made with */
	char ca_file[256];	 /* "" = the system's certificate authorities */
	struct model_price *models;
	size_t nmodels;
};

struct providers {
	struct provider *v;
	size_t n;
};

/*
 * The built-in single provider "mock" at base_url with the default models and prices,
 * spoken to over http (upstream.http).
 */
int providers_default(struct providers *p, const char *base_url, enum provider_http http,
		      const char *ca_file);
/*
 * Parses a "providers" JSON array. 0, or -EINVAL with err naming the field
 * ("providers[1].models[0].prompt_per_1k: must be a number >= 0"), or -ENOMEM; *p untouched
 * on error. An api_key_env naming an unset (or empty) variable is an error naming the
 * variable, never a value.
 */
int providers_parse(const struct cJSON *arr, struct providers *p, char *err, size_t errlen);
/* Frees and wipes (credentials). Accepts an empty/zeroed struct. */
void providers_free(struct providers *p);

/* The first provider serving model (and its price), or NULL. */
const struct provider *providers_route(const struct providers *p, const char *model,
				       const struct model_price **price);

/* ---- routing policies (the config's "routing" section) ---- */

enum route_policy {
	ROUTE_PRIMARY = 0, /* highest priority healthy provider, then the next */
	ROUTE_COST,	   /* cheapest for the model (prompt + completion price per 1K) */
	ROUTE_LATENCY,	   /* lowest moving latency, with some exploration */
};

/* "primary", "cost_weighted", "latency_weighted", NULL: the config's enum names. */
extern const char *const route_policy_names[];

#define ROUTING_OVERRIDES_MAX 32

struct route_override {
	char name[MODEL_NAME_MAX + 1]; /* a model or a service name */
	uint32_t policy;	       /* enum route_policy */
};

struct routing_cfg {
	uint32_t policy;	       /* routing.policy: enum route_policy, default primary */
	uint32_t max_attempts;	       /* routing.max_attempts: providers tried per call (3) */
	uint32_t cooldown_sec;	       /* routing.provider_cooldown_sec: after a 429 (30) */
	uint32_t breaker_failures;     /* routing.breaker_failures: in a row to open (5) */
	uint32_t breaker_open_sec;     /* routing.breaker_open_sec: open before probing (30) */
	uint32_t breaker_probes;       /* routing.breaker_probes: half-open probes at once (1) */
	uint32_t call_timeout_sec;     /* routing.call_timeout_sec: all attempts of a call (300) */
	uint32_t retry_after;	       /* routing.retry_after: 0 respect (cool down), 1 ignore */
	struct route_override models[ROUTING_OVERRIDES_MAX];   /* routing.models */
	size_t nmodels;
	struct route_override services[ROUTING_OVERRIDES_MAX]; /* routing.services */
	size_t nservices;
};

/* The defaults above. */
void routing_defaults(struct routing_cfg *r);
/*
 * Parses routing.models or routing.services (which: "models" or "services"), a JSON object
 * of name -> policy name, replacing that list. 0 or -EINVAL with err naming the member.
 */
int routing_overrides_parse(const struct cJSON *obj, const char *which, struct routing_cfg *r,
			    char *err, size_t errlen);
/* The policy for a call: the service's override, else the model's, else the default. */
enum route_policy routing_policy_for(const struct routing_cfg *r, const char *model,
				     const char *service);

struct cost {
	uint64_t prompt_nano;	  /* USD 1e-9 */
	uint64_t completion_nano; /* USD 1e-9 */
	uint64_t total_nano;	  /* their sum */
};

/* Cost of a call, each part rounded up to the next nano-dollar. */
void pricing_cost(const struct model_price *m, uint64_t prompt_tokens,
		  uint64_t completion_tokens, struct cost *out);

#endif /* TG_PROVIDERS_H */
