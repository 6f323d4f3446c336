// SPDX-License-Identifier: BSD-2-Clause
/*
 * tollctl tiers: list the tiers, and create or change one (docs/admin-api.md, "Tier").
 *
 * PUT /api/v1/tiers/NAME replaces the whole tier, so "tiers set" reads the current tier,
 * merges the fields given on the command line and writes the result back. The read and the
 * write are two requests: a change another operator makes in between is overwritten.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollctl.h"

#define TIERS_PATH "/api/v1/tiers"

/* getopt values of the shorthand flags: TIER_SHORTHAND + index in shorthand_fields. */
#define TIER_SHORTHAND 1000

/*
 * The limits of the shorthand flags (--rps ... --max-concurrent, in that order): the
 * limits every tier had from the start, sent as 0 (no limit) for a new tier. Which fields
 * exist and what they take is parse.c's one table (parse_limit).
 */
static const char *const shorthand_fields[] = {
    "requests_per_second", "burst",
    "requests_per_minute", "requests_per_hour",
    "requests_per_day",	   "tokens_per_minute",
    "tokens_per_month",	   "max_concurrent",
};

#define NSHORTHANDS (sizeof(shorthand_fields) / sizeof(shorthand_fields[0]))

static const struct out_col tiers_cols[] = {
    {"NAME", "name"},
    {"RPS", "requests_per_second"},
    {"BURST", "burst"},
    {"RPM", "requests_per_minute"},
    {"RPH", "requests_per_hour"},
    {"RPD", "requests_per_day"},
    {"TPM", "tokens_per_minute"},
    {"TOKENS/MONTH", "tokens_per_month"},
    {"MAX CONC", "max_concurrent"},
    {"ACTIONS", "actions"},
};

/* tollctl tiers list: GET /api/v1/tiers. */
int tiers_list(struct ctl *ctl, int argc, char **argv)
{
	return ctl_list_command(ctl, argc, argv, TIERS_PATH, tiers_cols,
				sizeof(tiers_cols) / sizeof(tiers_cols[0]));
}

/*
 * Collects --limit and the shorthands into SET (null is refused: a tier has every limit),
 * --action LIMIT=ACTION into ACTIONS (null: the tier's own action of LIMIT is removed).
 */
