// SPDX-License-Identifier: BSD-2-Clause
/*
 * tollctl keys: create, list, show, update, revoke and rotate API keys through
 * /api/v1/keys (docs/admin-api.md, "API key").
 *
 * The full key exists on the wire twice, in the answers to create and rotate; tollctl prints
 * it once on stdout and wipes every copy it made (cJSON's free hook does the tree).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollctl.h"

#define KEYS_PATH "/api/v1/keys"

/* Query parameters of GET /api/v1/keys but "after", which changes from page to page. */
enum keys_param {
	KQ_OWNER = 0,
	KQ_SERVICE,
	KQ_TIER,
	KQ_STATUS,
	KQ_LIMIT,
	KQ_COUNT,
};

static const char *const keys_query_names[KQ_COUNT] = {"owner", "service", "tier", "status",
						       "limit"};

struct keys_query {
	const char *param[KQ_COUNT]; /* borrowed from argv; NULL when not given */
	const char *after;
	bool all;
};

static const struct out_col keys_cols[] = {
    {"ID", "id"},
    {"NAME", "name"},
    {"OWNER", "owner"},
    {"SERVICE", "service"},
    {"TIER", "tier"},
    {"STATUS", "status"},
    {"SLOT", "slot"},
    {"CREATED", "created_at"},
    {"LAST USED", "last_used_at"},
};

/* Applies one option of keys create or keys update to BODY, LIMITS and ACTIONS. */
static int key_body_opt(const struct ctl *ctl, int opt, const char *arg, cJSON *body, cJSON *limits,
			cJSON *actions, bool update)
{
	const char *field = opt == 'n'	 ? "name"
			    : opt == 'o' ? "owner"
			    : opt == 's' ? "service"
			    : opt == 't' ? "tier"
					 : NULL;

	if (field)
		return ctl_set_string(body, field, arg) ? ctl_nomem() : CTL_CONTINUE;
	switch (opt) {
	case 'e':
		return ctl_when_opt(ctl, body, arg, update);
	case 'l':
		return ctl_limit_opt(ctl, limits, "--limit", NULL, arg, update);
	case 'c':
		return ctl_limit_opt(ctl, limits, "--clear-limit", arg, "null", true);
	case 'a':
		return ctl_action_opt(ctl, actions, "--action", arg, update);
	case 'A':
		return ctl_action_add(ctl, actions, "--clear-action", arg, "null", true);
	default:
		return ctl_common_opt(ctl, opt);
	}
}

/* Moves OBJ into BODY as NAME when it has members (*obj NULL after); else leaves it. */
static int key_body_member(cJSON *body, const char *name, cJSON **obj)
{
	if (!(*obj)->child)
		return CTL_CONTINUE;
	if (!cJSON_AddItemToObject(body, name, *obj))
		return ctl_nomem();
	*obj = NULL;
	return CTL_CONTINUE;
}

/*
 * Parses the options of keys create or keys update into BODY ("limits" and "actions" only
 * if given).
 */
static int key_parse_body(const struct ctl *ctl, int argc, char **argv, const struct option *opts,
			  bool update, cJSON *body)
{
	cJSON *limits = cJSON_CreateObject(), *actions = cJSON_CreateObject();
	int opt, rc = limits && actions ? CTL_CONTINUE : ctl_nomem();

	optind = 0;
	while (rc == CTL_CONTINUE && (opt = getopt_long(argc, argv, "h", opts, NULL)) != -1)
		rc = key_body_opt(ctl, opt, optarg, body, limits, actions, update);
	if (rc == CTL_CONTINUE)
		rc = key_body_member(body, "limits", &limits);
	if (rc == CTL_CONTINUE)
		rc = key_body_member(body, "actions", &actions);
	cJSON_Delete(limits);
	cJSON_Delete(actions);
	return rc;
}

/*
 * Prints a key fresh from create or rotate: the secret first, then its fields. The fields
 * are shown even if the secret is missing, so the operator has the id to revoke the key.
 */
