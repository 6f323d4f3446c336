// SPDX-License-Identifier: BSD-2-Clause
/*
 * tollctl, the command-line client of tollgate's admin REST API (docs/admin-api.md; user
 * documentation in docs/tollctl.md). This file only wires things together: the global
 * options, the table of commands with their help, and the dispatch to keys.c, tiers.c,
 * tokens.c and cli.c.
 *
 * There is deliberately no --token flag: argv is visible to every user through ps and
 * /proc, so the token comes from a file or the environment only.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "tollctl.h"

/* The limit fields parse.c's one table takes: keys create/update, tiers set, limits set. */
#define LIMIT_FIELDS_HELP                                                                          \
	"FIELD: requests_per_second (up to 3 decimals), burst, requests_per_minute,\n"             \
	"requests_per_hour, requests_per_day, requests_per_month, tokens_per_minute,\n"            \
	"tokens_per_hour, tokens_per_day, tokens_per_month, token_quota_days (N: a rolling\n"      \
	"quota of N days; 0: calendar month), max_concurrent, cost_per_hour, cost_per_day,\n"      \
	"cost_per_month (USD, up to 9 decimals), cost_window (calendar|rolling),\n"                \
	"bytes_per_month, compute_seconds_per_month (up to 3 decimals), alert_threshold\n"         \
	"(0 < x <= 1), mode (hard|soft), action (block|queue|downgrade|alert: the default of\n"    \
	"every limit).\n"
#define LIMIT_HELP	   LIMIT_FIELDS_HELP "0 means no limit of that kind.\n"
#define SUBJECT_LIMIT_HELP LIMIT_FIELDS_HELP "actions.LIMIT=ACTION sets the action of one limit.\n"
#define ACTION_HELP                                                                                \
	"--action LIMIT=ACTION sets the action of one limit (block, queue, downgrade, alert);\n"   \
	"LIMIT is a request rate or count, token, cost, bytes, compute or concurrency limit.\n"    \
	"A limit's action is the key's own, else the key's 'action', else the tier's own for\n"    \
	"that limit, else the tier's 'action', else limits.action.\n"
#define WHEN_HELP                                                                                  \
	"WHEN is an RFC 3339 time (2027-01-01T00:00:00Z, offsets and fractions allowed) or a\n"    \
	"time from now: +30d (days), +12h (hours), +90m (minutes).\n"

