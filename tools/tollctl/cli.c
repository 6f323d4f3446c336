// SPDX-License-Identifier: BSD-2-Clause
/*
 * What tollctl's commands share: usage errors and help, positional arguments, the admin
 * token, the checks behind --limit and --expires, printing a new secret once, and the two
 * probes (health, ready) that need no token.
 *
 * Usage errors are caught here, before any request, so a typo never reaches the server and
 * exit status 2 always means "the command line was wrong", never "the server said no".
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tollctl.h"

/* Real tokens are about 60 bytes; anything near this is the wrong file. */
#define TOKEN_MAX_BYTES 4096

static void print_usage_line(FILE *f, const struct ctl_cmd *c)
{
	fprintf(f, "usage: tollctl [options] %s%s%s%s%s\n", c->group, c->name ? " " : "",
		c->name ? c->name : "", c->synopsis[0] ? " " : "", c->synopsis);
}

/* Prints the usage of the current command to stderr. Returns CTL_EXIT_USAGE. */
int ctl_usage_short(const struct ctl *ctl)
{
	const struct ctl_cmd *c = ctl->cmd;

	if (!c) {
		fputs("Run 'tollctl --help' for usage.\n", stderr);
		return CTL_EXIT_USAGE;
	}
	print_usage_line(stderr, c);
	fprintf(stderr, "Run 'tollctl %s%s%s --help' for details.\n", c->group, c->name ? " " : "",
		c->name ? c->name : "");
	return CTL_EXIT_USAGE;
}

/* Prints "tollctl: MESSAGE" and the usage to stderr. Returns CTL_EXIT_USAGE. */
int ctl_usage_error(const struct ctl *ctl, const char *fmt, ...)
{
	va_list ap;

	fputs("tollctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return ctl_usage_short(ctl);
}

/* Prints the current command's usage and details to stdout. Returns CTL_EXIT_OK. */
int ctl_help(const struct ctl *ctl)
{
	print_usage_line(stdout, ctl->cmd);
	if (ctl->cmd->help) {
		putchar('\n');
		fputs(ctl->cmd->help, stdout);
	}
	return CTL_EXIT_OK;
}

/*
 * Handles what getopt_long returns for -h and for errors (it has printed those already).
 * "tollctl keys list --json" is a likely slip, so a global option after the command gets
 * a pointer to where it belongs.
 */
int ctl_common_opt(const struct ctl *ctl, int opt)
{
	static const char *const globals[] = {"--json",	   "--url",	"--token-file",
					      "--timeout", "--version", NULL};
	const char *arg = optind > 0 && ctl->argv ? ctl->argv[optind - 1] : NULL;
	char name[16];

	if (opt == 'h')
		return ctl_help(ctl);
	if (arg) {
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(arg, "="), arg);
		if (parse_one_of(name, globals))
			fprintf(stderr,
				"tollctl: %s is a global option: put it before the command, "
				"as in 'tollctl %s ...'\n",
				name, name);
	}
	return ctl_usage_short(ctl);
}

/* For commands whose only option is --help. Returns CTL_CONTINUE or an exit status. */
int ctl_no_options(const struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt;

	optind = 0; /* glibc: start afresh on this new argv */
	opt = getopt_long(argc, argv, "h", opts, NULL);
	return opt == -1 ? CTL_CONTINUE : ctl_common_opt(ctl, opt);
}

/*
 * Checks the arguments getopt left at argv[optind..]: exactly one, non-empty, stored in
 * *ARG, when WHAT names it; none when WHAT is NULL. Returns CTL_CONTINUE or a usage error.
 */
int ctl_args(const struct ctl *ctl, int argc, char **argv, const char *what, const char **arg)
{
	int want = what ? 1 : 0;

	if (argc - optind > want)
		return ctl_usage_error(ctl, "unexpected argument '%s'", argv[optind + want]);
	if (!what)
		return CTL_CONTINUE;
	if (argc == optind)
		return ctl_usage_error(ctl, "missing %s", what);
	if (!argv[optind][0])
		return ctl_usage_error(ctl, "%s must not be empty", what);
	*arg = argv[optind];
	return CTL_CONTINUE;
}

