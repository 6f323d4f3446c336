/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Private to the admin API: /api/v1/limits (admin_limits.c). admin.c routes and authorises;
 * these answer. Subjects: "key:<id>" (read only), "user:x", "team:x", "consumer:x",
 * "tenant:x".
 */
#ifndef TG_ADMIN_LIMITS_H
#define TG_ADMIN_LIMITS_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "budget.h"

struct http_req;
struct keys;
struct store;

/* GET /api/v1/limits: every owner/tenant subject with explicit limits. */
void admin_limits_list(struct http_req *req, struct store *s);
/* GET /api/v1/limits/:subject: its limits (effective for a key), actions, mode, usage. */
void admin_limits_get(struct http_req *req, struct keys *k, struct budget *b, const char *subject,
		      int64_t now);
/*
 * PUT /api/v1/limits/:subject: merges body (null clears a field or an action); answers as
 * GET. downgrade_ok: limits.downgrade maps some model (else a downgrade action is a 400).
 */
void admin_limits_put(struct http_req *req, struct store *s, struct keys *k, struct budget *b,
		      const char *subject, const cJSON *body, bool downgrade_ok, int64_t now);
/* DELETE /api/v1/limits/:subject: 204. */
void admin_limits_delete(struct http_req *req, struct store *s, struct budget *b,
			 const char *subject);
/* At start: every stored subject's limits into b. 0 or -errno. */
int admin_limits_load(struct store *s, struct budget *b);

#endif /* TG_ADMIN_LIMITS_H */
