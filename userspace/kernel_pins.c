/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Adopting or migrating the pinned maps a previous daemon left under the pin directory.
 *
 * Before the TC object is loaded, every map it would pin is looked up under the pin
 * directory and compared with the shape the object will create (type, key and value size,
 * max_entries, flags): the same check libbpf makes when it reuses a pinned map, made here
 * first so that a mismatch is migrated instead of failing the load. tg_config's abi_version
 * must also be TG_ABI_VERSION.
 *
 * - Nothing pinned: the load creates and pins every map.
 * - Everything matches: the load reuses the pinned maps; slot state (the TATs), tg_keys, the
 *   penalty box and the counters are kept as they are.
 * - Anything else (another ABI version, data.rate_slots changed, a program with other
 *   map sizes): the whole pinned set is unpinned and created anew. Kept: the slots, when
 *   the old tg_slots has this ABI's layout (same version, 128-byte values): slot i is
 *   copied into slot i for every i below both sizes. Rebuilt from LMDB: tg_keys (reconcile)
 *   and tg_config. Lost: the penalty box, the counters, killed flows, and for an unknown
 *   ABI version the slots too (rate state starts empty; a log line says so).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kernel_internal.h"
#include "log.h"

static int pin_path(const struct kernel *k, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", k->pin_dir, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* 1: the pinned map at path matches m's shape; 0: it differs (why goes to the log). */
static int shape_matches(int fd, const struct bpf_map *m, const char *name)
{
	struct bpf_map_info info = {0};
	uint32_t len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		log_warn("pinned %s: cannot read its description", name);
		return 0;
	}
	if (info.type == bpf_map__type(m) && info.key_size == bpf_map__key_size(m) &&
	    info.value_size == bpf_map__value_size(m) &&
	    info.max_entries == bpf_map__max_entries(m) && info.map_flags == bpf_map__map_flags(m))
		return 1;
	log_info("pinned %s differs from this tollgated's: type %u/%u, key %u/%u bytes, value "
		 "%u/%u bytes, %u/%u entries, flags %#x/%#x (pinned/wanted)",
		 name, info.type, bpf_map__type(m), info.key_size, bpf_map__key_size(m),
		 info.value_size, bpf_map__value_size(m), info.max_entries, bpf_map__max_entries(m),
		 info.map_flags, bpf_map__map_flags(m));
	return 0;
}

/* tg_config.abi_version of a pinned tg_config of any shape (its first 4 bytes), or 0. */
static uint32_t pinned_abi_version(int fd)
{
	struct bpf_map_info info = {0};
	uint32_t len = sizeof(info), zero = 0, v = 0;
	uint8_t *val;

	if (bpf_obj_get_info_by_fd(fd, &info, &len) || info.key_size != 4 || info.value_size < 4)
		return 0;
	val = calloc(1, info.value_size);
	if (val && bpf_map_lookup_elem(fd, &zero, val) == 0)
		memcpy(&v, val, sizeof(v));
	free(val);
	return v;
}

/* Looks at every map obj would pin. *n_pinned / *n_match count what was found. */
static int pins_scan(struct kernel *k, struct bpf_object *obj, struct kernel_prior *prior,
		     unsigned *n_pinned, unsigned *n_match)
{
	struct bpf_map *m;
	char path[PATH_MAX];

	*n_pinned = *n_match = 0;
	bpf_object__for_each_map(m, obj)
	{
		const char *name = bpf_map__name(m);
		int fd;

		if (bpf_map__is_internal(m) || pin_path(k, name, path, sizeof(path)))
			continue;
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue;
		(*n_pinned)++;
		*n_match += (unsigned)shape_matches(fd, m, name);
		if (!strcmp(name, TG_MAP_CONFIG))
			prior->old_abi_version = pinned_abi_version(fd);
		close(fd);
	}
	return 0;
}