static int key_print_new(const struct ctl *ctl, const cJSON *key, bool rotated)
{
	const char *until = json_str(key, "previous_valid_until");
	int rc, show;

	if (ctl->json)
		return ctl_show(ctl, key);
	rc = ctl_print_secret("key", key, "key");
	if (rotated && until) {
		fputs("The previous key stays valid until ", stdout);
		out_clean(stdout, until);
		fputs(".\n\n", stdout);
	} else if (rotated) {
		fputs("The previous key no longer works.\n\n", stdout);
	}
	show = ctl_show(ctl, key);
	return rc ? rc : show;
}

/* tollctl keys create: POST /api/v1/keys. */
int keys_create(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"name", required_argument, NULL, 'n'},
	    {"owner", required_argument, NULL, 'o'},
	    {"service", required_argument, NULL, 's'},
	    {"tier", required_argument, NULL, 't'},
	    {"expires", required_argument, NULL, 'e'},
	    {"limit", required_argument, NULL, 'l'},
	    {"action", required_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	cJSON *body = cJSON_CreateObject(), *key = NULL;
	int rc;

	if (!body)
		return ctl_nomem();
	rc = key_parse_body(ctl, argc, argv, opts, false, body);
	if (rc == CTL_CONTINUE)
		rc = ctl_args(ctl, argc, argv, NULL, NULL);
	if (rc == CTL_CONTINUE && !cJSON_GetObjectItemCaseSensitive(body, "name"))
		rc = ctl_usage_error(ctl, "--name is required");
	if (rc == CTL_CONTINUE) {
		rc = ctl_request(ctl, "POST", KEYS_PATH, body, true, &key);
		if (!rc)
			rc = key_print_new(ctl, key, false);
	}
	cJSON_Delete(key);
	cJSON_Delete(body);
	return rc;
}

static int keys_list_opt(const struct ctl *ctl, int opt, const char *arg, struct keys_query *q)
{
	static const char *const statuses[] = {"active", "revoked", "expired", NULL};
	enum keys_param i;
	long long n;

	switch (opt) {
	case 'o':
		i = KQ_OWNER;
		break;
	case 's':
		i = KQ_SERVICE;
		break;
	case 't':
		i = KQ_TIER;
		break;
	case 'S':
		if (!parse_one_of(arg, statuses))
			return ctl_usage_error(
			    ctl, "--status: '%s' is not active, revoked or expired", arg);
		i = KQ_STATUS;
		break;
	case 'l':
		if (parse_count(arg, &n) != 0 || n < 1)
			return ctl_usage_error(ctl, "--limit: '%s' is not a positive integer", arg);
		i = KQ_LIMIT;
		break;
	case 'a':
		q->after = arg;
		return CTL_CONTINUE;
	case 'A':
		q->all = true;
		return CTL_CONTINUE;
	default:
		return ctl_common_opt(ctl, opt);
	}
	q->param[i] = arg;
	return CTL_CONTINUE;
}

/* Returns the list path with the filters and AFTER (free with free()), or NULL. */
static char *keys_list_path(const struct keys_query *q, const char *after)
{
	struct sbuf sb = {0};
	int err = sbuf_add(&sb, KEYS_PATH, strlen(KEYS_PATH));
	int i;

	for (i = 0; i < KQ_COUNT; i++)
		if (!err && q->param[i])
			err = query_add(&sb, keys_query_names[i], q->param[i]);
	if (!err && after)
		err = query_add(&sb, "after", after);
	if (err) {
		sbuf_wipe(&sb);
		return NULL;
	}
	return sb.buf;
}

/* GETs one page; a 2xx must carry a "data" array. */
static int keys_get_page(struct ctl *ctl, const struct keys_query *q, const char *after,
			 cJSON **page)
{
	char *path = keys_list_path(q, after);
	int rc;

	if (!path)
		return ctl_nomem();
	rc = ctl_request(ctl, "GET", path, NULL, true, page);
	free(path);
	if (rc == CTL_EXIT_OK && !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(*page, "data"))) {
		fprintf(stderr, "tollctl: the server's list has no \"data\" array\n");
		cJSON_Delete(*page);
		*page = NULL;
		rc = CTL_EXIT_SERVER;
	}
	return rc;
}

