// SPDX-License-Identifier: BSD-2-Clause
/*
 * tollctl limits and tollctl quota: the limits of owners (user:, team:, consumer:) and
 * tenants, and where any subject - a key too - stands against each of its limits
 * (docs/admin-api.md, "Limits"; the shapes are the issue-5 contract's).
 *
 *   limits [list]                      GET    /api/v1/limits
 *   limits set SUBJECT FIELD=VALUE...  PUT    /api/v1/limits/SUBJECT
 *   limits set key:ID FIELD=VALUE...   PATCH  /api/v1/keys/ID {"limits", "actions"}
 *   limits clear SUBJECT               DELETE /api/v1/limits/SUBJECT
 *   quota SUBJECT                      GET    /api/v1/limits/SUBJECT (its "usage" array)
 *
 * Every argument is checked before the first request (exit 2 on a mistake). A key's limits
 * and actions are set through the key (the same as 'keys update --limit / --action'); they
 * are cleared field by field with null, never all at once.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollctl.h"

#define LIMITS_PATH    "/api/v1/limits"
#define KEYS_PATH      "/api/v1/keys"
#define SUBJECT_MAX    96
#define ACTIONS_PREFIX "actions."

static const struct out_col list_cols[] = {
    {"SUBJECT", "subject"},
    {"LIMITS", "limits"},
    {"ACTIONS", "actions"},
};

static const struct out_col usage_cols[] = {
    {"LIMIT", "limit"},	      {"WINDOW", "window"}, {"USED", "used"},
    {"RESERVED", "reserved"}, {"VALUE", "value"},   {"REMAINING", "remaining"},
    {"RESETS", "reset_at"},   {"ACTION", "action"}, {"MODE", "mode"},
};

#define NCOLS(a) (sizeof(a) / sizeof((a)[0]))

/* "a=1 b=2" from an object's members (numbers as the server wrote them); "-" if empty. */
static char *pairs_text(const cJSON *obj)
{
	struct sbuf sb = {0};
	const cJSON *f;
	int err = 0;

	cJSON_ArrayForEach(f, obj)
	{
		char *v = cJSON_IsString(f) ? NULL : cJSON_PrintUnformatted(f);

		err = sbuf_addf(&sb, "%s%s=%s", sb.len ? " " : "", f->string,
				cJSON_IsString(f) ? f->valuestring : (v ? v : "?"));
		cJSON_free(v);
		if (err)
			break;
	}
	if (!err && !sb.len)
		err = sbuf_add(&sb, "-", 1);
	if (err) {
		sbuf_wipe(&sb);
		return NULL;
	}
	return sb.buf;
}

/* The list's rows with their limits and actions flattened into "field=value" text. */
static cJSON *list_rows(const cJSON *data)
{
	cJSON *rows = cJSON_CreateArray();
	const cJSON *it;

	cJSON_ArrayForEach(it, data)
	{
		cJSON *row = rows ? cJSON_CreateObject() : NULL;
		char *l = pairs_text(cJSON_GetObjectItemCaseSensitive(it, "limits"));
		char *a = pairs_text(cJSON_GetObjectItemCaseSensitive(it, "actions"));
		const char *subject = json_str(it, "subject");
		bool ok = row && cJSON_AddItemToArray(rows, row);

		if (!ok)
			cJSON_Delete(row); /* else rows owns it */
		ok = ok && l && a;
		ok = ok && cJSON_AddStringToObject(row, "subject", subject ? subject : "?");
		ok = ok && cJSON_AddStringToObject(row, "limits", l);
		ok = ok && cJSON_AddStringToObject(row, "actions", a);
		free(l);
		free(a);
		if (!ok) {
			cJSON_Delete(rows);
			return NULL;
		}
	}
	return rows;
}

/* tollctl limits [list]: every owner and tenant with explicit limits. */
int limits_list(struct ctl *ctl, int argc, char **argv)
{
	cJSON *list = NULL, *rows;
	const cJSON *data;
	int rc = ctl_no_options(ctl, argc, argv);

	if (rc == CTL_CONTINUE)
		rc = ctl_args(ctl, argc, argv, NULL, NULL);
	if (rc != CTL_CONTINUE)
		return rc;
	rc = ctl_request(ctl, "GET", LIMITS_PATH, NULL, true, &list);
	if (rc)
		return rc;
	data = cJSON_GetObjectItemCaseSensitive(list, "data");
	if (ctl->json || !cJSON_IsArray(data)) {
		rc = ctl_show_list(ctl, list, list_cols, NCOLS(list_cols));
		cJSON_Delete(list);
		return rc;
	}
	rows = list_rows(data);
	rc = !rows || out_table(list_cols, NCOLS(list_cols), rows) ? ctl_nomem() : CTL_EXIT_OK;
	cJSON_Delete(rows);
	cJSON_Delete(list);
	return rc;
}

