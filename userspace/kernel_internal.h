/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What the loader's files (kernel.c: open, maps, sync, status; kernel_pins.c: adoption and
 * migration of pinned maps; kernel_attach.c: TC/XDP attach and detach) share. Private to
 * them: nothing else includes libbpf.
 */
#ifndef TG_KERNEL_INTERNAL_H
#define TG_KERNEL_INTERNAL_H

#include <limits.h>
#include <pthread.h>

#include "kernel.h"

struct bpf_object;
struct xdp_program;

/* The loader's own pinned map (not read by the programs, so not in abi.h): which interfaces
 * this pin directory's programs are attached to and how, so that a restarted daemon and
 * `tollgated detach` know what is ours. Key: __u32 ifindex. */
#define KERNEL_MAP_IFACES "tg_ifaces"

/* TC filter identity: fixed, so a restarted daemon replaces its filter instead of stacking. */
#define KERNEL_TC_HANDLE   0x7467u /* "tg" */
#define KERNEL_TC_PRIORITY 1u

struct kernel {
	char pin_dir[256]; /* kernel.pin_dir is shorter (config) */
	enum tg_mode mode;
	bool mode_auto; /* kernel.mode auto: failing to attach is a warning, not an error */
	enum kernel_xdp_req xdp_mode;
	enum kernel_origin origin;
	struct bpf_object *tc_obj;
	struct xdp_program *xdp[KERNEL_MAX_IFACES]; /* one per interface (mode full) */
	int keys_fd, slots_fd, config_fd, secret_fd, stats_fd, penalty_fd, allow_fd, ifaces_fd;
	int lock_fd; /* flock on the pin directory's lock file: one daemon per set of maps */
	struct tg_slot *slots;	  /* mmapped tg_slots */
	size_t slots_len;	  /* bytes mapped */
	uint32_t capacity;	  /* tg_slots max_entries */
	uint32_t keys_max;	  /* tg_keys max_entries */
	pthread_mutex_t cfg_lock; /* cfg and its map element */
	struct tg_config cfg;
	size_t n_ifaces;
	struct kernel_iface ifaces[KERNEL_MAX_IFACES];
	size_t n_allow;
	struct tg_lpm_key allow[KERNEL_MAX_ALLOW];
};

/* kernel_pins.c */

/* What was pinned before this start, found before the object is loaded. */
struct kernel_prior {
	enum kernel_origin origin;
	int old_slots_fd;	  /* migration: the old tg_slots to copy from, or -1 */
	uint32_t old_abi_version; /* tg_config.abi_version found (0: none readable) */
};

/*
 * Compares every map pinned under k->pin_dir with the shapes obj will create (after its
 * max_entries are set). All match and the ABI version is ours: adopt (libbpf reuses them).
 * Nothing pinned: create. Otherwise migrate: the old maps are unpinned (the old tg_slots kept
 * open in prior->old_slots_fd when its layout is known), so the load creates new ones.
 */
int kernel_pins_prepare(struct kernel *k, struct bpf_object *obj, struct kernel_prior *prior);
/* After the load: copies what can be copied from prior->old_slots_fd into k->slots. */
void kernel_pins_migrate(struct kernel *k, struct kernel_prior *prior);
/* Removes every entry of dir (bpffs pins; one level of subdirectories) and dir itself. */
int kernel_unpin_dir(const char *dir);

/* kernel_attach.c */

/* Fills k->ifaces from a comma-separated list, or from the data listener's address. */
int kernel_ifaces_resolve(struct kernel *k, const char *list, const char *data_listen);
/* Opens (creating and pinning when absent) the loader's tg_ifaces map into k->ifaces_fd. */
int kernel_ifaces_map_open(struct kernel *k);
/* Attaches TC (and XDP in mode full) to every interface in k->ifaces. */
int kernel_attach_all(struct kernel *k);

/* kernel.c */

/* Takes the pin directory's lock (one daemon per set of maps): the fd holding it, or -EBUSY
 * when a running tollgated holds it, or -errno. */
int kernel_pin_dir_lock(const char *pin_dir);
/* Where that lock file is (/run/lock/tollgate<pin dir, '/' as '_'>.lock). */
void kernel_pin_dir_lock_path(const char *pin_dir, char path[PATH_MAX]);
/* Mounts bpffs at /sys/fs/bpf when it is not mounted. */
int kernel_bpffs_mount(void);
/* Routes libbpf's and libxdp's messages into the daemon's log. */
void kernel_log_setup(void);
/* true: this thread's libbpf/libxdp warnings go to debug (probes whose failure is expected). */
void kernel_log_quiet(bool quiet);

#endif /* TG_KERNEL_INTERNAL_H */
