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
#include "store.h"

struct config {
	char store_path[PATH_MAX];   /* store.path: LMDB directory */
	uint32_t store_map_size_mb;  /* store.map_size_mb: initial map size */
	uint32_t store_max_map_mb;   /* store.max_map_size_mb: growth cap */
	uint32_t store_sync;	     /* store.sync: enum store_sync */
	char admin_listen[128];	     /* admin.listen: host:port of the admin API */
	uint32_t admin_threads;	     /* admin.threads */
	uint32_t admin_max_body;     /* admin.max_body_bytes */
	uint32_t admin_timeout_sec;  /* admin.timeout_sec */
	struct keys_opts keys;	     /* keys.*: argon2 parameters, cache, throttles */
	uint32_t log_level;	     /* log.level: enum log_level */
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
/* Writes the effective configuration as JSON (what --check prints). */
void config_dump(const struct config *c, FILE *f);

#endif /* TG_CONFIG_H */