/*
 * Moves to *AFTER the page's next_after. Keys come in id order, so a next_after that does not
 * move forward would loop for ever: that is reported as a server error instead.
 */
static int keys_next(const cJSON *page, char **after)
{
	const char *next = json_str(page, "next_after");

	if (!next || (*after && strcmp(next, *after) <= 0)) {
		fprintf(stderr, "tollctl: the server said has_more without a next_after past the "
				"last one; stopping\n");
		return CTL_EXIT_SERVER;
	}
	free(*after);
	*after = strdup(next);
	return *after ? CTL_EXIT_OK : ctl_nomem();
}

/* Follows the pages from q->after to the last one, moving every key into DATA. */
static int keys_fetch_all(struct ctl *ctl, const struct keys_query *q, cJSON *data)
{
	char *after = q->after ? strdup(q->after) : NULL;
	cJSON *page = NULL, *items, *item;
	int rc = (q->after && !after) ? ctl_nomem() : CTL_EXIT_OK;

	while (rc == CTL_EXIT_OK) {
		rc = keys_get_page(ctl, q, after, &page);
		if (rc)
			break;
		items = cJSON_GetObjectItemCaseSensitive(page, "data");
		while ((item = cJSON_DetachItemFromArray(items, 0)) != NULL)
			cJSON_AddItemToArray(data, item);
		if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(page, "has_more"))) {
			cJSON_Delete(page);
			break;
		}
		rc = keys_next(page, &after);
		cJSON_Delete(page);
		page = NULL;
	}
	free(after);
	return rc;
}

/* Prints a list object: its JSON with --json, else the table and a hint about more pages. */
static int keys_print_list(const struct ctl *ctl, const cJSON *list)
{
	const char *next = json_str(list, "next_after");
	int rc = ctl_show_list(ctl, list, keys_cols, sizeof(keys_cols) / sizeof(keys_cols[0]));

	if (!rc && !ctl->json && next &&
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(list, "has_more")))
		fprintf(stderr, "tollctl: more keys follow: add --after %s, or --all\n", next);
	return rc;
}

/* --all gathers every page into one {"object":"list","data":[...]}. */
static int keys_list_all(struct ctl *ctl, const struct keys_query *q)
{
	cJSON *list = cJSON_CreateObject(), *data = cJSON_CreateArray();
	int rc;

	if (!list || !data || !cJSON_AddStringToObject(list, "object", "list") ||
	    !cJSON_AddItemToObject(list, "data", data)) {
		rc = ctl_nomem();
		goto out;
	}
	data = NULL;
	rc = keys_fetch_all(ctl, q, cJSON_GetObjectItemCaseSensitive(list, "data"));
	if (!rc)
		rc = keys_print_list(ctl, list);
out:
	cJSON_Delete(data);
	cJSON_Delete(list);
	return rc;
}

/* tollctl keys list: GET /api/v1/keys, one page or, with --all, every page. */
int keys_list(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"owner", required_argument, NULL, 'o'},
	    {"service", required_argument, NULL, 's'},
	    {"tier", required_argument, NULL, 't'},
	    {"status", required_argument, NULL, 'S'},
	    {"limit", required_argument, NULL, 'l'},
	    {"after", required_argument, NULL, 'a'},
	    {"all", no_argument, NULL, 'A'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct keys_query q = {0};
	cJSON *page = NULL;
	int opt, rc = CTL_CONTINUE;

	optind = 0;
	while (rc == CTL_CONTINUE && (opt = getopt_long(argc, argv, "h", opts, NULL)) != -1)
		rc = keys_list_opt(ctl, opt, optarg, &q);
	if (rc == CTL_CONTINUE)
		rc = ctl_args(ctl, argc, argv, NULL, NULL);
	if (rc != CTL_CONTINUE)
		return rc;
	if (q.all)
		return keys_list_all(ctl, &q);
	rc = keys_get_page(ctl, &q, q.after, &page);
	if (!rc)
		rc = keys_print_list(ctl, page);
	cJSON_Delete(page);
	return rc;
}

