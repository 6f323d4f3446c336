/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * /api/v1/limits (docs/admin-api.md "Limits"): the explicit limits of owners ("user:x",
 * "team:x", "consumer:x") and tenants ("tenant:x") in STORE_DB_LIMITS, one LMDB transaction
 * per change, applied to the limits engine after the commit; and where any subject (keys
 * too) stands against its limits. Loaded into the engine at start (admin_limits_load).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "admin_internal.h"
#include "admin_limits.h"
#include "budget_json.h"
#include "http.h"
#include "keys.h"
#include "log.h"
#include "store.h"

#define BAD_REQ "invalid_request_error"

/* "team:ml", "tenant:acme": subjects with limits of their own. */
static bool subject_valid(const char *s)
{
	return model_owner_valid(s) ||
	       (strncmp(s, "tenant:", 7) == 0 && budget_tenant_valid(s + 7));
}

static void reply_err(struct http_req *req, const struct admin_err *e)
{
	http_reply_error(req, e->status, e->type, e->code, e->param[0] ? e->param : NULL, "%s",
			 e->msg);
}

static void reply_json(struct http_req *req, unsigned status, cJSON *o)
{
	if (!o) {
		http_reply_error(req, 500, "server_error", "internal_error", NULL,
				 "out of memory rendering the answer");
		return;
	}
	http_reply_json(req, status, o);
	cJSON_Delete(o);
}

