/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Per-limit enforcement actions in the admin API (docs/admin-api.md "Enforcement actions"):
 * the "actions" object {limit name: action} of keys, tiers, owners and tenants, parsed with
 * every refusal naming its member ("actions.tokens_per_minute"), rendered back, and the check
 * that a downgrade action has a limits.downgrade map to go by. Pure, like admin_json.c: no
 * I/O, no registry; unit-tested in tests/unit/test_admin_json.c.
 */
#include <stdio.h>
#include <string.h>

#include "admin_internal.h"

#define BAD_REQ	   "invalid_request_error"
#define MSG_ACTION "must be 'block', 'queue', 'downgrade' or 'alert'"

/* One member of an actions object: its field and action into *f, *act (0 for null). */
static int action_member(const cJSON *it, const char *prefix, bool allow_null, int *f, int *act,
			 struct admin_err *e)
{
	char p[ADMIN_PARAM_MAX];

	snprintf(p, sizeof(p), "%s.%.64s", prefix, it->string);
	*f = limit_field_by_name(it->string);
	if (*f < 0)
		return admin_err_set(e, 400, BAD_REQ, "unknown_field", p,
				     "%s: not a limit name (see docs/admin-api.md, \"Limits\")", p);
	if (!limit_takes_action((enum limit_field) * f))
		return admin_err_set(e, 400, BAD_REQ, "invalid_field", p,
				     "%s: %s takes no action of its own (actions are for request "
				     "rates and counts, tokens, cost, bytes, compute and "
				     "concurrency)",
				     p, it->string);
	if (cJSON_IsNull(it) && allow_null) {
		*act = 0;
		return 0;
	}
	*act = cJSON_IsString(it) ? limit_enum_parse(LIMIT_ACTION, it->valuestring) : -1;
	if (*act <= 0)
		return admin_err_set(
		    e, 400, BAD_REQ, cJSON_IsString(it) ? "invalid_value" : "invalid_type", p,
		    "%s: " MSG_ACTION "%s", p, allow_null ? " (null removes it)" : "");
	return 0;
}

int admin_actions_parse(const cJSON *o, const char *prefix, bool allow_null,
			uint8_t set[LIMIT__COUNT], uint32_t *clear, struct admin_err *e)
{
	const cJSON *it;
	uint32_t seen = 0;

	memset(set, 0, LIMIT__COUNT);
	if (clear)
		*clear = 0;
	if (!cJSON_IsObject(o))
		return admin_err_set(e, 400, BAD_REQ, "invalid_type", prefix,
				     "%s: must be an object of limit name -> action", prefix);
	cJSON_ArrayForEach(it, o)
	{
		int f = 0, act = 0,
		    rc = action_member(it, prefix, allow_null && clear, &f, &act, e);

		if (rc)
			return rc;
		if (seen & (1u << f)) {
			char p[ADMIN_PARAM_MAX];

			snprintf(p, sizeof(p), "%s.%.64s", prefix, it->string);
			return admin_err_set(e, 400, BAD_REQ, "duplicate_field", p,
					     "%s: given more than once", p);
		}
		seen |= 1u << f;
		if (act)
			set[f] = (uint8_t)act;
		else
			*clear |= 1u << f;
	}
	return 0;
}

cJSON *admin_actions_json(const uint8_t actions[LIMIT__COUNT])
{
	cJSON *o = cJSON_CreateObject();

	for (int f = 0; o && f < LIMIT__COUNT; f++)
		if (actions[f] &&
		    !cJSON_AddStringToObject(o, limit_descs[f].name,
					     limit_action_name((enum limit_action)actions[f]))) {
			cJSON_Delete(o);
			return NULL;
		}
	return o;
}

int admin_downgrade_check(uint64_t action, const uint8_t actions[LIMIT__COUNT],
			  const char *limits_prefix, const char *actions_prefix, bool configured,
			  struct admin_err *e)
{
	char p[ADMIN_PARAM_MAX];
	int f;

	if (configured)
		return 0;
	for (f = 0; f < LIMIT__COUNT && actions[f] != LIMIT_ACT_DOWNGRADE; f++)
		;
	if (action == LIMIT_ACT_DOWNGRADE) {
		if (limits_prefix && *limits_prefix)
			snprintf(p, sizeof(p), "%s.action", limits_prefix);
		else
			snprintf(p, sizeof(p), "action");
	} else if (f < LIMIT__COUNT) {
		snprintf(p, sizeof(p), "%s.%s", actions_prefix, limit_descs[f].name);
	} else {
		return 0;
	}
	/* without a map the engine could only block: say so now rather than at the first call */
	return admin_err_set(e, 400, BAD_REQ, "downgrade_not_configured", p,
			     "%s: 'downgrade' needs limits.downgrade (model -> cheaper model) in "
			     "the config, and none is configured; use block, queue or alert",
			     p);
}
