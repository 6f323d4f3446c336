/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The admin REST API (docs/admin-api.md): a route table over method and path, bearer-token
 * authentication against the key registry with role checks, and one handler per endpoint
 * that checks its whole input (admin_json.c) before making exactly one registry call, then
 * renders the result. Registry errors map to the contract's statuses and codes here, in
 * one place. A full key or token appears only in the create and rotate answers, and every
 * copy of it this module makes is wiped once the answer is queued.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <strings.h>

#include "admin.h"
#include "admin_call.h"
#include "admin_internal.h"
#include "admin_limits.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "util.h"

/* Roles allowed on a route, a bit per enum token_role; 0: no token at all. */
#define R_ADMIN	   (1u << ROLE_ADMIN)
#define R_VIEWER   (1u << ROLE_VIEWER)
#define R_CONSUMER (1u << ROLE_CONSUMER)

#define MSG_AUTH "a valid admin token is required: Authorization: Bearer <token>"

typedef void (*admin_route_fn)(struct admin_call *c);

struct admin_route {
	const char *method;
	const char *pattern; /* "/api/v1/keys/:/rotate": ':' is one captured segment */
	unsigned roles;
	admin_route_fn fn;
};

/* ---- answers ---- */

void admin_reply_err(struct admin_call *c, const struct admin_err *e)
{
	http_reply_error(c->req, e->status, e->type, e->code, e->param[0] ? e->param : NULL, "%s",
			 e->msg);
}

void admin_reply_500(struct admin_call *c, const char *what, int rc)
{
	log_warnx("admin: %s failed: %s, id=%s", what, strerror(rc < 0 ? -rc : rc),
		  http_req_id(c->req));
	http_reply_error(c->req, 500, "server_error", "internal_error", NULL,
			 "internal error (request id %s)", http_req_id(c->req));
}

void admin_reply_not_found(struct admin_call *c, enum admin_obj obj)
{
	static const char *const code[] = {"key_not_found", "token_not_found", "tier_not_found"};
	static const char *const what[] = {"API key", "admin token", "tier"};
	/* echo only what has the shape of an id or name: never a secret pasted into a URL */
	bool shown = obj == OBJ_TIER ? model_tier_name_valid(c->arg)
				     : model_id_valid(c->arg) || !strcmp(c->arg, TG_BOOTSTRAP_ID);

	if (shown)
		http_reply_error(c->req, 404, "not_found_error", code[obj], NULL, "no %s '%s'",
				 what[obj], c->arg);
	else
		http_reply_error(c->req, 404, "not_found_error", code[obj], NULL, "no such %s",
				 what[obj]);
}

/* tier: the tier named in the request (for -ESRCH and -EBUSY), or NULL. */
void admin_reply_registry(struct admin_call *c, int rc, enum admin_obj obj, const char *tier,
			   const char *what)
{
	switch (rc) {
	case -ENOENT:
		admin_reply_not_found(c, obj);
		return;
	case -ESRCH:
		if (obj == OBJ_TIER)
			admin_reply_not_found(c, obj);
		else
			http_reply_error(c->req, 400, "invalid_request_error", "invalid_value",
					 "tier", "tier: unknown tier '%s'", tier ? tier : "");
		return;
	case -EKEYREVOKED:
		http_reply_error(c->req, 409, "conflict_error",
				 obj == OBJ_TOKEN ? "token_revoked" : "key_revoked", NULL,
				 "the %s '%s' is revoked",
				 obj == OBJ_TOKEN ? "admin token" : "API key", c->arg);
		return;
	case -EKEYEXPIRED:
		http_reply_error(c->req, 409, "conflict_error", "key_expired", NULL,
				 "the API key '%s' has expired", c->arg);
		return;
	case -EBUSY:
		http_reply_error(c->req, 409, "conflict_error", "tier_in_use", "tiers",
				 "tier '%s' is still used by API keys or consumer tokens; move "
				 "them to another tier first",
				 tier ? tier : "");
		return;
	case -EEXIST:
		http_reply_error(c->req, 409, "conflict_error", "already_exists", NULL,
				 "it already exists");
		return;
	case -ENOSPC:
		log_warnx("admin: %s: the store is full (store.max_map_size_mb), id=%s", what,
			  http_req_id(c->req));
		http_reply_error(c->req, 503, "server_error", "store_full", NULL,
				 "the store is full (store.max_map_size_mb); nothing was changed");
		return;
	case -ENOBUFS:
		http_reply_error(c->req, 503, "server_error", "rate_slots_exhausted", NULL,
				 "every request-rate slot is taken (data.rate_slots = %u); revoke "
				 "unused keys or raise data.rate_slots; nothing was changed",
				 keys_slots_capacity(c->a->k));
		return;
	case -EINVAL:
		/* everything was checked before the call: only a race (expiry) gets here */
		http_reply_error(
		    c->req, 400, "invalid_request_error", "invalid_value", NULL,
		    "the registry refused the request as invalid; nothing was changed");
		return;
	default:
		admin_reply_500(c, what, rc);
	}
}

