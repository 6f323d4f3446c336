// SPDX-License-Identifier: BSD-2-Clause
/*
 * tollctl providers: the upstream providers as GET /api/v1/providers reports them, one table
 * row each (name, breaker state, priority, weight, attempts, recent error rate, moving and
 * median latency, failures by class, cooldown, base URL), after one line of the routing
 * settings. --json prints the server's answer as it is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollctl.h"

static double num(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* A string member, or "-" when absent. */
static const char *str(const cJSON *o, const char *name)
{
	const char *s = json_str(o, name);

	return s ? s : "-";
}

/* "server_error 3, timeout 1": the failed attempts by class, "-" if none. */
static int failures_text(const cJSON *outcomes, char *out, size_t len)
{
	const cJSON *v;
	size_t used = 0;

	out[0] = '\0';
	cJSON_ArrayForEach(v, outcomes)
	{
		if (!cJSON_IsNumber(v) || v->valuedouble == 0 || !strcmp(v->string, "ok") ||
		    !strcmp(v->string, "client_error") || !strcmp(v->string, "cancelled"))
			continue;
		if (used < len)
			used += (size_t)snprintf(out + used, len - used, "%s%s %.0f",
						 used ? ", " : "", v->string, v->valuedouble);
	}
	if (!used)
		snprintf(out, len, "-");
	return 0;
}

/* A latency cell: "12.3" ms, or "-" before the first answer. */
static cJSON *ms_cell(const cJSON *lat, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(lat, name);
	char buf[32];

	if (!cJSON_IsNumber(v))
		return cJSON_CreateString("-");
	snprintf(buf, sizeof(buf), "%.1f", v->valuedouble);
	return cJSON_CreateString(buf);
}

/* One provider as a flat row for out_table. */
static cJSON *row(const cJSON *p)
{
	const cJSON *cool = cJSON_GetObjectItemCaseSensitive(p, "cooldown_until");
	const cJSON *open = cJSON_GetObjectItemCaseSensitive(p, "open_until");
	const cJSON *lat = cJSON_GetObjectItemCaseSensitive(p, "latency_ms");
	cJSON *r = cJSON_CreateObject();
	char fails[256], rate[16], breaker[64];

	failures_text(cJSON_GetObjectItemCaseSensitive(p, "outcomes"), fails, sizeof(fails));
	snprintf(rate, sizeof(rate), "%.1f%%", num(p, "error_rate") * 100);
	snprintf(breaker, sizeof(breaker), "%s%s%s", str(p, "breaker"),
		 cJSON_IsString(open) ? " until " : "",
		 cJSON_IsString(open) ? open->valuestring : "");
	if (!r || !cJSON_AddStringToObject(r, "name", str(p, "name")) ||
	    !cJSON_AddStringToObject(r, "breaker", breaker) ||
	    !cJSON_AddNumberToObject(r, "priority", num(p, "priority")) ||
	    !cJSON_AddNumberToObject(r, "weight", num(p, "weight")) ||
	    !cJSON_AddNumberToObject(r, "requests", num(p, "requests")) ||
	    !cJSON_AddStringToObject(r, "error_rate", rate) ||
	    !cJSON_AddItemToObject(r, "ewma", ms_cell(lat, "ewma")) ||
	    !cJSON_AddItemToObject(r, "p50", ms_cell(lat, "p50")) ||
	    !cJSON_AddStringToObject(r, "failures", fails) ||
	    !cJSON_AddStringToObject(r, "cooldown",
				     cJSON_IsString(cool) ? cool->valuestring : "-") ||
	    !cJSON_AddStringToObject(r, "base_url", str(p, "base_url"))) {
		cJSON_Delete(r);
		return NULL;
	}
	return r;
}

static int print_providers(const cJSON *o)
{
	static const struct out_col cols[] = {
	    {"NAME", "name"},	      {"BREAKER", "breaker"},	{"PRIO", "priority"},
	    {"WEIGHT", "weight"},     {"REQUESTS", "requests"}, {"ERRORS", "error_rate"},
	    {"EWMA_MS", "ewma"},      {"P50_MS", "p50"},	{"FAILURES", "failures"},
	    {"COOLDOWN", "cooldown"}, {"BASE_URL", "base_url"},
	};
	const cJSON *rt = cJSON_GetObjectItemCaseSensitive(o, "routing"), *p;
	cJSON *rows = cJSON_CreateArray();
	int rc = -1;

	if (!rows)
		return -1;
	printf("routing: policy %s, up to %.0f attempts, breaker opens after %.0f failures for "
	       "%.0f s (%.0f probes), cooldown %.0f s\n",
	       str(rt, "policy"), num(rt, "max_attempts"), num(rt, "breaker_failures"),
	       num(rt, "breaker_open_sec"), num(rt, "breaker_probes"),
	       num(rt, "provider_cooldown_sec"));
	cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(o, "data"))
	{
		cJSON *r = row(p);

		if (!r || !cJSON_AddItemToArray(rows, r)) {
			cJSON_Delete(r);
			goto out;
		}
	}
	rc = out_table(cols, sizeof(cols) / sizeof(cols[0]), rows);
out:
	cJSON_Delete(rows);
	return rc;
}

int ctl_providers(struct ctl *ctl, int argc, char **argv)
{
	cJSON *json = NULL;
	int rc = ctl_no_options(ctl, argc, argv);

	if (rc == CTL_CONTINUE)
		rc = ctl_args(ctl, argc, argv, NULL, NULL);
	if (rc != CTL_CONTINUE)
		return rc;
	rc = ctl_request(ctl, "GET", "/api/v1/providers", NULL, true, &json);
	if (rc)
		return rc;
	if (ctl->json)
		rc = out_json(json) ? CTL_EXIT_INTERNAL : CTL_EXIT_OK;
	else
		rc = print_providers(json) ? CTL_EXIT_INTERNAL : CTL_EXIT_OK;
	cJSON_Delete(json);
	return rc;
}
