/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Upstream providers and model prices: the built-in "mock" provider, the strict reader of
 * the config's "providers" array (every error names its field by index path; credentials
 * come from the environment and never appear in an error), routing by model name and
 * exact integer cost arithmetic. No I/O beyond getenv.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "providers.h"
#include "util.h"

#define DEFAULT_TIMEOUT_SEC 120
#define TIMEOUT_MAX_SEC	    3600
#define PRICE_MAX_USD	    1000.0 /* per 1K tokens: far above any real price, keeps sums small */
#define PPATH_LEN	    32	   /* "providers[N]" */
#define MPATH_LEN	    64	   /* "providers[N].models[N]" */
#define MODEL_NAME_EXTRA    "._:/@+-"

/* USD per 1K tokens as nano-dollars: gpt-4o-mini is $0.15 / $0.60 per 1M tokens. */
static const struct model_price default_models[] = {
    {"gpt-4o-mini", 150000, 600000},
    {"gpt-4o", 2500000, 10000000},
    {"gpt-3.5-turbo", 500000, 1500000},
    {"text-embedding-3-small", 20000, 0},
};

static const char *const provider_fields[] = {
    "name", "base_url", "api_key_env", "timeout_sec", "models", "priority", "weight",
    "rate_limit_per_sec", "http", "ca_file", NULL};

const char *const provider_http_names[] = {"1.1", "2", NULL};

const char *const route_policy_names[] = {"primary", "cost_weighted", "latency_weighted", NULL};

#define PRIORITY_MAX   1000000
#define WEIGHT_MAX     1000
#define RATE_LIMIT_MAX 1000000
static const char *const model_fields[] = {"name", "prompt_per_1k", "completion_per_1k", NULL};

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes the error (when the caller gave a buffer) and returns -EINVAL. */
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/*
 * Copies an http(s) URL without its trailing slashes into out (256 bytes). Control
 * characters and spaces are refused: the URL ends up in request lines and logs.
 */
static int url_copy(const char *url, char *out, size_t outlen)
{
	size_t n, skip;

	if (strncmp(url, "http://", 7) == 0)
		skip = 7;
	else if (strncmp(url, "https://", 8) == 0)
		skip = 8;
	else
		return -EINVAL;
	for (n = 0; url[n]; n++)
		if ((unsigned char)url[n] <= 0x20 || url[n] == 0x7f)
			return -EINVAL;
	while (n > skip && url[n - 1] == '/')
		n--;
	if (n == skip || url[skip] == '/' || n >= outlen)
		return -EINVAL;
	memcpy(out, url, n);
	out[n] = '\0';
	return 0;
}

static void provider_free(struct provider *pv)
{
	if (pv->api_key) {
		explicit_bzero(pv->api_key, strlen(pv->api_key));
		free(pv->api_key);
		pv->api_key = NULL;
	}
	free(pv->models);
	pv->models = NULL;
	pv->nmodels = 0;
}

void providers_free(struct providers *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n && p->v; i++)
		provider_free(&p->v[i]);
	free(p->v);
	p->v = NULL;
	p->n = 0;
}

/* A CA file name that fits and can be read now; -EINVAL otherwise. */
static int ca_file_copy(const char *name, char *out, size_t outlen)
{
	if (!*name || strlen(name) >= outlen || access(name, R_OK) != 0)
		return -EINVAL;
	memcpy(out, name, strlen(name) + 1);
	return 0;
}

int providers_default(struct providers *p, const char *base_url, enum provider_http http,
		      const char *ca_file)
{
	struct provider *pv = calloc(1, sizeof(*pv));
	int rc = -ENOMEM;

	if (!pv)
		goto out;
	pv->models = malloc(sizeof(default_models));
	if (!pv->models)
		goto out;
	rc = -EINVAL;
	if (!base_url || url_copy(base_url, pv->base_url, sizeof(pv->base_url)) < 0)
		goto out;
	snprintf(pv->name, sizeof(pv->name), "mock");
	pv->timeout_sec = DEFAULT_TIMEOUT_SEC;
	pv->weight = 1;
	pv->http = http;
	if (ca_file && *ca_file && ca_file_copy(ca_file, pv->ca_file, sizeof(pv->ca_file)) < 0)
		goto out;
	memcpy(pv->models, default_models, sizeof(default_models));
	pv->nmodels = TG_ARRAY_SIZE(default_models);
	p->v = pv;
	p->n = 1;
	return 0;
out:
	if (pv)
		free(pv->models);
	free(pv);
	return rc;
}