/* {"subject","limits","actions"} of a stored record. */
static cJSON *record_json(const struct subject_limits *r)
{
	cJSON *o = cJSON_CreateObject(), *l = cJSON_CreateObject(),
	      *a = admin_actions_json(r->lim.act);
	bool ok = o && l && a && cJSON_AddStringToObject(o, "subject", r->subject) &&
		  admin_limits_add(l, &r->lim) && cJSON_AddItemToObject(o, "limits", l);

	if (ok)
		l = NULL;
	ok = ok && cJSON_AddItemToObject(o, "actions", a);
	if (ok)
		a = NULL;
	cJSON_Delete(l);
	cJSON_Delete(a);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* ---- store ---- */

struct limits_get {
	const char *subject;
	struct subject_limits r;
	bool found;
};

static int get_txn(struct store_txn *t, void *arg)
{
	struct limits_get *g = arg;
	const void *v;
	size_t len;
	int rc = store_get_ref(t, STORE_DB_LIMITS, g->subject, strlen(g->subject), &v, &len);

	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	g->found = true;
	return subject_limits_decode(v, len, &g->r);
}

/* The stored record of subject: 0 (*found), or -errno. */
static int limits_read(struct store *s, const char *subject, struct subject_limits *r, bool *found)
{
	struct limits_get g = {.subject = subject};
	int rc = store_read(s, get_txn, &g);

	*found = g.found;
	if (!rc && g.found)
		*r = g.r;
	return rc;
}

/* True when r sets nothing: its record is removed rather than kept empty. */
static bool record_empty(const struct subject_limits *r)
{
	for (int f = 0; f < LIMIT__COUNT; f++)
		if (r->lim.v[f] != LIMIT_UNSET || r->lim.act[f])
			return false;
	return true;
}

static int put_txn(struct store_txn *t, void *arg)
{
	const struct subject_limits *r = arg;
	uint8_t buf[MODEL_LIMITS_MAX];
	int n;

	if (record_empty(r)) {
		int rc = store_del(t, STORE_DB_LIMITS, r->subject, strlen(r->subject));

		return rc == -ENOENT ? 0 : rc;
	}
	n = subject_limits_encode(r, buf, sizeof(buf));
	if (n < 0)
		return n;
	return store_put(t, STORE_DB_LIMITS, r->subject, strlen(r->subject), buf, (size_t)n, 0);
}

struct list_walk {
	cJSON *arr;
	struct budget *b; /* load: set the engine's limits */
	int err;
};

static int list_one(const void *k, size_t klen, const void *v, size_t vlen, void *arg)
{
	struct list_walk *w = arg;
	struct subject_limits r;
	cJSON *o;

	(void)k, (void)klen;
	if (subject_limits_decode(v, vlen, &r)) {
		log_warnx("admin: a limits record of %zu bytes does not decode; skipped", vlen);
		return 0;
	}
	if (w->b) {
		w->err = budget_set_limits(w->b, r.subject, &r.lim);
		return w->err ? w->err : 0;
	}
	o = record_json(&r);
	if (!o || !cJSON_AddItemToArray(w->arr, o)) {
		cJSON_Delete(o);
		return -ENOMEM;
	}
	return 0;
}

static int list_txn(struct store_txn *t, void *arg)
{
	return store_iter(t, STORE_DB_LIMITS, NULL, 0, list_one, arg);
}

int admin_limits_load(struct store *s, struct budget *b)
{
	struct list_walk w = {.b = b};

	return store_read(s, list_txn, &w);
}

/* ---- handlers ---- */

void admin_limits_list(struct http_req *req, struct store *s)
{
	cJSON *o = cJSON_CreateObject();
	struct list_walk w = {.arr = o ? cJSON_AddArrayToObject(o, "data") : NULL};
	int rc = w.arr ? store_read(s, list_txn, &w) : -ENOMEM;

	if (rc) {
		cJSON_Delete(o);
		http_reply_error(req, 500, "server_error", "internal_error", NULL,
				 "reading the limits failed: %s", strerror(-rc));
		return;
	}
	reply_json(req, 200, o);
}

/* The key's effective limits for key:<id>; false after answering 404/500. */
static bool key_limits(struct http_req *req, struct keys *k, const char *id, struct limits *out)
{
	struct key_record r;
	struct tier t;
	int rc = model_id_valid(id) ? keys_get(k, id, &r) : -ENOENT;

	if (!rc)
		rc = keys_tier_get(k, r.tier, &t);
	if (rc == -ENOENT) {
		http_reply_error(req, 404, BAD_REQ, "key_not_found", NULL, "no key with id '%.32s'",
				 id);
		return false;
	}
	if (rc) {
		http_reply_error(req, 500, "server_error", "internal_error", NULL,
				 "reading the key failed: %s", strerror(-rc));
		return false;
	}
	limits_merge(&t.lim, &r.overrides, out);
	return true;
}

void admin_limits_get(struct http_req *req, struct keys *k, struct budget *b, const char *subject,
		      int64_t now)
{
	struct limits lim;
	bool is_key = strncmp(subject, "key:", 4) == 0;
	cJSON *o, *l, *usage;
	bool ok;

	if (!is_key && !subject_valid(subject)) {
		http_reply_error(req, 404, BAD_REQ, "subject_not_found", NULL,
				 "'%.80s' is not a subject: key:<id>, user:x, team:x, consumer:x "
				 "or tenant:x",
				 subject);
		return;
	}
	if (is_key ? !key_limits(req, k, subject + 4, &lim)
		   : (budget_subject_limits(b, subject, &lim), false))
		return;
	/* a key's lim.act: its per-limit actions resolved with its tier's (limits_merge) */
	o = cJSON_CreateObject();
	l = cJSON_CreateObject();
	ok = o && l && cJSON_AddStringToObject(o, "subject", subject) &&
	     admin_limits_add(l, &lim) && cJSON_AddItemToObject(o, "limits", l);
	if (ok)
		l = NULL;
	ok = ok && cJSON_AddItemToObject(o, "actions", admin_actions_json(lim.act)) &&
	     cJSON_AddStringToObject(o, "mode",
				     limit_mode_name(lim.v[LIMIT_MODE] == LIMIT_MODE_SOFT ||
							     lim.v[LIMIT_MODE] == LIMIT_MODE_HARD
							 ? (enum limit_mode)lim.v[LIMIT_MODE]
							 : budget_opts(b)->mode)) &&
	     (usage = cJSON_AddArrayToObject(o, "usage")) &&
	     budget_status_json(b, subject, is_key ? &lim : NULL, now, false, usage);
	cJSON_Delete(l);
	if (!ok) {
		cJSON_Delete(o);
		o = NULL;
	}
	reply_json(req, 200, o);
}

/* "actions" of a PUT over the stored ones in a: set ones replace, null removes one. */
static int actions_apply(const cJSON *o, uint8_t a[LIMIT__COUNT], struct admin_err *e)
{
	uint8_t set[LIMIT__COUNT];
	uint32_t clear;
	int rc = admin_actions_parse(o, "actions", true, set, &clear, e);

	for (int f = 0; !rc && f < LIMIT__COUNT; f++) {
		if (clear & (1u << f))
			a[f] = LIMIT_ACT_INHERIT;
		else if (set[f])
			a[f] = set[f];
	}
	return rc;
}

/*
 * The PUT body over the stored record r: {"limits": {...}, "actions": {...}}, or the limits
 * object itself (with "actions" among its members). Fields named "limits.<field>".
 */
static int put_parse(const cJSON *body, struct subject_limits *r, struct admin_err *e)
{
	const cJSON *lim = cJSON_GetObjectItemCaseSensitive(body, "limits");
	const cJSON *act = cJSON_GetObjectItemCaseSensitive(body, "actions");
	cJSON *copy = NULL;
	struct limits set;
	uint32_t clear = 0;
	int rc;

	if (!lim) {
		/* the body is the limits object: parse it without its "actions" */
		copy = cJSON_Duplicate(body, 1);
		if (!copy)
			return admin_err_set(e, 500, "server_error", "internal_error", "",
					     "out of memory");
		cJSON_DeleteItemFromObjectCaseSensitive(copy, "actions");
		lim = copy;
	} else if (cJSON_GetArraySize(body) > (act ? 2 : 1)) {
		return admin_err_set(e, 400, BAD_REQ, "unknown_field", "",
				     "the body takes 'limits' and 'actions' only");
	}
	if (!cJSON_IsObject(lim))
		rc = admin_err_set(e, 400, BAD_REQ, "invalid_type", "limits",
				   "limits: must be an object");
	else
		rc = admin_limits_parse(lim, "limits", true, &set, &clear, e);
	for (int f = 0; !rc && f < LIMIT__COUNT; f++) {
		if (clear & (1u << f))
			r->lim.v[f] = LIMIT_UNSET;
		else if (set.v[f] != LIMIT_UNSET)
			r->lim.v[f] = set.v[f];
	}
	if (!rc && act)
		rc = actions_apply(act, r->lim.act, e);
	cJSON_Delete(copy);
	return rc;
}

void admin_limits_put(struct http_req *req, struct store *s, struct keys *k, struct budget *b,
		      const char *subject, const cJSON *body, bool downgrade_ok, int64_t now)
{
	struct subject_limits r;
	struct admin_err e;
	bool found;
	int rc;

	if (!subject_valid(subject)) {
		http_reply_error(req, 400, BAD_REQ, "invalid_subject", "subject",
				 "subject: limits are set for user:x, team:x, consumer:x or "
				 "tenant:x (a key's through PATCH /api/v1/keys/:id)");
		return;
	}
	rc = limits_read(s, subject, &r, &found);
	if (!rc && !found) {
		memset(&r, 0, sizeof(r));
		snprintf(r.subject, sizeof(r.subject), "%s", subject);
		limits_clear(&r.lim);
	}
	if (!rc && (put_parse(body, &r, &e) ||
		    admin_downgrade_check(r.lim.v[LIMIT_ACTION], r.lim.act, "limits", "actions",
					  downgrade_ok, &e))) {
		reply_err(req, &e);
		return;
	}
	/* one transaction; the engine follows only after the commit */
	if (!rc)
		rc = store_write(s, put_txn, &r);
	if (!rc)
		rc = budget_set_limits(b, subject, record_empty(&r) ? NULL : &r.lim);
	if (rc) {
		http_reply_error(req, rc == -ENOSPC ? 503 : 500, "server_error",
				 rc == -ENOSPC ? "store_full" : "internal_error", NULL,
				 "storing the limits of %s failed: %s", subject, strerror(-rc));
		return;
	}
	admin_limits_get(req, k, b, subject, now);
}

void admin_limits_delete(struct http_req *req, struct store *s, struct budget *b,
			 const char *subject)
{
	struct subject_limits r = {0};
	int rc;

	if (!subject_valid(subject)) {
		http_reply_error(req, 404, BAD_REQ, "subject_not_found", NULL,
				 "'%.80s' has no limits of its own", subject);
		return;
	}
	snprintf(r.subject, sizeof(r.subject), "%s", subject);
	limits_clear(&r.lim);
	rc = store_write(s, put_txn, &r);
	if (!rc)
		rc = budget_set_limits(b, subject, NULL);
	if (rc) {
		http_reply_error(req, 500, "server_error", "internal_error", NULL,
				 "removing the limits of %s failed: %s", subject, strerror(-rc));
		return;
	}
	http_reply(req, 204, "application/json", "", 0);
}