/* Reports an allocation failure. Returns CTL_EXIT_INTERNAL. */
int ctl_nomem(void)
{
	fputs("tollctl: out of memory\n", stderr);
	return CTL_EXIT_INTERNAL;
}

/* Reads FILE without stdio, whose buffer would keep an unwiped copy of the token. */
static int token_read(const char *file, char **out)
{
	char buf[TOKEN_MAX_BYTES + 1];
	int fd = open(file, O_RDONLY | O_CLOEXEC), rc = CTL_EXIT_USAGE;
	size_t len = 0;
	ssize_t n;

	if (fd < 0) {
		fprintf(stderr, "tollctl: cannot open the token file %s: %s\n", file,
			strerror(errno));
		return CTL_EXIT_USAGE;
	}
	while (len < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "tollctl: cannot read the token file %s: %s\n", file,
				strerror(errno));
			goto out;
		}
		len += (size_t)n;
	}
	if (len == sizeof(buf) || memchr(buf, '\0', len)) {
		fprintf(stderr, "tollctl: the token file %s does not hold a token (%s)\n", file,
			len == sizeof(buf) ? "larger than 4 KiB" : "it has NUL bytes");
		goto out;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	*out = strndup(buf, len);
	rc = *out ? CTL_EXIT_OK : ctl_nomem();
out:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return rc;
}

/* A token goes into an HTTP header: blanks or control characters would break or forge it. */
static int token_check(struct ctl *ctl, const char *source)
{
	const unsigned char *p = (const unsigned char *)ctl->token;
	const char *why = *p ? NULL : "is empty";

	for (; *p && !why; p++)
		if (*p <= ' ' || *p == 0x7f)
			why = "contains blanks or control characters";
	if (!why)
		return CTL_EXIT_OK;
	fprintf(stderr, "tollctl: the admin token from %s %s\n", source, why);
	wipe_free(ctl->token);
	ctl->token = NULL;
	return CTL_EXIT_USAGE;
}

/*
 * Loads the admin token once: from --token-file (trailing newlines stripped), else from
 * TOLLGATE_ADMIN_TOKEN. Returns 0, or an exit status after saying what to set; the
 * message never contains the token.
 */
int ctl_load_token(struct ctl *ctl)
{
	const char *env = getenv("TOLLGATE_ADMIN_TOKEN");
	int rc;

	if (ctl->token)
		return CTL_EXIT_OK;
	if (ctl->token_file) {
		rc = token_read(ctl->token_file, &ctl->token);
		if (rc)
			return rc;
		return token_check(ctl, ctl->token_file);
	}
	if (!env || !*env) {
		fputs("tollctl: this command needs an admin token: set TOLLGATE_ADMIN_TOKEN or use "
		      "--token-file FILE\n",
		      stderr);
		return CTL_EXIT_USAGE;
	}
	ctl->token = strdup(env);
	if (!ctl->token)
		return ctl_nomem();
	return token_check(ctl, "TOLLGATE_ADMIN_TOKEN");
}

static int limit_error(const struct ctl *ctl, int err, const char *what, const char *field,
		       const char *value, const char *hint)
{
	switch (err) {
	case -ENOENT:
		return ctl_usage_error(ctl, "%s: unknown limit field '%s'", what, field);
	case -EPERM:
		return ctl_usage_error(ctl,
				       "%s: null (remove the override) only works with "
				       "'keys update'",
				       what);
	case -EINVAL:
	case -ERANGE:
		return ctl_usage_error(ctl, "%s: '%s' is not %s", what, value, hint);
	default:
		return ctl_nomem();
	}
}

/*
 * Adds one limit to LIMITS. FIELD is given by a shorthand flag (--rps); when NULL, VALUE is
 * "FIELD=VALUE" (--limit). Each field may appear once: "--limit burst=5 --clear-limit
 * burst" is a mistake to point out, not to settle by order. Returns CTL_CONTINUE or an
 * exit status.
 */
