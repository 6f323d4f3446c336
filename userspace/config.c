/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Configuration fields, their defaults, ranges and names, in one table (config_fields) that
 * drives everything else: the JSON reader, the TOLLGATE_* environment, --set and the dump.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "kernel.h"
#include "log.h"
#include "upstream.h"

enum field_type {
	FT_STR = 0, /* char array, size in 'max' */
	FT_U32,	    /* integer in [min, max] */
	FT_ENUM,    /* one of 'names', stored as its index (u32) */
	FT_LIST,    /* comma-separated strings (a JSON array of strings too); may be empty */
	FT_MILLI,   /* decimal with up to 3 fraction digits, stored x 1000 (u32) in [min, max] */
	FT_BOOL,    /* true/false (JSON booleans; text "true", "false", "1", "0"), stored 0/1 */
	FT_STR0,    /* char array that may be empty, size in 'max' */
	FT_MAP,	    /* JSON object of strings {"a":"b"}, kept as "a=b,..." (text form too) */
};

struct config_field {
	const char *name;	   /* dotted path: "store.path" */
	enum field_type type;
	size_t offset;		   /* in struct config */
	uint64_t min, max;	   /* FT_U32 range; FT_STR buffer size */
	const char *const *names;  /* FT_ENUM values, NULL-terminated */
	const char *help;	   /* one line for the README and --help */
};

static const char *const sync_names[] = {"full", "meta", "none", NULL};
static const char *const level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const kmode_names[] = {"auto", "full", "tc", "off", NULL};
static const char *const xdp_names[] = {"auto", "native", "generic", NULL};
static const char *const retry_after_names[] = {"respect", "ignore", NULL};
/* limits.mode and limits.action are stored as enum limit_mode / limit_action: index 0 is
 * "inherit" there, which the global setting cannot be */
static const char *const lmode_names[] = {"", "hard", "soft", NULL};
static const char *const laction_names[] = {"", "block", "queue", "downgrade", "alert", NULL};

#define OFF(f) offsetof(struct config, f)
#define ROFF(f) (offsetof(struct config, routing) + offsetof(struct routing_cfg, f))
#define KOFF(f) (offsetof(struct config, keys) + offsetof(struct keys_opts, f))

