// SPDX-License-Identifier: BSD-2-Clause
/*
 * tollctl, the command-line client of tollgate's admin REST API (docs/admin-api.md):
 * declarations shared by its modules.
 *
 * tollctl.c parses the global options and dispatches; cli.c holds what every command
 * shares (usage errors, the token, option checks); http.c is the only file that includes
 * curl.h; parse.c and util.c are pure (no I/O) so they can be tested alone; output.c renders
 * tables and field lists; keys.c, tiers.c, tokens.c, status.c and limits.c implement the
 * commands.
 *
 * Two error conventions meet here. Helpers return 0 or a negative errno. Functions that talk
 * to the user (commands, requests, usage checks) return a process exit status from
 * enum ctl_exit instead, after printing the message: that status is the contract with
 * scripts, and an errno could not express "the server answered 404".
 */
#ifndef TOLLCTL_H
#define TOLLCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include <cjson/cJSON.h>

#define TOLLCTL_VERSION		"0.1.0"
#define CTL_DEFAULT_URL		"http://127.0.0.1:8081"
#define CTL_DEFAULT_TIMEOUT_SEC 10
#define CTL_MAX_BODY_BYTES	(16u << 20)
#define CTL_WHEN_LEN		64

enum ctl_exit {
	CTL_CONTINUE = -1, /* not an exit status: option parsing may go on */
	CTL_EXIT_OK = 0,
	CTL_EXIT_INTERNAL = 1,	/* out of memory, cannot write output */
	CTL_EXIT_USAGE = 2,	/* bad flags or arguments, no token */
	CTL_EXIT_NOT_FOUND = 3, /* 404 */
	CTL_EXIT_AUTH = 4,	/* 401, 403 */
	CTL_EXIT_REJECTED = 5,	/* other 4xx */
	CTL_EXIT_SERVER = 6,	/* 5xx, unreachable, timeout, malformed answer */
};

struct ctl;

/* One command: GROUP [NAME]. run() gets argv[0] = "tollctl GROUP NAME" and its own args. */
struct ctl_cmd {
	const char *group;
	const char *name; /* NULL for commands without a subcommand (health, ready) */
	int (*run)(struct ctl *ctl, int argc, char **argv);
	const char *synopsis; /* the arguments after "GROUP NAME", for usage lines */
	const char *help;     /* option details for --help, may be NULL */
};

/* State shared by every command; lives for the whole run. */
struct ctl {
	char *base_url;		   /* owned, trailing '/' removed */
	const char *token_file;	   /* borrowed from argv; NULL when not given */
	char *token;		   /* owned, loaded on first need, wiped on free */
	bool json;		   /* --json: print the server's JSON instead of tables */
	long timeout_ms;	   /* whole-request limit, also used for connecting */
	const struct ctl_cmd *cmd; /* the command being run, for usage messages */
	char **argv;		   /* its argv, to point at a misplaced global option */
};

/* Growable byte buffer, always NUL-terminated once non-empty. Growth copies and wipes. */
struct sbuf {
	char *buf;
	size_t len;
	size_t cap;
	size_t max; /* largest len allowed; 0 means no limit */
};

/* One table column: its header and the member of each row object it shows. */
struct out_col {
	const char *header;
	const char *field;
};

