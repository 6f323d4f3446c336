// SPDX-License-Identifier: BSD-2-Clause
/*
 * tollctl tokens: create, list and revoke admin tokens through /api/v1/admin/tokens
 * (docs/admin-api.md, "Admin token"). The full token is in the answer to create only; it is
 * printed once on stdout and every copy tollctl made is wiped.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollctl.h"

#define TOKENS_PATH "/api/v1/admin/tokens"

static const struct out_col tokens_cols[] = {
    {"ID", "id"},
    {"NAME", "name"},
    {"ROLE", "role"},
    {"CONSUMER", "consumer"},
    {"TIER", "tier"},
    {"STATUS", "status"},
    {"CREATED", "created_at"},
    {"LAST USED", "last_used_at"},
};

static int token_create_opts(const struct ctl *ctl, int argc, char **argv, cJSON *body)
{
	static const struct option opts[] = {
	    {"name", required_argument, NULL, 'n'},	{"role", required_argument, NULL, 'r'},
	    {"consumer", required_argument, NULL, 'c'}, {"tier", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},		{NULL, 0, NULL, 0},
	};
	static const char *const roles[] = {"admin", "viewer", "consumer", NULL};
	const char *field;
	int opt;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		field = opt == 'n'   ? "name"
			: opt == 'r' ? "role"
			: opt == 'c' ? "consumer"
			: opt == 't' ? "tier"
				     : NULL;
		if (!field)
			return ctl_common_opt(ctl, opt);
		if (opt == 'r' && !parse_one_of(optarg, roles))
			return ctl_usage_error(ctl, "--role: '%s' is not admin, viewer or consumer",
					       optarg);
		if (ctl_set_string(body, field, optarg) != 0)
			return ctl_nomem();
	}
	return CTL_CONTINUE;
}

/* The consumer and tier fields exist only for the consumer role; say so before the server. */
static int token_create_check(const struct ctl *ctl, const cJSON *body)
{
	const char *role = json_str(body, "role");
	bool consumer = role && strcmp(role, "consumer") == 0;

	if (!json_str(body, "name"))
		return ctl_usage_error(ctl, "--name is required");
	if (!role)
		return ctl_usage_error(ctl, "--role is required");
	if (consumer && !json_str(body, "consumer"))
		return ctl_usage_error(ctl, "--role consumer needs --consumer ID");
	if (!consumer && (json_str(body, "consumer") || json_str(body, "tier")))
		return ctl_usage_error(ctl, "--consumer and --tier only go with --role consumer");
	return CTL_CONTINUE;
}

/* The token first, then its fields (shown even without a token, for the id). */
static int token_print_new(const struct ctl *ctl, const cJSON *token)
{
	int rc, show;

	if (ctl->json)
		return ctl_show(ctl, token);
	rc = ctl_print_secret("token", token, "token");
	show = ctl_show(ctl, token);
	return rc ? rc : show;
}

/* tollctl tokens create: POST /api/v1/admin/tokens; prints the token once. */
int tokens_create(struct ctl *ctl, int argc, char **argv)
{
	cJSON *body = cJSON_CreateObject(), *token = NULL;
	int rc;

	if (!body)
		return ctl_nomem();
	rc = token_create_opts(ctl, argc, argv, body);
	if (rc == CTL_CONTINUE)
		rc = ctl_args(ctl, argc, argv, NULL, NULL);
	if (rc == CTL_CONTINUE)
		rc = token_create_check(ctl, body);
	if (rc == CTL_CONTINUE) {
		rc = ctl_request(ctl, "POST", TOKENS_PATH, body, true, &token);
		if (!rc)
			rc = token_print_new(ctl, token);
	}
	cJSON_Delete(token);
	cJSON_Delete(body);
	return rc;
}

/* tollctl tokens list: GET /api/v1/admin/tokens. */
int tokens_list(struct ctl *ctl, int argc, char **argv)
{
	return ctl_list_command(ctl, argc, argv, TOKENS_PATH, tokens_cols,
				sizeof(tokens_cols) / sizeof(tokens_cols[0]));
}

/* tollctl tokens revoke ID: DELETE /api/v1/admin/tokens/ID. */
int tokens_revoke(struct ctl *ctl, int argc, char **argv)
{
	return ctl_id_command(ctl, argc, argv, TOKENS_PATH "/", "DELETE");
}