static const struct config_field config_fields[] = {
	{"store.path", FT_STR, OFF(store_path), 0, PATH_MAX, NULL, "LMDB store directory"},
	{"store.map_size_mb", FT_U32, OFF(store_map_size_mb), 1, 1 << 20, NULL,
	 "initial LMDB map size"},
	{"store.max_map_size_mb", FT_U32, OFF(store_max_map_mb), 1, 1 << 24, NULL,
	 "the map grows (doubling) up to this size"},
	{"store.sync", FT_ENUM, OFF(store_sync), 0, 0, sync_names,
	 "full: fsync each commit; meta: fdatasync, crash may undo the last commit; none"},
	{"store.sync_interval_ms", FT_U32, OFF(store_sync_interval_ms), 0, 3600000, NULL,
	 "usage commits skip the fsync and the store is synced this often; 0: sync each"},
	{"admin.listen", FT_STR, OFF(admin_listen), 0, 128, NULL, "admin API address host:port"},
	{"admin.threads", FT_U32, OFF(admin_threads), 1, 64, NULL, "admin API worker threads"},
	{"admin.max_body_bytes", FT_U32, OFF(admin_max_body), 1024, 16 << 20, NULL,
	 "larger admin request bodies get 413"},
	{"admin.timeout_sec", FT_U32, OFF(admin_timeout_sec), 1, 3600, NULL,
	 "idle admin connections are closed after this"},
	{"keys.argon2_t_cost", FT_U32, KOFF(t_cost), 1, 100, NULL, "argon2id iterations"},
	{"keys.argon2_m_cost_kib", FT_U32, KOFF(m_cost_kib), 64, 4 << 20, NULL,
	 "argon2id memory per hash (KiB)"},
	{"keys.argon2_parallelism", FT_U32, KOFF(parallelism), 1, 16, NULL, "argon2id lanes"},
	{"keys.rotation_grace_sec", FT_U32, KOFF(rotation_grace_sec), 0, 2592000, NULL,
	 "how long a rotated secret keeps working by default"},
	{"keys.argon2_per_sec", FT_U32, KOFF(argon2_per_sec), 1, 100000, NULL,
	 "argon2 verifications per second, all credentials together"},
	{"keys.fail_limit", FT_U32, KOFF(fail_limit), 1, 1000000, NULL,
	 "failed verifications per id per window before that id is throttled"},
	{"keys.fail_window_sec", FT_U32, KOFF(fail_window_sec), 1, 86400, NULL,
	 "window of fail_limit, and how long a failed secret is remembered"},
	{"keys.cache_max", FT_U32, KOFF(cache_max), 16, 1u << 26, NULL,
	 "verified-credential cache entries"},
	{"keys.last_used_flush_sec", FT_U32, KOFF(last_used_flush_sec), 1, 86400, NULL,
	 "last_used_at is written to the store this often"},
	{"log.level", FT_ENUM, OFF(log_level), 0, 0, level_names, "error, warn, info or debug"},
	{"data.listen", FT_STR, OFF(data_listen), 0, 128, NULL,
	 "OpenAI-compatible API address host:port"},
	{"data.threads", FT_U32, OFF(data_threads), 0, 64, NULL,
	 "data-plane listener threads (event loops); 0: one per CPU the daemon may run on"},
	{"data.verify_threads", FT_U32, OFF(data_verify_threads), 1, 64, NULL,
	 "threads verifying API keys not yet in the cache (argon2), off the listener threads"},
	{"data.max_body_bytes", FT_U32, OFF(data_max_body), 1024, 64 << 20, NULL,
	 "larger request bodies get 413"},
	{"data.timeout_sec", FT_U32, OFF(data_timeout_sec), 1, 3600, NULL,
	 "idle or slow client connections are closed after this"},
	{"data.max_header_bytes", FT_U32, OFF(data_max_header), 4096, 1 << 20, NULL,
	 "per-connection buffer for the request line and headers (longer ones get 431)"},
	{"data.max_connections", FT_U32, OFF(data_max_conns), 16, 1000000, NULL,
	 "concurrent client connections"},
	{"data.default_model", FT_STR, OFF(data_default_model), 0, 65, NULL,
	 "model used by /api/v1/consume when the body names none"},
	{"data.rate_slots", FT_U32, OFF(data_slots), 16, 1u << 24, NULL,
	 "request-rate slots: keys that are not revoked, at most (creation fails beyond)"},
	{"data.close_after_refusals", FT_U32, OFF(data_close_after), 0, 1000000, NULL,
	 "a keep-alive connection gets Connection: close after this many consecutive 429s "
	 "(0 = never)"},
	{"upstream.default_url", FT_STR, OFF(upstream_url), 0, 256, NULL,
	 "base URL of the built-in provider when the file lists none"},
	{"upstream.max_host_connections", FT_U32, OFF(upstream_conns), 1, 100000, NULL,
	 "connections kept per upstream host"},
	{"upstream.http", FT_ENUM, OFF(upstream_http), 0, 0, provider_http_names,
	 "HTTP version to the built-in provider: 1.1 or 2 (cleartext HTTP/2 for http://)"},
	{"upstream.ca_file", FT_STR0, OFF(upstream_ca_file), 0, 256, NULL,
	 "PEM certificate authorities the built-in provider's https:// URL is verified against"},
	{"routing.policy", FT_ENUM, ROFF(policy), 0, 0, route_policy_names,
	 "primary, cost_weighted or latency_weighted: how a model's provider is chosen"},
	{"routing.max_attempts", FT_U32, ROFF(max_attempts), 1, 10, NULL,
	 "providers tried per call (failover on 429, 5xx, timeouts, connection errors)"},
	{"routing.provider_cooldown_sec", FT_U32, ROFF(cooldown_sec), 0, 3600, NULL,
	 "a provider answering 429 without Retry-After is skipped this long"},
	{"routing.breaker_failures", FT_U32, ROFF(breaker_failures), 1, 1000000, NULL,
	 "failures in a row that open a provider's circuit breaker"},
	{"routing.breaker_open_sec", FT_U32, ROFF(breaker_open_sec), 1, 86400, NULL,
	 "an open breaker waits this long before letting half-open probes through"},
	{"routing.breaker_probes", FT_U32, ROFF(breaker_probes), 1, 1000, NULL,
	 "probe calls at once through a half-open breaker"},
	{"routing.retry_after", FT_ENUM, ROFF(retry_after), 0, 0, retry_after_names,
	 "respect: a provider's Retry-After (429, 503) keeps it out that long; ignore: it is "
	 "only passed on"},
	{"routing.call_timeout_sec", FT_U32, ROFF(call_timeout_sec), 1, 3600, NULL,
	 "a call's attempts together: no new attempt once this has passed"},
	{"usage.max_batch", FT_U32, OFF(usage_max_batch), 1, 1000000, NULL,
	 "usage records per store transaction"},
	{"usage.max_delay_us", FT_U32, OFF(usage_max_delay_us), 0, 1000000, NULL,
	 "a usage batch waits at most this long for more records"},
	{"usage.bucket_flush_ms", FT_U32, OFF(usage_bucket_flush_ms), 0, 60000, NULL,
	 "the limits buckets are written to the store this often (0: with every batch); a "
	 "start adds up the records since"},
	{"kernel.mode", FT_ENUM, OFF(kernel_mode), 0, 0, kmode_names,
	 "auto: full when BPF loads, else off with a warning; full, tc: or fail; off"},
	{"kernel.interfaces", FT_LIST, OFF(kernel_interfaces), 0, 256, NULL,
	 "interfaces to attach to, comma-separated; empty: those holding data.listen's address"},
	{"kernel.pin_dir", FT_STR, OFF(kernel_pin_dir), 0, 128, NULL,
	 "bpffs directory of the pinned maps and programs"},
	{"kernel.xdp_mode", FT_ENUM, OFF(kernel_xdp_mode), 0, 0, xdp_names,
	 "auto: native where the driver has it, else generic; native; generic"},
	{"kernel.penalty_multiple", FT_MILLI, OFF(kernel_penalty_multiple_milli), 100, 1000000,
	 NULL, "refusals per second above this multiple of the key's rate count as a strike"},
	{"kernel.penalty_after_sec", FT_U32, OFF(kernel_penalty_after_sec), 1, 3600, NULL,
	 "consecutive seconds of strikes before a source's SYNs are dropped"},
	{"kernel.penalty_sec", FT_U32, OFF(kernel_penalty_sec), 1, 86400, NULL,
	 "how long a penalised source's new connections are dropped"},
	{"kernel.penalty_v6_prefix", FT_U32, OFF(kernel_penalty_v6_prefix), 1, 128, NULL,
	 "IPv6 sources are counted per prefix of this length"},
	{"kernel.allow", FT_LIST, OFF(kernel_allow), 0, 1024, NULL,
	 "CIDR prefixes never penalised, comma-separated"},
	{"limits.enabled", FT_BOOL, OFF(limits_enabled), 0, 1, NULL,
	 "false: no limit refuses, queues or downgrades anything (request rates included)"},
	{"limits.mode", FT_ENUM, OFF(limits_mode), 0, 0, lmode_names,
	 "hard: over a limit its action applies; soft: allowed, logged and annotated"},
	{"limits.action", FT_ENUM, OFF(limits_action), 0, 0, laction_names,
	 "default action over a limit: block, queue, downgrade or alert"},
	{"limits.alert_threshold", FT_MILLI, OFF(limits_alert_permille), 1, 1000, NULL,
	 "fraction of a limit at which an alert is raised (0 < x <= 1)"},
	{"limits.queue_depth", FT_U32, OFF(limits_queue_depth), 1, 100000, NULL,
	 "queued calls per key (action queue)"},
	{"limits.queue_timeout_ms", FT_U32, OFF(limits_queue_timeout_ms), 1, 600000, NULL,
	 "a queued call waits at most this long for capacity, then is refused"},
	{"limits.downgrade", FT_MAP, OFF(limits_downgrade), 0, 1024, NULL,
	 "model -> cheaper model for the downgrade action (both priced models)"},
	{"limits.default_daily_tokens", FT_U32, OFF(limits_default_daily_tokens), 0, 4000000000u,
	 NULL, "daily token quota of every key and tenant whose limits set none (0 = none)"},
	{"limits.max_tenants", FT_U32, OFF(limits_max_tenants), 0, 1000000, NULL,
	 "tenants requests may name (metadata.tenant, X-Tollgate-Tenant) before a new one is "
	 "refused; tenants with admin-set limits always count and are always accepted (0: none "
	 "from requests)"},
	{"limits.completion_estimate_tokens", FT_U32, OFF(limits_completion_estimate), 1,
	 10000000, NULL, "completion tokens reserved for a call without max_tokens"},
	{"limits.webhook_url", FT_STR0, OFF(limits_webhook_url), 0, 512, NULL,
	 "alerts are POSTed here (empty: none)"},
	{"limits.webhook_retries", FT_U32, OFF(limits_webhook_retries), 0, 100, NULL,
	 "retries of a failed alert webhook"},
	{"limits.webhook_timeout_ms", FT_U32, OFF(limits_webhook_timeout_ms), 1, 600000, NULL,
	 "timeout of one alert webhook POST"},
};

