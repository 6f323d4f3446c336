/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The loader's core: opens the TC object (embedded by its skeleton) with the pin directory as
 * pin root, so libbpf creates the maps pinned by name or reuses the pinned ones that
 * kernel_pins.c found compatible; maps tg_slots; writes tg_secret, tg_allow and tg_config;
 * keeps tg_keys in step with LMDB (the sync_kernel_ops), writes the heartbeat, and reads the
 * counters and the penalty box for status. Attaching is kernel_attach.c's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/magic.h>
#include <xdp/libxdp.h>

#include "kernel_internal.h"
#include "log.h"
#include "tollgate_tc.skel.h"

#define BPFFS "/sys/fs/bpf"

static const char *const verdict_names[TG_V__COUNT] = {
    "seen",	    "not_tcp",	 "not_port",	"no_payload",  "not_http",    "no_key",
    "unknown_key",  "stale_key", "established", "no_socket",   "under_limit", "not_refusable",
    "refused",	    "absorbed",	 "fragment",	"ipv6_ext",    "gso",	      "malformed",
    "reply_failed", "xdp_seen",	 "xdp_dropped", "xdp_allowed", "penalised",   "mode_off",
};

const char *kernel_verdict_name(unsigned v)
{
	return v < TG_V__COUNT ? verdict_names[v] : "unknown";
}

const char *kernel_mode_name(enum tg_mode m)
{
	switch (m) {
	case TG_MODE_OFF:
		return "off";
	case TG_MODE_TC:
		return "tc";
	case TG_MODE_FULL:
		return "full";
	}
	return "unknown";
}

/* While libxdp probes (its dispatcher, native mode), its expected failures are not warnings:
 * the caller logs the outcome; the details stay at debug level. */
static __thread bool log_quiet;

void kernel_log_quiet(bool quiet)
{
	log_quiet = quiet;
}

/*
 * One libbpf/libxdp message into the log. They start their lines with their name and end
 * them with '\n' (the log adds its own line end). A verifier log comes as one message of
 * many lines; only its end says why a program was refused, so a long one keeps its last
 * LOG_KEEP bytes.
 */
#define LOG_KEEP 8192

__attribute__((format(printf, 2, 0))) static void lib_log(bool warn, const char *fmt,
							       va_list ap)
{
	char *text = NULL, *show;
	int len = vasprintf(&text, fmt, ap);

	if (len < 0)
		return;
	while (len > 0 && text[len - 1] == '\n')
		text[--len] = '\0';
	/* bpf_tc_hook_create on an existing clsact: expected (-EEXIST is handled) */
	if (strstr(text, "Exclusivity flag on"))
		warn = false;
	show = len > LOG_KEEP ? text + len - LOG_KEEP : text;
	if (warn)
		log_warnx("%s%s", show != text ? "[...] " : "", show);
	else
		log_debug("%s%s", show != text ? "[...] " : "", show);
	free(text);
}

/* printf-like for the compiler's format checks; the libraries pass their own formats. */
__attribute__((format(printf, 2, 0))) static int log_print(enum libbpf_print_level level,
							   const char *fmt, va_list ap)
{
	lib_log(level == LIBBPF_WARN && !log_quiet, fmt, ap);
	return 0;
}

__attribute__((format(printf, 2, 0))) static int xdp_log_print(enum libxdp_print_level level,
							       const char *fmt, va_list ap)
{
	lib_log(level == LIBXDP_WARN && !log_quiet, fmt, ap);
	return 0;
}

void kernel_log_setup(void)
{
	libbpf_set_print(log_print);
	libxdp_set_print(xdp_log_print);
}