/* tollctl keys show ID: GET /api/v1/keys/ID. */
int keys_show(struct ctl *ctl, int argc, char **argv)
{
	return ctl_id_command(ctl, argc, argv, KEYS_PATH "/", "GET");
}

/* tollctl keys revoke ID: DELETE /api/v1/keys/ID. */
int keys_revoke(struct ctl *ctl, int argc, char **argv)
{
	return ctl_id_command(ctl, argc, argv, KEYS_PATH "/", "DELETE");
}

/* tollctl keys update ID: PATCH /api/v1/keys/ID with only the fields given. */
int keys_update(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"name", required_argument, NULL, 'n'},
	    {"service", required_argument, NULL, 's'},
	    {"tier", required_argument, NULL, 't'},
	    {"expires", required_argument, NULL, 'e'},
	    {"limit", required_argument, NULL, 'l'},
	    {"clear-limit", required_argument, NULL, 'c'},
	    {"action", required_argument, NULL, 'a'},
	    {"clear-action", required_argument, NULL, 'A'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	cJSON *body = cJSON_CreateObject(), *key = NULL;
	const char *id = NULL;
	char *path = NULL;
	int rc;

	if (!body)
		return ctl_nomem();
	rc = key_parse_body(ctl, argc, argv, opts, true, body);
	if (rc == CTL_CONTINUE)
		rc = ctl_args(ctl, argc, argv, "ID", &id);
	if (rc == CTL_CONTINUE && !body->child)
		rc = ctl_usage_error(ctl, "nothing to update: give at least one option");
	if (rc == CTL_CONTINUE && !(path = ctl_path(KEYS_PATH "/", id, NULL)))
		rc = ctl_nomem();
	if (rc == CTL_CONTINUE) {
		rc = ctl_request(ctl, "PATCH", path, body, true, &key);
		if (!rc)
			rc = ctl_show(ctl, key);
	}
	cJSON_Delete(key);
	cJSON_Delete(body);
	free(path);
	return rc;
}

/* Parses keys rotate's options; *BODY stays NULL without --grace. */
static int key_rotate_opts(const struct ctl *ctl, int argc, char **argv, cJSON **body)
{
	static const struct option opts[] = {
	    {"grace", required_argument, NULL, 'g'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char raw[32];
	long long sec;
	int opt;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt != 'g')
			return ctl_common_opt(ctl, opt);
		if (parse_count(optarg, &sec) != 0)
			return ctl_usage_error(ctl, "--grace: '%s' is not a number of seconds",
					       optarg);
		snprintf(raw, sizeof(raw), "%lld", sec);
		cJSON_Delete(*body);
		*body = cJSON_CreateObject();
		if (!*body || !cJSON_AddRawToObject(*body, "grace_period_sec", raw))
			return ctl_nomem();
	}
	return CTL_CONTINUE;
}

/* tollctl keys rotate ID: POST /api/v1/keys/ID/rotate, a body only with --grace. */
int keys_rotate(struct ctl *ctl, int argc, char **argv)
{
	cJSON *body = NULL, *key = NULL;
	const char *id = NULL;
	char *path = NULL;
	int rc = key_rotate_opts(ctl, argc, argv, &body);

	if (rc == CTL_CONTINUE)
		rc = ctl_args(ctl, argc, argv, "ID", &id);
	if (rc == CTL_CONTINUE && !(path = ctl_path(KEYS_PATH "/", id, "/rotate")))
		rc = ctl_nomem();
	if (rc == CTL_CONTINUE) {
		rc = ctl_request(ctl, "POST", path, body, true, &key);
		if (!rc)
			rc = key_print_new(ctl, key, true);
	}
	cJSON_Delete(key);
	cJSON_Delete(body);
	free(path);
	return rc;
}
