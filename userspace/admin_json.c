/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * JSON <-> model for the admin API (docs/admin-api.md). Request bodies are checked field by
 * field (unknown, repeated, missing, wrong type, bad value), each refusal naming the field
 * by its dotted path, before the registry sees anything, so a bad request changes nothing.
 * Error messages say what is allowed and never repeat the value sent: it may be a secret
 * pasted into the wrong field. Records are rendered as the documented objects. Pure: no I/O
 * and no clock (callers pass "now").
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_internal.h"
#include "util.h"

#define BAD_REQ "invalid_request_error"
#define MSG_OWNER                                                                                  \
	"must be consumer:<id>, user:<id> or team:<id> where <id> is 1-64 of [A-Za-z0-9._-]"
#define MSG_SERVICE "must be 1-64 of [A-Za-z0-9._-]"
#define MSG_TIER    "must be a tier name: 1-32 of [a-z0-9_-]"
#define MSG_NAME    "must be 1-128 printable characters"
#define MSG_EXPIRES                                                                                \
	"must be an RFC 3339 time in the future (such as 2030-01-31T12:00:00Z), or null for "      \
	"never"

/* What a member must be; checked before its value. */
enum ajtype {
	AJ_ANY = 0, /* checked by the field's own parser */
	AJ_STRING,
	AJ_TIME, /* string, or null */
	AJ_OBJECT,
	AJ_ARRAY,
};

struct afield {
	const char *name;
	enum ajtype type;
	bool required;
};

int admin_err_set(struct admin_err *e, unsigned status, const char *type, const char *code,
		  const char *param, const char *fmt, ...)
{
	va_list ap;

	e->status = status;
	e->type = type;
	e->code = code;
	snprintf(e->param, sizeof(e->param), "%s", param ? param : "");
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* "prefix.name", or "name" without a prefix. */
static const char *param_join(char buf[ADMIN_PARAM_MAX], const char *prefix, const char *name)
{
	if (prefix && *prefix)
		snprintf(buf, ADMIN_PARAM_MAX, "%s.%s", prefix, name);
	else
		snprintf(buf, ADMIN_PARAM_MAX, "%s", name);
	return buf;
}

/*
 * Finds a string that escapes a NUL (\u0000): cJSON would end the decoded string there,
 * silently shortening the value, so such bodies are refused. Returns true and the dotted
 * path of the value's field in path ("" at the top level or when the key itself holds
 * the NUL). A small scanner over already-valid JSON: it only tracks the keys of the
 * enclosing objects.
 */
static bool json_space(char c);

static bool json_find_escaped_nul(const char *s, size_t len, char path[ADMIN_PARAM_MAX])
{
	char keys[8][48] = {{0}}, cur[48] = "";
	size_t depth = 0, start = 0;
	bool in_str = false, nul = false, nul_in_key = false;

	for (size_t i = 0; i < len; i++) {
		char ch = s[i];

		if (in_str && ch == '\\') {
			nul |= i + 5 < len && s[i + 1] == 'u' && !memcmp(s + i + 2, "0000", 4);
			i++;
		} else if (in_str && ch == '"') {
			size_t j = i + 1;

			while (j < len && json_space(s[j]))
				j++;
			in_str = false;
			nul_in_key = nul && j < len && s[j] == ':';
			if (!nul && j < len && s[j] == ':') /* it was a key */
				snprintf(cur, sizeof(cur), "%.*s", (int)(i - start), s + start);
			if (nul)
				break;
		} else if (!in_str && ch == '"') {
			in_str = true;
			start = i + 1;
		} else if (!in_str && ch == '{' && depth < 8) {
			snprintf(keys[depth++], sizeof(keys[0]), "%s", cur);
			cur[0] = '\0';
		} else if (!in_str && ch == '}' && depth > 0) {
			snprintf(cur, sizeof(cur), "%s", keys[--depth]);
		}
	}
	if (!nul)
		return false;
	path[0] = '\0';
	if (nul_in_key)
		return true;
	for (size_t d = 1; d < depth; d++)
		snprintf(path + strlen(path), ADMIN_PARAM_MAX - strlen(path), "%s%s",
			 path[0] ? "." : "", keys[d]);
	snprintf(path + strlen(path), ADMIN_PARAM_MAX - strlen(path), "%s%s", path[0] ? "." : "",
		 cur);
	return true;
}

/*
 * A name from the client is repeated in an error only if it looks like one of ours: a
 * misplaced secret pasted as a field or query name must never be echoed back.
 */
static const char *echo_name(const char *name)
{
	size_t n = strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_");

	return n > 0 && n <= 40 && name[n] == '\0' ? name : "(name not shown)";
}

static bool json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int admin_json_parse(const char *body, size_t len, bool optional, cJSON **out, struct admin_err *e)
{
	char path[ADMIN_PARAM_MAX];
	const char *end = NULL;
	size_t i = 0;
	cJSON *j;

	*out = NULL;
	while (i < len && json_space(body[i]))
		i++;
	if (i == len)
		return optional ? 0
				: admin_err_set(e, 400, BAD_REQ, "invalid_body", NULL,
						"a JSON object body is required");
	if (memchr(body, '\0', len))
		return admin_err_set(e, 400, BAD_REQ, "invalid_json", NULL,
				     "the body is not valid JSON: it holds a NUL byte");
	j = cJSON_ParseWithLengthOpts(body, len, &end, false);
	if (!j)
		return admin_err_set(e, 400, BAD_REQ, "invalid_json", NULL,
				     "the body is not valid JSON (error near byte %zu)",
				     end ? (size_t)(end - body) : 0);
	while (end < body + len && json_space(*end))
		end++;
	if (end != body + len) {
		cJSON_Delete(j);
		return admin_err_set(e, 400, BAD_REQ, "invalid_json", NULL,
				     "the body has more after its JSON value (at byte %zu)",
				     (size_t)(end - body));
	}
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return admin_err_set(e, 400, BAD_REQ, "invalid_body", NULL,
				     "the body must be a JSON object");
	}
	if (json_find_escaped_nul(body, len, path)) {
		cJSON_Delete(j);
		return admin_err_set(e, 400, BAD_REQ, "invalid_value", path[0] ? path : NULL,
				     "%s%sstrings may not contain NUL (\\u0000)", path,
				     path[0] ? ": " : "");
	}
	*out = j;
	return 0;
}