static const struct ctl_cmd ctl_cmds[] = {
    {"keys", "create", keys_create,
     "--name N [--owner O] [--service S] [--tier T] [--expires WHEN] [--limit FIELD=VALUE]... "
     "[--action LIMIT=ACTION]...",
     "Creates an API key and prints it once. --owner is consumer:ID, user:ID or team:ID\n"
     "(required for admin tokens). --limit overrides one limit of the tier; repeat it.\n" WHEN_HELP
	 LIMIT_HELP ACTION_HELP},
    {"keys", "list", keys_list,
     "[--owner O] [--service S] [--tier T] [--status active|revoked|expired] [--limit N] "
     "[--after ID] [--all]",
     "Lists API keys in id order, one page (default 50, --limit 1..1000) at a time.\n"
     "--after ID starts after that key; --all follows the pages to the end.\n"},
    {"keys", "show", keys_show, "ID",
     "Shows one API key, its limit overrides and effective limits.\n"},
    {"keys", "update", keys_update,
     "ID [--name N] [--service S] [--tier T] [--expires WHEN|never] [--limit FIELD=VALUE]... "
     "[--clear-limit FIELD]... [--action LIMIT=ACTION]... [--clear-action LIMIT]...",
     "Changes an API key. The owner cannot be changed. --expires never removes the expiry;\n"
     "--limit FIELD=null or --clear-limit FIELD removes an override, --action LIMIT=null or\n"
     "--clear-action LIMIT the key's own action of LIMIT.\n" WHEN_HELP LIMIT_HELP ACTION_HELP},
    {"keys", "revoke", keys_revoke, "ID", "Revokes an API key at once.\n"},
    {"keys", "rotate", keys_rotate, "ID [--grace SEC]",
     "Gives an API key a new secret and prints it once. The previous secret stays valid for\n"
     "SEC seconds (0..2592000; default: the server's keys.rotation_grace_sec).\n"},
    {"tiers", "list", tiers_list, "", "Lists the tiers and their limits (0 means no limit).\n"},
    {"tiers", "set", tiers_set,
     "NAME [--limit FIELD=VALUE]... [--rps N] [--burst N] [--rpm N] [--rph N] [--rpd N] "
     "[--tpm N] [--tokens-per-month N] [--max-concurrent N] [--action LIMIT=ACTION|null]...",
     "Creates or changes a tier: the given fields are merged into the current tier and the\n"
     "whole tier is written back. A new tier needs --rps and --burst; its other limits\n"
     "default to 0 (no limit). Shorthands: --rps requests_per_second, --rpm\n"
     "requests_per_minute, --rph requests_per_hour, --rpd requests_per_day, --tpm\n"
     "tokens_per_minute. --action LIMIT=null removes the tier's own action of LIMIT.\n" LIMIT_HELP
	 ACTION_HELP},
    {"tokens", "create", tokens_create,
     "--name N --role admin|viewer|consumer [--consumer ID] [--tier T]",
     "Creates an admin token and prints it once. A consumer token needs --consumer and may\n"
     "take --tier (default basic); it manages only the keys of owner consumer:ID.\n"},
    {"tokens", "list", tokens_list, "", "Lists the admin tokens (never their secrets).\n"},
    {"tokens", "revoke", tokens_revoke, "ID", "Revokes an admin token at once.\n"},
    {"limits", "list", limits_list, "",
     "Lists the owners (user:, team:, consumer:) and tenants with limits of their own.\n"
     "'tollctl limits' alone does the same.\n"},
    {"limits", "set", limits_set, "SUBJECT FIELD=VALUE... [actions.LIMIT=ACTION]...",
     "Sets limits and per-limit actions of an owner, tenant or key (SUBJECT: user:ID,\n"
     "team:ID, consumer:ID, tenant:ID, or key:ID - a key's through PATCH /api/v1/keys/ID,\n"
     "as 'keys update --limit / --action') and shows where it stands. VALUE null removes a\n"
     "limit or an action; 0 means no limit.\n" SUBJECT_LIMIT_HELP},
    {"limits", "clear", limits_clear, "SUBJECT",
     "Removes every limit of an owner or tenant (a key's: field by field with null).\n"},
    {"limits", NULL, limits_list, "",
     "Lists the owners and tenants with limits of their own (as 'tollctl limits list').\n"
     "See also 'tollctl limits set --help', 'tollctl limits clear' and 'tollctl quota'.\n"},
    {"quota", NULL, quota_show, "SUBJECT",
     "Shows where a subject stands against each of its limits: used, reserved by calls in\n"
     "flight, the limit, what remains, when the window resets, the action and the mode.\n"
     "SUBJECT is a key id (or key:ID), user:ID, team:ID, consumer:ID or tenant:ID.\n"},
    {"health", NULL, ctl_health, "", "Asks whether tollgated runs (GET /health, no token).\n"},
    {"ready", NULL, ctl_ready, "",
     "Asks whether tollgated is ready to serve (GET /ready, no token).\n"},
    {"status", NULL, ctl_status, "[--limit N]",
     "Shows the kernel fast path (GET /api/v1/kernel): mode, pinned maps, interfaces and\n"
     "how the programs are attached, packet counters by verdict, and the penalty box\n"
     "(up to N sources, default 20, 1..10000). Admin or viewer token.\n"},
    {"providers", NULL, ctl_providers, "",
     "Shows the upstream providers (GET /api/v1/providers): the routing policy, then per\n"
     "provider its circuit breaker, priority, weight, attempts, recent error rate, moving\n"
     "and median latency, failures by class, cooldown and base URL. Admin or viewer token.\n"},
};