/* Environment variables that are not config fields but are expected (read elsewhere). */
static const char *const env_known[] = {"TOLLGATE_ADMIN_TOKEN", "TOLLGATE_CONFIG",
					"TOLLGATE_ADMIN_URL", NULL};

void config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->store_path, sizeof(c->store_path), "var/store");
	c->store_map_size_mb = 64;
	c->store_max_map_mb = 65536;
	c->store_sync = STORE_SYNC_META;
	c->store_sync_interval_ms = 1000;
	snprintf(c->admin_listen, sizeof(c->admin_listen), "127.0.0.1:8081");
	c->admin_threads = 2;
	c->admin_max_body = 65536;
	c->admin_timeout_sec = 30;
	keys_opts_default(&c->keys);
	c->log_level = LOG_LVL_INFO;
	snprintf(c->data_listen, sizeof(c->data_listen), "127.0.0.1:8080");
	c->data_threads = 0; /* one per usable CPU */
	c->data_verify_threads = 2;
	c->data_max_body = 1 << 20;
	c->data_timeout_sec = 60;
	c->data_max_conns = 20000;
	c->data_max_header = 8192;
	snprintf(c->data_default_model, sizeof(c->data_default_model), "gpt-4o-mini");
	c->data_slots = 1 << 16; /* 8 MiB of slots (+ ~10 MiB of tg_keys in the kernel) */
	c->data_close_after = 20;
	snprintf(c->upstream_url, sizeof(c->upstream_url), "http://127.0.0.1:9000/v1");
	c->upstream_conns = 256;
	c->usage_max_batch = 4096;
	c->usage_max_delay_us = 0;
	c->usage_bucket_flush_ms = 1000;
	routing_defaults(&c->routing);
	c->kernel_mode = 0; /* auto */
	snprintf(c->kernel_pin_dir, sizeof(c->kernel_pin_dir), "/sys/fs/bpf/tollgate");
	c->kernel_penalty_multiple_milli = 2000;
	c->kernel_penalty_after_sec = 5;
	c->kernel_penalty_sec = 60;
	c->kernel_penalty_v6_prefix = 64;
	snprintf(c->kernel_allow, sizeof(c->kernel_allow), "127.0.0.0/8,::1/128");
	c->limits_enabled = 1;
	c->limits_mode = 1;   /* hard */
	c->limits_action = 1; /* block */
	c->limits_alert_permille = 800;
	c->limits_queue_depth = 64;
	c->limits_queue_timeout_ms = 5000;
	c->limits_completion_estimate = 1024;
	c->limits_max_tenants = 10000;
	c->limits_webhook_retries = 3;
	c->limits_webhook_timeout_ms = 2000;
}