static int tier_set_opts(const struct ctl *ctl, int argc, char **argv, cJSON *set, cJSON *actions)
{
	static const struct option opts[] = {
	    {"limit", required_argument, NULL, 'l'},
	    {"action", required_argument, NULL, 'a'},
	    {"rps", required_argument, NULL, TIER_SHORTHAND + 0},
	    {"burst", required_argument, NULL, TIER_SHORTHAND + 1},
	    {"rpm", required_argument, NULL, TIER_SHORTHAND + 2},
	    {"rph", required_argument, NULL, TIER_SHORTHAND + 3},
	    {"rpd", required_argument, NULL, TIER_SHORTHAND + 4},
	    {"tpm", required_argument, NULL, TIER_SHORTHAND + 5},
	    {"tokens-per-month", required_argument, NULL, TIER_SHORTHAND + 6},
	    {"max-concurrent", required_argument, NULL, TIER_SHORTHAND + 7},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt, idx = 0, rc = CTL_CONTINUE;
	char flag[32];

	optind = 0;
	while (rc == CTL_CONTINUE && (opt = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
		if (opt == 'l') {
			rc = ctl_limit_opt(ctl, set, "--limit", NULL, optarg, false);
		} else if (opt == 'a') {
			rc = ctl_action_opt(ctl, actions, "--action", optarg, true);
		} else if (opt >= TIER_SHORTHAND && opt < TIER_SHORTHAND + (int)NSHORTHANDS) {
			snprintf(flag, sizeof(flag), "--%s", opts[idx].name);
			rc = ctl_limit_opt(ctl, set, flag, shorthand_fields[opt - TIER_SHORTHAND],
					   optarg, false);
		} else {
			rc = ctl_common_opt(ctl, opt);
		}
	}
	return rc;
}

/* Merges ACTIONS into the tier's "actions" object: null removes one, the others replace. */
static int tier_merge_actions(cJSON *tier, const cJSON *actions)
{
	cJSON *cur = cJSON_GetObjectItemCaseSensitive(tier, "actions");
	const cJSON *f;

	if (!actions->child)
		return CTL_CONTINUE;
	if (!cJSON_IsObject(cur) && json_replace(tier, "actions", cJSON_CreateObject()) != 0)
		return ctl_nomem();
	cur = cJSON_GetObjectItemCaseSensitive(tier, "actions");
	cJSON_ArrayForEach(f, actions)
	{
		if (cJSON_IsNull(f))
			cJSON_DeleteItemFromObjectCaseSensitive(cur, f->string);
		else if (json_replace(cur, f->string, cJSON_Duplicate(f, true)) != 0)
			return ctl_nomem();
	}
	return CTL_CONTINUE;
}

/* Merges SET and ACTIONS into the current TIER, keeping the server's field order. */
static int tier_merge(cJSON *tier, const cJSON *set, const cJSON *actions)
{
	const cJSON *f;

	cJSON_DeleteItemFromObjectCaseSensitive(tier, "object");
	cJSON_DeleteItemFromObjectCaseSensitive(tier, "name");
	cJSON_ArrayForEach(f, set)
	{
		if (json_replace(tier, f->string, cJSON_Duplicate(f, true)) != 0)
			return ctl_nomem();
	}
	return tier_merge_actions(tier, actions);
}

/*
 * A new tier: the server insists on a rate and a burst, and the other shorthand limits are
 * sent as 0 (no limit) so the body is the complete tier whatever the server's defaults;
 * any other --limit given goes as well.
 */
static int tier_new(const struct ctl *ctl, const char *name, const cJSON *set, const cJSON *actions,
		    cJSON **tier)
{
	const cJSON *v;
	size_t i;

	if (!cJSON_GetObjectItemCaseSensitive(set, "requests_per_second") ||
	    !cJSON_GetObjectItemCaseSensitive(set, "burst"))
		return ctl_usage_error(ctl,
				       "tier '%s' does not exist; creating it needs --rps "
				       "(requests_per_second) and --burst",
				       name);
	*tier = cJSON_CreateObject();
	if (!*tier)
		return ctl_nomem();
	for (i = 0; i < NSHORTHANDS; i++)
		if (!cJSON_AddItemToObject(*tier, shorthand_fields[i], cJSON_CreateNumber(0)))
			return ctl_nomem();
	cJSON_ArrayForEach(v, set)
	{
		if (json_replace(*tier, v->string, cJSON_Duplicate(v, true)) != 0)
			return ctl_nomem();
	}
	return tier_merge_actions(*tier, actions);
}

/* GETs the tier at PATH into *TIER with SET merged in, or starts a new one on 404. */
static int tier_build(struct ctl *ctl, const char *path, const char *name, const cJSON *set,
		      const cJSON *actions, cJSON **tier)
{
	cJSON *json = NULL;
	long status;
	int rc = http_send(ctl, "GET", path, NULL, true, &status, &json);

	if (rc)
		return rc;
	if (status == 404) {
		cJSON_Delete(json);
		return tier_new(ctl, name, set, actions, tier);
	}
	rc = http_check(ctl, status, json);
	if (rc) {
		cJSON_Delete(json);
		return rc;
	}
	*tier = json;
	return tier_merge(*tier, set, actions);
}

/* tollctl tiers set NAME: GET, merge, then PUT /api/v1/tiers/NAME with the whole tier. */
int tiers_set(struct ctl *ctl, int argc, char **argv)
{
	cJSON *set = cJSON_CreateObject(), *actions = cJSON_CreateObject();
	cJSON *tier = NULL, *answer = NULL;
	const char *name = NULL;
	char *path = NULL;
	int rc = set && actions ? CTL_CONTINUE : ctl_nomem();

	if (rc == CTL_CONTINUE)
		rc = tier_set_opts(ctl, argc, argv, set, actions);
	if (rc == CTL_CONTINUE)
		rc = ctl_args(ctl, argc, argv, "NAME", &name);
	if (rc == CTL_CONTINUE && !set->child && !actions->child)
		rc = ctl_usage_error(ctl, "nothing to set: give at least one limit or action");
	if (rc == CTL_CONTINUE && !(path = ctl_path(TIERS_PATH "/", name, NULL)))
		rc = ctl_nomem();
	if (rc == CTL_CONTINUE)
		rc = tier_build(ctl, path, name, set, actions, &tier);
	if (rc == CTL_CONTINUE) {
		rc = ctl_request(ctl, "PUT", path, tier, true, &answer);
		if (!rc)
			rc = ctl_show(ctl, answer);
	}
	cJSON_Delete(answer);
	cJSON_Delete(tier);
	cJSON_Delete(set);
	cJSON_Delete(actions);
	free(path);
	return rc;
}
