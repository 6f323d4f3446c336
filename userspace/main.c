/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * tollgated: wires the modules together. Parses the command line and configuration, opens
 * the store (applying migrations), loads the key registry, bootstraps the first admin
 * token, starts the admin API and the data plane (rate-limit slots, upstream client, usage
 * writer, listener), loads and attaches the kernel fast path, and waits for a signal. Also
 * the offline commands: --check (validate a config file), migrate [--status] and detach
 * (take the kernel programs off and unpin everything).
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "config.h"
#include "admin_limits.h"
#include "alert.h"
#include "budget.h"
#include "dataplane.h"
#include "kernel.h"
#include "keys.h"
#include "log.h"
#include "metrics.h"
#include "migrations.h"
#include "ratelimit.h"
#include "sync.h"
#include "store.h"
#include "router.h"
#include "upstream.h"
#include "usage.h"
#include "util.h"

#define TOLLGATED_VERSION "0.1.0"

struct cmdline {
	const char *command;	/* "run", "migrate", "detach" */
	const char *ready_file; /* --ready-file */
	const char *check_file; /* --check */
	bool status;		/* migrate --status */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tollgated [run] [options]      start the gateway\n"
		"       tollgated migrate [--status] [options]\n"
		"                                      apply pending store migrations, or show them\n"
		"       tollgated detach [--pin-dir DIR] [--interfaces IF,...]\n"
		"                                      remove the kernel programs and pinned maps\n"
		"       tollgated --check FILE         validate a config file and print the result\n"
		"       tollgated --version\n"
		"options:\n"
		"  -c, --config FILE     JSON config file (also TOLLGATE_CONFIG)\n"
		"      --store DIR       store directory (store.path)\n"
		"      --admin-listen A  admin API address host:port (admin.listen)\n"
		"      --log-level L     error, warn, info or debug (log.level)\n"
		"      --set FIELD=VAL   any config field, e.g. --set keys.fail_limit=10\n"
		"      --ready-file F    when serving, write {\"pid\",\"admin\",\"data\"} as JSON to F\n"
		"      --pin-dir DIR     bpffs directory of the kernel maps (kernel.pin_dir)\n"
		"      --interfaces L    interfaces of the kernel programs (kernel.interfaces)\n"
		"Precedence: defaults < config file < TOLLGATE_* environment < options.\n");
}

static int set_or_die(struct config *c, const char *field, const char *value)
{
	char err[CONFIG_ERR_MAX];

	if (config_set(c, field, value, err)) {
		fprintf(stderr, "tollgated: %s\n", err);
		return -EINVAL;
	}
	return 0;
}

/* Options become --set assignments, applied after the file and the environment. */
static int parse_args(int argc, char **argv, struct cmdline *cl, const char **cfg_file,
		      char ***sets, int *nsets)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"store", required_argument, NULL, 's'},
		{"admin-listen", required_argument, NULL, 'a'},
		{"log-level", required_argument, NULL, 'l'}, {"set", required_argument, NULL, 'S'},
		{"ready-file", required_argument, NULL, 'r'},
		{"pin-dir", required_argument, NULL, 'p'},
		{"interfaces", required_argument, NULL, 'i'},
		{"check", required_argument, NULL, 'k'}, {"status", no_argument, NULL, 't'},
		{"version", no_argument, NULL, 'V'}, {"help", no_argument, NULL, 'h'}, {0}};
	static const char *const names[] = {['s'] = "store.path", ['a'] = "admin.listen",
					    ['l'] = "log.level", ['p'] = "kernel.pin_dir",
					    ['i'] = "kernel.interfaces"};
	int ch;

	*sets = calloc((size_t)argc + 1, sizeof(char *));
	while (*sets && (ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': *cfg_file = optarg; break;
		case 's': case 'a': case 'l': case 'p': case 'i': {
			char *kv = malloc(strlen(names[ch]) + strlen(optarg) + 2);

			sprintf(kv, "%s=%s", names[ch], optarg);
			(*sets)[(*nsets)++] = kv;
			break;
		}
		case 'S': (*sets)[(*nsets)++] = strdup(optarg); break;
		case 'r': cl->ready_file = optarg; break;
		case 'k': cl->check_file = optarg; break;
		case 't': cl->status = true; break;
		case 'V': printf("tollgated %s\n", TOLLGATED_VERSION); exit(0);
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
	}
	if (optind < argc)
		cl->command = argv[optind++];
	if (optind < argc || (cl->command && strcmp(cl->command, "run") &&
			      strcmp(cl->command, "migrate") && strcmp(cl->command, "detach"))) {
		fprintf(stderr, "tollgated: unexpected argument '%s'\n",
			optind < argc ? argv[optind] : cl->command);
		usage(stderr);
		return -EINVAL;
	}
	if (cl->status && (!cl->command || strcmp(cl->command, "migrate"))) {
		fprintf(stderr, "tollgated: --status goes with the migrate command\n");
		return -EINVAL;
	}
	return *sets ? 0 : -ENOMEM;
}

