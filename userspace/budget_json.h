/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Limit statuses of the limits engine as JSON (budget_json.c), for the admin API and the data
 * plane's consumer endpoints.
 */
#ifndef TG_BUDGET_JSON_H
#define TG_BUDGET_JSON_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "budget.h"

/* One limit status object (docs/admin-api.md); NULL when out of memory. */
cJSON *budget_hit_json(const struct budget_hit *h);
/*
 * Appends subject's limit statuses to arr (budget_status: key_limits for a key); with
 * quotas_only, only the quotas (tokens per day/month, requests, bytes, compute, cost).
 * False when out of memory.
 */
bool budget_status_json(struct budget *b, const char *subject, const struct limits *key_limits,
			int64_t now, bool quotas_only, cJSON *arr);

#endif /* TG_BUDGET_JSON_H */