/* Sends json and frees it; a failure to render (NULL) is a 500. */
void admin_reply_obj(struct admin_call *c, unsigned status, cJSON *json)
{
	int rc;

	if (!json) {
		admin_reply_500(c, "rendering", -ENOMEM);
		return;
	}
	rc = http_reply_json(c->req, status, json);
	cJSON_Delete(json);
	if (rc)
		admin_reply_500(c, "sending", rc);
}

/*
 * Adds the full key or token as field to obj (taken), sends it, and wipes every copy we
 * hold: the JSON string, and plaintext. The layer below wipes its serialised copy.
 */
void admin_reply_secret(struct admin_call *c, unsigned status, cJSON *obj, const char *field,
			 char plaintext[TG_CRED_MAX])
{
	cJSON *s = obj ? cJSON_AddStringToObject(obj, field, plaintext) : NULL;
	int rc = s ? http_reply_json_secret(c->req, status, obj) : -ENOMEM;

	if (s)
		explicit_bzero(s->valuestring, strlen(s->valuestring));
	explicit_bzero(plaintext, TG_CRED_MAX);
	cJSON_Delete(obj);
	if (rc)
		admin_reply_500(c, "sending a new credential", rc);
}

/* ---- authentication ---- */


static void reply_unauthorized(struct admin_call *c, const char *code)
{
	/* one message for every failure: the answer must not tell them apart */
	http_add_header(c->req, "WWW-Authenticate", "Bearer realm=\"tollgate-admin\"");
	http_reply_error(c->req, 401, "authentication_error", code, NULL, MSG_AUTH);
}

/* Verifies the bearer token into c->auth; false once it has answered the refusal. */
static bool authenticate(struct admin_call *c)
{
	struct sockaddr_storage peer;
	const char *tok = NULL;
	char retry[16];
	size_t len = 0;
	int rc;

	if (!http_bearer_token(http_req_header(c->req, "Authorization"), &tok, &len)) {
		reply_unauthorized(c, "missing_token");
		return false;
	}
	http_req_peer(c->req, &peer); /* none (family 0): the shared unknown source */
	rc = keys_verify(c->a->k, tok, len, KEYS_ADMIN, (const struct sockaddr *)&peer, &c->auth);
	switch (rc) {
	case 0:
		return true;
	case -EAGAIN:
		snprintf(retry, sizeof(retry), "%u",
			 c->auth.retry_after_sec ? c->auth.retry_after_sec : 1);
		http_add_header(c->req, "Retry-After", retry);
		http_reply_error(c->req, 429, "rate_limit_error", "auth_throttled", NULL,
				 "too many failed token verifications; retry in %s seconds", retry);
		return false;
	case -EINVAL:
	case -ENOENT:
	case -EACCES:
	case -EKEYREVOKED:
	case -EKEYEXPIRED:
		reply_unauthorized(c, "invalid_token");
		return false;
	default:
		admin_reply_500(c, "token verification", rc);
		return false;
	}
}

