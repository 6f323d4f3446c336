/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Upstream LLM providers and their prices, from the "providers" array of the config file:
 *
 *   "providers": [{"name": "openai", "base_url": "https://api.openai.com/v1",
 *                  "api_key_env": "OPENAI_API_KEY", "timeout_sec": 120,
 *                  "models": [{"name": "gpt-4o-mini", "prompt_per_1k": 0.00015,
 *                              "completion_per_1k": 0.0006}]}]
 *
 * Without that array one provider, "mock", serves the default models at
 * upstream.default_url (http://127.0.0.1:9000/v1, where `make run` starts mock-llm).
 * Credentials are read from the named environment variable at load, kept in memory only,
 * and never logged or shown. Prices are held as integer nano-dollars per 1K tokens so
 * costs add up exactly; pure functions, no I/O beyond getenv.
 */
#ifndef TG_PROVIDERS_H
#define TG_PROVIDERS_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;

#define PROVIDER_NAME_MAX 32
#define MODEL_NAME_MAX 64

struct model_price {
	char name[MODEL_NAME_MAX + 1];
	uint64_t prompt_nano_per_1k;	 /* USD 1e-9 per 1000 prompt tokens */
	uint64_t completion_nano_per_1k; /* USD 1e-9 per 1000 completion tokens */
};

struct provider {
	char name[PROVIDER_NAME_MAX + 1];
	char base_url[256];	 /* e.g. "http://127.0.0.1:9000/v1", no trailing slash */
	char api_key_env[64];	 /* "" = no credential */
	char *api_key;		 /* from the environment; NULL if none; wiped on free */
	uint32_t timeout_sec;	 /* whole upstream call, default 120 */
	struct model_price *models;
	size_t nmodels;
};

struct providers {
	struct provider *v;
	size_t n;
};

/* The built-in single provider "mock" at base_url with the default models and prices. */
int providers_default(struct providers *p, const char *base_url);
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

struct cost {
	uint64_t prompt_nano;	  /* USD 1e-9 */
	uint64_t completion_nano; /* USD 1e-9 */
	uint64_t total_nano;	  /* their sum */
};

/* Cost of a call, each part rounded up to the next nano-dollar. */
void pricing_cost(const struct model_price *m, uint64_t prompt_tokens,
		  uint64_t completion_tokens, struct cost *out);

#endif /* TG_PROVIDERS_H */