static int field_index(const struct afield *f, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(f[i].name, name) == 0)
			return (int)i;
	}
	return -1;
}

static int type_check(const cJSON *v, enum ajtype t, const char *param, struct admin_err *e)
{
	static const char *const want[] = {
	    [AJ_STRING] = "a string",
	    [AJ_TIME] = "an RFC 3339 time string or null",
	    [AJ_OBJECT] = "an object",
	    [AJ_ARRAY] = "an array",
	};
	bool ok = t == AJ_ANY || (t == AJ_STRING && cJSON_IsString(v)) ||
		  (t == AJ_TIME && (cJSON_IsString(v) || cJSON_IsNull(v))) ||
		  (t == AJ_OBJECT && cJSON_IsObject(v)) || (t == AJ_ARRAY && cJSON_IsArray(v));

	return ok ? 0
		  : admin_err_set(e, 400, BAD_REQ, "invalid_type", param, "%s: must be %s", param,
				  want[t]);
}

/*
 * Matches the members of o to fields: an unknown or repeated member is refused, then in
 * table order a missing required one, then a wrong type. found[i] gets member i or NULL.
 * An object with more members than fields always has an unknown or repeated one among its
 * first n + 1, so this stays quadratic in n only.
 */
static int fields_get(const cJSON *o, const struct afield *f, size_t n, const char *prefix,
		      const cJSON **found, struct admin_err *e)
{
	char p[ADMIN_PARAM_MAX];
	const cJSON *m;
	int i;

	memset(found, 0, n * sizeof(*found));
	cJSON_ArrayForEach(m, o)
	{
		i = field_index(f, n, m->string);
		if (i < 0)
			return admin_err_set(e, 400, BAD_REQ, "unknown_field",
					     param_join(p, prefix, echo_name(m->string)),
					     "%s: unknown field", p);
		if (found[i])
			return admin_err_set(e, 400, BAD_REQ, "invalid_json",
					     param_join(p, prefix, m->string),
					     "%s: given more than once", p);
		found[i] = m;
	}
	for (size_t k = 0; k < n; k++) {
		param_join(p, prefix, f[k].name);
		if (!found[k] && f[k].required)
			return admin_err_set(e, 400, BAD_REQ, "missing_field", p, "%s: required",
					     p);
		if (found[k] && type_check(found[k], f[k].type, p, e))
			return -EINVAL;
	}
	return 0;
}

/* ---- limits ---- */

/* Stored milli units as a decimal: 2500 -> "2.5", 10000 -> "10", 125 -> "0.125". */
static void milli_format(uint64_t v, char buf[32])
{
	int n = snprintf(buf, 32, "%" PRIu64, v / 1000);

	if (v % 1000) {
		snprintf(buf + n, 32 - (size_t)n, ".%03u", (unsigned)(v % 1000));
		for (n = (int)strlen(buf); buf[n - 1] == '0'; n--)
			buf[n - 1] = '\0';
	}
}