int ctl_limit_opt(const struct ctl *ctl, cJSON *limits, const char *flag, const char *field,
		  const char *value, bool allow_null)
{
	char name[64], what[96];
	const char *eq, *hint = "a valid value";
	cJSON *item;
	int err;

	snprintf(what, sizeof(what), "%s", flag);
	if (!field) {
		eq = strchr(value, '=');
		if (!eq || eq == value || (size_t)(eq - value) >= sizeof(name))
			return ctl_usage_error(ctl, "%s: expected FIELD=VALUE, got '%s'", flag,
					       value);
		memcpy(name, value, (size_t)(eq - value));
		name[eq - value] = '\0';
		field = name;
		value = eq + 1;
		snprintf(what, sizeof(what), "%s %s", flag, field);
	}
	if (cJSON_GetObjectItemCaseSensitive(limits, field))
		return ctl_usage_error(ctl, "%s: the limit %s is given more than once", flag,
				       field);
	err = parse_limit(field, value, allow_null, &item, &hint);
	if (err)
		return limit_error(ctl, err, what, field, value, hint);
	if (!cJSON_AddItemToObject(limits, field, item)) {
		cJSON_Delete(item);
		return ctl_nomem();
	}
	return CTL_CONTINUE;
}

/*
 * Adds LIMIT's action VALUE (block, queue, downgrade, alert; "null" removes it where
 * ALLOW_NULL) to ACTIONS, checked here: LIMIT must take an action and appear once. WHAT
 * leads the error ("--action", "actions.LIMIT"). CTL_CONTINUE or an exit status.
 */
int ctl_action_add(const struct ctl *ctl, cJSON *actions, const char *what, const char *limit,
		   const char *value, bool allow_null)
{
	bool null = strcmp(value, "null") == 0;
	cJSON *item;

	if (!parse_is_amount_limit(limit))
		return ctl_usage_error(ctl, "%s: '%s' is not a limit that takes an action", what,
				       limit);
	if (null ? !allow_null : !parse_one_of(value, parse_action_words))
		return ctl_usage_error(ctl,
				       "%s: '%s' is not one of block, queue, downgrade, alert%s",
				       what, value, allow_null ? " (or null)" : "");
	if (cJSON_GetObjectItemCaseSensitive(actions, limit))
		return ctl_usage_error(ctl, "%s: the action of %s is given more than once", what,
				       limit);
	item = null ? cJSON_CreateNull() : cJSON_CreateString(value);
	if (!item || !cJSON_AddItemToObject(actions, limit, item)) {
		cJSON_Delete(item);
		return ctl_nomem();
	}
	return CTL_CONTINUE;
}

/* --action LIMIT=ACTION into ACTIONS (ctl_action_add). */
int ctl_action_opt(const struct ctl *ctl, cJSON *actions, const char *flag, const char *value,
		   bool allow_null)
{
	const char *eq = strchr(value, '=');
	char limit[64];

	if (!eq || eq == value || (size_t)(eq - value) >= sizeof(limit))
		return ctl_usage_error(ctl, "%s: expected LIMIT=ACTION, got '%s'", flag, value);
	snprintf(limit, sizeof(limit), "%.*s", (int)(eq - value), value);
	return ctl_action_add(ctl, actions, flag, limit, eq + 1, allow_null);
}

/* Sets BODY.expires_at from --expires; "never" (null) only when ALLOW_NEVER. */
int ctl_when_opt(const struct ctl *ctl, cJSON *body, const char *value, bool allow_never)
{
	char when[CTL_WHEN_LEN];
	int err;

	if (allow_never && strcmp(value, "never") == 0)
		return json_replace(body, "expires_at", cJSON_CreateNull()) ? ctl_nomem()
									    : CTL_CONTINUE;
	err = parse_when(value, time(NULL), when, sizeof(when));
	if (err == -ERANGE)
		return ctl_usage_error(ctl,
				       "--expires: '%s' must be between 1 minute and 100 "
				       "years from now",
				       value);
	if (err)
		return ctl_usage_error(ctl,
				       "--expires: '%s' is neither an RFC 3339 time "
				       "(2027-01-01T00:00:00Z) nor +N followed by d, h or m%s",
				       value, allow_never ? ", nor never" : "");
	return ctl_set_string(body, "expires_at", when) ? ctl_nomem() : CTL_CONTINUE;
}

/* Sets OBJ.NAME to the string VALUE. Returns 0 or -ENOMEM. */
int ctl_set_string(cJSON *obj, const char *name, const char *value)
{
	return json_replace(obj, name, cJSON_CreateString(value));
}