static const struct config_field *field_find(const char *name)
{
	for (size_t i = 0; i < sizeof(config_fields) / sizeof(config_fields[0]); i++) {
		if (strcmp(config_fields[i].name, name) == 0)
			return &config_fields[i];
	}
	return NULL;
}

static void enum_list(const struct config_field *f, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; f->names[i] && n < len; i++)
		if (f->names[i][0])
			n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "", f->names[i]);
}

static int set_u32(struct config *c, const struct config_field *f, uint64_t v, char *err)
{
	if (v < f->min || v > f->max) {
		snprintf(err, CONFIG_ERR_MAX, "%s: must be an integer from %llu to %llu", f->name,
			 (unsigned long long)f->min, (unsigned long long)f->max);
		return -ERANGE;
	}
	*(uint32_t *)((char *)c + f->offset) = (uint32_t)v;
	return 0;
}

/* "a=b,c=d": every entry a non-empty name, '=', a non-empty name; "" is the empty map. */
static bool map_text_valid(const char *v)
{
	while (*v) {
		size_t a = strcspn(v, "=,"), b;

		if (a == 0 || v[a] != '=')
			return false;
		v += a + 1;
		b = strcspn(v, "=,");
		if (b == 0 || v[b] == '=')
			return false;
		v += b;
		if (*v == ',' && !*++v)
			return false;
	}
	return true;
}

static int set_str(struct config *c, const struct config_field *f, const char *v, char *err)
{
	char allowed[128];

	if (f->type == FT_ENUM) {
		for (uint32_t i = 0; f->names[i]; i++) {
			if (f->names[i][0] && strcmp(f->names[i], v) == 0) {
				*(uint32_t *)((char *)c + f->offset) = i;
				return 0;
			}
		}
		enum_list(f, allowed, sizeof(allowed));
		snprintf(err, CONFIG_ERR_MAX, "%s: must be one of %s", f->name, allowed);
		return -EINVAL;
	}
	if (f->type == FT_BOOL) {
		if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "false") || !strcmp(v, "0")) {
			*(uint32_t *)((char *)c + f->offset) = v[0] == 't' || v[0] == '1';
			return 0;
		}
		snprintf(err, CONFIG_ERR_MAX, "%s: must be true or false", f->name);
		return -EINVAL;
	}
	if (f->type == FT_MAP && map_text_valid(v) && strlen(v) < f->max) {
		memcpy((char *)c + f->offset, v, strlen(v) + 1);
		return 0;
	}
	if (f->type == FT_MAP) {
		snprintf(err, CONFIG_ERR_MAX,
			 "%s: must be an object of model names {\"from\": \"to\"} (text: "
			 "from=to,...) under %llu bytes",
			 f->name, (unsigned long long)f->max);
		return -EINVAL;
	}
	if ((f->type == FT_LIST || f->type == FT_STR0) && strlen(v) < f->max) {
		memcpy((char *)c + f->offset, v, strlen(v) + 1);
		return 0;
	}
	if (v[0] == '\0' || strlen(v) >= f->max) {
		snprintf(err, CONFIG_ERR_MAX, "%s: must be a non-empty string under %llu bytes",
			 f->name, (unsigned long long)f->max);
		return -EINVAL;
	}
	memcpy((char *)c + f->offset, v, strlen(v) + 1);
	return 0;
}