static int limit_range_err(enum limit_field f, const char *param, struct admin_err *e)
{
	const struct limit_desc *d = &limit_descs[f];
	char lo[32], hi[32];

	if (!d->milli)
		return admin_err_set(e, 400, BAD_REQ, "invalid_value", param,
				     "%s: must be an integer between %" PRIu64 " and %" PRIu64,
				     param, d->min, d->max);
	milli_format(d->min, lo);
	milli_format(d->max, hi);
	return admin_err_set(e, 400, BAD_REQ, "invalid_value", param,
			     "%s: must be a number between %s and %s with at most 3 decimals",
			     param, lo, hi);
}

/* Stored nano units (USD 1e-9) as a decimal with up to 9 places, trailing zeros cut. */
static void nano_format(uint64_t v, char buf[32])
{
	int n = snprintf(buf, 32, "%" PRIu64, v / 1000000000u);

	if (v % 1000000000u) {
		snprintf(buf + n, 32 - (size_t)n, ".%09u", (unsigned)(v % 1000000000u));
		for (n = (int)strlen(buf); buf[n - 1] == '0'; n--)
			buf[n - 1] = '\0';
	}
}

/* An enum limit ("mode": "soft"): its stored index. */
static int limit_enum_get(const cJSON *v, enum limit_field f, const char *param, uint64_t *out,
			  struct admin_err *e)
{
	const struct limit_desc *d = &limit_descs[f];
	char allowed[96];
	size_t n = 0;
	int i = cJSON_IsString(v) ? limit_enum_parse(f, v->valuestring) : -EINVAL;

	if (i >= 0) {
		*out = (uint64_t)i;
		return 0;
	}
	allowed[0] = '\0';
	for (unsigned k = 0; k < d->nnames && n < sizeof(allowed); k++)
		if (d->names[k])
			n += (size_t)snprintf(allowed + n, sizeof(allowed) - n, "%s'%s'",
					      n ? ", " : "", d->names[k]);
	return admin_err_set(e, 400, BAD_REQ, cJSON_IsString(v) ? "invalid_value" : "invalid_type",
			     param, "%s: must be one of %s", param, allowed);
}

/* A USD amount with up to 9 decimals, exact in the same sense as the milli numbers. */
static int limit_nano_get(double x, enum limit_field f, const char *param, uint64_t *out,
			  struct admin_err *e)
{
	const struct limit_desc *d = &limit_descs[f];
	char buf[32];
	uint64_t u;

	if (!(x >= (double)d->min / 1e9 && x <= (double)d->max / 1e9))
		goto bad;
	u = (uint64_t)(x * 1e9 + 0.5);
	snprintf(buf, sizeof(buf), "%" PRIu64 ".%09" PRIu64, u / 1000000000u, u % 1000000000u);
	if (strtod(buf, NULL) != x)
		goto bad;
	*out = u;
	return 0;
bad:
	nano_format(d->max, buf);
	return admin_err_set(e, 400, BAD_REQ, "invalid_value", param,
			     "%s: must be a USD amount from 0 to %s with at most 9 decimals", param,
			     buf);
}

int admin_limit_parse(const cJSON *v, enum limit_field f, const char *param, uint64_t *out,
		      struct admin_err *e)
{
	const struct limit_desc *d = &limit_descs[f];
	double x, m;
	uint64_t u;

	if (d->names)
		return limit_enum_get(v, f, param, out, e);
	if (!cJSON_IsNumber(v))
		return admin_err_set(e, 400, BAD_REQ, "invalid_type", param, "%s: must be %s",
				     param, d->milli || d->nano ? "a number" : "an integer");
	x = v->valuedouble;
	if (d->nano)
		return limit_nano_get(x, f, param, out, e);
	m = d->milli ? x * 1000.0 : x;
	/* the range test comes first, so the conversion below cannot overflow */
	if (!(m >= (double)d->min && m <= (double)d->max))
		return limit_range_err(f, param, e);
	u = (uint64_t)(m + 0.5);
	/*
	 * Exact, not within an epsilon: cJSON reads numbers with strtod, which rounds a decimal
	 * with up to 3 places to the same double as u / 1000.0 does, and anything else to
	 * another one (1.2345 -> 1234.5 milli: refused).
	 */
	if ((d->milli && (double)u / 1000.0 != x) || (!d->milli && (double)u != x))
		return limit_range_err(f, param, e);
	*out = u;
	return 0;
}

int admin_limits_parse(const cJSON *o, const char *prefix, bool allow_null, struct limits *set,
		       uint32_t *clear, struct admin_err *e)
{
	struct afield f[LIMIT__COUNT];
	const cJSON *found[LIMIT__COUNT];
	char p[ADMIN_PARAM_MAX];
	int rc;

	limits_clear(set);
	if (clear)
		*clear = 0;
	for (int i = 0; i < LIMIT__COUNT; i++)
		f[i] = (struct afield){limit_descs[i].name, AJ_ANY, false};
	rc = fields_get(o, f, LIMIT__COUNT, prefix, found, e);
	for (int i = 0; !rc && i < LIMIT__COUNT; i++) {
		if (!found[i])
			continue;
		param_join(p, prefix, f[i].name);
		if (cJSON_IsNull(found[i]) && allow_null && clear)
			*clear |= 1u << i;
		else if (cJSON_IsNull(found[i]))
			rc = admin_err_set(e, 400, BAD_REQ, "invalid_type", p,
					   "%s: must be a number (null removes an override, "
					   "in PATCH only)",
					   p);
		else
			rc = admin_limit_parse(found[i], (enum limit_field)i, p, &set->v[i], e);
	}
	return rc;
}