#define CTL_NCMDS (sizeof(ctl_cmds) / sizeof(ctl_cmds[0]))

static void print_synopses(FILE *f, const char *group)
{
	size_t i;

	for (i = 0; i < CTL_NCMDS; i++) {
		const struct ctl_cmd *c = &ctl_cmds[i];

		if (group && strcmp(c->group, group) != 0)
			continue;
		fprintf(f, "  tollctl [options] %s%s%s%s%s\n", c->group, c->name ? " " : "",
			c->name ? c->name : "", c->synopsis[0] ? " " : "", c->synopsis);
	}
}

static void print_global_help(FILE *f)
{
	fputs("usage: tollctl [options] COMMAND [arguments]\n"
	      "\n"
	      "Manages tollgate API keys, tiers, admin tokens and limits through the admin API.\n"
	      "\n"
	      "Options (before the command):\n"
	      "  --url URL          admin API base URL (default: $TOLLGATE_ADMIN_URL, else\n"
	      "                     " CTL_DEFAULT_URL ")\n"
	      "  --token-file FILE  read the admin token from FILE (default: "
	      "$TOLLGATE_ADMIN_TOKEN);\n"
	      "                     there is no --token flag because argv is visible in ps\n"
	      "  --json             print the server's JSON instead of tables\n"
	      "  --timeout SEC      give up on a request after SEC seconds (default 10)\n"
	      "  -h, --help         show this help; 'tollctl COMMAND --help' for one command\n"
	      "  --version          print the version\n"
	      "\n"
	      "Commands:\n",
	      f);
	print_synopses(f, NULL);
	fputs(
	    "\nExit status: 0 success, 1 internal error, 2 usage error or no token, 3 not found,\n"
	    "4 not authenticated or not allowed, 5 request rejected, 6 server error or\n"
	    "unreachable.\n",
	    f);
}

static const struct ctl_cmd *cmd_find(const char *group, const char *name)
{
	size_t i;

	for (i = 0; i < CTL_NCMDS; i++) {
		const struct ctl_cmd *c = &ctl_cmds[i];

		if (strcmp(c->group, group) != 0)
			continue;
		if (!c->name || (name && strcmp(c->name, name) == 0))
			return c;
	}
	return NULL;
}

static bool group_exists(const char *group)
{
	size_t i;

	for (i = 0; i < CTL_NCMDS; i++)
		if (strcmp(ctl_cmds[i].group, group) == 0)
			return true;
	return false;
}

/* "tollctl keys" alone or with --help lists the group's commands. */
static int group_usage(const char *group, const char *name)
{
	bool help = name && (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0);
	FILE *f = help ? stdout : stderr;

	if (!name)
		fprintf(stderr, "tollctl: '%s' needs a command\n", group);
	else if (!help)
		fprintf(stderr, "tollctl: unknown command '%s %s'\n", group, name);
	fprintf(f, "usage:\n");
	print_synopses(f, group);
	return help ? CTL_EXIT_OK : CTL_EXIT_USAGE;
}

/*
 * Runs the command at argv[0] (group) and argv[1] (name). The command sees its own argv
 * whose argv[0] is "tollctl GROUP NAME", so getopt's messages name the command.
 */
static int dispatch(struct ctl *ctl, int argc, char **argv)
{
	const char *name = argc > 1 ? argv[1] : NULL;
	const struct ctl_cmd *cmd = cmd_find(argv[0], name);
	char label[64];
	int skip;

	if (!group_exists(argv[0])) {
		fprintf(stderr, "tollctl: unknown command '%s'\nRun 'tollctl --help' for usage.\n",
			argv[0]);
		return CTL_EXIT_USAGE;
	}
	if (!cmd)
		return group_usage(argv[0], name);
	ctl->cmd = cmd;
	skip = cmd->name ? 2 : 1;
	snprintf(label, sizeof(label), "tollctl %s%s%s", cmd->group, cmd->name ? " " : "",
		 cmd->name ? cmd->name : "");
	argv += skip - 1;
	argc -= skip - 1;
	argv[0] = label;
	ctl->argv = argv;
	return cmd->run(ctl, argc, argv);
}