/* "2", "2.5", "0.125": a decimal with up to three fraction digits, stored x 1000. */
static int set_milli(struct config *c, const struct config_field *f, const char *v, char *err)
{
	uint64_t whole = 0, frac = 0, scale = 1000;
	const char *p = v;

	for (; *p >= '0' && *p <= '9' && whole < 10000000; p++)
		whole = whole * 10 + (uint64_t)(*p - '0');
	if (*p == '.' && p[1])
		for (p++; *p >= '0' && *p <= '9' && scale > 1; p++)
			frac += (uint64_t)(*p - '0') * (scale /= 10);
	if (p == v || *p || !(v[0] >= '0' && v[0] <= '9')) {
		snprintf(err, CONFIG_ERR_MAX,
			 "%s: '%.32s' is not a decimal number (up to 3 digits after the point)",
			 f->name, v);
		return -EINVAL;
	}
	if (whole * 1000 + frac < f->min || whole * 1000 + frac > f->max) {
		snprintf(err, CONFIG_ERR_MAX, "%s: must be from %llu.%03llu to %llu.%03llu", f->name,
			 (unsigned long long)f->min / 1000, (unsigned long long)f->min % 1000,
			 (unsigned long long)f->max / 1000, (unsigned long long)f->max % 1000);
		return -ERANGE;
	}
	*(uint32_t *)((char *)c + f->offset) = (uint32_t)(whole * 1000 + frac);
	return 0;
}

int config_set(struct config *c, const char *field, const char *value, char err[CONFIG_ERR_MAX])
{
	const struct config_field *f = field_find(field);
	unsigned long long v;
	char *end;

	if (!f) {
		snprintf(err, CONFIG_ERR_MAX, "unknown config field '%.64s'", field);
		return -ENOENT;
	}
	if (f->type == FT_MILLI)
		return set_milli(c, f, value, err);
	if (f->type != FT_U32)
		return set_str(c, f, value, err);
	errno = 0;
	v = strtoull(value, &end, 10);
	if (errno || end == value || *end != '\0' || !isdigit((unsigned char)value[0])) {
		snprintf(err, CONFIG_ERR_MAX, "%s: '%.32s' is not a whole number", f->name, value);
		return -EINVAL;
	}
	return set_u32(c, f, v, err);
}

/* ["a", "b"] -> "a,b" */
static int set_list_json(struct config *c, const struct config_field *f, const cJSON *arr,
			 char *err)
{
	char buf[1024] = "";
	size_t n = 0;
	const cJSON *it;

	cJSON_ArrayForEach(it, arr)
	{
		if (!cJSON_IsString(it) || !it->valuestring[0] || strchr(it->valuestring, ',')) {
			snprintf(err, CONFIG_ERR_MAX, "%s: must be an array of non-empty strings",
				 f->name);
			return -EINVAL;
		}
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", n ? "," : "",
				      it->valuestring);
		if (n >= sizeof(buf) || n >= f->max) {
			snprintf(err, CONFIG_ERR_MAX, "%s: the list is longer than %llu bytes",
				 f->name, (unsigned long long)f->max - 1);
			return -EINVAL;
		}
	}
	return set_str(c, f, buf, err);
}

/* {"gpt-4": "gpt-3.5-turbo"} -> "gpt-4=gpt-3.5-turbo" */
static int set_map_json(struct config *c, const struct config_field *f, const cJSON *obj,
			char *err)
{
	char buf[1024] = "";
	size_t n = 0;
	const cJSON *it;

	cJSON_ArrayForEach(it, obj)
	{
		if (!cJSON_IsString(it) || !it->valuestring[0] || strpbrk(it->string, "=,") ||
		    strpbrk(it->valuestring, "=,") || !it->string[0]) {
			snprintf(err, CONFIG_ERR_MAX,
				 "%s: '%.64s' must map a model name to a model name", f->name,
				 it->string);
			return -EINVAL;
		}
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s=%s", n ? "," : "",
				      it->string, it->valuestring);
		if (n >= sizeof(buf) || n >= f->max) {
			snprintf(err, CONFIG_ERR_MAX, "%s: longer than %llu bytes", f->name,
				 (unsigned long long)f->max - 1);
			return -EINVAL;
		}
	}
	return set_str(c, f, buf, err);
}

static int set_json(struct config *c, const char *path, const cJSON *item, char *err)
{
	const struct config_field *f = field_find(path);
	double d;

	if (!f) {
		snprintf(err, CONFIG_ERR_MAX, "unknown config field '%.64s'", path);
		return -ENOENT;
	}
	if (f->type == FT_LIST && cJSON_IsArray(item))
		return set_list_json(c, f, item, err);
	if (f->type == FT_MAP && cJSON_IsObject(item))
		return set_map_json(c, f, item, err);
	if (f->type == FT_BOOL && cJSON_IsBool(item))
		return set_str(c, f, cJSON_IsTrue(item) ? "true" : "false", err);
	if (f->type == FT_MILLI && cJSON_IsNumber(item)) {
		char num[32];

		snprintf(num, sizeof(num), "%.3f", item->valuedouble);
		if (item->valuedouble < 0 || item->valuedouble > 1e9 ||
		    fabs(item->valuedouble * 1000 - round(item->valuedouble * 1000)) > 1e-6) {
			snprintf(err, CONFIG_ERR_MAX,
				 "%s: must be a number with up to 3 digits after the point", f->name);
			return -EINVAL;
		}
		return set_milli(c, f, num, err);
	}
	if (f->type != FT_U32) {
		if (!cJSON_IsString(item)) {
			snprintf(err, CONFIG_ERR_MAX, "%s: must be a string", f->name);
			return -EINVAL;
		}
		return set_str(c, f, item->valuestring, err);
	}
	d = cJSON_IsNumber(item) ? item->valuedouble : -1;
	/* range first: converting a negative or huge double to an integer is undefined */
	if (!cJSON_IsNumber(item) || d < 0 || d > 1e15 || d != (double)(uint64_t)d) {
		snprintf(err, CONFIG_ERR_MAX, "%s: must be a whole number", f->name);
		return -EINVAL;
	}
	return set_u32(c, f, (uint64_t)d, err);
}