static void reply_forbidden(struct admin_call *c)
{
	if (c->auth.role == ROLE_VIEWER)
		http_reply_error(c->req, 403, "permission_error", "forbidden", NULL,
				 "a viewer token may only read (GET); it changes nothing");
	else
		http_reply_error(c->req, 403, "permission_error", "forbidden", NULL,
				 "a consumer token may only create, list, show and revoke its own "
				 "API keys (owner consumer:%s)",
				 c->auth.consumer);
}

/* ---- request bodies ---- */

/* Parses the body into *json; false once it has answered the refusal. */
bool admin_body_json(struct admin_call *c, bool optional, cJSON **json)
{
	struct admin_err e;
	size_t len;
	const char *body = http_req_body(c->req, &len);
	int rc = admin_json_parse(body, len, optional, json, &e);

	if (rc == -EINVAL)
		admin_reply_err(c, &e);
	else if (rc)
		admin_reply_500(c, "parsing the body", rc);
	return rc == 0;
}

/* ---- health ---- */

static void h_health(struct admin_call *c)
{
	static const char ok[] = "{\"status\":\"ok\"}";

	http_reply(c->req, 200, "application/json", ok, sizeof(ok) - 1);
}

static void h_ready(struct admin_call *c)
{
	cJSON *o;

	if (!c->a->k || !c->a->s) {
		http_reply_error(c->req, 503, "server_error", "not_ready", NULL,
				 "the key registry is not loaded");
		return;
	}
	o = cJSON_CreateObject();
	if (o && (!cJSON_AddStringToObject(o, "status", "ready") ||
		  !cJSON_AddNumberToObject(o, "schema_version", store_schema_version(c->a->s)) ||
		  !cJSON_AddNumberToObject(o, "keys", (double)keys_count(c->a->k)))) {
		cJSON_Delete(o);
		o = NULL;
	}
	admin_reply_obj(c, 200, o);
}

