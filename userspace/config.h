/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Configuration: one JSON file, TOLLGATE_* environment overrides and --set flags, applied in
 * that order over built-in defaults that run with no file at all. Every field is described
 * once, in a table in config.c, which drives the JSON reader, the environment names
 * (field "keys.fail_limit" is TOLLGATE_KEYS_FAIL_LIMIT), --set, validation and the dump.
 * Errors name the field and say what is allowed; a failed load changes nothing the caller
 * keeps (it works on its own copy).
 */
#ifndef TG_CONFIG_H
#define TG_CONFIG_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#include "keys.h"
#include "providers.h"
#include "store.h"

struct config {
	char store_path[PATH_MAX];   /* store.path: LMDB directory */
	uint32_t store_map_size_mb;  /* store.map_size_mb: initial map size */
	uint32_t store_max_map_mb;   /* store.max_map_size_mb: growth cap */
	uint32_t store_sync;	     /* store.sync: enum store_sync */
	uint32_t store_sync_interval_ms; /* store.sync_interval_ms: see store_opts */
	char admin_listen[128];	     /* admin.listen: host:port of the admin API */
	uint32_t admin_threads;	     /* admin.threads */
	uint32_t admin_max_body;     /* admin.max_body_bytes */
	uint32_t admin_timeout_sec;  /* admin.timeout_sec */
	struct keys_opts keys;	     /* keys.*: argon2 parameters, cache, throttles */
	uint32_t log_level;	     /* log.level: enum log_level */
	char data_listen[128];	     /* data.listen: host:port of the OpenAI-compatible API */
	uint32_t data_threads;	     /* data.threads: listener loops, 0 = one per CPU */
	uint32_t data_verify_threads; /* data.verify_threads: argon2 verifications of cache misses */
	uint32_t data_max_body;	     /* data.max_body_bytes: larger request bodies get 413 */
	uint32_t data_timeout_sec;   /* data.timeout_sec: idle client connections are closed */
	uint32_t data_max_conns;     /* data.max_connections */
	uint32_t data_max_header;    /* data.max_header_bytes: request line + headers buffer */
	char data_default_model[65]; /* data.default_model: model of /api/v1/consume calls */
	uint32_t data_slots;	     /* data.rate_slots: keys that can hold a rate-limit slot */
	uint32_t data_close_after;   /* data.close_after_refusals: 429s in a row, then close */
	char upstream_url[256];	     /* upstream.default_url: the built-in provider's base URL */
	uint32_t upstream_conns;     /* upstream.max_host_connections */
	uint32_t upstream_http;	     /* upstream.http: enum provider_http of the built-in one */
	char upstream_ca_file[256];  /* upstream.ca_file: its CA bundle, "" = the system's */
	uint32_t usage_max_batch;    /* usage.max_batch: records per commit */
	uint32_t usage_max_delay_us; /* usage.max_delay_us: wait for more records at most this */
	uint32_t usage_bucket_flush_ms; /* usage.bucket_flush_ms: limits buckets written this often */
	struct providers providers;  /* "providers": [...], or the built-in one; see providers.h */
	struct routing_cfg routing;  /* "routing": policies, failover, breakers; see providers.h */
	uint32_t kernel_mode;	     /* kernel.mode: enum kernel_mode_req (auto, full, tc, off) */
	char kernel_interfaces[256]; /* kernel.interfaces: comma-separated; "" = data.listen's */
	char kernel_pin_dir[128];    /* kernel.pin_dir: where maps and programs are pinned */
	uint32_t kernel_xdp_mode;    /* kernel.xdp_mode: enum kernel_xdp_req */
	uint32_t kernel_penalty_multiple_milli; /* kernel.penalty_multiple, x 1000 */
	uint32_t kernel_penalty_after_sec;	 /* kernel.penalty_after_sec */
	uint32_t kernel_penalty_sec;		 /* kernel.penalty_sec */
	uint32_t kernel_penalty_v6_prefix;	 /* kernel.penalty_v6_prefix */
	char kernel_allow[1024];     /* kernel.allow: comma-separated CIDRs never penalised */
	/* limits.*: the limits engine (budget.h) and its actions (issue 5) */
	uint32_t limits_enabled;	 /* limits.enabled: 0 = nothing refused by any limit */
	uint32_t limits_mode;		 /* limits.mode: enum limit_mode (hard, soft; never 0) */
	uint32_t limits_action;		 /* limits.action: enum limit_action (never 0) */
	uint32_t limits_alert_permille;	 /* limits.alert_threshold x 1000 */
	uint32_t limits_queue_depth;	 /* limits.queue_depth: waiters per key */
	uint32_t limits_queue_timeout_ms; /* limits.queue_timeout_ms */
	char limits_downgrade[1024];	 /* limits.downgrade: "from=to,..." (JSON: an object) */
	uint32_t limits_default_daily_tokens; /* limits.default_daily_tokens: 0 = none */
	uint32_t limits_completion_estimate; /* limits.completion_estimate_tokens */
	uint32_t limits_max_tenants;	 /* limits.max_tenants: 0 = no tenant from requests */
	char limits_webhook_url[512];	 /* limits.webhook_url: "" = none */
	uint32_t limits_webhook_retries; /* limits.webhook_retries */
	uint32_t limits_webhook_timeout_ms; /* limits.webhook_timeout_ms */
};


#define CONFIG_ERR_MAX 256

/* Fills c with the built-in defaults. */
void config_defaults(struct config *c);
/* Reads a JSON config file over c. 0, or -errno with a message in err naming the field. */
int config_load_file(struct config *c, const char *path, char err[CONFIG_ERR_MAX]);
/* Applies every TOLLGATE_<FIELD> variable of environ that names a field. */
int config_apply_env(struct config *c, char err[CONFIG_ERR_MAX]);
/* Sets one field from text ("keys.fail_limit", "10"), as --set and the environment do. */
int config_set(struct config *c, const char *field, const char *value, char err[CONFIG_ERR_MAX]);
/*
 * Completes a loaded config: without a "providers" array in the file, the built-in
 * provider at upstream.default_url. Call once after the file, environment and options.
 */
int config_finish(struct config *c, char err[CONFIG_ERR_MAX]);
/* Frees what the config owns (providers and their credentials). */
void config_free(struct config *c);
/* Writes the effective configuration as JSON (what --check prints); never credentials. */
void config_dump(const struct config *c, FILE *f);

#endif /* TG_CONFIG_H */