/* Keeps the old tg_slots open for the copy when its layout is this ABI's. */
static void keep_old_slots(struct kernel *k, struct kernel_prior *prior)
{
	struct bpf_map_info info = {0};
	uint32_t len = sizeof(info);
	char path[PATH_MAX];
	int fd;

	if (pin_path(k, TG_MAP_SLOTS, path, sizeof(path)) || (fd = bpf_obj_get(path)) < 0)
		return;
	if (prior->old_abi_version == TG_ABI_VERSION && !bpf_obj_get_info_by_fd(fd, &info, &len) &&
	    info.value_size == sizeof(struct tg_slot) && (info.map_flags & BPF_F_MMAPABLE)) {
		prior->old_slots_fd = fd;
		return;
	}
	log_warnx("pinned %s has ABI version %u (this tollgated knows the layout of version %u "
		  "only): its rate state is dropped, slots are rebuilt from the store",
		  TG_MAP_SLOTS, prior->old_abi_version, TG_ABI_VERSION);
	close(fd);
}

/* Unpins every map obj would pin (the maps live on while someone holds them). */
static int pins_remove(struct kernel *k, struct bpf_object *obj)
{
	struct bpf_map *m;
	char path[PATH_MAX];

	bpf_object__for_each_map(m, obj)
	{
		if (bpf_map__is_internal(m) || pin_path(k, bpf_map__name(m), path, sizeof(path)))
			continue;
		if (unlink(path) && errno != ENOENT) {
			int rc = -errno;

			log_warn("cannot unpin %s", path);
			return rc;
		}
	}
	return 0;
}

int kernel_pins_prepare(struct kernel *k, struct bpf_object *obj, struct kernel_prior *prior)
{
	unsigned n_pinned, n_match;
	int rc;

	prior->old_slots_fd = -1;
	prior->old_abi_version = 0;
	rc = pins_scan(k, obj, prior, &n_pinned, &n_match);
	if (rc)
		return rc;
	if (n_pinned == 0) {
		prior->origin = KERNEL_CREATED;
		return 0;
	}
	if (n_pinned == n_match && prior->old_abi_version == TG_ABI_VERSION) {
		prior->origin = KERNEL_ADOPTED;
		log_info("adopting the pinned maps under %s (ABI version %u)", k->pin_dir,
			 TG_ABI_VERSION);
		return 0;
	}
	prior->origin = KERNEL_MIGRATED;
	log_warnx("pinned maps under %s are not this tollgated's (ABI version %u, wanted %u; "
		  "%u of %u maps of the expected shape): migrating them to new maps",
		  k->pin_dir, prior->old_abi_version, TG_ABI_VERSION, n_match, n_pinned);
	keep_old_slots(k, prior);
	return pins_remove(k, obj);
}

void kernel_pins_migrate(struct kernel *k, struct kernel_prior *prior)
{
	struct bpf_map_info info = {0};
	uint32_t len = sizeof(info), n;
	struct tg_slot *old;
	size_t bytes;

	if (prior->old_slots_fd < 0 || bpf_obj_get_info_by_fd(prior->old_slots_fd, &info, &len))
		return;
	bytes = (size_t)info.max_entries * sizeof(struct tg_slot);
	old = mmap(NULL, bytes, PROT_READ, MAP_SHARED, prior->old_slots_fd, 0);
	if (old == MAP_FAILED) {
		log_warn("migration: cannot map the old %s; slots rebuilt from the store",
			 TG_MAP_SLOTS);
		return;
	}
	n = info.max_entries < k->capacity ? info.max_entries : k->capacity;
	memcpy(k->slots, old, (size_t)n * sizeof(struct tg_slot));
	munmap(old, bytes);
	log_warnx("migrated %u slots (rate state kept) from the old %s of %u entries to the new "
		  "one of %u%s; tg_keys is rebuilt from the store, the penalty box and counters "
		  "start empty",
		  n, TG_MAP_SLOTS, info.max_entries, k->capacity,
		  info.max_entries > k->capacity ? " (slots beyond the new size are dropped)" : "");
}

int kernel_unpin_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[PATH_MAX];
	int rc = 0;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d))) {
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
			continue;
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
			rc = kernel_unpin_dir(path) ?: rc;
		else if (unlink(path) && errno != ENOENT)
			rc = -errno;
	}
	closedir(d);
	if (rmdir(dir) && errno != ENOENT)
		rc = -errno;
	return rc;
}