/* The subject argument, checked; allow_key: a key may be named (read only). */
static int subject_arg(const struct ctl *ctl, const char *arg, bool allow_key, char *out)
{
	int err = parse_subject(arg, allow_key, out, SUBJECT_MAX);

	if (err == -EPERM)
		return ctl_usage_error(ctl,
				       "'%s' is a key: 'limits clear' is for owners and "
				       "tenants ('tollctl keys update ID --clear-limit FIELD')",
				       arg);
	if (err)
		return ctl_usage_error(ctl,
				       "'%s' is not a subject: expected %suser:ID, team:ID, "
				       "consumer:ID or tenant:ID",
				       arg, allow_key ? "a key id (or key:ID), " : "");
	return CTL_CONTINUE;
}

/* actions.LIMIT=ACTION (or null) into body.actions. */
static int action_arg(const struct ctl *ctl, cJSON *body, const char *limit, const char *value)
{
	cJSON *actions = cJSON_GetObjectItemCaseSensitive(body, "actions");
	char what[80];

	if (!actions && !(actions = cJSON_AddObjectToObject(body, "actions")))
		return ctl_nomem();
	snprintf(what, sizeof(what), "actions.%.64s", limit);
	return ctl_action_add(ctl, actions, what, limit, value, true);
}

/* One FIELD=VALUE argument of 'limits set' into body. */
static int field_arg(const struct ctl *ctl, cJSON *body, const char *arg)
{
	const char *eq = strchr(arg, '='), *hint = "a valid value";
	char field[64];
	cJSON *item = NULL;
	int err;

	if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(field))
		return ctl_usage_error(ctl, "expected FIELD=VALUE, got '%s'", arg);
	snprintf(field, sizeof(field), "%.*s", (int)(eq - arg), arg);
	if (strncmp(field, ACTIONS_PREFIX, strlen(ACTIONS_PREFIX)) == 0)
		return action_arg(ctl, body, field + strlen(ACTIONS_PREFIX), eq + 1);
	if (cJSON_GetObjectItemCaseSensitive(body, field))
		return ctl_usage_error(ctl, "%s is given more than once", field);
	err = parse_limit(field, eq + 1, true, &item, &hint);
	if (err == -ENOENT)
		return ctl_usage_error(ctl,
				       "unknown limit field '%s' (see 'tollctl limits set "
				       "--help')",
				       field);
	if (err == -EINVAL || err == -ERANGE)
		return ctl_usage_error(ctl, "%s: '%s' is not %s", field, eq + 1, hint);
	if (err || !cJSON_AddItemToObject(body, field, item)) {
		cJSON_Delete(item);
		return ctl_nomem();
	}
	return CTL_CONTINUE;
}

/*
 * Prints a subject's GET answer: with --json as is, else a line with subject and mode and
 * the table of its "usage" limit statuses.
 */
static int usage_show(const struct ctl *ctl, const cJSON *obj)
{
	const cJSON *usage = cJSON_GetObjectItemCaseSensitive(obj, "usage");
	const char *subject = json_str(obj, "subject"), *mode = json_str(obj, "mode");

	if (ctl->json)
		return ctl_show(ctl, obj);
	if (!cJSON_IsArray(usage)) {
		fprintf(stderr, "tollctl: the server's answer has no \"usage\" array\n");
		return CTL_EXIT_SERVER;
	}
	printf("subject: ");
	out_clean(stdout, subject ? subject : "?");
	printf("  mode: ");
	out_clean(stdout, mode ? mode : "-");
	putchar('\n');
	if (cJSON_GetArraySize(usage) == 0) {
		puts("no limits apply");
		return CTL_EXIT_OK;
	}
	return out_table(usage_cols, NCOLS(usage_cols), usage) ? ctl_nomem() : CTL_EXIT_OK;
}

/*
 * A key's limits: the body of 'limits set' becomes PATCH /api/v1/keys/ID's {"limits": the
 * fields, "actions": ...}; then the key's standing from GET /api/v1/limits/key:ID.
 */