/* ---- keys ---- */

static int expires_parse(const cJSON *v, int64_t now, int64_t *out, struct admin_err *e)
{
	int64_t t;

	if (cJSON_IsNull(v)) {
		*out = 0;
		return 0;
	}
	if (tg_rfc3339_parse(v->valuestring, &t) || t <= now)
		return admin_err_set(e, 400, BAD_REQ, "invalid_value", "expires_at",
				     "expires_at: " MSG_EXPIRES);
	*out = t;
	return 0;
}

/* name, service and tier values, shared by create and patch (NULL: not given). */
static int key_strings_check(const cJSON *name, const cJSON *service, const cJSON *tier,
			     struct admin_err *e)
{
	if (name && !model_name_valid(name->valuestring))
		return admin_err_set(e, 400, BAD_REQ, "invalid_value", "name", "name: " MSG_NAME);
	if (service && !model_service_valid(service->valuestring))
		return admin_err_set(e, 400, BAD_REQ, "invalid_value", "service",
				     "service: " MSG_SERVICE);
	if (tier && !model_tier_name_valid(tier->valuestring))
		return admin_err_set(e, 400, BAD_REQ, "invalid_value", "tier", "tier: " MSG_TIER);
	return 0;
}

enum { KC_NAME = 0, KC_OWNER, KC_SERVICE, KC_TIER, KC_EXPIRES, KC_LIMITS, KC_ACTIONS, KC__COUNT };

int admin_key_create_parse(const cJSON *o, int64_t now, struct admin_key_create *out,
			   struct admin_err *e)
{
	static const struct afield f[KC__COUNT] = {
	    [KC_NAME] = {"name", AJ_STRING, true},
	    [KC_OWNER] = {"owner", AJ_STRING, false},
	    [KC_SERVICE] = {"service", AJ_STRING, false},
	    [KC_TIER] = {"tier", AJ_STRING, false},
	    [KC_EXPIRES] = {"expires_at", AJ_TIME, false},
	    [KC_LIMITS] = {"limits", AJ_OBJECT, false},
	    [KC_ACTIONS] = {"actions", AJ_OBJECT, false},
	};
	const cJSON *v[KC__COUNT];
	struct key_spec *s = &out->spec;
	int rc;

	memset(out, 0, sizeof(*out));
	limits_clear(&s->overrides);
	rc = fields_get(o, f, KC__COUNT, "", v, e);
	if (!rc)
		rc = key_strings_check(v[KC_NAME], v[KC_SERVICE], v[KC_TIER], e);
	if (!rc && v[KC_OWNER] && !model_owner_valid(v[KC_OWNER]->valuestring))
		rc = admin_err_set(e, 400, BAD_REQ, "invalid_value", "owner", "owner: " MSG_OWNER);
	if (!rc && v[KC_EXPIRES])
		rc = expires_parse(v[KC_EXPIRES], now, &s->expires_at, e);
	if (!rc && v[KC_LIMITS])
		rc = admin_limits_parse(v[KC_LIMITS], "limits", false, &s->overrides, NULL, e);
	if (!rc && v[KC_ACTIONS])
		rc =
		    admin_actions_parse(v[KC_ACTIONS], "actions", false, s->overrides.act, NULL, e);
	if (rc)
		return rc;
	s->name = v[KC_NAME]->valuestring;
	s->owner = v[KC_OWNER] ? v[KC_OWNER]->valuestring : NULL;
	s->service = v[KC_SERVICE] ? v[KC_SERVICE]->valuestring : NULL;
	s->tier = v[KC_TIER] ? v[KC_TIER]->valuestring : NULL;
	out->has_owner = v[KC_OWNER] != NULL;
	out->has_tier = v[KC_TIER] != NULL;
	out->has_limits = v[KC_LIMITS] != NULL || v[KC_ACTIONS] != NULL;
	return 0;
}

