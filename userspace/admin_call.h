/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Private to the admin API's handlers (admin.c, admin_tiers.c): the call a handler serves,
 * and the answers every handler shares, so a registry error maps to the contract's status
 * and code in one place (admin.c) whichever file the handler lives in.
 */
#ifndef TG_ADMIN_CALL_H
#define TG_ADMIN_CALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "admin_internal.h"
#include "keys.h"
#include "model.h"

#define ADMIN_ARG_MAX 128 /* longest :id or :name path segment kept */

struct admin {
	struct http_server *http;
	struct keys *k;
	struct store *s;
	struct kernel *kernel; /* NULL: kernel path off */
	struct router *router; /* NULL: no provider router */
	struct budget *budget; /* the limits engine; NULL: /api/v1/limits answers 503 */
	bool downgrade_ok;     /* limits.downgrade maps a model: downgrade actions accepted */
};

/* One request on its way through a handler. */
struct admin_call {
	struct admin *a;
	struct http_req *req;
	struct keys_auth auth;	     /* who is asking (after authentication) */
	char arg[ADMIN_ARG_MAX + 1]; /* the :id or :name segment of the path */
	int64_t now;
};

/* What a registry error is about, for 404/409 codes and messages. */
enum admin_obj {
	OBJ_KEY = 0,
	OBJ_TOKEN,
	OBJ_TIER,
};

/* The error e, as its status and OpenAI-style body. */
void admin_reply_err(struct admin_call *c, const struct admin_err *e);
/* 500 naming the request id; logs what failed (never a secret). */
void admin_reply_500(struct admin_call *c, const char *what, int rc);
/* 404 for the object c->arg names, echoing it only when it has the shape of an id or name. */
void admin_reply_not_found(struct admin_call *c, enum admin_obj obj);
/* A registry error rc as the contract's answer; tier: the tier named (-ESRCH, -EBUSY). */
void admin_reply_registry(struct admin_call *c, int rc, enum admin_obj obj, const char *tier,
			  const char *what);
/* Sends json and frees it; NULL (a failure to render) is a 500. */
void admin_reply_obj(struct admin_call *c, unsigned status, cJSON *json);
/* Sends obj (taken) with the new credential as field, then wipes every copy of plaintext. */
void admin_reply_secret(struct admin_call *c, unsigned status, cJSON *obj, const char *field,
			char plaintext[TG_CRED_MAX]);
/* Parses the body into *json; false once it has answered the refusal. */
bool admin_body_json(struct admin_call *c, bool optional, cJSON **json);
/* {"object":"list","data":[]}, for the caller to fill; NULL when out of memory. */
cJSON *admin_list_new(void);

/* admin_tiers.c: every tier, in name order; NULL and *rc on failure. The caller frees. */
struct tier *admin_tiers_read(struct admin_call *c, size_t *n, int *rc);
/* The handlers of /api/v1/tiers and /api/v1/admin/tokens (docs/admin-api.md). */
void admin_tiers_list(struct admin_call *c);
void admin_tiers_replace(struct admin_call *c);
void admin_tier_get(struct admin_call *c);
void admin_tier_put(struct admin_call *c);
void admin_token_create(struct admin_call *c);
void admin_token_list(struct admin_call *c);
void admin_token_revoke(struct admin_call *c);

#endif