static int key_limits_set(struct ctl *ctl, const char *subject, cJSON *body, cJSON **answer)
{
	cJSON *patch = cJSON_CreateObject(), *key = NULL;
	cJSON *actions = cJSON_DetachItemFromObjectCaseSensitive(body, "actions");
	cJSON *lim = body->child ? cJSON_Duplicate(body, 1) : NULL; /* the limit fields */
	char *kpath = ctl_path(KEYS_PATH "/", subject + 4, NULL);
	char *lpath = ctl_path(LIMITS_PATH "/", subject, NULL);
	int rc = CTL_EXIT_OK;

	if (!patch || !kpath || !lpath || (body->child && !lim))
		rc = ctl_nomem();
	if (!rc && lim && cJSON_AddItemToObject(patch, "limits", lim))
		lim = NULL;
	if (!rc && actions && cJSON_AddItemToObject(patch, "actions", actions))
		actions = NULL;
	if (!rc && (lim || actions))
		rc = ctl_nomem();
	if (!rc)
		rc = ctl_request(ctl, "PATCH", kpath, patch, true, &key);
	if (!rc)
		rc = ctl_request(ctl, "GET", lpath, NULL, true, answer);
	cJSON_Delete(key);
	cJSON_Delete(actions);
	cJSON_Delete(lim);
	cJSON_Delete(patch);
	free(kpath);
	free(lpath);
	return rc;
}

/* tollctl limits set SUBJECT FIELD=VALUE...: PUT, then the subject's standing. */
int limits_set(struct ctl *ctl, int argc, char **argv)
{
	char subject[SUBJECT_MAX], *path = NULL;
	cJSON *body = NULL, *answer = NULL;
	int rc = ctl_no_options(ctl, argc, argv);

	if (rc == CTL_CONTINUE && argc - optind < 1)
		rc = ctl_usage_error(ctl, "missing SUBJECT");
	if (rc == CTL_CONTINUE)
		rc = subject_arg(ctl, argv[optind], true, subject);
	if (rc == CTL_CONTINUE && argc - optind < 2)
		rc = ctl_usage_error(ctl, "missing FIELD=VALUE: give at least one limit");
	if (rc == CTL_CONTINUE && !(body = cJSON_CreateObject()))
		rc = ctl_nomem();
	for (int i = optind + 1; rc == CTL_CONTINUE && i < argc; i++)
		rc = field_arg(ctl, body, argv[i]);
	if (rc == CTL_CONTINUE && strncmp(subject, "key:", 4) == 0) {
		rc = key_limits_set(ctl, subject, body, &answer);
		if (!rc)
			rc = usage_show(ctl, answer);
	} else if (rc == CTL_CONTINUE && !(path = ctl_path(LIMITS_PATH "/", subject, NULL))) {
		rc = ctl_nomem();
	} else if (rc == CTL_CONTINUE) {
		rc = ctl_request(ctl, "PUT", path, body, true, &answer);
		if (!rc)
			rc = usage_show(ctl, answer);
	}
	cJSON_Delete(answer);
	cJSON_Delete(body);
	free(path);
	return rc;
}

/*
 * The one SUBJECT argument of limits clear and quota (any_key: a key id is allowed): its
 * canonical form in subject and the API path in *path (the caller frees it). CTL_CONTINUE,
 * or the exit status of a usage error.
 */
static int subject_only(struct ctl *ctl, int argc, char **argv, bool any_key,
			char subject[SUBJECT_MAX], char **path)
{
	const char *arg = NULL;
	int rc = ctl_no_options(ctl, argc, argv);

	if (rc == CTL_CONTINUE)
		rc = ctl_args(ctl, argc, argv, "SUBJECT", &arg);
	if (rc == CTL_CONTINUE)
		rc = subject_arg(ctl, arg, any_key, subject);
	if (rc == CTL_CONTINUE && !(*path = ctl_path(LIMITS_PATH "/", subject, NULL)))
		rc = ctl_nomem();
	return rc;
}

/* tollctl limits clear SUBJECT: DELETE (204). */
int limits_clear(struct ctl *ctl, int argc, char **argv)
{
	char subject[SUBJECT_MAX], *path = NULL;
	cJSON *answer = NULL;
	int rc = subject_only(ctl, argc, argv, false, subject, &path);

	if (rc != CTL_CONTINUE) {
		free(path);
		return rc;
	}
	rc = ctl_request(ctl, "DELETE", path, NULL, true, &answer);
	if (!rc && !ctl->json)
		printf("limits of %s cleared\n", subject);
	cJSON_Delete(answer);
	free(path);
	return rc;
}

/* tollctl quota SUBJECT: where the subject stands against each of its limits. */
int quota_show(struct ctl *ctl, int argc, char **argv)
{
	char subject[SUBJECT_MAX], *path = NULL;
	cJSON *answer = NULL;
	int rc = subject_only(ctl, argc, argv, true, subject, &path);

	if (rc != CTL_CONTINUE) {
		free(path);
		return rc;
	}
	rc = ctl_request(ctl, "GET", path, NULL, true, &answer);
	if (!rc)
		rc = usage_show(ctl, answer);
	cJSON_Delete(answer);
	free(path);
	return rc;
}