/* The one array in the file: replaces any providers read before. */
static int set_providers(struct config *c, const cJSON *arr, char *err)
{
	struct providers p = {0};

	if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0) {
		snprintf(err, CONFIG_ERR_MAX, "providers: must be a non-empty array of providers");
		return -EINVAL;
	}
	if (providers_parse(arr, &p, err, CONFIG_ERR_MAX))
		return -EINVAL;
	providers_free(&c->providers);
	c->providers = p;
	return 0;
}

/* Walks a JSON object, applying each leaf under its dotted path. */
static int walk_json(struct config *c, const cJSON *obj, const char *prefix, char *err)
{
	const cJSON *it;
	char path[128];
	int rc;

	cJSON_ArrayForEach(it, obj)
	{
		snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", it->string);
		if (!strcmp(path, "providers"))
			rc = set_providers(c, it, err);
		else if (!strcmp(path, "routing.models") || !strcmp(path, "routing.services"))
			rc = routing_overrides_parse(it, path + 8, &c->routing, err,
						     CONFIG_ERR_MAX);
		else if (!strcmp(path, "limits.downgrade"))
			rc = set_json(c, path, it, err);
		else if (cJSON_IsObject(it))
			rc = walk_json(c, it, path, err);
		else
			rc = set_json(c, path, it, err);
		if (rc)
			return rc;
	}
	return 0;
}

static char *read_file(const char *path, size_t max, char *err)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;

	if (!f) {
		snprintf(err, CONFIG_ERR_MAX, "cannot open config file %s: %s", path,
			 strerror(errno));
		return NULL;
	}
	buf = malloc(max + 1);
	n = buf ? fread(buf, 1, max + 1, f) : 0;
	fclose(f);
	if (!buf || n > max) {
		snprintf(err, CONFIG_ERR_MAX, "config file %s is larger than %zu bytes", path, max);
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

int config_load_file(struct config *c, const char *path, char err[CONFIG_ERR_MAX])
{
	struct config tmp = *c;
	const char *end = NULL;
	char *text = read_file(path, 1 << 20, err);
	cJSON *root;
	int rc;

	if (!text)
		return -EINVAL;
	root = cJSON_ParseWithOpts(text, &end, 1);
	if (!root || !cJSON_IsObject(root)) {
		snprintf(err, CONFIG_ERR_MAX, "%s: %s at byte %ld", path,
			 root ? "the top level must be a JSON object" : "malformed JSON",
			 root ? 0L : (long)(cJSON_GetErrorPtr() - text));
		cJSON_Delete(root);
		free(text);
		return -EINVAL;
	}
	tmp.providers = (struct providers){0};
	rc = walk_json(&tmp, root, "", err);
	cJSON_Delete(root);
	free(text);
	if (rc) {
		providers_free(&tmp.providers);
		return -EINVAL;
	}
	if (tmp.providers.n) {
		providers_free(&c->providers);
	} else {
		tmp.providers = c->providers;
	}
	*c = tmp;
	return 0;
}

/* "keys.fail_limit" -> "TOLLGATE_KEYS_FAIL_LIMIT" */
static void env_name(const char *field, char *out, size_t len)
{
	size_t n = (size_t)snprintf(out, len, "TOLLGATE_");

	for (; *field && n + 1 < len; field++)
		out[n++] = *field == '.' ? '_' : (char)toupper((unsigned char)*field);
	out[n] = '\0';
}

static bool env_is_known(const char *var, size_t namelen)
{
	char name[96];

	for (size_t i = 0; env_known[i]; i++) {
		if (strlen(env_known[i]) == namelen && !strncmp(var, env_known[i], namelen))
			return true;
	}
	for (size_t i = 0; i < sizeof(config_fields) / sizeof(config_fields[0]); i++) {
		env_name(config_fields[i].name, name, sizeof(name));
		if (strlen(name) == namelen && !strncmp(var, name, namelen))
			return true;
	}
	return false;
}

int config_apply_env(struct config *c, char err[CONFIG_ERR_MAX])
{
	extern char **environ;
	struct config tmp = *c;
	char name[96];

	for (size_t i = 0; i < sizeof(config_fields) / sizeof(config_fields[0]); i++) {
		const char *v;

		env_name(config_fields[i].name, name, sizeof(name));
		v = getenv(name);
		if (v && config_set(&tmp, config_fields[i].name, v, err)) {
			size_t l = strlen(err);

			snprintf(err + l, CONFIG_ERR_MAX - l, " (from %s)", name);
			return -EINVAL;
		}
	}
	/* A misspelt override silently ignored is a trap: say so (but do not fail, since
	 * a shell may carry variables meant for another version). */
	for (char **e = environ; *e; e++) {
		const char *eq = strchr(*e, '=');

		if (!strncmp(*e, "TOLLGATE_", 9) && eq && !env_is_known(*e, (size_t)(eq - *e)))
			log_warnx("ignoring %.*s: not a tollgate setting", (int)(eq - *e), *e);
	}
	*c = tmp;
	return 0;
}

/* kernel.allow checked here too, so --check names a bad prefix before any start. */
static int check_allow(const struct config *c, char *err)
{
	char copy[sizeof(c->kernel_allow)], *save = NULL, *tok;
	struct tg_lpm_key k;

	memcpy(copy, c->kernel_allow, sizeof(copy));
	for (tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		if (kernel_cidr_parse(tok, &k)) {
			snprintf(err, CONFIG_ERR_MAX,
				 "kernel.allow: '%.64s' is not an address or CIDR prefix", tok);
			return -EINVAL;
		}
	}
	return 0;
}

/* True if some provider prices model. */
static bool model_priced(const struct providers *ps, const char *model)
{
	const struct model_price *price = NULL;

	return providers_route(ps, model, &price) != NULL && price != NULL;
}

/* Every limits.downgrade entry maps a priced model to another priced model. */
static int check_downgrade(const struct config *c, char *err)
{
	char copy[sizeof(c->limits_downgrade)], *save = NULL, *tok, *eq;

	memcpy(copy, c->limits_downgrade, sizeof(copy));
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		eq = strchr(tok, '=');
		*eq++ = '\0';
		if (!model_priced(&c->providers, tok) || !model_priced(&c->providers, eq)) {
			snprintf(err, CONFIG_ERR_MAX,
				 "limits.downgrade: model '%.64s' is not a priced model of the "
				 "providers",
				 model_priced(&c->providers, tok) ? eq : tok);
			return -EINVAL;
		}
		if (!strcmp(tok, eq)) {
			snprintf(err, CONFIG_ERR_MAX,
				 "limits.downgrade: '%.64s' cannot be downgraded to itself", tok);
			return -EINVAL;
		}
	}
	return 0;
}

