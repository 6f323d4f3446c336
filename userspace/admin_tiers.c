/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The admin API's tier and admin-token handlers (docs/admin-api.md, "Tiers" and "Admin
 * tokens"): each checks its whole input (admin_json.c) before one registry call, then
 * renders the result; errors are answered through admin.c's shared replies. A new token's
 * secret appears only in its create answer and is wiped once that is queued.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_call.h"
#include "http.h"

/* Every tier, in name order; NULL and *rc on failure. The caller frees. */
struct tier *admin_tiers_read(struct admin_call *c, size_t *n, int *rc)
{
	struct tier *t = NULL, *p;
	size_t cap = 0;

	*n = 0;
	*rc = keys_tiers_list(c->a->k, NULL, 0, n);
	/* tiers may be added between the calls: grow until the snapshot fits */
	while (!*rc && *n > cap) {
		cap = *n + 8;
		p = realloc(t, cap * sizeof(*t));
		if (!p) {
			*rc = -ENOMEM;
			break;
		}
		t = p;
		*rc = keys_tiers_list(c->a->k, t, cap, n);
	}
	if (!*rc && !t && !(t = calloc(1, sizeof(*t))))
		*rc = -ENOMEM;
	if (*rc) {
		free(t);
		return NULL;
	}
	return t;
}

static cJSON *tier_list_json(const struct tier *t, size_t n)
{
	cJSON *o = admin_list_new(), *data = cJSON_GetObjectItemCaseSensitive(o, "data"), *item;

	if (!data)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		item = admin_tier_json(&t[i]);
		if (!item || !cJSON_AddItemToArray(data, item))
			goto fail;
	}
	return o;
fail:
	cJSON_Delete(o);
	return NULL;
}

void admin_tiers_list(struct admin_call *c)
{
	size_t n;
	int rc;
	struct tier *t = admin_tiers_read(c, &n, &rc);

	if (!t) {
		admin_reply_500(c, "listing tiers", rc);
		return;
	}
	admin_reply_obj(c, 200, tier_list_json(t, n));
	free(t);
}

/* A downgrade action of tier t (tiers[i] of a set; i SIZE_MAX: a PUT of one) needs a map. */
static int tier_downgrade_check(struct admin_call *c, const struct tier *t, size_t i,
				struct admin_err *e)
{
	char lp[ADMIN_PARAM_MAX] = "", ap[ADMIN_PARAM_MAX] = "actions";

	if (i != SIZE_MAX) {
		snprintf(lp, sizeof(lp), "tiers[%zu]", i);
		snprintf(ap, sizeof(ap), "tiers[%zu].actions", i);
	}
	return admin_downgrade_check(t->lim.v[LIMIT_ACTION], t->lim.act, lp, ap, c->a->downgrade_ok,
				     e);
}

void admin_tiers_replace(struct admin_call *c)
{
	char in_use[TG_TIER_NAME_MAX + 1] = "";
	struct tier *t = NULL;
	struct admin_err e;
	cJSON *body = NULL;
	size_t n = 0;
	int rc;

	if (!admin_body_json(c, false, &body))
		return;
	rc = admin_tiers_parse(body, &t, &n, &e);
	for (size_t i = 0; !rc && i < n; i++)
		rc = tier_downgrade_check(c, &t[i], i, &e);
	if (rc == -EINVAL) {
		admin_reply_err(c, &e);
		goto out;
	}
	if (!rc)
		rc = keys_tiers_replace(c->a->k, t, n, in_use);
	if (rc) {
		admin_reply_registry(c, rc, OBJ_TIER, in_use, "replacing tiers");
		goto out;
	}
	free(t);
	t = admin_tiers_read(c, &n, &rc);
	if (t)
		admin_reply_obj(c, 200, tier_list_json(t, n));
	else
		admin_reply_500(c, "listing tiers", rc);
out:
	free(t);
	cJSON_Delete(body);
}

void admin_tier_get(struct admin_call *c)
{
	struct tier t;
	int rc;

	if (!model_tier_name_valid(c->arg)) {
		admin_reply_not_found(c, OBJ_TIER);
		return;
	}
	rc = keys_tier_get(c->a->k, c->arg, &t);
	if (rc)
		admin_reply_registry(c, rc, OBJ_TIER, c->arg, "reading a tier");
	else
		admin_reply_obj(c, 200, admin_tier_json(&t));
}

void admin_tier_put(struct admin_call *c)
{
	struct admin_err e;
	cJSON *body = NULL;
	struct tier t;
	int rc;

	if (!model_tier_name_valid(c->arg)) {
		http_reply_error(c->req, 400, "invalid_request_error", "invalid_value", "name",
				 "name: the tier name in the path must be 1-32 of [a-z0-9_-]");
		return;
	}
	if (!admin_body_json(c, false, &body))
		return;
	if (admin_tier_parse(body, c->arg, "", &t, &e) ||
	    tier_downgrade_check(c, &t, SIZE_MAX, &e)) {
		admin_reply_err(c, &e);
		goto out;
	}
	rc = keys_tier_put(c->a->k, &t);
	if (rc)
		admin_reply_registry(c, rc, OBJ_TIER, t.name, "writing a tier");
	else
		admin_reply_obj(c, 200, admin_tier_json(&t));
out:
	cJSON_Delete(body);
}

/* ---- admin tokens ---- */

void admin_token_create(struct admin_call *c)
{
	char plain[TG_CRED_MAX];
	struct token_record r;
	struct token_spec s;
	struct admin_err e;
	cJSON *body = NULL;
	int rc;

	if (!admin_body_json(c, false, &body))
		return;
	if (admin_token_parse(body, &s, &e)) {
		admin_reply_err(c, &e);
		goto out;
	}
	rc = keys_token_create(c->a->k, &s, &r, plain);
	if (rc) {
		explicit_bzero(plain, sizeof(plain));
		admin_reply_registry(c, rc, OBJ_TOKEN, s.tier, "token creation");
		goto out;
	}
	admin_reply_secret(c, 201, admin_token_json(&r), "token", plain);
out:
	explicit_bzero(&r, sizeof(r));
	cJSON_Delete(body);
}

void admin_token_list(struct admin_call *c)
{
	struct token_record *r = NULL;
	cJSON *o, *data, *item;
	size_t n = 0;
	int rc = keys_token_list(c->a->k, &r, &n);

	if (rc) {
		admin_reply_500(c, "listing tokens", rc);
		return;
	}
	o = admin_list_new();
	data = cJSON_GetObjectItemCaseSensitive(o, "data");
	for (size_t i = 0; o && i < n; i++) {
		item = admin_token_json(&r[i]);
		if (!item || !cJSON_AddItemToArray(data, item)) {
			cJSON_Delete(o);
			o = NULL;
		}
	}
	explicit_bzero(r, n * sizeof(*r));
	free(r);
	admin_reply_obj(c, 200, o);
}

void admin_token_revoke(struct admin_call *c)
{
	struct token_record r;
	int rc;

	if (!model_id_valid(c->arg) && strcmp(c->arg, TG_BOOTSTRAP_ID) != 0) {
		admin_reply_not_found(c, OBJ_TOKEN);
		return;
	}
	rc = keys_token_revoke(c->a->k, c->arg, &r);
	if (rc) {
		admin_reply_registry(c, rc, OBJ_TOKEN, NULL, "token revocation");
		return;
	}
	admin_reply_obj(c, 200, admin_token_json(&r));
	explicit_bzero(&r, sizeof(r));
}
