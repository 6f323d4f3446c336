/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Private to the admin API. admin_json.c turns request bodies and query strings into the
 * registry's specs, checking every field before anything is changed, and turns records into
 * the response objects of docs/admin-api.md. It knows neither HTTP nor the registry's state,
 * so it is unit-tested alone (tests/unit/test_admin_json.c); admin.c does the routing,
 * authentication and registry calls.
 */
#ifndef TG_ADMIN_INTERNAL_H
#define TG_ADMIN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "keys.h"
#include "model.h"

#define ADMIN_PARAM_MAX	   96	   /* longest param named in an error (longer names are cut) */
#define ADMIN_MSG_MAX	   320	   /* longest error message */
#define ADMIN_GRACE_MAX	   2592000 /* grace_period_sec of a rotation: at most 30 days */
#define ADMIN_TIERS_MAX	   256	   /* tiers in one PUT /api/v1/tiers */
#define ADMIN_LIST_DEFAULT 50	   /* keys per page without ?limit */
#define ADMIN_LIST_MAX	   1000	   /* largest ?limit */

/* Why a request is refused: HTTP status, OpenAI error type and code, field, message. */
struct admin_err {
	unsigned status;
	const char *type;	     /* static string */
	const char *code;	     /* static string */
	char param[ADMIN_PARAM_MAX]; /* the field or query parameter; "" for null */
	char msg[ADMIN_MSG_MAX];     /* never holds a secret: values are not echoed */
};

/* Fills e; returns -EINVAL so callers can `return admin_err_set(...)`. */
int admin_err_set(struct admin_err *e, unsigned status, const char *type, const char *code,
		  const char *param, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/*
 * Parses a request body: the whole of it must be one JSON value (trailing text:
 * invalid_json) and that value an object (invalid_body). An empty body gives *out NULL
 * and 0 when optional, else invalid_body. The caller frees *out with cJSON_Delete.
 */
int admin_json_parse(const char *body, size_t len, bool optional, cJSON **out, struct admin_err *e);

/*
 * One limit value in stored units: an integer in the field's range, or for
 * requests_per_second a number with at most 3 decimals (stored in milli). param names it.
 */
int admin_limit_parse(const cJSON *v, enum limit_field f, const char *param, uint64_t *out,
		      struct admin_err *e);
/*
 * A key's "limits" object: each given field into set (others LIMIT_UNSET); with
 * allow_null, a null adds the field's bit to *clear (PATCH), else null is refused.
 */
int admin_limits_parse(const cJSON *o, const char *prefix, bool allow_null, struct limits *set,
		       uint32_t *clear, struct admin_err *e);

/*
 * An "actions" object {limit name: "block" | "queue" | "downgrade" | "alert"} (admin_actions.c):
 * each given action into set (others 0). Members must be limits that take an action
 * (limit_takes_action), named once. With allow_null and clear, null adds the field's bit to
 * *clear; else null is refused. Errors name the member: "<prefix>.tokens_per_minute".
 */
int admin_actions_parse(const cJSON *o, const char *prefix, bool allow_null,
			uint8_t set[LIMIT__COUNT], uint32_t *clear, struct admin_err *e);
/* {limit name: action} of the non-zero entries; NULL when out of memory. */
cJSON *admin_actions_json(const uint8_t actions[LIMIT__COUNT]);
/*
 * Unless configured (limits.downgrade maps some model), a downgrade action - action, the
 * subject's default, or one of actions - is refused: 400 naming "<limits_prefix>.action"
 * ("action" without a prefix) or "<actions_prefix>.<limit>".
 */
int admin_downgrade_check(uint64_t action, const uint8_t actions[LIMIT__COUNT],
			  const char *limits_prefix, const char *actions_prefix, bool configured,
			  struct admin_err *e);

/* POST /api/v1/keys. Strings in spec are borrowed from o. */
struct admin_key_create {
	struct key_spec spec;
	bool has_owner;	 /* the body named an owner */
	bool has_tier;	 /* the body named a tier */
	bool has_limits; /* the body had a limits object */
};
int admin_key_create_parse(const cJSON *o, int64_t now, struct admin_key_create *out,
			   struct admin_err *e);
/* PATCH /api/v1/keys/:id. Strings in p are borrowed from o. */
int admin_key_patch_parse(const cJSON *o, int64_t now, struct key_patch *p, struct admin_err *e);
/* POST /api/v1/keys/:id/rotate; o may be NULL (no body): *grace_sec = -1, the default. */
int admin_rotate_parse(const cJSON *o, int64_t *grace_sec, struct admin_err *e);
/*
 * A complete tier. path_name: the name from the URL (the body may omit "name" or repeat
 * it), or NULL when the body must name it. prefix: "" or "tiers[3]" for params.
 */
int admin_tier_parse(const cJSON *o, const char *path_name, const char *prefix, struct tier *t,
		     struct admin_err *e);
/* PUT /api/v1/tiers: *out is malloc'd (the caller frees it), *n its length. */
int admin_tiers_parse(const cJSON *o, struct tier **out, size_t *n, struct admin_err *e);
/* POST /api/v1/admin/tokens. Strings in s are borrowed from o. */
int admin_token_parse(const cJSON *o, struct token_spec *s, struct admin_err *e);

/* GET /api/v1/keys query parameters, fed one by one. */
struct admin_list_query {
	char owner[TG_OWNER_MAX + 1];	  /* "" = any */
	char service[TG_SERVICE_MAX + 1]; /* "" = any */
	char tier[TG_TIER_NAME_MAX + 1];  /* "" = any */
	int status;			  /* enum key_status, -1 = any */
	size_t limit;
	char after[TG_ID_LEN + 1]; /* "" = from the start */
	unsigned seen;		   /* parameters given, to refuse repeats */
};
void admin_list_query_init(struct admin_list_query *q);
/* One parameter; an unknown, repeated or bad one is invalid_query naming it. */
int admin_list_query_add(struct admin_list_query *q, const char *k, const char *v,
			 struct admin_err *e);
/* The registry's filter; points into q. */
void admin_list_query_filter(const struct admin_list_query *q, struct keys_filter *f);

/*
 * Response objects; NULL when out of memory. tier_limits: the limits of the key's tier, for
 * effective_limits (NULL: shown as null). now decides the status.
 */
cJSON *admin_key_json(const struct key_record *r, const struct limits *tier_limits, int64_t now);
cJSON *admin_tier_json(const struct tier *t);
cJSON *admin_token_json(const struct token_record *r);
struct kernel;
/* GET /api/v1/kernel (admin_kernel.c): status of the kernel path, k NULL = off. */
cJSON *admin_kernel_json(struct kernel *k, size_t penalty_limit);

struct router;
/* GET /api/v1/providers (admin_providers.c): each provider's settings and health. */
cJSON *admin_providers_json(struct router *r);
/* Adds every set field of l to o, requests_per_second as a decimal number (2.5). */
bool admin_limits_add(cJSON *o, const struct limits *l);

#endif /* TG_ADMIN_INTERNAL_H */