int kernel_bpffs_mount(void)
{
	struct statfs st;

	if (statfs(BPFFS, &st) == 0 && st.f_type == BPF_FS_MAGIC)
		return 0;
	if (mkdir(BPFFS, 0700) && errno != EEXIST)
		return -errno;
	if (mount("bpf", BPFFS, "bpf", 0, "mode=0700")) {
		int rc = -errno;

		log_warn("cannot mount bpffs at %s", BPFFS);
		return rc;
	}
	log_info("mounted bpffs at %s (it was not mounted)", BPFFS);
	return 0;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- options ---- */

int kernel_cidr_parse(const char *text, struct tg_lpm_key *out)
{
	char addr[64];
	const char *slash = strchr(text, '/');
	size_t alen = slash ? (size_t)(slash - text) : strlen(text);
	unsigned long plen;
	char *end;
	bool v4;

	if (alen == 0 || alen >= sizeof(addr))
		return -EINVAL;
	memcpy(addr, text, alen);
	addr[alen] = '\0';
	memset(out, 0, sizeof(*out));
	v4 = inet_pton(AF_INET, addr, out->addr + 12) == 1;
	if (v4) {
		out->addr[10] = 0xff;
		out->addr[11] = 0xff;
	} else if (inet_pton(AF_INET6, addr, out->addr) != 1) {
		return -EINVAL;
	}
	plen = v4 ? 32 : 128;
	if (slash) {
		errno = 0;
		plen = strtoul(slash + 1, &end, 10);
		if (errno || end == slash + 1 || *end || plen > (v4 ? 32u : 128u))
			return -EINVAL;
	}
	out->prefixlen = (uint32_t)plen + (v4 ? 96 : 0);
	return 0;
}

static int allow_parse_list(struct kernel *k, const char *list)
{
	char *copy = strdup(list ? list : ""), *save = NULL, *tok;
	int rc = 0;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		if (k->n_allow == KERNEL_MAX_ALLOW) {
			log_warnx("kernel.allow: more than %d prefixes", KERNEL_MAX_ALLOW);
			rc = -E2BIG;
			break;
		}
		if (kernel_cidr_parse(tok, &k->allow[k->n_allow])) {
			log_warnx("kernel.allow: '%.64s' is not an address or CIDR prefix", tok);
			rc = -EINVAL;
			break;
		}
		k->n_allow++;
	}
	free(copy);
	return rc;
}

/* ---- maps ---- */

static int map_fd(struct bpf_object *obj, const char *name)
{
	struct bpf_map *m = bpf_object__find_map_by_name(obj, name);
	int fd = m ? bpf_map__fd(m) : -ENOENT;

	if (fd < 0)
		log_warnx("the TC object has no map %s", name);
	return fd < 0 ? -ENOENT : fd;
}

static int maps_find(struct kernel *k)
{
	struct {
		const char *name;
		int *fd;
	} t[] = {{TG_MAP_KEYS, &k->keys_fd},	 {TG_MAP_SLOTS, &k->slots_fd},
		 {TG_MAP_CONFIG, &k->config_fd}, {TG_MAP_SECRET, &k->secret_fd},
		 {TG_MAP_STATS, &k->stats_fd},	 {TG_MAP_PENALTY, &k->penalty_fd},
		 {TG_MAP_ALLOW, &k->allow_fd}};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		*t[i].fd = map_fd(k->tc_obj, t[i].name);
		if (*t[i].fd < 0)
			return -ENOENT;
	}
	return 0;
}

static int slots_map(struct kernel *k)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t len = (size_t)k->capacity * sizeof(struct tg_slot);

	len = (len + (size_t)page - 1) / (size_t)page * (size_t)page;
	k->slots = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, k->slots_fd, 0);
	if (k->slots == MAP_FAILED) {
		int rc = -errno;

		k->slots = NULL;
		log_warn("cannot mmap %s (%zu bytes)", TG_MAP_SLOTS, len);
		return rc;
	}
	k->slots_len = len;
	return 0;
}

static int secret_write(struct kernel *k, const uint8_t *secret)
{
	struct tg_secret s = {0};
	uint32_t zero = 0;
	int rc = 0;

	for (int i = 0; i < 8; i++) {
		s.k0 |= (uint64_t)secret[i] << (8 * i);
		s.k1 |= (uint64_t)secret[8 + i] << (8 * i);
	}
	if (bpf_map_update_elem(k->secret_fd, &zero, &s, BPF_ANY)) {
		rc = -errno;
		log_warn("cannot write %s", TG_MAP_SECRET);
	}
	explicit_bzero(&s, sizeof(s));
	return rc;
}