/* cli.c */
int ctl_usage_error(const struct ctl *ctl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int ctl_usage_short(const struct ctl *ctl);
int ctl_help(const struct ctl *ctl);
int ctl_common_opt(const struct ctl *ctl, int opt);
int ctl_no_options(const struct ctl *ctl, int argc, char **argv);
int ctl_args(const struct ctl *ctl, int argc, char **argv, const char *what, const char **arg);
int ctl_nomem(void);
int ctl_load_token(struct ctl *ctl);
int ctl_limit_opt(const struct ctl *ctl, cJSON *limits, const char *flag, const char *field,
		  const char *value, bool allow_null);
int ctl_action_add(const struct ctl *ctl, cJSON *actions, const char *what, const char *limit,
		   const char *value, bool allow_null);
int ctl_action_opt(const struct ctl *ctl, cJSON *actions, const char *flag, const char *value,
		   bool allow_null);
int ctl_when_opt(const struct ctl *ctl, cJSON *body, const char *value, bool allow_never);
int ctl_set_string(cJSON *obj, const char *name, const char *value);
int ctl_print_secret(const char *what, const cJSON *obj, const char *field);
int ctl_show(const struct ctl *ctl, const cJSON *json);
int ctl_show_list(const struct ctl *ctl, const cJSON *list, const struct out_col *cols,
		  size_t ncols);
int ctl_list_command(struct ctl *ctl, int argc, char **argv, const char *path,
		     const struct out_col *cols, size_t ncols);
int ctl_id_command(struct ctl *ctl, int argc, char **argv, const char *prefix, const char *method);
int ctl_health(struct ctl *ctl, int argc, char **argv);
int ctl_ready(struct ctl *ctl, int argc, char **argv);
/* status.c */
int ctl_status(struct ctl *ctl, int argc, char **argv);
/* providers.c */
int ctl_providers(struct ctl *ctl, int argc, char **argv);

/* http.c */
int http_send(struct ctl *ctl, const char *method, const char *path, const cJSON *body, bool auth,
	      long *status, cJSON **json);
int http_check(const struct ctl *ctl, long status, const cJSON *json);
int ctl_request(struct ctl *ctl, const char *method, const char *path, const cJSON *body, bool auth,
		cJSON **out);

/* util.c */
void wipe_free(void *p);
int sbuf_add(struct sbuf *sb, const void *data, size_t len);
int sbuf_addf(struct sbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_wipe(struct sbuf *sb);
char *url_escape(const char *s);
char *ctl_path(const char *prefix, const char *id, const char *suffix);
int query_add(struct sbuf *sb, const char *name, const char *value);
int json_replace(cJSON *obj, const char *name, cJSON *item);
const char *json_str(const cJSON *obj, const char *name);

/* parse.c */
int parse_count(const char *s, long long *out);
int parse_decimal(const char *s, double *out);
int parse_when(const char *s, time_t now, char *out, size_t outlen);
bool parse_one_of(const char *s, const char *const *allowed);
/*
 * FIELD=VALUE of any limit the admin API takes (one table for keys create/update --limit,
 * tiers set --limit and limits set) into a JSON value: amounts raw, so no digit is lost;
 * enums as strings; "null" (which clears) only when allow_null. 0 and *item, -ENOENT
 * unknown field, -EINVAL bad value, -ERANGE out of range (*hint then says what the field
 * takes), -EPERM a null not allowed, -ENOMEM.
 */
int parse_limit(const char *field, const char *value, bool allow_null, cJSON **item,
		const char **hint);
/* Whether FIELD is an amount limit that may carry its own action (actions.FIELD=...). */
bool parse_is_amount_limit(const char *field);
extern const char *const parse_action_words[]; /* block, queue, downgrade, alert, NULL */
/*
 * Checks a subject - a key id (bare or key:ID), user:X, team:X, consumer:X, tenant:X - and
 * writes its canonical form (key:ID) to out. 0, -EINVAL (not a subject), -EPERM (a key
 * where allow_key is false).
 */
int parse_subject(const char *s, bool allow_key, char *out, size_t outlen);

/* output.c */
int out_json(const cJSON *json);
int out_table(const struct out_col *cols, size_t ncols, const cJSON *items);
int out_fields(const cJSON *obj, int indent);
void out_clean(FILE *f, const char *s);

/* limits.c */
int limits_list(struct ctl *ctl, int argc, char **argv);
int limits_set(struct ctl *ctl, int argc, char **argv);
int limits_clear(struct ctl *ctl, int argc, char **argv);
int quota_show(struct ctl *ctl, int argc, char **argv);

/* keys.c, tiers.c, tokens.c */
int keys_create(struct ctl *ctl, int argc, char **argv);
int keys_list(struct ctl *ctl, int argc, char **argv);
int keys_show(struct ctl *ctl, int argc, char **argv);
int keys_update(struct ctl *ctl, int argc, char **argv);
int keys_revoke(struct ctl *ctl, int argc, char **argv);
int keys_rotate(struct ctl *ctl, int argc, char **argv);
int tiers_list(struct ctl *ctl, int argc, char **argv);
int tiers_set(struct ctl *ctl, int argc, char **argv);
int tokens_create(struct ctl *ctl, int argc, char **argv);
int tokens_list(struct ctl *ctl, int argc, char **argv);
int tokens_revoke(struct ctl *ctl, int argc, char **argv);

#endif /* TOLLCTL_H */