static int load_config(struct config *c, const char *file, char **sets, int nsets)
{
	char err[CONFIG_ERR_MAX];

	config_defaults(c);
	if (!file)
		file = getenv("TOLLGATE_CONFIG");
	if (file && config_load_file(c, file, err)) {
		fprintf(stderr, "tollgated: %s\n", err);
		return -EINVAL;
	}
	if (config_apply_env(c, err)) {
		fprintf(stderr, "tollgated: %s\n", err);
		return -EINVAL;
	}
	for (int i = 0; i < nsets; i++) {
		char *eq = strchr(sets[i], '=');

		if (!eq) {
			fprintf(stderr, "tollgated: --set wants FIELD=VALUE, got '%s'\n", sets[i]);
			return -EINVAL;
		}
		*eq = '\0';
		if (set_or_die(c, sets[i], eq + 1))
			return -EINVAL;
	}
	if (config_finish(c, err)) {
		fprintf(stderr, "tollgated: %s\n", err);
		return -EINVAL;
	}
	return 0;
}

static void store_opts_from(const struct config *c, struct store_opts *o, bool read_only)
{
	memset(o, 0, sizeof(*o));
	o->path = c->store_path;
	o->map_size = (size_t)c->store_map_size_mb << 20;
	o->max_map_size = (size_t)c->store_max_map_mb << 20;
	if (o->max_map_size < o->map_size)
		o->max_map_size = o->map_size;
	o->sync = (enum store_sync)c->store_sync;
	o->sync_interval_ms = read_only ? 0 : c->store_sync_interval_ms;
	o->read_only = read_only;
}

static int cmd_check(const char *file)
{
	char err[CONFIG_ERR_MAX];
	struct config c;

	config_defaults(&c);
	if (config_load_file(&c, file, err) || config_finish(&c, err)) {
		fprintf(stderr, "tollgated: %s\n", err);
		config_free(&c);
		return 1;
	}
	printf("%s: ok; effective configuration (before environment and options):\n", file);
	config_dump(&c, stdout);
	config_free(&c);
	return 0;
}

static int cmd_migrate(const struct config *c, bool status_only)
{
	unsigned latest = store_latest_version(), v;
	struct store_opts so;
	struct store *s;

	store_opts_from(c, &so, status_only);
	s = store_open(&so);
	if (!s && errno == ENOENT && status_only) {
		printf("store %s: does not exist yet; the first start creates it at schema "
		       "version %u\n", c->store_path, latest);
		return 0;
	}
	if (!s) {
		fprintf(stderr, "tollgated: cannot open store %s: %s\n", c->store_path,
			errno == EPROTO ? "written by a newer tollgated (see the log above)"
					: strerror(errno));
		return 1;
	}
	v = store_schema_version(s);
	printf("store %s: schema version %u of %u (%s)\n", c->store_path, v, latest,
	       v == latest ? "up to date" : "migrations pending");
	for (unsigned i = 0; i < tg_migrations_count; i++)
		printf("  %04u %-8s %s\n", tg_migrations[i].version,
		       tg_migrations[i].version <= v ? "applied" : "pending", tg_migrations[i].name);
	store_close(s);
	return 0;
}