static int global_opt(struct ctl *ctl, int opt, const char *arg)
{
	double sec;

	switch (opt) {
	case 'u':
		free(ctl->base_url);
		ctl->base_url = strdup(arg);
		return ctl->base_url ? CTL_CONTINUE : ctl_nomem();
	case 'T':
		ctl->token_file = arg;
		return CTL_CONTINUE;
	case 'j':
		ctl->json = true;
		return CTL_CONTINUE;
	case 't':
		if (parse_decimal(arg, &sec) != 0 || sec <= 0 || sec > 86400)
			return ctl_usage_error(ctl,
					       "--timeout: '%s' is not a number of seconds "
					       "(more than 0, at most 86400)",
					       arg);
		ctl->timeout_ms = (long)(sec * 1000) > 0 ? (long)(sec * 1000) : 1;
		return CTL_CONTINUE;
	case 'h':
		print_global_help(stdout);
		return CTL_EXIT_OK;
	case 'V':
		puts("tollctl " TOLLCTL_VERSION);
		return CTL_EXIT_OK;
	default:
		fputs("Run 'tollctl --help' for usage.\n", stderr);
		return CTL_EXIT_USAGE;
	}
}

/* "+" stops at the command: what follows belongs to it. */
static int parse_global(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"url", required_argument, NULL, 'u'},
	    {"token-file", required_argument, NULL, 'T'},
	    {"json", no_argument, NULL, 'j'},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		rc = global_opt(ctl, opt, optarg);
		if (rc != CTL_CONTINUE)
			return rc;
	}
	if (optind >= argc) {
		fputs("tollctl: no command given\n", stderr);
		print_global_help(stderr);
		return CTL_EXIT_USAGE;
	}
	return CTL_CONTINUE;
}

/* Sets the defaults the options may override. Returns 0 or -ENOMEM. */
static int ctl_init(struct ctl *ctl)
{
	const char *url = getenv("TOLLGATE_ADMIN_URL");

	ctl->base_url = strdup(url && *url ? url : CTL_DEFAULT_URL);
	ctl->timeout_ms = CTL_DEFAULT_TIMEOUT_SEC * 1000L;
	return ctl->base_url ? 0 : -ENOMEM;
}

static void ctl_free(struct ctl *ctl)
{
	wipe_free(ctl->token); /* zeroes the whole block, then frees it */
	free(ctl->base_url);
}

static void *json_malloc(size_t size)
{
	return malloc(size);
}

int main(int argc, char **argv)
{
	cJSON_Hooks hooks = {.malloc_fn = json_malloc, .free_fn = wipe_free};
	struct ctl ctl = {0};
	size_t len;
	int rc;

	argv[0] = "tollctl"; /* getopt's messages then read the same whatever the path */
	cJSON_InitHooks(&hooks);
	if (ctl_init(&ctl) != 0)
		return ctl_nomem();
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fputs("tollctl: cannot initialise libcurl\n", stderr);
		ctl_free(&ctl);
		return CTL_EXIT_INTERNAL;
	}
	rc = parse_global(&ctl, argc, argv);
	if (rc == CTL_CONTINUE) {
		len = strlen(ctl.base_url);
		while (len > 0 && ctl.base_url[len - 1] == '/')
			ctl.base_url[--len] = '\0';
		rc = dispatch(&ctl, argc - optind, argv + optind);
	}
	ctl_free(&ctl);
	curl_global_cleanup();
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "tollctl: cannot write the output: %s\n", strerror(errno));
		return CTL_EXIT_INTERNAL;
	}
	return rc;
}