/* tg_allow becomes exactly the configured prefixes (an adopted map may hold old ones). */
static int allow_write(struct kernel *k)
{
	struct tg_lpm_key key, next;
	uint8_t one = 1;
	bool first = true;

	while (bpf_map_get_next_key(k->allow_fd, first ? NULL : &key, &next) == 0) {
		bool wanted = false;

		for (size_t i = 0; i < k->n_allow && !wanted; i++)
			wanted = !memcmp(&k->allow[i], &next, sizeof(next));
		if (!wanted && bpf_map_delete_elem(k->allow_fd, &next) == 0)
			continue; /* restart from the beginning of what is left */
		key = next;
		first = false;
	}
	for (size_t i = 0; i < k->n_allow; i++) {
		if (bpf_map_update_elem(k->allow_fd, &k->allow[i], &one, BPF_ANY)) {
			log_warn("cannot write %s", TG_MAP_ALLOW);
			return -errno;
		}
	}
	return 0;
}

/* The adopted tg_config, or a fresh one whose mode stays off until kernel_attach. */
static int config_init(struct kernel *k)
{
	uint32_t zero = 0;

	if (k->origin != KERNEL_ADOPTED || bpf_map_lookup_elem(k->config_fd, &zero, &k->cfg)) {
		memset(&k->cfg, 0, sizeof(k->cfg));
		k->cfg.abi_version = TG_ABI_VERSION;
		k->cfg.mode = TG_MODE_OFF;
		k->cfg.daemon_heartbeat_ns = mono_ns();
		if (bpf_map_update_elem(k->config_fd, &zero, &k->cfg, BPF_ANY)) {
			log_warn("cannot write %s", TG_MAP_CONFIG);
			return -errno;
		}
	}
	return 0;
}

/* ---- one daemon per pin directory ---- */

#define LOCK_DIR "/run/lock"

/*
 * Two daemons on one set of maps would each charge the slots and reconcile tg_keys to their
 * own store. An exclusive flock on a lock file named after the pin directory (bpffs holds no
 * regular files) keeps a second one out; the kernel drops the lock when the holder dies, so a
 * restart after a crash is never refused.
 */
void kernel_pin_dir_lock_path(const char *pin_dir, char path[PATH_MAX])
{
	char name[256];
	size_t n = 0;

	for (const char *p = pin_dir; *p && n + 1 < sizeof(name); p++)
		name[n++] = *p == '/' ? '_' : *p;
	name[n] = '\0';
	snprintf(path, PATH_MAX, "%s/tollgate%s.lock", LOCK_DIR, name);
}

int kernel_pin_dir_lock(const char *pin_dir)
{
	char path[PATH_MAX];
	int fd;

	kernel_pin_dir_lock_path(pin_dir, path);
	mkdir(LOCK_DIR, 0755);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_warn("cannot open the lock file %s", path);
		return -errno;
	}
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		int rc = errno == EWOULDBLOCK ? -EBUSY : -errno;

		log_warnx("kernel.pin_dir %s is used by a running tollgated (lock %s)", pin_dir,
			  path);
		close(fd);
		return rc;
	}
	return fd;
}

/* ---- open and close ---- */

static struct bpf_object *tc_object_open(struct kernel *k)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = k->pin_dir,
		    .object_name = "tollgate_tc");
	const void *elf;
	size_t sz = 0;
	struct bpf_object *obj;
	struct bpf_map *slots, *keys;

	elf = tollgate_tc__elf_bytes(&sz);
	obj = bpf_object__open_mem(elf, sz, &oo);
	if (!obj) {
		log_warn("cannot open the TC object");
		return NULL;
	}
	slots = bpf_object__find_map_by_name(obj, TG_MAP_SLOTS);
	keys = bpf_object__find_map_by_name(obj, TG_MAP_KEYS);
	if (!slots || !keys || bpf_map__set_max_entries(slots, k->capacity) ||
	    bpf_map__set_max_entries(keys, k->keys_max)) {
		log_warnx("the TC object lacks %s or %s", TG_MAP_SLOTS, TG_MAP_KEYS);
		bpf_object__close(obj);
		errno = ENOENT;
		return NULL;
	}
	return obj;
}