int admin_key_patch_parse(const cJSON *o, int64_t now, struct key_patch *p, struct admin_err *e)
{
	/* the same members as a creation; owner is listed to be refused by name */
	static const struct afield f[KC__COUNT] = {
	    [KC_NAME] = {"name", AJ_STRING, false},
	    [KC_OWNER] = {"owner", AJ_ANY, false},
	    [KC_SERVICE] = {"service", AJ_STRING, false},
	    [KC_TIER] = {"tier", AJ_STRING, false},
	    [KC_EXPIRES] = {"expires_at", AJ_TIME, false},
	    [KC_LIMITS] = {"limits", AJ_OBJECT, false},
	    [KC_ACTIONS] = {"actions", AJ_OBJECT, false},
	};
	const cJSON *v[KC__COUNT];
	int rc;

	memset(p, 0, sizeof(*p));
	limits_clear(&p->set);
	rc = fields_get(o, f, KC__COUNT, "", v, e);
	if (!rc && v[KC_OWNER])
		rc = admin_err_set(e, 400, BAD_REQ, "immutable_field", "owner",
				   "owner: cannot be changed; create a key for the new owner");
	if (!rc)
		rc = key_strings_check(v[KC_NAME], v[KC_SERVICE], v[KC_TIER], e);
	if (!rc && v[KC_EXPIRES]) {
		rc = expires_parse(v[KC_EXPIRES], now, &p->expires_at, e);
		p->set_expires = true;
	}
	if (!rc && v[KC_LIMITS])
		rc = admin_limits_parse(v[KC_LIMITS], "limits", true, &p->set, &p->clear_mask, e);
	if (!rc && v[KC_ACTIONS])
		rc = admin_actions_parse(v[KC_ACTIONS], "actions", true, p->set.act,
					 &p->clear_act_mask, e);
	if (rc)
		return rc;
	p->name = v[KC_NAME] ? v[KC_NAME]->valuestring : NULL;
	p->service = v[KC_SERVICE] ? v[KC_SERVICE]->valuestring : NULL;
	p->tier = v[KC_TIER] ? v[KC_TIER]->valuestring : NULL;
	return 0;
}

int admin_rotate_parse(const cJSON *o, int64_t *grace_sec, struct admin_err *e)
{
	static const struct afield f[] = {{"grace_period_sec", AJ_ANY, false}};
	const cJSON *v[1];
	double x;
	int rc;

	*grace_sec = -1;
	if (!o)
		return 0;
	rc = fields_get(o, f, 1, "", v, e);
	if (rc || !v[0])
		return rc;
	if (!cJSON_IsNumber(v[0]))
		return admin_err_set(e, 400, BAD_REQ, "invalid_type", "grace_period_sec",
				     "grace_period_sec: must be an integer (seconds)");
	x = v[0]->valuedouble;
	if (!(x >= 0 && x <= ADMIN_GRACE_MAX) || x != (double)(int64_t)x)
		return admin_err_set(e, 400, BAD_REQ, "invalid_value", "grace_period_sec",
				     "grace_period_sec: must be an integer between 0 and %d "
				     "(seconds)",
				     ADMIN_GRACE_MAX);
	*grace_sec = (int64_t)x;
	return 0;
}

/* ---- tiers ---- */

int admin_tier_parse(const cJSON *o, const char *path_name, const char *prefix, struct tier *t,
		     struct admin_err *e)
{
	enum { T_NAME = LIMIT__COUNT, T_ACTIONS, T__COUNT };
	struct afield f[T__COUNT];
	const cJSON *v[T__COUNT];
	char p[ADMIN_PARAM_MAX];
	const char *name;
	int rc;

	memset(t, 0, sizeof(*t));
	/* the fields older than issue 5 are required; the engine's ones default to 0 */
	for (int i = 0; i < LIMIT__COUNT; i++)
		f[i] = (struct afield){limit_descs[i].name, AJ_ANY, i < LIMIT_V2_COUNT};
	f[T_NAME] = (struct afield){"name", AJ_STRING, path_name == NULL};
	f[T_ACTIONS] = (struct afield){"actions", AJ_OBJECT, false};
	rc = fields_get(o, f, T__COUNT, prefix, v, e);
	if (rc)
		return rc;
	name = v[T_NAME] ? v[T_NAME]->valuestring : path_name;
	param_join(p, prefix, "name");
	if (!model_tier_name_valid(name))
		return admin_err_set(e, 400, BAD_REQ, "invalid_value", p, "%s: " MSG_TIER, p);
	if (path_name && strcmp(name, path_name) != 0)
		return admin_err_set(e, 400, BAD_REQ, "invalid_value", p,
				     "%s: must be left out or be the name in the path ('%s')", p,
				     path_name);
	for (int i = 0; i < LIMIT__COUNT; i++) {
		if (!v[i])
			continue; /* an optional field left out: 0, none */
		rc = admin_limit_parse(v[i], (enum limit_field)i, param_join(p, prefix, f[i].name),
				       &t->lim.v[i], e);
		if (rc)
			return rc;
	}
	/* a tier is replaced whole: actions left out are none, null is not needed */
	if (v[T_ACTIONS] &&
	    (rc = admin_actions_parse(v[T_ACTIONS], param_join(p, prefix, "actions"), false,
				      t->lim.act, NULL, e)))
		return rc;
	snprintf(t->name, sizeof(t->name), "%s", name);
	return 0;
}