/* Prometheus text; no token (docs/data-plane.md: bind the admin listener to a trusted host). */
static void h_metrics(struct admin_call *c)
{
	size_t len = 0;
	char *text = metrics_render(&len);

	if (!text) {
		admin_reply_500(c, "rendering metrics", -ENOMEM);
		return;
	}
	http_reply(c->req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
	free(text);
}

/* {"object":"list","data":[]}, for the caller to fill; NULL when out of memory. */
cJSON *admin_list_new(void)
{
	cJSON *o = cJSON_CreateObject();

	if (!o || !cJSON_AddStringToObject(o, "object", "list") ||
	    !cJSON_AddArrayToObject(o, "data")) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* ---- API keys ---- */

/* A key object with effective limits from its tier (null if the tier cannot be read). */
static cJSON *key_json(struct admin_call *c, const struct key_record *r)
{
	struct tier t;

	if (keys_tier_get(c->a->k, r->tier, &t) != 0)
		return admin_key_json(r, NULL, c->now);
	return admin_key_json(r, &t.lim, c->now);
}

/* For a consumer, a key of another owner does not exist. */
static bool key_visible(const struct admin_call *c, const struct key_record *r)
{
	char own[TG_OWNER_MAX + 1];

	if (c->auth.role != ROLE_CONSUMER)
		return true;
	snprintf(own, sizeof(own), "consumer:%s", c->auth.consumer);
	return strcmp(r->owner, own) == 0;
}

/* Consumer rules of creation: owner its own, tier its token's, no limits. */
static bool key_create_consumer(struct admin_call *c, struct admin_key_create *in,
				char own[TG_OWNER_MAX + 1])
{
	snprintf(own, TG_OWNER_MAX + 1, "consumer:%s", c->auth.consumer);
	if (in->has_tier || in->has_limits) {
		http_reply_error(c->req, 403, "permission_error", "forbidden",
				 in->has_tier ? "tier" : "limits",
				 "a consumer token may not choose tier or limits: its keys get "
				 "tier '%s' and its limits",
				 c->auth.tier);
		return false;
	}
	if (in->has_owner && strcmp(in->spec.owner, own) != 0) {
		http_reply_error(c->req, 403, "permission_error", "forbidden", "owner",
				 "a consumer token may create keys only for owner %s", own);
		return false;
	}
	in->spec.owner = own;
	in->spec.tier = c->auth.tier;
	return true;
}

static void h_key_create(struct admin_call *c)
{
	char own[TG_OWNER_MAX + 1], plain[TG_CRED_MAX];
	struct admin_key_create in;
	struct key_record r;
	struct admin_err e;
	cJSON *body = NULL;
	int rc;

	if (!admin_body_json(c, false, &body))
		return;
	if (admin_key_create_parse(body, c->now, &in, &e) ||
	    admin_downgrade_check(in.spec.overrides.v[LIMIT_ACTION], in.spec.overrides.act,
				  "limits", "actions", c->a->downgrade_ok, &e)) {
		admin_reply_err(c, &e);
		goto out;
	}
	if (c->auth.role == ROLE_CONSUMER && !key_create_consumer(c, &in, own))
		goto out;
	if (c->auth.role == ROLE_ADMIN && !in.spec.owner) {
		http_reply_error(c->req, 400, "invalid_request_error", "missing_field", "owner",
				 "owner: required");
		goto out;
	}
	rc = keys_create(c->a->k, &in.spec, &r, plain);
	if (rc) {
		explicit_bzero(plain, sizeof(plain));
		admin_reply_registry(c, rc, OBJ_KEY, in.spec.tier, "key creation");
		goto out;
	}
	admin_reply_secret(c, 201, key_json(c, &r), "key", plain);
out:
	cJSON_Delete(body);
}


/* Copies the page's keys into a list object, effective limits from a snapshot of tiers. */
static cJSON *key_list_json(struct admin_call *c, const struct key_record *r, size_t n,
			    bool has_more)
{
	cJSON *o = admin_list_new(), *data = cJSON_GetObjectItemCaseSensitive(o, "data"), *item;
	bool ok = data != NULL;
	size_t nt = 0;
	int rc;
	/* one read of the tiers for the page, rather than one per key */
	struct tier *tiers = admin_tiers_read(c, &nt, &rc);

	for (size_t i = 0; ok && i < n; i++) {
		const struct limits *lim = NULL;

		for (size_t t = 0; tiers && t < nt && !lim; t++)
			lim = strcmp(tiers[t].name, r[i].tier) == 0 ? &tiers[t].lim : NULL;
		item = admin_key_json(&r[i], lim, c->now);
		ok = item && cJSON_AddItemToArray(data, item);
	}
	free(tiers);
	ok = ok && cJSON_AddBoolToObject(o, "has_more", has_more) &&
	     (has_more && n ? cJSON_AddStringToObject(o, "next_after", r[n - 1].id)
			    : cJSON_AddNullToObject(o, "next_after"));
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static int query_cb(const char *k, const char *v, void *arg)
{
	void **a = arg;

	return admin_list_query_add(a[0], k, v, a[1]);
}

static void h_key_list(struct admin_call *c)
{
	struct admin_list_query q;
	struct keys_filter f;
	struct key_record *r;
	struct admin_err e;
	bool has_more = false;
	void *args[2] = {&q, &e};
	size_t n = 0;
	int rc;

	admin_list_query_init(&q);
	if (http_req_query_each(c->req, query_cb, args)) {
		admin_reply_err(c, &e);
		return;
	}
	if (c->auth.role == ROLE_CONSUMER) {
		char own[TG_OWNER_MAX + 1];

		snprintf(own, sizeof(own), "consumer:%s", c->auth.consumer);
		if (q.owner[0] && strcmp(q.owner, own) != 0) {
			reply_forbidden(c);
			return;
		}
		snprintf(q.owner, sizeof(q.owner), "%s", own);
	}
	admin_list_query_filter(&q, &f);
	r = calloc(q.limit, sizeof(*r));
	if (!r) {
		admin_reply_500(c, "listing keys", -ENOMEM);
		return;
	}
	rc = keys_list(c->a->k, &f, q.after, q.limit, r, &n, &has_more);
	if (rc)
		admin_reply_500(c, "listing keys", rc);
	else
		admin_reply_obj(c, 200, key_list_json(c, r, n, has_more));
	free(r);
}

/* Reads the key of the path into *r; false once it has answered 404 (or an error). */
static bool key_lookup(struct admin_call *c, struct key_record *r)
{
	int rc;

	if (!model_id_valid(c->arg)) {
		admin_reply_not_found(c, OBJ_KEY);
		return false;
	}
	rc = keys_get(c->a->k, c->arg, r);
	if (!rc && !key_visible(c, r))
		rc = -ENOENT;
	if (rc)
		admin_reply_registry(c, rc, OBJ_KEY, NULL, "reading a key");
	return rc == 0;
}

static void h_key_get(struct admin_call *c)
{
	struct key_record r;

	if (key_lookup(c, &r))
		admin_reply_obj(c, 200, key_json(c, &r));
}

static void h_key_patch(struct admin_call *c)
{
	struct key_record r;
	struct key_patch p;
	struct admin_err e;
	cJSON *body = NULL;
	int rc;

	if (!model_id_valid(c->arg)) {
		admin_reply_not_found(c, OBJ_KEY);
		return;
	}
	if (!admin_body_json(c, false, &body))
		return;
	if (admin_key_patch_parse(body, c->now, &p, &e) ||
	    admin_downgrade_check(p.set.v[LIMIT_ACTION], p.set.act, "limits", "actions",
				  c->a->downgrade_ok, &e)) {
		admin_reply_err(c, &e);
		goto out;
	}
	rc = keys_update(c->a->k, c->arg, &p, &r);
	if (rc)
		admin_reply_registry(c, rc, OBJ_KEY, p.tier, "key update");
	else
		admin_reply_obj(c, 200, key_json(c, &r));
out:
	cJSON_Delete(body);
}

static void h_key_revoke(struct admin_call *c)
{
	struct key_record r;
	int rc;

	/* a consumer may revoke only its own keys: look first, owners never change */
	if (c->auth.role == ROLE_CONSUMER && !key_lookup(c, &r))
		return;
	if (!model_id_valid(c->arg)) {
		admin_reply_not_found(c, OBJ_KEY);
		return;
	}
	rc = keys_revoke(c->a->k, c->arg, &r);
	if (rc)
		admin_reply_registry(c, rc, OBJ_KEY, NULL, "key revocation");
	else
		admin_reply_obj(c, 200, key_json(c, &r));
}

static void h_key_rotate(struct admin_call *c)
{
	char plain[TG_CRED_MAX];
	struct key_record r;
	struct admin_err e;
	cJSON *body = NULL;
	int64_t grace;
	int rc;

	if (!model_id_valid(c->arg)) {
		admin_reply_not_found(c, OBJ_KEY);
		return;
	}
	if (!admin_body_json(c, true, &body))
		return;
	if (admin_rotate_parse(body, &grace, &e)) {
		admin_reply_err(c, &e);
		goto out;
	}
	rc = keys_rotate(c->a->k, c->arg, grace, &r, plain);
	if (rc) {
		explicit_bzero(plain, sizeof(plain));
		admin_reply_registry(c, rc, OBJ_KEY, NULL, "key rotation");
		goto out;
	}
	admin_reply_secret(c, 200, key_json(c, &r), "key", plain);
out:
	cJSON_Delete(body);
}

/* ?limit=N (1..10000, default 100): penalty-box entries listed. */
static int kernel_query_cb(const char *k, const char *v, void *arg)
{
	size_t *limit = arg;
	char *end;
	unsigned long n;

	if (strcmp(k, "limit"))
		return -ENOENT;
	n = strtoul(v, &end, 10);
	if (!*v || *end || n < 1 || n > 10000)
		return -ERANGE;
	*limit = n;
	return 0;
}

static void h_kernel(struct admin_call *c)
{
	size_t limit = 100;

	if (http_req_query_each(c->req, kernel_query_cb, &limit)) {
		http_reply_error(c->req, 400, "invalid_request_error", "invalid_query", "limit",
				 "the only query parameter is limit, a whole number from 1 to "
				 "10000 (penalty-box entries listed)");
		return;
	}
	admin_reply_obj(c, 200, admin_kernel_json(c->a->kernel, limit));
}

static void h_providers(struct admin_call *c)
{
	admin_reply_obj(c, 200, admin_providers_json(c->a->router));
}

/* ---- limits (admin_limits.c) ---- */

/* False after answering 503 when the daemon runs without the limits engine. */
static bool have_budget(struct admin_call *c)
{
	if (c->a->budget)
		return true;
	http_reply_error(c->req, 503, "server_error", "limits_unavailable", NULL,
			 "the limits engine is not running");
	return false;
}

static void h_limits_list(struct admin_call *c)
{
	admin_limits_list(c->req, c->a->s);
}

static void h_limits_get(struct admin_call *c)
{
	if (have_budget(c))
		admin_limits_get(c->req, c->a->k, c->a->budget, c->arg, c->now);
}

static void h_limits_put(struct admin_call *c)
{
	cJSON *body = NULL;

	if (!have_budget(c) || !admin_body_json(c, false, &body))
		return;
	admin_limits_put(c->req, c->a->s, c->a->k, c->a->budget, c->arg, body, c->a->downgrade_ok,
			 c->now);
	cJSON_Delete(body);
}

static void h_limits_delete(struct admin_call *c)
{
	if (have_budget(c))
		admin_limits_delete(c->req, c->a->s, c->a->budget, c->arg);
}

/* ---- routing ---- */

static const struct admin_route admin_routes[] = {
    {"GET", "/health", 0, h_health},
    {"GET", "/ready", 0, h_ready},
    {"GET", "/metrics", 0, h_metrics},
    {"POST", "/api/v1/keys", R_ADMIN | R_CONSUMER, h_key_create},
    {"GET", "/api/v1/keys", R_ADMIN | R_VIEWER | R_CONSUMER, h_key_list},
    {"GET", "/api/v1/keys/:", R_ADMIN | R_VIEWER | R_CONSUMER, h_key_get},
    {"PATCH", "/api/v1/keys/:", R_ADMIN, h_key_patch},
    {"DELETE", "/api/v1/keys/:", R_ADMIN | R_CONSUMER, h_key_revoke},
    {"POST", "/api/v1/keys/:/rotate", R_ADMIN, h_key_rotate},
    {"GET", "/api/v1/tiers", R_ADMIN | R_VIEWER, admin_tiers_list},
    {"PUT", "/api/v1/tiers", R_ADMIN, admin_tiers_replace},
    {"GET", "/api/v1/tiers/:", R_ADMIN | R_VIEWER, admin_tier_get},
    {"PUT", "/api/v1/tiers/:", R_ADMIN, admin_tier_put},
    {"POST", "/api/v1/admin/tokens", R_ADMIN, admin_token_create},
    {"GET", "/api/v1/admin/tokens", R_ADMIN | R_VIEWER, admin_token_list},
    {"DELETE", "/api/v1/admin/tokens/:", R_ADMIN, admin_token_revoke},
    {"GET", "/api/v1/kernel", R_ADMIN | R_VIEWER, h_kernel},
    {"GET", "/api/v1/providers", R_ADMIN | R_VIEWER, h_providers},
    {"GET", "/api/v1/limits", R_ADMIN | R_VIEWER, h_limits_list},
    {"GET", "/api/v1/limits/:", R_ADMIN | R_VIEWER, h_limits_get},
    {"PUT", "/api/v1/limits/:", R_ADMIN, h_limits_put},
    {"DELETE", "/api/v1/limits/:", R_ADMIN, h_limits_delete},
};


/*
 * The route for method and path, or NULL; then allow lists the methods the path takes
 * ("" for an unknown path).
 */
static const struct admin_route *route_find(const char *method, const char *path,
					    char arg[ADMIN_ARG_MAX + 1], char *allow, size_t size)
{
	const struct admin_route *found = NULL;
	size_t used = 0;

	allow[0] = '\0';
	for (size_t i = 0; i < TG_ARRAY_SIZE(admin_routes) && !found; i++) {
		const struct admin_route *r = &admin_routes[i];

		bool get = strcmp(r->method, "GET") == 0;

		if (!http_path_match(r->pattern, path, arg, ADMIN_ARG_MAX + 1))
			continue;
		/* HEAD is a GET without the body (the library drops it), as probes expect */
		if (strcmp(r->method, method) == 0 || (get && strcmp(method, "HEAD") == 0))
			found = r;
		else if (used < size)
			used += (size_t)snprintf(allow + used, size - used, "%s%s%s",
						 used ? ", " : "", r->method, get ? ", HEAD" : "");
	}
	return found;
}

static void admin_handle(struct http_req *req, void *arg)
{
	struct admin_call c = {.a = arg, .req = req, .now = tg_now_unix()};
	const struct admin_route *r;
	char allow[64];

	http_add_header(req, "Cache-Control", "no-store");
	r = route_find(http_req_method(req), http_req_path(req), c.arg, allow, sizeof(allow));
	if (!r && allow[0]) {
		http_add_header(req, "Allow", allow);
		http_reply_error(req, 405, "invalid_request_error", "method_not_allowed", NULL,
				 "this path takes %s only", allow);
		return;
	}
	if (!r) {
		http_reply_error(req, 404, "not_found_error", "not_found", NULL,
				 "no such endpoint (see docs/admin-api.md)");
		return;
	}
	if (r->roles && !authenticate(&c))
		return;
	if (r->roles)
		log_debug("admin: %s by token %s, id=%s", r->pattern, c.auth.id, http_req_id(req));
	if (r->roles && !(r->roles & (1u << c.auth.role))) {
		reply_forbidden(&c);
		return;
	}
	r->fn(&c);
	explicit_bzero(&c.auth, sizeof(c.auth));
}

/* ---- lifecycle ---- */

struct admin *admin_start(const struct admin_opts *o, struct keys *k, struct store *s)
{
	struct http_opts ho = {
	    .listen = o && o->listen ? o->listen : "127.0.0.1:8081",
	    .name = "admin",
	    .threads = o && o->threads ? o->threads : 2,
	    .max_body = o && o->max_body ? o->max_body : 65536,
	    .require_json = true,
	    .timeout_sec = o && o->timeout_sec ? o->timeout_sec : 30,
	    .max_conns = 256,
	};
	struct admin *a;
	int err;

	if (!k) {
		errno = EINVAL;
		return NULL;
	}
	a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->k = k;
	a->s = s;
	a->kernel = o ? o->kernel : NULL;
	a->router = o ? o->router : NULL;
	a->budget = o ? o->budget : NULL;
	a->downgrade_ok = o && o->downgrade && o->downgrade[0];
	a->http = http_start(&ho, admin_handle, a);
	if (!a->http) {
		err = errno;
		free(a);
		errno = err;
		return NULL;
	}
	return a;
}

void admin_stop(struct admin *a)
{
	if (!a)
		return;
	http_stop(a->http);
	free(a);
}

unsigned admin_port(const struct admin *a)
{
	return a ? http_port(a->http) : 0;
}