/* The host part of a listen address "host:port" or "[v6]:port" (brackets kept). */
static void listen_host(const char *listen, char host[128])
{
	const char *colon = strrchr(listen, ':');

	snprintf(host, 128, "%.*s", colon ? (int)(colon - listen) : 0, listen);
}

/* Writes the ready file atomically, so a test never reads half of it. */
static int write_ready_file(const char *path, const struct config *c, unsigned admin_port,
			    unsigned data_port)
{
	char tmp[PATH_MAX], admin[128], data[128];
	FILE *f;

	listen_host(c->admin_listen, admin);
	listen_host(c->data_listen, data);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "{\"pid\": %d, \"admin\": \"%s:%u\", \"data\": \"%s:%u\"}\n", (int)getpid(),
		admin, admin_port, data, data_port);
	if (fclose(f) || rename(tmp, path))
		return -errno;
	return 0;
}

static void print_bootstrap_token(char token[TG_CRED_MAX])
{
	printf("\n"
	       "==============================================================================\n"
	       " tollgate: first start, no admin token configured. Generated admin token:\n\n"
	       "   %s\n\n"
	       " It is shown only this once and stored only as a hash. Use it as\n"
	       "   export TOLLGATE_ADMIN_TOKEN=<the token>    (for tollctl and the admin API)\n"
	       "==============================================================================\n\n",
	       token);
	fflush(stdout);
	explicit_bzero(token, TG_CRED_MAX);
}

static int bootstrap(struct keys *k)
{
	char generated[TG_CRED_MAX];
	char *env = getenv("TOLLGATE_ADMIN_TOKEN");
	bool made = false;
	int rc = keys_bootstrap(k, env && *env ? env : NULL, generated, &made);

	/* The token has been hashed: wipe it from the environment (and /proc/PID/environ). */
	if (env) {
		explicit_bzero(env, strlen(env));
		unsetenv("TOLLGATE_ADMIN_TOKEN");
	}
	if (rc == -EINVAL) {
		log_error("TOLLGATE_ADMIN_TOKEN must be 32 to 256 printable characters without "
			  "spaces");
		return rc;
	}
	if (rc) {
		log_error("cannot set up the admin token: %s", strerror(-rc));
		return rc;
	}
	if (made)
		print_bootstrap_token(generated);
	return 0;
}

/* Blocks until SIGINT or SIGTERM, running housekeeping once a second. */
static void serve_until_signal(struct keys *k, struct sync *sy, struct kernel *kern)
{
	struct timespec one = {.tv_sec = 1};
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	for (;;) {
		sig = sigtimedwait(&set, NULL, &one);
		if (sig == SIGINT || sig == SIGTERM)
			break;
		keys_tick(k);
		sync_tick(sy, tg_now_unix());
		kernel_heartbeat(kern);
	}
	log_info("signal %d: shutting down", sig);
}

/* What the data plane runs on: slots, upstream client, usage writer; then its listener. */
struct data_path {
	bool kernel_on; /* the kernel fast path is loaded */
	struct slots *slots;
	struct sync *sync;
	struct upstream *up;
	struct usage *usage;
	struct router *router; /* the providers' health and routing, shared with the admin API */
	struct budget *budget; /* the limits engine (made before the admin API, which sets limits) */
	struct alerts *alerts; /* limit alerts: log, metric, webhook (through up) */
	struct dataplane *dp;
};

/*
 * Before each /metrics rendering: the engine's current highest usage ratio per limit. A
 * limit's series appears with its first usage and then follows it (back to 0 too).
 */
