/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Configuration: defaults need no file, files override defaults, the environment overrides
 * files, every bad field is named in the error and a failed load changes nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "tg_test.h"
#include "upstream.h"

/* Writes text to a fresh temp file; returns its path (static buffer). */
static const char *write_temp(const char *text)
{
	static char path[64];
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "/tmp/tg-config-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return NULL;
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static void defaults_need_no_file(void)
{
	struct config c;

	config_defaults(&c);
	TG_CHECK_STR(c.store_path, "var/store");
	TG_CHECK_STR(c.admin_listen, "127.0.0.1:8081");
	TG_CHECK_INT(c.store_sync, STORE_SYNC_META);
	TG_CHECK_INT(c.store_sync_interval_ms, 1000);
	TG_CHECK_INT(c.keys.t_cost, 2);
	TG_CHECK_INT(c.keys.m_cost_kib, 19456);
	TG_CHECK_INT(c.keys.parallelism, 1);
	TG_CHECK_INT(c.log_level, LOG_LVL_INFO);
}

static void file_overrides_defaults(void)
{
	const char *p = write_temp("{\"store\": {\"path\": \"/srv/tg\", \"sync\": \"full\","
				   " \"sync_interval_ms\": 0},"
				   " \"admin\": {\"listen\": \"[::1]:9000\", \"threads\": 4},"
				   " \"keys\": {\"argon2_m_cost_kib\": 65536}, \"log\": {\"level\": \"debug\"}}");
	char err[CONFIG_ERR_MAX];
	struct config c;

	TG_REQUIRE(p);
	config_defaults(&c);
	TG_CHECK_INT(config_load_file(&c, p, err), 0);
	TG_CHECK_STR(c.store_path, "/srv/tg");
	TG_CHECK_INT(c.store_sync, STORE_SYNC_FULL);
	TG_CHECK_INT(c.store_sync_interval_ms, 0);
	TG_CHECK_STR(c.admin_listen, "[::1]:9000");
	TG_CHECK_INT(c.admin_threads, 4);
	TG_CHECK_INT(c.keys.m_cost_kib, 65536);
	TG_CHECK_INT(c.keys.t_cost, 2); /* untouched fields keep their defaults */
	TG_CHECK_INT(c.log_level, LOG_LVL_DEBUG);
	unlink(p);
}

static const struct {
	const char *name;
	const char *json;
	const char *must_mention; /* the error names the field or the problem */
} bad_files[] = {
	{"unknown field", "{\"store\": {\"pathh\": \"x\"}}", "store.pathh"},
	{"unknown section", "{\"storage\": {\"path\": \"x\"}}", "storage.path"},
	{"wrong type", "{\"admin\": {\"threads\": \"four\"}}", "admin.threads"},
	{"fraction", "{\"admin\": {\"threads\": 2.5}}", "admin.threads"},
	{"negative", "{\"keys\": {\"fail_limit\": -1}}", "keys.fail_limit"},
	{"out of range", "{\"admin\": {\"threads\": 1000}}", "admin.threads"},
	{"bad enum", "{\"store\": {\"sync\": \"sometimes\"}}", "store.sync"},
	{"sync interval over an hour", "{\"store\": {\"sync_interval_ms\": 3600001}}",
	 "store.sync_interval_ms"},
	{"empty string", "{\"store\": {\"path\": \"\"}}", "store.path"},
	{"malformed", "{\"store\": {\"path\": \"x\"", "malformed JSON"},
	{"not an object", "[1, 2]", "JSON object"},
	{"trailing garbage", "{} x", "malformed JSON"},
	{"routing policy", "{\"routing\": {\"policy\": \"fastest\"}}", "routing.policy"},
	{"routing attempts 0", "{\"routing\": {\"max_attempts\": 0}}", "routing.max_attempts"},
	{"routing attempts 11", "{\"routing\": {\"max_attempts\": 11}}", "routing.max_attempts"},
	{"breaker failures 0", "{\"routing\": {\"breaker_failures\": 0}}",
	 "routing.breaker_failures"},
	{"breaker open 0", "{\"routing\": {\"breaker_open_sec\": 0}}", "routing.breaker_open_sec"},
	{"breaker probes", "{\"routing\": {\"breaker_probes\": -1}}", "routing.breaker_probes"},
	{"cooldown", "{\"routing\": {\"provider_cooldown_sec\": 3601}}",
	 "routing.provider_cooldown_sec"},
	{"retry_after", "{\"routing\": {\"retry_after\": \"maybe\"}}", "routing.retry_after"},
	{"model override", "{\"routing\": {\"models\": {\"gpt-4o\": \"cheap\"}}}",
	 "routing.models.gpt-4o"},
	{"service override", "{\"routing\": {\"services\": [\"a\"]}}", "routing.services"},
	{"unknown routing field", "{\"routing\": {\"polcy\": \"primary\"}}", "routing.polcy"},
};

static void routing_section(void)
{
	const char *p = write_temp(
	    "{\"routing\": {\"policy\": \"latency_weighted\", \"max_attempts\": 2,"
	    " \"provider_cooldown_sec\": 0, \"breaker_failures\": 7, \"breaker_open_sec\": 9,"
	    " \"breaker_probes\": 2, \"call_timeout_sec\": 20, \"retry_after\": \"ignore\","
	    " \"models\": {\"gpt-4o\": \"cost_weighted\"}, \"services\": {\"chat\": \"primary\"}}}");
	char err[CONFIG_ERR_MAX];
	struct config c;

	TG_REQUIRE(p);
	config_defaults(&c);
	TG_CHECK_INT(c.routing.policy, ROUTE_PRIMARY);
	TG_CHECK_INT(c.routing.max_attempts, 3);
	TG_CHECK_INT(config_load_file(&c, p, err), 0);
	TG_CHECK_INT(c.routing.policy, ROUTE_LATENCY);
	TG_CHECK_INT(c.routing.max_attempts, 2);
	TG_CHECK_INT(c.routing.cooldown_sec, 0);
	TG_CHECK_INT(c.routing.breaker_failures, 7);
	TG_CHECK_INT(c.routing.breaker_open_sec, 9);
	TG_CHECK_INT(c.routing.breaker_probes, 2);
	TG_CHECK_INT(c.routing.call_timeout_sec, 20);
	TG_CHECK_INT(c.routing.retry_after, 1);
	TG_REQUIRE(c.routing.nmodels == 1 && c.routing.nservices == 1);
	TG_CHECK_STR(c.routing.models[0].name, "gpt-4o");
	TG_CHECK_INT(routing_policy_for(&c.routing, "gpt-4o", "x"), ROUTE_COST);
	TG_CHECK_INT(routing_policy_for(&c.routing, "gpt-4o", "chat"), ROUTE_PRIMARY);
	TG_CHECK_INT(config_set(&c, "routing.max_attempts", "5", err), 0);
	TG_CHECK_INT(c.routing.max_attempts, 5);
	config_free(&c);
	unlink(p);
}

static void bad_files_are_named_and_change_nothing(void)
{
	for (size_t i = 0; i < TG_NCASES(bad_files); i++) {
		const char *p = write_temp(bad_files[i].json);
		char err[CONFIG_ERR_MAX] = "";
		struct config c, before;

		TG_REQUIRE(p);
		config_defaults(&c);
		before = c;
		if (config_load_file(&c, p, err) == 0) {
			printf("#   %s: accepted\n", bad_files[i].name);
			tg_failed++;
		}
		if (!strstr(err, bad_files[i].must_mention)) {
			printf("#   %s: error '%s' does not mention '%s'\n", bad_files[i].name, err,
			       bad_files[i].must_mention);
			tg_failed++;
		}
		TG_CHECK(memcmp(&c, &before, sizeof(c)) == 0);
		unlink(p);
	}
}

static void missing_file_is_an_error(void)
{
	char err[CONFIG_ERR_MAX];
	struct config c;

	config_defaults(&c);
	TG_CHECK(config_load_file(&c, "/nonexistent/tollgate.json", err) < 0);
	TG_CHECK(strstr(err, "/nonexistent/tollgate.json") != NULL);
}

static void environment_overrides_file(void)
{
	char err[CONFIG_ERR_MAX];
	struct config c;

	config_defaults(&c);
	setenv("TOLLGATE_ADMIN_LISTEN", "127.0.0.1:9999", 1);
	setenv("TOLLGATE_KEYS_FAIL_LIMIT", "9", 1);
	TG_CHECK_INT(config_apply_env(&c, err), 0);
	TG_CHECK_STR(c.admin_listen, "127.0.0.1:9999");
	TG_CHECK_INT(c.keys.fail_limit, 9);
	setenv("TOLLGATE_KEYS_FAIL_LIMIT", "nine", 1);
	TG_CHECK(config_apply_env(&c, err) < 0);
	TG_CHECK(strstr(err, "TOLLGATE_KEYS_FAIL_LIMIT") != NULL);
	TG_CHECK_INT(c.keys.fail_limit, 9); /* the failed pass changed nothing */
	unsetenv("TOLLGATE_ADMIN_LISTEN");
	unsetenv("TOLLGATE_KEYS_FAIL_LIMIT");
}

static void set_parses_text(void)
{
	char err[CONFIG_ERR_MAX];
	struct config c;

	config_defaults(&c);
	TG_CHECK_INT(config_set(&c, "store.map_size_mb", "128", err), 0);
	TG_CHECK_INT(c.store_map_size_mb, 128);
	TG_CHECK(config_set(&c, "store.map_size_mb", "12x", err) < 0);
	TG_CHECK(config_set(&c, "store.map_size_mb", "-5", err) < 0);
	TG_CHECK(config_set(&c, "store.map_size_mb", "", err) < 0);
	TG_CHECK(config_set(&c, "no.such", "1", err) == -ENOENT);
	TG_CHECK(strstr(err, "no.such") != NULL);
	TG_CHECK_INT(c.store_map_size_mb, 128);
}

struct kernel_text_case {
	const char *field, *value;
	int ok;		/* 1: accepted */
	uint32_t milli; /* kernel.penalty_multiple after an accepted value */
};

static const struct kernel_text_case kernel_text_cases[] = {
	{"kernel.penalty_multiple", "2", 1, 2000},
	{"kernel.penalty_multiple", "2.5", 1, 2500},
	{"kernel.penalty_multiple", "0.125", 1, 125},
	{"kernel.penalty_multiple", "1000", 1, 1000000},
	{"kernel.penalty_multiple", "0.05", 0, 0},   /* under 0.1 */
	{"kernel.penalty_multiple", "1000.001", 0, 0},
	{"kernel.penalty_multiple", "1.2345", 0, 0}, /* a fourth decimal */
	{"kernel.penalty_multiple", "2.", 0, 0},
	{"kernel.penalty_multiple", ".5", 0, 0},
	{"kernel.penalty_multiple", "-1", 0, 0},
	{"kernel.penalty_multiple", "1e3", 0, 0},
	{"kernel.penalty_multiple", "", 0, 0},
	{"kernel.mode", "tc", 1, 0},
	{"kernel.mode", "on", 0, 0},
	{"kernel.xdp_mode", "generic", 1, 0},
	{"kernel.xdp_mode", "skb", 0, 0},
	{"kernel.interfaces", "", 1, 0}, /* empty: data.listen's interfaces */
	{"kernel.interfaces", "eth0,eth1", 1, 0},
	{"kernel.allow", "", 1, 0},
	{"kernel.penalty_v6_prefix", "0", 0, 0},
	{"kernel.penalty_v6_prefix", "129", 0, 0},
	{"kernel.penalty_sec", "0", 0, 0},
};

static void kernel_fields(void)
{
	char err[CONFIG_ERR_MAX];
	struct config c;

	config_defaults(&c);
	TG_CHECK_INT(c.kernel_mode, 0); /* auto */
	TG_CHECK_STR(c.kernel_pin_dir, "/sys/fs/bpf/tollgate");
	TG_CHECK_INT(c.kernel_penalty_multiple_milli, 2000);
	TG_CHECK_STR(c.kernel_allow, "127.0.0.0/8,::1/128");
	for (size_t i = 0; i < TG_NCASES(kernel_text_cases); i++) {
		const struct kernel_text_case *t = &kernel_text_cases[i];
		struct config before;
		int rc;

		config_defaults(&c);
		before = c;
		rc = config_set(&c, t->field, t->value, err);
		TG_CHECK_INT(rc == 0, t->ok);
		if (rc != 0) {
			TG_CHECK(strstr(err, t->field) != NULL);
			TG_CHECK(memcmp(&c, &before, sizeof(c)) == 0);
		} else if (t->milli) {
			TG_CHECK_INT(c.kernel_penalty_multiple_milli, t->milli);
		}
		if ((rc == 0) != t->ok)
			printf("#   %s=%s\n", t->field, t->value);
	}
}

static void kernel_json_lists_and_decimals(void)
{
	char err[CONFIG_ERR_MAX], path[] = "/tmp/tg-config-kernel-XXXXXX";
	const char *text = "{\"kernel\": {\"interfaces\": [\"eth0\", \"eth1\"], "
			   "\"allow\": [\"10.0.0.0/8\"], \"penalty_multiple\": 3.25}}";
	struct config c;
	int fd = mkstemp(path);

	TG_REQUIRE(fd >= 0);
	TG_REQUIRE(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	config_defaults(&c);
	TG_CHECK_INT(config_load_file(&c, path, err), 0);
	TG_CHECK_STR(c.kernel_interfaces, "eth0,eth1");
	TG_CHECK_STR(c.kernel_allow, "10.0.0.0/8");
	TG_CHECK_INT(c.kernel_penalty_multiple_milli, 3250);
	fd = open(path, O_WRONLY | O_TRUNC);
	text = "{\"kernel\": {\"interfaces\": [\"eth0\", 7]}}";
	TG_REQUIRE(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	TG_CHECK(config_load_file(&c, path, err) < 0);
	TG_CHECK(strstr(err, "kernel.interfaces") != NULL);
	TG_CHECK_STR(c.kernel_interfaces, "eth0,eth1");
	/* a bad prefix is named when the config is finished (--check, start) */
	snprintf(c.kernel_allow, sizeof(c.kernel_allow), "10.0.0.0/8, 10.1.0.0/40");
	TG_CHECK(config_finish(&c, err) < 0);
	TG_CHECK(strstr(err, "kernel.allow: '10.1.0.0/40'") != NULL);
	unlink(path);
}

static void dump_round_trips(void)
{
	char err[CONFIG_ERR_MAX], path[] = "/tmp/tg-config-dump-XXXXXX";
	struct config c, d;
	int fd = mkstemp(path);
	FILE *f;

	TG_REQUIRE(fd >= 0);
	f = fdopen(fd, "w");
	config_defaults(&c);
	snprintf(c.store_path, sizeof(c.store_path), "/data/tollgate");
	c.keys.cache_max = 4096;
	c.kernel_penalty_multiple_milli = 1250;
	snprintf(c.kernel_interfaces, sizeof(c.kernel_interfaces), "eth0,eth1");
	config_dump(&c, f);
	fclose(f);
	config_defaults(&d);
	TG_CHECK_INT(config_load_file(&d, path, err), 0);
	TG_CHECK(memcmp(&c, &d, sizeof(c)) == 0);
	unlink(path);
}

static const struct kernel_text_case limits_text_cases[] = {
	{"limits.enabled", "false", 1, 0},
	{"limits.enabled", "0", 1, 0},
	{"limits.enabled", "no", 0, 0},
	{"limits.mode", "soft", 1, 0},
	{"limits.mode", "inherit", 0, 0},
	{"limits.mode", "", 0, 0},
	{"limits.action", "downgrade", 1, 0},
	{"limits.action", "explode", 0, 0},
	{"limits.alert_threshold", "0.9", 1, 0},
	{"limits.alert_threshold", "0", 0, 0},
	{"limits.alert_threshold", "1.5", 0, 0},
	{"limits.queue_depth", "0", 0, 0},
	{"limits.downgrade", "gpt-4o=gpt-4o-mini,gpt-4=gpt-3.5-turbo", 1, 0},
	{"limits.downgrade", "", 1, 0},
	{"limits.downgrade", "gpt-4o", 0, 0},
	{"limits.downgrade", "gpt-4o=", 0, 0},
	{"limits.downgrade", "a=b,", 0, 0},
	{"limits.downgrade", "a=b=c", 0, 0},
	{"limits.webhook_url", "", 1, 0},
	{"limits.completion_estimate_tokens", "0", 0, 0},
	{"limits.max_tenants", "0", 1, 0},
	{"limits.max_tenants", "1000000", 1, 1000000},
	{"limits.max_tenants", "1000001", 0, 0},
	{"limits.max_tenants", "-1", 0, 0},
};

static void limits_fields(void)
{
	char err[CONFIG_ERR_MAX];
	struct config c;

	config_defaults(&c);
	TG_CHECK_INT(c.limits_enabled, 1);
	TG_CHECK_INT(c.limits_mode, 1);	  /* hard */
	TG_CHECK_INT(c.limits_action, 1); /* block */
	TG_CHECK_INT(c.limits_alert_permille, 800);
	TG_CHECK_INT(c.limits_queue_depth, 64);
	TG_CHECK_INT(c.limits_queue_timeout_ms, 5000);
	TG_CHECK_INT(c.limits_completion_estimate, 1024);
	TG_CHECK_INT(c.limits_max_tenants, 10000);
	TG_CHECK_INT(c.limits_webhook_retries, 3);
	TG_CHECK_INT(c.limits_webhook_timeout_ms, 2000);
	TG_CHECK_STR(c.limits_webhook_url, "");
	for (size_t i = 0; i < TG_NCASES(limits_text_cases); i++) {
		int rc = config_set(&c, limits_text_cases[i].field, limits_text_cases[i].value, err);

		if ((rc == 0) != limits_text_cases[i].ok)
			printf("#   %s=%s: rc %d (%s)\n", limits_text_cases[i].field,
			       limits_text_cases[i].value, rc, rc ? err : "");
		TG_CHECK((rc == 0) == limits_text_cases[i].ok);
		if (rc)
			TG_CHECK(strstr(err, limits_text_cases[i].field) != NULL);
	}
	TG_CHECK_INT(c.limits_enabled, 0);
	TG_CHECK_INT(c.limits_mode, 2);
	TG_CHECK_INT(c.limits_alert_permille, 900);
	TG_CHECK_INT(c.limits_max_tenants, 1000000);
	/* the environment name of the bound, as the README gives it */
	setenv("TOLLGATE_LIMITS_MAX_TENANTS", "3", 1);
	TG_CHECK_INT(config_apply_env(&c, err), 0);
	TG_CHECK_INT(c.limits_max_tenants, 3);
	setenv("TOLLGATE_LIMITS_MAX_TENANTS", "many", 1);
	TG_CHECK(config_apply_env(&c, err) != 0 && strstr(err, "TOLLGATE_LIMITS_MAX_TENANTS"));
	unsetenv("TOLLGATE_LIMITS_MAX_TENANTS");
}

/* limits.downgrade as a JSON object, checked against the priced models by config_finish. */
static void limits_downgrade_json_checked(void)
{
	char err[CONFIG_ERR_MAX];
	struct config c;
	const char *p;

	config_defaults(&c);
	p = write_temp("{\"limits\":{\"enabled\":false,\"downgrade\":{\"gpt-4o\":\"gpt-4o-mini\"}}}");
	TG_REQUIRE(p);
	TG_CHECK_INT(config_load_file(&c, p, err), 0);
	unlink(p);
	TG_CHECK_STR(c.limits_downgrade, "gpt-4o=gpt-4o-mini");
	TG_CHECK_INT(c.limits_enabled, 0);
	TG_CHECK_INT(config_finish(&c, err), 0);
	config_free(&c);
	config_defaults(&c);
	p = write_temp("{\"limits\":{\"downgrade\":{\"gpt-4o\":\"gpt-9\"}}}");
	TG_REQUIRE(p);
	TG_CHECK_INT(config_load_file(&c, p, err), 0);
	unlink(p);
	TG_CHECK(config_finish(&c, err) < 0);
	TG_CHECK(strstr(err, "limits.downgrade") && strstr(err, "gpt-9"));
	config_free(&c);
	config_defaults(&c);
	p = write_temp("{\"limits\":{\"downgrade\":{\"gpt-4o\":5}}}");
	TG_REQUIRE(p);
	TG_CHECK(config_load_file(&c, p, err) < 0);
	unlink(p);
	TG_CHECK(strstr(err, "limits.downgrade") != NULL);
	TG_CHECK_STR(c.limits_downgrade, "");
}

/* limits.action downgrade needs a limits.downgrade map to go by (--check says so). */
static void limits_action_downgrade_needs_a_map(void)
{
	char err[CONFIG_ERR_MAX] = "";
	struct config c;

	config_defaults(&c);
	TG_CHECK_INT(config_set(&c, "limits.action", "downgrade", err), 0);
	TG_CHECK(config_finish(&c, err) < 0);
	TG_CHECK(strncmp(err, "limits.action:", 14) == 0 && strstr(err, "limits.downgrade"));
	config_free(&c);
	config_defaults(&c);
	TG_CHECK_INT(config_set(&c, "limits.action", "downgrade", err), 0);
	TG_CHECK_INT(config_set(&c, "limits.downgrade", "gpt-4o=gpt-4o-mini", err), 0);
	TG_CHECK_INT(config_finish(&c, err), 0);
	config_free(&c);
}

/*
 * upstream.http and upstream.ca_file reach the built-in provider; cleartext HTTP/2 is refused,
 * naming the field and the library, where libcurl cannot reuse such connections (7.88).
 */
static void upstream_http_and_ca_file(void)
{
	char err[CONFIG_ERR_MAX] = "";
	struct config c;

	config_defaults(&c);
	TG_CHECK_INT(config_set(&c, "upstream.http", "2", err), 0);
	TG_CHECK(config_set(&c, "upstream.http", "3", err) < 0);
	TG_CHECK(strstr(err, "upstream.http") != NULL);
	if (upstream_h2c_ok()) {
		TG_CHECK_INT(config_finish(&c, err), 0);
	} else {
		TG_CHECK(config_finish(&c, err) < 0);
		TG_CHECK(strstr(err, "upstream.http: 2 with upstream.default_url") != NULL);
		TG_CHECK(strstr(err, upstream_lib_version()) != NULL);
	}
	config_free(&c);

	config_defaults(&c);
	TG_CHECK_INT(config_set(&c, "upstream.http", "2", err), 0);
	TG_CHECK_INT(config_set(&c, "upstream.default_url", "https://127.0.0.1:9443/v1", err), 0);
	TG_CHECK_INT(config_set(&c, "upstream.ca_file", "/nonexistent/ca.pem", err), 0);
	TG_CHECK(config_finish(&c, err) < 0);
	TG_CHECK(strstr(err, "upstream.ca_file: cannot read '/nonexistent/ca.pem'") != NULL);
	config_free(&c);

	config_defaults(&c);
	TG_CHECK_INT(config_set(&c, "upstream.http", "2", err), 0);
	TG_CHECK_INT(config_set(&c, "upstream.default_url", "https://127.0.0.1:9443/v1", err), 0);
	TG_CHECK_INT(config_set(&c, "upstream.ca_file", "/etc/passwd", err), 0);
	TG_REQUIRE(config_finish(&c, err) == 0);
	TG_CHECK_INT(c.providers.v[0].http, PROVIDER_HTTP_2);
	TG_CHECK_STR(c.providers.v[0].ca_file, "/etc/passwd");
	config_free(&c);
}

static const struct tg_case cases[] = {
	{"upstream.http and upstream.ca_file reach the built-in provider", upstream_http_and_ca_file},
    {"routing: every field from a file, overrides, --set", routing_section},
	{"defaults need no file", defaults_need_no_file},
	{"a file overrides defaults field by field", file_overrides_defaults},
	{"bad files are refused, the field named, nothing changed",
	 bad_files_are_named_and_change_nothing},
	{"a missing file is an error naming it", missing_file_is_an_error},
	{"TOLLGATE_* environment overrides; a bad value is named", environment_overrides_file},
	{"--set parses text and refuses junk", set_parses_text},
	{"the dump (--check output) loads back to the same config", dump_round_trips},
	{"kernel.*: defaults, decimals with 3 digits, enums, lists; bad values named",
	 kernel_fields},
	{"kernel.* in a file: arrays of strings for lists, numbers for decimals",
	 kernel_json_lists_and_decimals},
	{"limits.*: defaults, booleans, enums without inherit, the downgrade map; bad values named",
	 limits_fields},
	{"limits.action downgrade without limits.downgrade is an error naming it",
	 limits_action_downgrade_needs_a_map},
	{"limits.downgrade as an object, both models priced, else named", limits_downgrade_json_checked},
};

int main(void)
{
	log_init("test_config", LOG_LVL_ERROR);
	return tg_run("config", cases, TG_NCASES(cases));
}
