/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Words of the limits engine: refusal messages (they name the subject, the limit, its value,
 * what is used and reserved, and the reset, DESIGN.md invariant 7), amounts in their units,
 * and which refusals are quotas (insufficient_quota) rather than rates.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "budget.h"
#include "util.h"

bool budget_is_quota(enum limit_field f)
{
	return f != LIMIT_TPM && f != LIMIT_TPH && f != LIMIT_MAX_CONCURRENT;
}

void budget_amount(enum budget_kind k, uint64_t v, char *buf, size_t len)
{
	char num[32];

	switch (k) {
	case BUDGET_KIND_COST:
		/* at least cents, more digits only when they are there */
		tg_fixed_dec(v, 9, 2, num);
		snprintf(buf, len, "%s USD", num);
		return;
	case BUDGET_KIND_COMPUTE:
		tg_fixed_dec(v, 3, 3, num);
		snprintf(buf, len, "%s s", num);
		return;
	case BUDGET_KIND_TOKENS:
		snprintf(buf, len, "%" PRIu64 " tokens", v);
		return;
	case BUDGET_KIND_BYTES:
		snprintf(buf, len, "%" PRIu64 " bytes", v);
		return;
	case BUDGET_KIND_CONCURRENCY:
		snprintf(buf, len, "%" PRIu64 " calls in flight", v);
		return;
	default:
		snprintf(buf, len, "%" PRIu64 " requests", v);
	}
}

static const char *title(const struct budget_hit *h)
{
	switch (h->kind) {
	case BUDGET_KIND_COST:
		return "Cost budget";
	case BUDGET_KIND_TOKENS:
		return budget_is_quota(h->limit) ? "Token quota" : "Token rate limit";
	case BUDGET_KIND_REQUESTS:
		return "Request quota";
	case BUDGET_KIND_BYTES:
		return "Bandwidth quota";
	case BUDGET_KIND_COMPUTE:
		return "Compute time quota";
	default:
		return "Concurrency limit";
	}
}

/* "key k7dq2m9xa4bz", "team ml", "tenant acme". */
static void subject_words(const char *subject, char *buf, size_t len)
{
	const char *colon = strchr(subject, ':');

	if (!colon)
		snprintf(buf, len, "%s", subject);
	else
		snprintf(buf, len, "%.*s %s", (int)(colon - subject), subject, colon + 1);
}

void budget_message(const struct budget_hit *h, char *buf, size_t len)
{
	char who[BUDGET_SUBJECT_MAX + 8], value[48], used[48], res[48], reset[32];

	subject_words(h->subject, who, sizeof(who));
	budget_amount(h->kind, h->value, value, sizeof(value));
	if (h->kind == BUDGET_KIND_CONCURRENCY) {
		snprintf(buf, len,
			 "%s exceeded for %s: max_concurrent %" PRIu64 " (%" PRIu64
			 " calls in flight); retry when one finishes",
			 title(h), who, h->value, h->used);
		return;
	}
	budget_amount(h->kind, h->used, used, sizeof(used));
	budget_amount(h->kind, h->reserved, res, sizeof(res));
	tg_rfc3339_format(h->reset_at, reset);
	if (h->rolling)
		snprintf(buf, len,
			 "%s exceeded for %s: %s %s over a rolling %s (used %s, %s reserved by "
			 "calls in flight); capacity frees in %" PRIu64 " s",
			 title(h), who, limit_descs[h->limit].name, value, h->window, used, res,
			 h->retry_after_sec);
	else
		snprintf(buf, len,
			 "%s exceeded for %s: %s %s (used %s, %s reserved by calls in flight); "
			 "resets at %s",
			 title(h), who, limit_descs[h->limit].name, value, used, res, reset);
}

const char *budget_downgrade_of(const char *map, const char *model, char *out, size_t len)
{
	size_t n = strlen(model);

	while (map && *map) {
		size_t a = strcspn(map, "=,"), b;

		if (map[a] != '=')
			return NULL;
		b = strcspn(map + a + 1, ",");
		if (a == n && !strncmp(map, model, n)) {
			snprintf(out, len, "%.*s", (int)b, map + a + 1);
			return out;
		}
		map += a + 1 + b;
		map += *map == ',';
	}
	return NULL;
}