/* limits.webhook_url, when set, is an http(s) URL with a host (never echoed: it may hold a
 * token) */
static int check_webhook(const struct config *c, char *err)
{
	char why[96];

	if (!c->limits_webhook_url[0] ||
	    upstream_url_check(c->limits_webhook_url, why, sizeof(why)) == 0)
		return 0;
	snprintf(err, CONFIG_ERR_MAX, "limits.webhook_url: %s", why);
	return -EINVAL;
}

/*
 * HTTP/2 over http:// (prior knowledge) needs a libcurl that keeps such a connection when it
 * reuses it: 7.88 starts a second HTTP/2 layer on it and every reused call fails.
 */
static int check_h2c(const struct config *c, bool builtin, char err[CONFIG_ERR_MAX])
{
	for (size_t i = 0; i < c->providers.n; i++) {
		const struct provider *pv = &c->providers.v[i];

		if (pv->http != PROVIDER_HTTP_2 || strncmp(pv->base_url, "http:", 5) != 0 ||
		    upstream_h2c_ok())
			continue;
		snprintf(err, CONFIG_ERR_MAX,
			 "%s%.40s: HTTP/2 over http:// (cleartext) needs libcurl 8.0 or newer, this "
			 "one is %s (it breaks such a connection when it reuses it); use an https:// "
			 "URL, or HTTP/1.1",
			 builtin ? "upstream.http: 2 with upstream.default_url " : "providers: http 2 of ",
			 builtin ? c->upstream_url : pv->name, upstream_lib_version());
		return -EINVAL;
	}
	return 0;
}

int config_finish(struct config *c, char err[CONFIG_ERR_MAX])
{
	bool builtin;

	if (check_allow(c, err))
		return -EINVAL;
	/* argon2 needs at least 8 KiB of memory per lane */
	if (c->keys.m_cost_kib < 8 * c->keys.parallelism) {
		snprintf(err, CONFIG_ERR_MAX,
			 "keys.argon2_m_cost_kib: must be at least 8 x keys.argon2_parallelism (%u)",
			 8 * c->keys.parallelism);
		return -EINVAL;
	}
	c->keys.rate_slots = c->data_slots; /* the registry hands the slots out */
	builtin = !c->providers.n;
	if (builtin && providers_default(&c->providers, c->upstream_url,
						 (enum provider_http)c->upstream_http,
						 c->upstream_ca_file)) {
		if (c->upstream_ca_file[0] && access(c->upstream_ca_file, R_OK) != 0)
			snprintf(err, CONFIG_ERR_MAX, "upstream.ca_file: cannot read '%.200s'",
				 c->upstream_ca_file);
		else
			snprintf(err, CONFIG_ERR_MAX,
				 "upstream.default_url: '%.200s' is not an http(s) URL",
				 c->upstream_url);
		return -EINVAL;
	}
	if (check_h2c(c, builtin, err))
		return -EINVAL;
	if (check_webhook(c, err))
		return -EINVAL;
	/* a default action of downgrade with nowhere to downgrade to would only ever block */
	if (c->limits_action == LIMIT_ACT_DOWNGRADE && !c->limits_downgrade[0]) {
		snprintf(err, CONFIG_ERR_MAX,
			 "limits.action: 'downgrade' needs limits.downgrade (model -> cheaper "
			 "model), and none is set");
		return -EINVAL;
	}
	return check_downgrade(c, err);
}