/* Every member of obj must be in allowed, and appear once. */
static int check_fields(const cJSON *obj, const char *const *allowed, const char *path, char *err,
			size_t errlen)
{
	for (const cJSON *it = obj->child; it; it = it->next) {
		size_t i = 0;

		while (allowed[i] && strcmp(allowed[i], it->string) != 0)
			i++;
		if (!allowed[i])
			return fail(err, errlen, "%s.%.64s: unknown field", path, it->string);
		for (const cJSON *prev = obj->child; prev != it; prev = prev->next)
			if (strcmp(prev->string, it->string) == 0)
				return fail(err, errlen, "%s.%.64s: duplicate field", path,
					    it->string);
	}
	return 0;
}

/*
 * USD per 1K tokens (a JSON number) as nano-dollars, rounded to the nearest: the double
 * is exact to far below a nano-dollar for every accepted value (<= PRICE_MAX_USD).
 */
static int price_parse(const cJSON *obj, const char *field, const char *path, uint64_t *out,
		       char *err, size_t errlen)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, field);
	double d = cJSON_IsNumber(it) ? it->valuedouble : -1.0;

	if (!it)
		return fail(err, errlen, "%s.%s: required", path, field);
	if (!(d >= 0))
		return fail(err, errlen, "%s.%s: must be a number >= 0", path, field);
	if (d > PRICE_MAX_USD)
		return fail(err, errlen, "%s.%s: must be at most %.0f (USD per 1K tokens)", path,
			    field, PRICE_MAX_USD);
	*out = (uint64_t)(d * 1e9 + 0.5);
	return 0;
}

static int model_parse(const cJSON *item, const char *path, struct model_price *m, char *err,
		       size_t errlen)
{
	const cJSON *name;
	int rc;

	if (!cJSON_IsObject(item))
		return fail(err, errlen, "%s: must be an object", path);
	rc = check_fields(item, model_fields, path, err, errlen);
	if (rc < 0)
		return rc;
	name = cJSON_GetObjectItemCaseSensitive(item, "name");
	if (!name)
		return fail(err, errlen, "%s.name: required", path);
	if (!cJSON_IsString(name) ||
	    !tg_ident_valid(name->valuestring, MODEL_NAME_MAX, MODEL_NAME_EXTRA))
		return fail(err, errlen,
			    "%s.name: must be 1-%d characters from A-Z, a-z, 0-9 and %s", path,
			    MODEL_NAME_MAX, MODEL_NAME_EXTRA);
	snprintf(m->name, sizeof(m->name), "%s", name->valuestring);
	rc = price_parse(item, "prompt_per_1k", path, &m->prompt_nano_per_1k, err, errlen);
	if (rc < 0)
		return rc;
	return price_parse(item, "completion_per_1k", path, &m->completion_nano_per_1k, err,
			   errlen);
}

static int models_parse(const cJSON *arr, const char *ppath, struct provider *pv, char *err,
			size_t errlen)
{
	char path[MPATH_LEN];
	int n = cJSON_GetArraySize(arr), i = 0, rc;
	const cJSON *it;

	if (!cJSON_IsArray(arr) || n == 0)
		return fail(err, errlen, "%s.models: must be a non-empty array", ppath);
	pv->models = calloc((size_t)n, sizeof(*pv->models));
	if (!pv->models)
		return -ENOMEM;
	cJSON_ArrayForEach(it, arr)
	{
		snprintf(path, sizeof(path), "%s.models[%d]", ppath, i);
		rc = model_parse(it, path, &pv->models[i], err, errlen);
		if (rc < 0)
			return rc;
		for (int j = 0; j < i; j++)
			if (strcmp(pv->models[j].name, pv->models[i].name) == 0)
				return fail(err, errlen, "%s.name: duplicate model '%s'", path,
					    pv->models[i].name);
		pv->nmodels = (size_t)++i;
	}
	return 0;
}