/* Everything after the options are known good: maps created, adopted or migrated; mapped. */
static int kernel_load(struct kernel *k, const uint8_t *secret)
{
	struct kernel_prior prior = {.old_slots_fd = -1};
	int rc;

	rc = kernel_bpffs_mount();
	if (rc)
		return rc;
	k->lock_fd = kernel_pin_dir_lock(k->pin_dir);
	if (k->lock_fd < 0) {
		log_warnx("give each tollgated its own kernel.pin_dir");
		return k->lock_fd;
	}
	if (mkdir(k->pin_dir, 0700) && errno != EEXIST) {
		rc = -errno;
		log_warn("cannot create the pin directory %s", k->pin_dir);
		return rc;
	}
	k->tc_obj = tc_object_open(k);
	if (!k->tc_obj)
		return -errno;
	rc = kernel_pins_prepare(k, k->tc_obj, &prior);
	if (rc)
		goto out;
	rc = bpf_object__load(k->tc_obj);
	if (rc) {
		log_warnx("cannot load the TC program and its maps: %s", strerror(-rc));
		goto out;
	}
	k->origin = prior.origin;
	rc = maps_find(k);
	if (!rc)
		rc = slots_map(k);
	if (!rc)
		kernel_pins_migrate(k, &prior);
	if (!rc)
		rc = kernel_ifaces_map_open(k);
	if (!rc)
		rc = secret_write(k, secret);
	if (!rc)
		rc = allow_write(k);
	if (!rc)
		rc = config_init(k);
out:
	if (prior.old_slots_fd >= 0)
		close(prior.old_slots_fd);
	return rc;
}

static struct kernel *kernel_new(const struct kernel_opts *o)
{
	struct kernel *k = calloc(1, sizeof(*k));

	if (!k)
		return NULL;
	k->keys_fd = k->slots_fd = k->config_fd = k->secret_fd = -1;
	k->stats_fd = k->penalty_fd = k->allow_fd = k->ifaces_fd = k->lock_fd = -1;
	pthread_mutex_init(&k->cfg_lock, NULL);
	snprintf(k->pin_dir, sizeof(k->pin_dir), "%s", o->pin_dir);
	k->mode = o->mode == KERNEL_MODE_TC ? TG_MODE_TC : TG_MODE_FULL;
	k->mode_auto = o->mode == KERNEL_MODE_AUTO;
	k->xdp_mode = o->xdp_mode;
	k->capacity = o->rate_slots;
	k->keys_max = o->rate_slots * 2;
	k->cfg.penalty_multiple_milli = o->penalty_multiple_milli;
	k->cfg.penalty_after_sec = o->penalty_after_sec;
	k->cfg.penalty_sec = o->penalty_sec;
	k->cfg.penalty_v6_prefix_len = o->penalty_v6_prefix;
	return k;
}

/* After a failed load: an empty pin directory it created goes, and the lock file while
 * this start still holds the lock (nobody else can be using it then). */
static void load_failed_cleanup(struct kernel *k)
{
	char lock[PATH_MAX];

	rmdir(k->pin_dir);
	kernel_pin_dir_lock_path(k->pin_dir, lock);
	if (k->lock_fd >= 0)
		unlink(lock);
}