static void budget_metrics(void *ctx)
{
	static atomic_bool shown[LIMIT__COUNT];
	double r[LIMIT__COUNT];

	budget_max_ratios(ctx, tg_now_unix(), r);
	for (size_t f = 0; f < LIMIT__COUNT; f++) {
		if (r[f] > 0)
			atomic_store(&shown[f], true);
		if (atomic_load(&shown[f]))
			metrics_budget_ratio_set(limit_descs[f].name, r[f]);
	}
}

/* The limits engine from limits.*; 0 or -1 (logged). */
static int budget_start(const struct config *c, struct store *s, struct data_path *p)
{
	size_t buckets = 0;
	int rc;
	struct budget_opts bo = {.enabled = c->limits_enabled != 0,
				 .mode = (enum limit_mode)c->limits_mode,
				 .action = (enum limit_action)c->limits_action,
				 .alert_permille = c->limits_alert_permille,
				 .default_daily_tokens = c->limits_default_daily_tokens,
				 .completion_estimate = c->limits_completion_estimate,
				 .max_tenants = c->limits_max_tenants};

	p->budget = budget_new(&bo);
	if (!p->budget) {
		log_warn("cannot start the limits engine");
		return -1;
	}
	if (!bo.enabled)
		log_info("limits.enabled is false: no limit refuses, queues or downgrades a call");
	/* LMDB is the truth: only what committed records rolled up, nothing from memory */
	rc = usage_budget_load(s, p->budget, &buckets);
	if (!rc)
		rc = admin_limits_load(s, p->budget);
	if (rc) {
		log_warnx("cannot load the limits and their usage from the store: %s",
			  strerror(-rc));
		return -1;
	}
	log_info("limits engine: %zu usage buckets loaded", buckets);
	metrics_set_refresh(budget_metrics, p->budget);
	return 0;
}

/* Limit alerts on the engine's threshold hook; the webhook goes through the upstream client. */
static int alerts_start(const struct config *c, struct data_path *p)
{
	struct alert_opts ao = {.up = p->up,
				.url = c->limits_webhook_url,
				.retries = c->limits_webhook_retries,
				.timeout_ms = c->limits_webhook_timeout_ms};

	p->alerts = alert_open(&ao);
	if (!p->alerts) {
		log_warn("cannot start the limit alerts");
		return -1;
	}
	budget_on_threshold(p->budget, alert_budget_hook, p->alerts);
	return 0;
}

static int data_path_start(const struct config *c, struct store *s, struct keys *k,
			   struct data_path *p)
{
	struct store_writer_opts wo = {.max_batch = c->usage_max_batch,
				       .max_delay_us = c->usage_max_delay_us};
	struct dataplane_opts o = {.listen = c->data_listen, .threads = c->data_threads,
				   .upstream_conns = c->upstream_conns,
				   .max_body = c->data_max_body, .timeout_sec = c->data_timeout_sec,
				   .max_conns = c->data_max_conns,
				   .default_model = c->data_default_model,
				   .close_after_refusals = c->data_close_after,
				   .verify_threads = c->data_verify_threads,
				   .max_header = c->data_max_header,
				   .downgrade = c->limits_downgrade,
				   .queue_depth = c->limits_queue_depth,
				   .queue_timeout_ms = c->limits_queue_timeout_ms,
				   /* the kernel refuses only while a connection is embryonic */
				   .defer_accept_sec = p->kernel_on ? 10 : 0};
	struct dataplane_deps d;

	p->up = upstream_start(c->upstream_conns);
	if (!p->up) {
		log_warn("cannot start the upstream client");
		return -1;
	}
	p->usage = usage_open(s, &wo, c->usage_bucket_flush_ms);
	if (!p->usage) {
		log_warn("cannot start the usage writer");
		return -1;
	}
	if (alerts_start(c, p))
		return -1;
	d = (struct dataplane_deps){.k = k, .slots = p->slots, .up = p->up, .usage = p->usage,
				    .prov = &c->providers, .router = p->router,
				    .budget = p->budget};
	p->dp = dataplane_start(&o, &d);
	return p->dp ? 0 : -1;
}