/* The tiers of a set, each complete and named once. */
static int tiers_each(const cJSON *arr, struct tier *out, size_t n, struct admin_err *e)
{
	char prefix[ADMIN_PARAM_MAX];
	const cJSON *m = arr->child;
	int rc;

	for (size_t i = 0; i < n; i++, m = m->next) {
		snprintf(prefix, sizeof(prefix), "tiers[%zu]", i);
		if (!cJSON_IsObject(m))
			return admin_err_set(e, 400, BAD_REQ, "invalid_type", prefix,
					     "%s: must be a tier object", prefix);
		rc = admin_tier_parse(m, NULL, prefix, &out[i], e);
		if (rc)
			return rc;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(out[j].name, out[i].name) == 0)
				return admin_err_set(e, 400, BAD_REQ, "invalid_value", prefix,
						     "%s.name: tier '%s' is in the set twice",
						     prefix, out[i].name);
		}
	}
	return 0;
}

int admin_tiers_parse(const cJSON *o, struct tier **out, size_t *n, struct admin_err *e)
{
	static const struct afield f[] = {{"tiers", AJ_ARRAY, true}};
	const cJSON *v[1];
	struct tier *t;
	int rc, count;

	*out = NULL;
	*n = 0;
	rc = fields_get(o, f, 1, "", v, e);
	if (rc)
		return rc;
	count = cJSON_GetArraySize(v[0]);
	if (count > ADMIN_TIERS_MAX)
		return admin_err_set(e, 400, BAD_REQ, "invalid_value", "tiers",
				     "tiers: at most %d tiers", ADMIN_TIERS_MAX);
	t = calloc((size_t)count + 1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	rc = tiers_each(v[0], t, (size_t)count, e);
	if (rc) {
		free(t);
		return rc;
	}
	*out = t;
	*n = (size_t)count;
	return 0;
}

/* ---- admin tokens ---- */

enum { TK_NAME = 0, TK_ROLE, TK_CONSUMER, TK_TIER, TK__COUNT };

/* consumer and tier: required/optional for the consumer role, refused for the others. */
static int token_consumer_check(const cJSON *const *v, enum token_role role, struct admin_err *e)
{
	if (role != ROLE_CONSUMER) {
		if (v[TK_CONSUMER] || v[TK_TIER])
			return admin_err_set(e, 400, BAD_REQ, "invalid_value",
					     v[TK_CONSUMER] ? "consumer" : "tier",
					     "%s: only for tokens of role consumer",
					     v[TK_CONSUMER] ? "consumer" : "tier");
		return 0;
	}
	if (!v[TK_CONSUMER])
		return admin_err_set(e, 400, BAD_REQ, "missing_field", "consumer",
				     "consumer: required for role consumer");
	if (!model_consumer_id_valid(v[TK_CONSUMER]->valuestring))
		return admin_err_set(e, 400, BAD_REQ, "invalid_value", "consumer",
				     "consumer: must be 1-64 of [A-Za-z0-9._-]");
	if (v[TK_TIER] && !model_tier_name_valid(v[TK_TIER]->valuestring))
		return admin_err_set(e, 400, BAD_REQ, "invalid_value", "tier", "tier: " MSG_TIER);
	return 0;
}

int admin_token_parse(const cJSON *o, struct token_spec *s, struct admin_err *e)
{
	static const struct afield f[TK__COUNT] = {
	    [TK_NAME] = {"name", AJ_STRING, true},
	    [TK_ROLE] = {"role", AJ_STRING, true},
	    [TK_CONSUMER] = {"consumer", AJ_STRING, false},
	    [TK_TIER] = {"tier", AJ_STRING, false},
	};
	const cJSON *v[TK__COUNT];
	int rc, role;

	memset(s, 0, sizeof(*s));
	rc = fields_get(o, f, TK__COUNT, "", v, e);
	if (rc)
		return rc;
	if (!model_name_valid(v[TK_NAME]->valuestring))
		return admin_err_set(e, 400, BAD_REQ, "invalid_value", "name", "name: " MSG_NAME);
	role = token_role_parse(v[TK_ROLE]->valuestring);
	if (role < 0)
		return admin_err_set(e, 400, BAD_REQ, "invalid_value", "role",
				     "role: must be admin, viewer or consumer");
	rc = token_consumer_check(v, (enum token_role)role, e);
	if (rc)
		return rc;
	s->name = v[TK_NAME]->valuestring;
	s->role = (enum token_role)role;
	s->consumer = v[TK_CONSUMER] ? v[TK_CONSUMER]->valuestring : NULL;
	s->tier = v[TK_TIER] ? v[TK_TIER]->valuestring : NULL;
	return 0;
}

/* ---- list query ---- */

enum { Q_OWNER = 0, Q_SERVICE, Q_TIER, Q_STATUS, Q_LIMIT, Q_AFTER, Q__COUNT };
static const char *const query_names[Q__COUNT] = {"owner",  "service", "tier",
						  "status", "limit",   "after"};

void admin_list_query_init(struct admin_list_query *q)
{
	memset(q, 0, sizeof(*q));
	q->status = -1;
	q->limit = ADMIN_LIST_DEFAULT;
}

static int query_bad(const char *k, const char *why, struct admin_err *e)
{
	return admin_err_set(e, 400, BAD_REQ, "invalid_query", k, "%s: %s", k, why);
}

static int query_limit(const char *v, size_t *out, struct admin_err *e)
{
	unsigned long n = 0;
	size_t i;

	for (i = 0; v[i] >= '0' && v[i] <= '9' && i < 5; i++)
		n = n * 10 + (unsigned long)(v[i] - '0');
	if (i == 0 || v[i] || n < 1 || n > ADMIN_LIST_MAX)
		return query_bad("limit", "must be an integer between 1 and 1000", e);
	*out = n;
	return 0;
}

static int query_status(const char *v, int *out, struct admin_err *e)
{
	for (int s = KEY_ACTIVE; s <= KEY_EXPIRED; s++) {
		if (strcmp(v, key_status_name((enum key_status)s)) == 0) {
			*out = s;
			return 0;
		}
	}
	return query_bad("status", "must be active, revoked or expired", e);
}

int admin_list_query_add(struct admin_list_query *q, const char *k, const char *v,
			 struct admin_err *e)
{
	int i;

	for (i = 0; i < Q__COUNT && strcmp(k, query_names[i]) != 0; i++)
		;
	if (i == Q__COUNT)
		return query_bad(echo_name(k),
				 "unknown query parameter; known: owner, service, tier, "
				 "status, limit, after",
				 e);
	if (q->seen & (1u << i))
		return query_bad(k, "given more than once", e);
	q->seen |= 1u << i;
	switch (i) {
	case Q_OWNER:
		if (!model_owner_valid(v))
			return query_bad(k, MSG_OWNER, e);
		snprintf(q->owner, sizeof(q->owner), "%s", v);
		return 0;
	case Q_SERVICE:
		if (!model_service_valid(v))
			return query_bad(k, MSG_SERVICE, e);
		snprintf(q->service, sizeof(q->service), "%s", v);
		return 0;
	case Q_TIER:
		if (!model_tier_name_valid(v))
			return query_bad(k, MSG_TIER, e);
		snprintf(q->tier, sizeof(q->tier), "%s", v);
		return 0;
	case Q_STATUS:
		return query_status(v, &q->status, e);
	case Q_LIMIT:
		return query_limit(v, &q->limit, e);
	default:
		if (*v && !model_id_valid(v))
			return query_bad(k, "must be a key id (12 of [a-z0-9]), as in next_after",
					 e);
		snprintf(q->after, sizeof(q->after), "%s", v);
		return 0;
	}
}

void admin_list_query_filter(const struct admin_list_query *q, struct keys_filter *f)
{
	f->owner = q->owner[0] ? q->owner : NULL;
	f->service = q->service[0] ? q->service : NULL;
	f->tier = q->tier[0] ? q->tier : NULL;
	f->status = q->status;
}

/* ---- rendering ---- */

/* Limits go out as raw numbers, so large integers keep every digit (no %g rounding). */
static bool limit_add(cJSON *o, enum limit_field f, uint64_t v)
{
	char buf[32];

	const char *name = limit_enum_name(f, v);

	if (limit_descs[f].names)
		return name ? cJSON_AddStringToObject(o, limit_descs[f].name, name) != NULL
			    : cJSON_AddStringToObject(o, limit_descs[f].name, "inherit") != NULL;
	if (limit_descs[f].milli)
		milli_format(v, buf);
	else if (limit_descs[f].nano)
		nano_format(v, buf);
	else
		snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return cJSON_AddRawToObject(o, limit_descs[f].name, buf) != NULL;
}

bool admin_limits_add(cJSON *o, const struct limits *l)
{
	for (int f = 0; f < LIMIT__COUNT; f++) {
		/* the engine's fields are shown when set to something (0 is none / inherit) */
		if (l->v[f] == LIMIT_UNSET || (f >= LIMIT_V2_COUNT && l->v[f] == 0))
			continue;
		if (!limit_add(o, (enum limit_field)f, l->v[f]))
			return false;
	}
	return true;
}

/* An RFC 3339 time, or null for 0 (never / not yet). */
static bool time_add(cJSON *o, const char *name, int64_t t)
{
	char buf[32];

	if (!t)
		return cJSON_AddNullToObject(o, name) != NULL;
	tg_rfc3339_format(t, buf);
	return cJSON_AddStringToObject(o, name, buf) != NULL;
}

/* o.name = the actions object of act; false when out of memory. */
static bool actions_add(cJSON *o, const char *name, const uint8_t act[LIMIT__COUNT])
{
	cJSON *a = admin_actions_json(act);

	if (a && cJSON_AddItemToObject(o, name, a))
		return true;
	cJSON_Delete(a);
	return false;
}

/*
 * "limits" and "actions": the key's own; "effective_limits" and "effective_actions": merged
 * with its tier (limits_merge's resolution order; a limit not in effective_actions takes
 * effective_limits.action, else limits.action).
 */
static bool key_limits_add(cJSON *o, const struct key_record *r, const struct limits *tier)
{
	cJSON *lim = cJSON_AddObjectToObject(o, "limits"), *eff;
	struct limits merged;

	if (!lim || !admin_limits_add(lim, &r->overrides) ||
	    !actions_add(o, "actions", r->overrides.act))
		return false;
	if (!tier)
		return cJSON_AddNullToObject(o, "effective_limits") != NULL &&
		       cJSON_AddNullToObject(o, "effective_actions") != NULL;
	limits_merge(tier, &r->overrides, &merged);
	eff = cJSON_AddObjectToObject(o, "effective_limits");
	return eff && admin_limits_add(eff, &merged) &&
	       actions_add(o, "effective_actions", merged.act);
}

/* "slot": the request-rate slot index (maps bpftool's tg_slots dump to keys), null if none. */
static bool slot_add(cJSON *o, const struct key_record *r)
{
	if (r->slot == TG_SLOT_NONE)
		return cJSON_AddNullToObject(o, "slot") != NULL;
	return cJSON_AddNumberToObject(o, "slot", (double)r->slot) != NULL;
}

cJSON *admin_key_json(const struct key_record *r, const struct limits *tier_limits, int64_t now)
{
	cJSON *o = cJSON_CreateObject();
	char prefix[TG_ID_LEN + 8];

	snprintf(prefix, sizeof(prefix), TG_KEY_PREFIX "%s_", r->id);
	if (!o || !cJSON_AddStringToObject(o, "object", "api_key") ||
	    !cJSON_AddStringToObject(o, "id", r->id) ||
	    !cJSON_AddStringToObject(o, "prefix", prefix) ||
	    !cJSON_AddStringToObject(o, "name", r->name) ||
	    !cJSON_AddStringToObject(o, "owner", r->owner) ||
	    !cJSON_AddStringToObject(o, "service", r->service) ||
	    !cJSON_AddStringToObject(o, "tier", r->tier) || !key_limits_add(o, r, tier_limits) ||
	    !cJSON_AddStringToObject(o, "status", key_status_name(key_status_at(r, now))) ||
	    !time_add(o, "created_at", r->created_at) ||
	    !time_add(o, "expires_at", r->expires_at) ||
	    !time_add(o, "revoked_at", r->revoked_at) ||
	    !time_add(o, "last_used_at", r->last_used_at) ||
	    !time_add(o, "rotated_at", r->rotated_at) ||
	    !time_add(o, "previous_valid_until", r->prev_valid_until) || !slot_add(o, r)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

cJSON *admin_tier_json(const struct tier *t)
{
	cJSON *o = cJSON_CreateObject();
	bool acts = false;

	for (int f = 0; f < LIMIT__COUNT; f++)
		acts |= t->lim.act[f] != LIMIT_ACT_INHERIT;
	/* "actions" only when the tier has one: a tier PUT without it reads back the same */
	if (!o || !cJSON_AddStringToObject(o, "object", "tier") ||
	    !cJSON_AddStringToObject(o, "name", t->name) || !admin_limits_add(o, &t->lim) ||
	    (acts && !actions_add(o, "actions", t->lim.act))) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

cJSON *admin_token_json(const struct token_record *r)
{
	cJSON *o = cJSON_CreateObject();
	bool consumer = r->role == ROLE_CONSUMER;

	if (!o || !cJSON_AddStringToObject(o, "object", "admin_token") ||
	    !cJSON_AddStringToObject(o, "id", r->id) ||
	    !cJSON_AddStringToObject(o, "name", r->name) ||
	    !cJSON_AddStringToObject(o, "role", token_role_name((enum token_role)r->role)) ||
	    (consumer && (!cJSON_AddStringToObject(o, "consumer", r->consumer) ||
			  !cJSON_AddStringToObject(o, "tier", r->tier))) ||
	    !cJSON_AddStringToObject(o, "status", r->revoked_at ? "revoked" : "active") ||
	    !time_add(o, "created_at", r->created_at) ||
	    !time_add(o, "revoked_at", r->revoked_at) ||
	    !time_add(o, "last_used_at", r->last_used_at)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}