int kernel_open(const struct kernel_opts *o, struct kernel **out)
{
	struct tg_config want;
	struct kernel *k;
	int rc;

	*out = NULL;
	if (o->mode == KERNEL_MODE_OFF)
		return 0;
	k = kernel_new(o);
	if (!k)
		return -ENOMEM;
	/* Configuration mistakes are errors in every mode, auto included. */
	rc = allow_parse_list(k, o->allow);
	if (!rc)
		rc = kernel_ifaces_resolve(k, o->interfaces, o->data_listen);
	if (rc) {
		kernel_close(k);
		return rc;
	}
	kernel_log_setup();
	want = k->cfg;
	rc = kernel_load(k, o->secret);
	if (rc)
		load_failed_cleanup(k);
	if (rc && o->mode == KERNEL_MODE_AUTO) {
		log_warnx("kernel fast path unavailable (%s): running with kernel.mode=off; "
			  "set kernel.mode=off to silence this, or full/tc to make it an error",
			  strerror(-rc));
		kernel_close(k);
		return 0;
	}
	if (rc) {
		log_warnx("kernel.mode=%s: cannot load the kernel fast path: %s",
			  kernel_mode_name(k->mode), strerror(-rc));
		kernel_close(k);
		return rc;
	}
	/* The penalty parameters are the configured ones even on adopted maps. */
	k->cfg.penalty_multiple_milli = want.penalty_multiple_milli;
	k->cfg.penalty_after_sec = want.penalty_after_sec;
	k->cfg.penalty_sec = want.penalty_sec;
	k->cfg.penalty_v6_prefix_len = want.penalty_v6_prefix_len;
	log_info("kernel fast path: %s maps under %s (%u slots, %u key entries)",
		 k->origin == KERNEL_ADOPTED	? "adopted pinned"
		 : k->origin == KERNEL_MIGRATED ? "migrated"
						: "created",
		 k->pin_dir, k->capacity, k->keys_max);
	*out = k;
	return 0;
}

int kernel_attach(struct kernel *k, uint16_t port)
{
	uint32_t zero = 0;
	int rc;

	pthread_mutex_lock(&k->cfg_lock);
	k->cfg.abi_version = TG_ABI_VERSION;
	k->cfg.mode = k->mode;
	memset(k->cfg.ports, 0, sizeof(k->cfg.ports));
	k->cfg.ports[0] = port;
	k->cfg.daemon_heartbeat_ns = mono_ns();
	rc = bpf_map_update_elem(k->config_fd, &zero, &k->cfg, BPF_ANY) ? -errno : 0;
	pthread_mutex_unlock(&k->cfg_lock);
	if (!rc)
		rc = kernel_attach_all(k);
	if (rc && k->mode_auto) {
		/* The maps stay (the daemon charges the mmapped slots either way); where a program
		 * did not attach, the daemon alone enforces, as it always can. */
		log_warnx("kernel.mode=auto: cannot attach every kernel program (%s); where none "
			  "is attached (tollctl status) the daemon enforces alone; set "
			  "kernel.mode=off to silence this",
			  strerror(-rc));
		return 0;
	}
	return rc;
}

void kernel_close(struct kernel *k)
{
	if (!k)
		return;
	for (size_t i = 0; i < KERNEL_MAX_IFACES; i++)
		xdp_program__close(k->xdp[i]);
	if (k->slots)
		munmap(k->slots, k->slots_len);
	/* the map fds belong to the object, closed with it */
	bpf_object__close(k->tc_obj);
	if (k->ifaces_fd >= 0)
		close(k->ifaces_fd);
	if (k->lock_fd >= 0)
		close(k->lock_fd);
	pthread_mutex_destroy(&k->cfg_lock);
	free(k);
}

struct tg_slot *kernel_slots_mem(struct kernel *k, uint32_t *capacity)
{
	*capacity = k->capacity;
	return k->slots;
}

void kernel_heartbeat(struct kernel *k)
{
	uint32_t zero = 0;

	if (!k)
		return;
	pthread_mutex_lock(&k->cfg_lock);
	k->cfg.daemon_heartbeat_ns = mono_ns();
	if (bpf_map_update_elem(k->config_fd, &zero, &k->cfg, BPF_ANY))
		log_warn("heartbeat: cannot write %s", TG_MAP_CONFIG);
	pthread_mutex_unlock(&k->cfg_lock);
}