/*
 * The slot array and the key sync, before any listener opens: every active key's slot is
 * ready, and its hashes in the kernel's tg_keys, when the first request arrives. With the
 * kernel path on, the slots are the pinned tg_slots map itself (mmapped), and the sync
 * writes tg_keys through the loader's ops.
 */
static int data_slots_start(const struct config *c, struct keys *k, struct kernel *kern,
			    struct data_path *p)
{
	static const struct keys_sync_ops ops = {.changed = sync_key_changed};
	static const struct sync_kernel_ops kops = {.key_put = kernel_key_put,
						    .key_del = kernel_key_del,
						    .reconcile = kernel_keys_reconcile};
	int rc;

	p->kernel_on = kern != NULL;
	if (kern) {
		uint32_t cap;
		struct tg_slot *mem = kernel_slots_mem(kern, &cap);

		p->slots = slots_wrap(mem, cap);
	} else {
		p->slots = slots_open(c->data_slots);
	}
	if (!p->slots) {
		log_warn("cannot map %u rate-limit slots (data.rate_slots)", c->data_slots);
		return -1;
	}
	p->sync = sync_new(p->slots, kern ? &kops : NULL, kern);
	if (!p->sync) {
		log_warn("cannot start the key sync");
		return -1;
	}
	sync_set_policy(p->sync, &(struct sync_policy){c->limits_enabled != 0,
						       (enum limit_mode)c->limits_mode,
						       (enum limit_action)c->limits_action});
	keys_set_sync(k, &ops, p->sync);
	rc = sync_reconcile(p->sync, k);
	if (rc)
		log_warnx("cannot reconcile the request-rate slots with the store: %s",
			  strerror(-rc));
	return rc ? -1 : 0;
}

/*
 * In order: no new data-plane requests (those in flight get a moment, then are cut), every
 * upstream call ends (cancelled), the data plane meters what they used, the usage writer
 * commits everything queued.
 */
static void data_path_stop(struct data_path *p)
{
	dataplane_stop(p->dp);
	alert_stop(p->alerts); /* its webhooks use the upstream client */
	upstream_stop(p->up);
	dataplane_close(p->dp);
	usage_close(p->usage);
	/* no settle comes any more: no threshold event either */
	if (p->budget)
		budget_on_threshold(p->budget, NULL, NULL);
	alert_close(p->alerts);
	budget_free(p->budget); /* after the admin API and the data plane stopped */
	sync_free(p->sync);
	slots_close(p->slots);
}

static int kernel_metrics(void *ctx, struct metrics_kernel *out)
{
	struct kernel_status st;
	int rc = kernel_status(ctx, &st);

	if (rc)
		return rc;
	out->n = TG_V__COUNT < METRICS_KERNEL_MAX ? TG_V__COUNT : METRICS_KERNEL_MAX;
	for (size_t i = 0; i < out->n; i++) {
		out->verdict[i] = kernel_verdict_name((unsigned)i);
		out->packets[i] = st.verdicts[i];
	}
	out->penalty_entries = st.penalty_entries;
	return 0;
}