void config_free(struct config *c)
{
	providers_free(&c->providers);
}

/* Providers as --check shows them: names, URLs, the variable holding the credential. */
static void dump_providers(const struct config *c, cJSON *root)
{
	cJSON *arr = cJSON_AddArrayToObject(root, "providers");

	for (size_t i = 0; i < c->providers.n; i++) {
		const struct provider *p = &c->providers.v[i];
		cJSON *o = cJSON_CreateObject(), *models = cJSON_AddArrayToObject(o, "models");

		cJSON_AddStringToObject(o, "name", p->name);
		cJSON_AddStringToObject(o, "base_url", p->base_url);
		if (p->api_key_env[0])
			cJSON_AddStringToObject(o, "api_key_env", p->api_key_env);
		cJSON_AddNumberToObject(o, "timeout_sec", p->timeout_sec);
		cJSON_AddNumberToObject(o, "priority", p->priority);
		cJSON_AddNumberToObject(o, "weight", p->weight);
		cJSON_AddNumberToObject(o, "rate_limit_per_sec", p->rate_limit);
		for (size_t m = 0; m < p->nmodels; m++) {
			cJSON *mo = cJSON_CreateObject();

			cJSON_AddStringToObject(mo, "name", p->models[m].name);
			cJSON_AddNumberToObject(mo, "prompt_per_1k",
						(double)p->models[m].prompt_nano_per_1k / 1e9);
			cJSON_AddNumberToObject(mo, "completion_per_1k",
						(double)p->models[m].completion_nano_per_1k / 1e9);
			cJSON_AddItemToArray(models, mo);
		}
		cJSON_AddItemToArray(arr, o);
	}
}

/* routing.models or routing.services as the file would have them. */
static void dump_overrides(cJSON *routing, const char *which, const struct route_override *v,
			   size_t n)
{
	cJSON *o = routing ? cJSON_AddObjectToObject(routing, which) : NULL;

	for (size_t i = 0; o && i < n; i++)
		cJSON_AddStringToObject(o, v[i].name, route_policy_names[v[i].policy]);
}

void config_dump(const struct config *c, FILE *f)
{
	cJSON *root = cJSON_CreateObject();
	char *text;

	for (size_t i = 0; i < sizeof(config_fields) / sizeof(config_fields[0]); i++) {
		const struct config_field *fl = &config_fields[i];
		const char *dot = strchr(fl->name, '.');
		char section[32];
		cJSON *sec;

		snprintf(section, sizeof(section), "%.*s", (int)(dot - fl->name), fl->name);
		sec = cJSON_GetObjectItemCaseSensitive(root, section);
		if (!sec)
			sec = cJSON_AddObjectToObject(root, section);
		if (fl->type == FT_STR || fl->type == FT_LIST || fl->type == FT_STR0 ||
		    fl->type == FT_MAP)
			cJSON_AddStringToObject(sec, dot + 1, (const char *)c + fl->offset);
		else if (fl->type == FT_BOOL)
			cJSON_AddBoolToObject(sec, dot + 1,
					      *(const uint32_t *)((const char *)c + fl->offset));
		else if (fl->type == FT_MILLI)
			cJSON_AddNumberToObject(sec, dot + 1,
						*(const uint32_t *)((const char *)c + fl->offset) /
							1000.0);
		else if (fl->type == FT_ENUM)
			cJSON_AddStringToObject(sec, dot + 1,
						fl->names[*(const uint32_t *)((const char *)c +
									      fl->offset)]);
		else
			cJSON_AddNumberToObject(sec, dot + 1,
						*(const uint32_t *)((const char *)c + fl->offset));
	}
	if (c->providers.n)
		dump_providers(c, root);
	dump_overrides(cJSON_GetObjectItemCaseSensitive(root, "routing"), "models",
		       c->routing.models, c->routing.nmodels);
	dump_overrides(cJSON_GetObjectItemCaseSensitive(root, "routing"), "services",
		       c->routing.services, c->routing.nservices);
	text = cJSON_Print(root);
	if (text)
		fprintf(f, "%s\n", text);
	free(text);
	cJSON_Delete(root);
}
