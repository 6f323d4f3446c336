/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Limit statuses as JSON (the contract's "limit status" object), shared by the admin API's
 * /api/v1/limits and the data plane's consumer endpoints, so both show the same numbers:
 * cost in USD, compute in seconds, everything else in its own unit.
 */
#include <cjson/cJSON.h>

#include "budget.h"
#include "budget_json.h"
#include "util.h"

/* An amount of kind k in the unit the JSON shows. */
static double shown(enum budget_kind k, uint64_t v)
{
	if (k == BUDGET_KIND_COST)
		return (double)v / 1e9;
	if (k == BUDGET_KIND_COMPUTE)
		return (double)v / 1e3;
	return (double)v;
}

cJSON *budget_hit_json(const struct budget_hit *h)
{
	cJSON *o = cJSON_CreateObject();
	uint64_t held = h->used + h->reserved;
	char reset[32];
	bool ok;

	tg_rfc3339_format(h->reset_at, reset);
	ok = o && cJSON_AddStringToObject(o, "subject", h->subject) &&
	     cJSON_AddStringToObject(o, "limit", limit_descs[h->limit].name) &&
	     cJSON_AddStringToObject(o, "window", h->window) &&
	     cJSON_AddStringToObject(o, "kind", budget_kind_name(h->kind)) &&
	     cJSON_AddNumberToObject(o, "value", shown(h->kind, h->value)) &&
	     cJSON_AddNumberToObject(o, "used", shown(h->kind, h->used)) &&
	     cJSON_AddNumberToObject(o, "reserved", shown(h->kind, h->reserved)) &&
	     cJSON_AddNumberToObject(o, "remaining",
				     shown(h->kind, held >= h->value ? 0 : h->value - held)) &&
	     cJSON_AddStringToObject(o, "reset_at", reset) &&
	     cJSON_AddBoolToObject(o, "rolling", h->rolling) &&
	     cJSON_AddStringToObject(o, "action", limit_action_name(h->action)) &&
	     cJSON_AddStringToObject(o, "mode", limit_mode_name(h->mode)) &&
	     cJSON_AddBoolToObject(o, "exceeded", held >= h->value) &&
	     cJSON_AddNumberToObject(o, "ratio", h->value ? (double)held / (double)h->value : 0);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

bool budget_status_json(struct budget *b, const char *subject, const struct limits *key_limits,
			int64_t now, bool quotas_only, cJSON *arr)
{
	struct budget_hit h[BUDGET_STATUS_MAX];
	size_t n = budget_status(b, subject, key_limits, now, h, BUDGET_STATUS_MAX);

	for (size_t i = 0; i < n; i++) {
		cJSON *o;

		/* quotas: the amounts per day and longer, not the rates nor concurrency */
		if (quotas_only && (h[i].kind == BUDGET_KIND_CONCURRENCY ||
				    h[i].limit == LIMIT_TPM || h[i].limit == LIMIT_TPH))
			continue;
		o = budget_hit_json(&h[i]);
		if (!o || !cJSON_AddItemToArray(arr, o)) {
			cJSON_Delete(o);
			return false;
		}
	}
	return true;
}