static int kernel_start(const struct config *c, struct store *s, struct kernel **out)
{
	struct kernel_opts ko = {
	    .mode = (enum kernel_mode_req)c->kernel_mode,
	    .xdp_mode = (enum kernel_xdp_req)c->kernel_xdp_mode,
	    .pin_dir = c->kernel_pin_dir,
	    .interfaces = c->kernel_interfaces,
	    .data_listen = c->data_listen,
	    .allow = c->kernel_allow,
	    .penalty_multiple_milli = c->kernel_penalty_multiple_milli,
	    .penalty_after_sec = c->kernel_penalty_after_sec,
	    .penalty_sec = c->kernel_penalty_sec,
	    .penalty_v6_prefix = c->kernel_penalty_v6_prefix,
	    .rate_slots = c->data_slots,
	    .secret = store_hash_secret(s),
	};
	int rc = kernel_open(&ko, out);

	if (rc)
		log_error("kernel.mode=%s cannot run (see above); use kernel.mode=off to run without "
			  "the kernel fast path", c->kernel_mode == KERNEL_MODE_TC ? "tc" : "full");
	else if (*out)
		metrics_set_kernel(kernel_metrics, *out);
	return rc;
}

/* tollgate_provider_breaker_state from the router. */
static int provider_metrics(void *ctx, struct metrics_providers *out)
{
	struct router_status st;
	int64_t now = tg_now_mono_ns();

	out->n = 0;
	for (size_t i = 0; i < router_count(ctx) && out->n < METRICS_PROVIDERS_MAX; i++) {
		if (router_status(ctx, i, now, &st))
			break;
		out->name[out->n] = st.prov->name;
		out->breaker[out->n++] = (unsigned)st.state;
	}
	return 0;
}

static int cmd_detach(const struct config *c)
{
	int rc = kernel_detach(c->kernel_pin_dir, c->kernel_interfaces);

	if (rc)
		fprintf(stderr, "tollgated detach: %s (see the log)\n", strerror(-rc));
	return rc ? 1 : 0;
}

/*
 * Every data-plane connection can hold two descriptors (the client's and its upstream
 * call's), and the default soft limit (1024) would refuse connections long before
 * data.max_connections. Raises the soft limit to what the connections need, the hard limit
 * too when allowed (root); says so when the limit stays too low for data.max_connections.
 */
static void raise_fd_limit(const struct config *c)
{
	rlim_t want = (rlim_t)c->data_max_conns * 2 + 256;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
		struct rlimit up = {want, want};

		if (setrlimit(RLIMIT_NOFILE, &up) == 0) {
			rl = up;
		} else {
			log_warnx("open-file limit %llu is below the %llu that data.max_connections "
				  "%u may need (raise it, e.g. LimitNOFILE=, or lower "
				  "data.max_connections)",
				  (unsigned long long)rl.rlim_max, (unsigned long long)want,
				  c->data_max_conns);
			want = rl.rlim_max;
		}
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		log_warn("cannot raise the open-file limit to %llu", (unsigned long long)want);
}

/*
 * At most MAIN_MALLOC_ARENAS malloc arenas for the whole daemon (glibc's default: up to 8
 * per core, one per thread here). A forwarded call's memory is allocated on a listener
 * thread, the upstream thread and the writer, and each arena keeps its own free chunks
 * and partly used heap: with two, a stream in flight holds ~1.7 KB less (tools/bench/
 * RESULTS.md, "bytes per stream in flight"). The threads then share two arenas' locks;
 * the request path's small allocations mostly come from glibc's per-thread cache instead.
 * GLIBC_TUNABLES=glibc.malloc.arena_max=N still decides when set.
 */
#define MAIN_MALLOC_ARENAS 2

static void tune_malloc(void)
{
	const char *t = getenv("GLIBC_TUNABLES");

	if (t && strstr(t, "glibc.malloc.arena_max"))
		return;
	if (mallopt(M_ARENA_MAX, MAIN_MALLOC_ARENAS) != 1)
		log_warnx("cannot limit malloc arenas to %d", MAIN_MALLOC_ARENAS);
}