/*
 * Takes the credential from the environment variable named by api_key_env. The error text
 * names the variable, never its value. The value goes into an Authorization header, so
 * spaces and control characters are refused.
 */
static int credential_load(const cJSON *env, const char *path, struct provider *pv, char *err,
			   size_t errlen)
{
	const char *val;

	if (!env)
		return 0;
	if (!cJSON_IsString(env) || !tg_ident_valid(env->valuestring, 63, "_") ||
	    strpbrk(env->valuestring, "abcdefghijklmnopqrstuvwxyz"))
		return fail(err, errlen,
			    "%s.api_key_env: must be 1-63 characters from A-Z, 0-9 and _", path);
	snprintf(pv->api_key_env, sizeof(pv->api_key_env), "%s", env->valuestring);
	val = getenv(pv->api_key_env);
	if (!val || !*val)
		return fail(err, errlen, "%s.api_key_env: environment variable %s is not set", path,
			    pv->api_key_env);
	for (const char *c = val; *c; c++)
		if ((unsigned char)*c <= 0x20 || *c == 0x7f)
			return fail(err, errlen,
				    "%s.api_key_env: the value of %s has spaces or control "
				    "characters",
				    path, pv->api_key_env);
	pv->api_key = strdup(val);
	return pv->api_key ? 0 : -ENOMEM;
}

static int timeout_parse(const cJSON *it, const char *path, struct provider *pv, char *err,
			 size_t errlen)
{
	double d;

	pv->timeout_sec = DEFAULT_TIMEOUT_SEC;
	if (!it)
		return 0;
	d = cJSON_IsNumber(it) ? it->valuedouble : 0;
	if (!(d >= 1 && d <= TIMEOUT_MAX_SEC) || d != (double)(uint32_t)d)
		return fail(err, errlen, "%s.timeout_sec: must be a whole number from 1 to %d",
			    path, TIMEOUT_MAX_SEC);
	pv->timeout_sec = (uint32_t)d;
	return 0;
}

/* An optional whole number field in [lo, hi]; *out keeps its default when absent. */
static int uint_field(const cJSON *item, const char *field, const char *path, uint32_t lo,
		      uint32_t hi, uint32_t *out, char *err, size_t errlen)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(item, field);
	double d;

	if (!it)
		return 0;
	d = cJSON_IsNumber(it) ? it->valuedouble : -1;
	if (!(d >= lo && d <= hi) || d != (double)(uint32_t)d)
		return fail(err, errlen, "%s.%s: must be a whole number from %u to %u", path, field,
			    lo, hi);
	*out = (uint32_t)d;
	return 0;
}

/* The optional "ca_file": a readable PEM file of certificate authorities. */
static int ca_file_parse(const cJSON *it, const char *path, struct provider *pv, char *err,
			 size_t errlen)
{
	pv->ca_file[0] = '\0';
	if (!it)
		return 0;
	if (!cJSON_IsString(it) || ca_file_copy(it->valuestring, pv->ca_file, sizeof(pv->ca_file)))
		return fail(err, errlen, "%s.ca_file: must name a readable file (under %zu bytes)",
			    path, sizeof(pv->ca_file));
	return 0;
}

/* The optional "http": "1.1" (its default) or "2". */
static int http_parse(const cJSON *it, const char *path, struct provider *pv, char *err,
		      size_t errlen)
{
	pv->http = PROVIDER_HTTP_1_1;
	if (!it)
		return 0;
	for (int i = 0; cJSON_IsString(it) && provider_http_names[i]; i++) {
		if (strcmp(it->valuestring, provider_http_names[i]) == 0) {
			pv->http = (enum provider_http)i;
			return 0;
		}
	}
	return fail(err, errlen, "%s.http: must be \"1.1\" or \"2\"", path);
}