/*
 * Prints the secret OBJ.FIELD (a new key or token) on stdout, the only place a secret is
 * ever written. Returns CTL_EXIT_OK, or CTL_EXIT_SERVER when the answer lacks it.
 */
int ctl_print_secret(const char *what, const cJSON *obj, const char *field)
{
	const char *secret = json_str(obj, field);

	if (!secret) {
		fprintf(stderr, "tollctl: the server's answer carries no %s\n", what);
		return CTL_EXIT_SERVER;
	}
	printf("Save this %s now; it will not be shown again:\n\n    ", what);
	out_clean(stdout, secret);
	printf("\n\n");
	return CTL_EXIT_OK;
}

/* Prints one object: its JSON with --json, else its fields. Returns an exit status. */
int ctl_show(const struct ctl *ctl, const cJSON *json)
{
	int err = ctl->json ? out_json(json) : out_fields(json, 0);

	if (err == -ENOMEM)
		return ctl_nomem();
	return err ? CTL_EXIT_INTERNAL : CTL_EXIT_OK;
}

/*
 * Prints a list object: its JSON with --json, else its "data" array as a table of COLS.
 * Returns an exit status.
 */
int ctl_show_list(const struct ctl *ctl, const cJSON *list, const struct out_col *cols,
		  size_t ncols)
{
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(list, "data");

	if (ctl->json)
		return ctl_show(ctl, list);
	if (!cJSON_IsArray(data)) {
		fprintf(stderr, "tollctl: the server's list has no \"data\" array\n");
		return CTL_EXIT_SERVER;
	}
	return out_table(cols, ncols, data) ? ctl_nomem() : CTL_EXIT_OK;
}

/* A command without options or arguments that GETs PATH and prints the list as COLS. */
int ctl_list_command(struct ctl *ctl, int argc, char **argv, const char *path,
		     const struct out_col *cols, size_t ncols)
{
	cJSON *list = NULL;
	int rc = ctl_no_options(ctl, argc, argv);

	if (rc == CTL_CONTINUE)
		rc = ctl_args(ctl, argc, argv, NULL, NULL);
	if (rc != CTL_CONTINUE)
		return rc;
	rc = ctl_request(ctl, "GET", path, NULL, true, &list);
	if (!rc)
		rc = ctl_show_list(ctl, list, cols, ncols);
	cJSON_Delete(list);
	return rc;
}

/*
 * A command taking one ID and no options: runs METHOD on PREFIX + escaped ID and shows the
 * object the server answers with.
 */
int ctl_id_command(struct ctl *ctl, int argc, char **argv, const char *prefix, const char *method)
{
	const char *id = NULL;
	cJSON *obj = NULL;
	char *path = NULL;
	int rc = ctl_no_options(ctl, argc, argv);

	if (rc == CTL_CONTINUE)
		rc = ctl_args(ctl, argc, argv, "ID", &id);
	if (rc == CTL_CONTINUE && !(path = ctl_path(prefix, id, NULL)))
		rc = ctl_nomem();
	if (rc != CTL_CONTINUE)
		return rc;
	rc = ctl_request(ctl, method, path, NULL, true, &obj);
	if (!rc)
		rc = ctl_show(ctl, obj);
	cJSON_Delete(obj);
	free(path);
	return rc;
}

static int ctl_probe(struct ctl *ctl, int argc, char **argv, const char *path)
{
	cJSON *json;
	int rc = ctl_no_options(ctl, argc, argv);

	if (rc == CTL_CONTINUE)
		rc = ctl_args(ctl, argc, argv, NULL, NULL);
	if (rc != CTL_CONTINUE)
		return rc;
	rc = ctl_request(ctl, "GET", path, NULL, false, &json);
	if (rc)
		return rc;
	rc = ctl_show(ctl, json);
	cJSON_Delete(json);
	return rc;
}

/* tollctl health: GET /health, no token. */
int ctl_health(struct ctl *ctl, int argc, char **argv)
{
	return ctl_probe(ctl, argc, argv, "/health");
}

/* tollctl ready: GET /ready, no token; 503 (not ready) exits with 6. */
int ctl_ready(struct ctl *ctl, int argc, char **argv)
{
	return ctl_probe(ctl, argc, argv, "/ready");
}