static int cmd_run(const struct config *c, const char *ready_file)
{
	struct admin_opts ao = {.listen = c->admin_listen, .threads = c->admin_threads,
				.max_body = c->admin_max_body, .timeout_sec = c->admin_timeout_sec};
	struct data_path dpath = {0};
	struct kernel *kern = NULL;
	struct store *s = NULL;
	struct keys *k = NULL;
	struct admin *a = NULL;
	struct store_opts so;
	int rc = 1;

	tune_malloc(); /* before the first thread */
	raise_fd_limit(c);
	store_opts_from(c, &so, false);
	s = store_open(&so);
	if (!s) {
		log_warn("cannot open store %s", c->store_path);
		goto out;
	}
	k = keys_open(s, &c->keys);
	if (!k) {
		log_warn("cannot load keys from %s", c->store_path);
		goto out;
	}
	if (bootstrap(k) || kernel_start(c, s, &kern) || data_slots_start(c, k, kern, &dpath))
		goto out;
	dpath.router = router_new(&c->providers, &c->routing);
	if (!dpath.router) {
		log_warn("cannot set up the provider router");
		goto out;
	}
	metrics_set_providers(provider_metrics, dpath.router);
	ao.kernel = kern;
	ao.router = dpath.router;
	if (budget_start(c, s, &dpath))
		goto out;
	ao.budget = dpath.budget;
	ao.downgrade = c->limits_downgrade;
	a = admin_start(&ao, k, s);
	if (!a || data_path_start(c, s, k, &dpath))
		goto out;
	/* after the listener exists: the programs guard its actual port */
	if (kern && kernel_attach(kern, (uint16_t)dataplane_port(dpath.dp))) {
		log_error("cannot attach the kernel programs (see above)");
		goto out;
	}
	log_info("tollgated %s ready: store %s (schema %u, %zu keys), admin API on %s (port %u), "
		 "data plane on %s (port %u, %u listener threads), %zu providers",
		 TOLLGATED_VERSION, c->store_path, store_schema_version(s), keys_count(k),
		 c->admin_listen, admin_port(a), c->data_listen, dataplane_port(dpath.dp),
		 dataplane_threads(dpath.dp), c->providers.n);
	if (ready_file && write_ready_file(ready_file, c, admin_port(a), dataplane_port(dpath.dp)))
		log_warn("cannot write ready file %s", ready_file);
	serve_until_signal(k, dpath.sync, kern);
	rc = 0;
out:
	admin_stop(a); /* no more key changes: the sync can go */
	metrics_set_refresh(NULL, NULL); /* no scrape any more; the engine goes below */
	if (k)
		keys_set_sync(k, NULL, NULL);
	data_path_stop(&dpath);
	metrics_set_kernel(NULL, NULL);
	metrics_set_providers(NULL, NULL);
	router_free(dpath.router);
	kernel_close(kern);
	keys_close(k);
	store_close(s);
	return rc;
}

int main(int argc, char **argv)
{
	struct cmdline cl = {0};
	const char *cfg_file = NULL;
	char **sets = NULL;
	int nsets = 0, rc;
	struct config c;
	sigset_t set;

	rc = parse_args(argc, argv, &cl, &cfg_file, &sets, &nsets) ? 2 : 0;
	if (!rc && cl.check_file)
		rc = cmd_check(cl.check_file);
	else if (!rc && load_config(&c, cfg_file, sets, nsets))
		rc = 2;
	for (int i = 0; i < nsets; i++)
		free(sets[i]);
	free(sets);
	if (rc || cl.check_file)
		return rc;
	log_init("tollgated", (enum log_level)c.log_level);
	umask(077);
	if (cl.command && !strcmp(cl.command, "migrate")) {
		rc = cmd_migrate(&c, cl.status);
		config_free(&c);
		return rc;
	}
	if (cl.command && !strcmp(cl.command, "detach")) {
		rc = cmd_detach(&c);
		config_free(&c);
		return rc;
	}
	/* Signals are taken synchronously by serve_until_signal; every thread started after
	 * this inherits the mask, so none of them is interrupted by them. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	rc = cmd_run(&c, cl.ready_file);
	config_free(&c);
	return rc;
}