/* priority, weight and rate_limit_per_sec of providers[idx]. */
static int routing_fields_parse(const cJSON *item, const char *path, struct provider *pv, int idx,
				char *err, size_t errlen)
{
	int rc;

	pv->priority = (uint32_t)idx;
	pv->weight = 1;
	pv->rate_limit = 0;
	rc = uint_field(item, "priority", path, 0, PRIORITY_MAX, &pv->priority, err, errlen);
	if (!rc)
		rc = uint_field(item, "weight", path, 1, WEIGHT_MAX, &pv->weight, err, errlen);
	if (!rc)
		rc = uint_field(item, "rate_limit_per_sec", path, 0, RATE_LIMIT_MAX,
				&pv->rate_limit, err, errlen);
	return rc;
}

/* Parses providers[idx]; earlier entries of v (already parsed) are checked for its name. */
static int provider_parse(const cJSON *item, struct provider *v, int idx, char *err, size_t errlen)
{
	const cJSON *name, *url;
	struct provider *pv = &v[idx];
	char path[PPATH_LEN];
	int rc;

	snprintf(path, sizeof(path), "providers[%d]", idx);
	if (!cJSON_IsObject(item))
		return fail(err, errlen, "%s: must be an object", path);
	rc = check_fields(item, provider_fields, path, err, errlen);
	if (rc < 0)
		return rc;
	name = cJSON_GetObjectItemCaseSensitive(item, "name");
	url = cJSON_GetObjectItemCaseSensitive(item, "base_url");
	if (!name || !url)
		return fail(err, errlen, "%s.%s: required", path, name ? "base_url" : "name");
	if (!cJSON_IsString(name) || !tg_ident_valid(name->valuestring, PROVIDER_NAME_MAX, "_-") ||
	    strpbrk(name->valuestring, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
		return fail(err, errlen, "%s.name: must be 1-%d characters from a-z, 0-9, _ and -",
			    path, PROVIDER_NAME_MAX);
	snprintf(pv->name, sizeof(pv->name), "%s", name->valuestring);
	for (int j = 0; j < idx; j++)
		if (strcmp(v[j].name, pv->name) == 0)
			return fail(err, errlen, "%s.name: duplicate provider '%s'", path,
				    pv->name);
	if (!cJSON_IsString(url) || url_copy(url->valuestring, pv->base_url, sizeof(pv->base_url)))
		return fail(err, errlen,
			    "%s.base_url: must be an http:// or https:// URL with a host, no "
			    "spaces, under %zu bytes",
			    path, sizeof(pv->base_url));
	rc = timeout_parse(cJSON_GetObjectItemCaseSensitive(item, "timeout_sec"), path, pv, err,
			   errlen);
	if (rc < 0)
		return rc;
	rc = routing_fields_parse(item, path, pv, idx, err, errlen);
	if (rc < 0)
		return rc;
	rc = http_parse(cJSON_GetObjectItemCaseSensitive(item, "http"), path, pv, err, errlen);
	if (rc < 0)
		return rc;
	rc = ca_file_parse(cJSON_GetObjectItemCaseSensitive(item, "ca_file"), path, pv, err, errlen);
	if (rc < 0)
		return rc;
	rc = models_parse(cJSON_GetObjectItemCaseSensitive(item, "models"), path, pv, err, errlen);
	if (rc < 0)
		return rc;
	return credential_load(cJSON_GetObjectItemCaseSensitive(item, "api_key_env"), path, pv, err,
			       errlen);
}

int providers_parse(const struct cJSON *arr, struct providers *p, char *err, size_t errlen)
{
	struct providers np = {NULL, 0};
	int n = cJSON_GetArraySize(arr), rc = 0;

	if (!cJSON_IsArray(arr) || n == 0)
		return fail(err, errlen, "providers: must be a non-empty array");
	if (n > PROVIDERS_MAX)
		return fail(err, errlen, "providers: at most %d providers", PROVIDERS_MAX);
	np.v = calloc((size_t)n, sizeof(*np.v));
	if (!np.v)
		return -ENOMEM;
	for (const cJSON *it = arr->child; it; it = it->next) {
		/* counted before parsing so a half-built entry is freed (and wiped) too */
		np.n++;
		rc = provider_parse(it, np.v, (int)np.n - 1, err, errlen);
		if (rc < 0)
			goto out;
	}
	*p = np;
	return 0;
out:
	providers_free(&np);
	return rc;
}

const struct provider *providers_route(const struct providers *p, const char *model,
				       const struct model_price **price)
{
	if (!p || !model)
		return NULL;
	for (size_t i = 0; i < p->n; i++) {
		for (size_t j = 0; j < p->v[i].nmodels; j++) {
			if (strcmp(p->v[i].models[j].name, model) != 0)
				continue;
			if (price)
				*price = &p->v[i].models[j];
			return &p->v[i];
		}
	}
	return NULL;
}

/* ---- routing policies ---- */

void routing_defaults(struct routing_cfg *r)
{
	memset(r, 0, sizeof(*r));
	r->policy = ROUTE_PRIMARY;
	r->max_attempts = 3;
	r->cooldown_sec = 30;
	r->breaker_failures = 5;
	r->breaker_open_sec = 30;
	r->breaker_probes = 1;
	r->call_timeout_sec = 300;
}

static int policy_index(const char *name)
{
	for (int i = 0; route_policy_names[i]; i++)
		if (strcmp(route_policy_names[i], name) == 0)
			return i;
	return -1;
}

int routing_overrides_parse(const struct cJSON *obj, const char *which, struct routing_cfg *r,
			    char *err, size_t errlen)
{
	struct route_override v[ROUTING_OVERRIDES_MAX];
	bool models = strcmp(which, "models") == 0;
	size_t n = 0;
	int pol;

	if (!cJSON_IsObject(obj))
		return fail(err, errlen, "routing.%s: must be an object of name: policy", which);
	for (const cJSON *it = obj->child; it; it = it->next) {
		if (n == ROUTING_OVERRIDES_MAX)
			return fail(err, errlen, "routing.%s: at most %d entries", which,
				    ROUTING_OVERRIDES_MAX);
		if (!tg_ident_valid(it->string, MODEL_NAME_MAX, models ? MODEL_NAME_EXTRA : "._-"))
			return fail(err, errlen, "routing.%s.%.64s: not a valid %s name", which,
				    it->string, models ? "model" : "service");
		pol = cJSON_IsString(it) ? policy_index(it->valuestring) : -1;
		if (pol < 0)
			return fail(err, errlen,
				    "routing.%s.%.64s: must be primary, cost_weighted or "
				    "latency_weighted",
				    which, it->string);
		for (size_t j = 0; j < n; j++)
			if (strcmp(v[j].name, it->string) == 0)
				return fail(err, errlen, "routing.%s.%.64s: duplicate", which,
					    it->string);
		snprintf(v[n].name, sizeof(v[n].name), "%s", it->string);
		v[n++].policy = (uint32_t)pol;
	}
	memcpy(models ? r->models : r->services, v, n * sizeof(v[0]));
	*(models ? &r->nmodels : &r->nservices) = n;
	return 0;
}

static const struct route_override *override_find(const struct route_override *v, size_t n,
						  const char *name)
{
	for (size_t i = 0; name && i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return &v[i];
	return NULL;
}

enum route_policy routing_policy_for(const struct routing_cfg *r, const char *model,
				     const char *service)
{
	const struct route_override *o = override_find(r->services, r->nservices, service);

	if (!o)
		o = override_find(r->models, r->nmodels, model);
	return (enum route_policy)(o ? o->policy : r->policy);
}

/* ceil(tokens * nano_per_1k / 1000): the product needs up to 128 bits; saturates. */
static uint64_t cost_part(uint64_t tokens, uint64_t nano_per_1k)
{
	unsigned __int128 x = ((unsigned __int128)tokens * nano_per_1k + 999) / 1000;

	return x > UINT64_MAX ? UINT64_MAX : (uint64_t)x;
}

void pricing_cost(const struct model_price *m, uint64_t prompt_tokens, uint64_t completion_tokens,
		  struct cost *out)
{
	out->prompt_nano = m ? cost_part(prompt_tokens, m->prompt_nano_per_1k) : 0;
	out->completion_nano = m ? cost_part(completion_tokens, m->completion_nano_per_1k) : 0;
	out->total_nano = out->prompt_nano + out->completion_nano;
	if (out->total_nano < out->prompt_nano)
		out->total_nano = UINT64_MAX;
}
