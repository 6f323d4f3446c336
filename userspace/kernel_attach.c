/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Attaching the programs, and taking them off again (`tollgated detach`).
 *
 * TC: a clsact qdisc on each interface (created when absent; remembered as ours then), our
 * filter at a fixed handle and priority with BPF_TC_F_REPLACE, so a restarted daemon replaces
 * its filter and never stacks a second one. The filter is netlink cls_bpf: it stays when the
 * daemon exits. XDP (mode full): through libxdp's dispatcher, so other XDP programs on the
 * interface keep running; native mode where the driver has it (kernel.xdp_mode auto), else
 * generic. A restarted daemon first takes its previous program out of the dispatcher.
 *
 * What is attached where is recorded in the loader's own pinned map tg_ifaces (ifindex ->
 * struct kernel_iface), so that a restart and `tollgated detach` touch only what is ours:
 * detach removes our filter, the clsact qdisc only when we created it and no other filter
 * is left on it, and our program from the XDP dispatcher.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/netlink.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <xdp/libxdp.h>

#include "kernel_internal.h"
#include "log.h"
#include "tollgate_xdp.skel.h"

/* ---- which interfaces ---- */

static int iface_add(struct kernel_iface *v, size_t *n, const char *name)
{
	unsigned idx = if_nametoindex(name);

	if (!idx || strlen(name) >= KERNEL_IFNAME_MAX) {
		log_warnx("kernel.interfaces: no interface '%.32s'", name);
		return -ENODEV;
	}
	for (size_t i = 0; i < *n; i++) {
		if (v[i].ifindex == idx)
			return 0;
	}
	if (*n == KERNEL_MAX_IFACES) {
		log_warnx("kernel.interfaces: more than %d interfaces", KERNEL_MAX_IFACES);
		return -E2BIG;
	}
	memset(&v[*n], 0, sizeof(v[*n]));
	snprintf(v[*n].name, sizeof(v[*n].name), "%s", name);
	v[*n].ifindex = idx;
	(*n)++;
	return 0;
}

static int ifaces_from_list(struct kernel_iface *v, size_t *n, const char *list)
{
	char *copy = strdup(list), *save = NULL, *tok;
	int rc = 0;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ", ", &save); tok && !rc; tok = strtok_r(NULL, ", ", &save))
		rc = iface_add(v, n, tok);
	free(copy);
	return rc;
}

static bool sockaddr_eq(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return false;
	if (a->sa_family == AF_INET)
		return !memcmp(&((const struct sockaddr_in *)a)->sin_addr,
			       &((const struct sockaddr_in *)b)->sin_addr, sizeof(struct in_addr));
	if (a->sa_family == AF_INET6)
		return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
			       &((const struct sockaddr_in6 *)b)->sin6_addr,
			       sizeof(struct in6_addr));
	return false;
}

static bool sockaddr_any(const struct sockaddr *a)
{
	if (a->sa_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

/* The interfaces that hold the listener's address; a wildcard address: every interface up. */
static int ifaces_from_listen(struct kernel_iface *v, size_t *n, const char *listen)
{
	struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_PASSIVE}, *ai = NULL;
	struct ifaddrs *ifa = NULL;
	char host[128];
	const char *colon = strrchr(listen, ':');
	size_t len = colon ? (size_t)(colon - listen) : 0;
	int rc = 0;

	if (len >= 2 && listen[0] == '[')
		snprintf(host, sizeof(host), "%.*s", (int)(len - 2), listen + 1);
	else
		snprintf(host, sizeof(host), "%.*s", (int)len, listen);
	if (getaddrinfo(host[0] ? host : "0.0.0.0", NULL, &hints, &ai) || getifaddrs(&ifa)) {
		log_warnx("kernel.interfaces: data.listen host '%.64s' is not a numeric address; "
			  "name the interfaces in kernel.interfaces",
			  host);
		rc = -EINVAL;
		goto out;
	}
	for (struct ifaddrs *i = ifa; i && !rc; i = i->ifa_next) {
		if (!i->ifa_addr || !(i->ifa_flags & IFF_UP))
			continue;
		if (sockaddr_any(ai->ai_addr) || sockaddr_eq(ai->ai_addr, i->ifa_addr))
			rc = iface_add(v, n, i->ifa_name);
	}
	if (!rc && *n == 0) {
		log_warnx("kernel.interfaces: no interface holds the data.listen address %s; name "
			  "the interfaces in kernel.interfaces",
			  host);
		rc = -ENODEV;
	}
out:
	if (ai)
		freeaddrinfo(ai);
	if (ifa)
		freeifaddrs(ifa);
	return rc;
}

int kernel_ifaces_resolve(struct kernel *k, const char *list, const char *data_listen)
{
	k->n_ifaces = 0;
	if (list && *list)
		return ifaces_from_list(k->ifaces, &k->n_ifaces, list);
	return ifaces_from_listen(k->ifaces, &k->n_ifaces, data_listen ? data_listen : "");
}

/* ---- the loader's record of attachments ---- */

static int ifaces_map_get(const char *pin_dir, bool create)
{
	char path[PATH_MAX];
	struct bpf_map_info info = {0};
	uint32_t len = sizeof(info);
	int fd;

	snprintf(path, sizeof(path), "%s/%s", pin_dir, KERNEL_MAP_IFACES);
	fd = bpf_obj_get(path);
	if (fd >= 0 && !bpf_obj_get_info_by_fd(fd, &info, &len) && info.key_size == 4 &&
	    info.value_size == sizeof(struct kernel_iface))
		return fd;
	if (fd >= 0) { /* another shape: a record we cannot read is replaced */
		close(fd);
		unlink(path);
	}
	if (!create)
		return -ENOENT;
	fd = bpf_map_create(BPF_MAP_TYPE_HASH, KERNEL_MAP_IFACES, 4, sizeof(struct kernel_iface),
			    64, NULL);
	if (fd < 0)
		return -errno;
	if (bpf_obj_pin(fd, path)) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	return fd;
}

int kernel_ifaces_map_open(struct kernel *k)
{
	k->ifaces_fd = ifaces_map_get(k->pin_dir, true);
	if (k->ifaces_fd < 0) {
		log_warnx("cannot create %s/%s: %s", k->pin_dir, KERNEL_MAP_IFACES,
			  strerror(-k->ifaces_fd));
		return k->ifaces_fd;
	}
	return 0;
}

/* ---- TC ---- */

/* The name of the program with this id, "" when it is gone. */
static void prog_name(uint32_t id, char name[BPF_OBJ_NAME_LEN])
{
	struct bpf_prog_info info = {0};
	uint32_t len = sizeof(info);
	int fd = bpf_prog_get_fd_by_id(id);

	name[0] = '\0';
	if (fd < 0)
		return;
	if (!bpf_obj_get_info_by_fd(fd, &info, &len))
		snprintf(name, BPF_OBJ_NAME_LEN, "%s", info.name);
	close(fd);
}

static int tc_attach(struct kernel_iface *ifc, int prog_fd)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)ifc->ifindex,
		    .attach_point = BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = KERNEL_TC_HANDLE, .priority = KERNEL_TC_PRIORITY,
		    .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE);
	int rc = bpf_tc_hook_create(&hook);

	if (rc == 0)
		ifc->flags |= KERNEL_IF_CLSACT_OURS;
	else if (rc != -EEXIST) {
		log_warnx("%s: cannot create the clsact qdisc: %s", ifc->name, strerror(-rc));
		return rc;
	}
	rc = bpf_tc_attach(&hook, &opts);
	if (rc) {
		log_warnx("%s: cannot attach the TC ingress program: %s", ifc->name, strerror(-rc));
		return rc;
	}
	ifc->flags |= KERNEL_IF_TC;
	return 0;
}

/* Counts the filters left under a clsact parent (netlink dump); -errno on failure. */
static int tc_filters_count(uint32_t ifindex, uint32_t parent)
{
	struct {
		struct nlmsghdr nh;
		struct tcmsg tc;
	} req = {
	    .nh = {.nlmsg_len = NLMSG_LENGTH(sizeof(struct tcmsg)),
		   .nlmsg_type = RTM_GETTFILTER,
		   .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
		   .nlmsg_seq = 1},
	    .tc = {.tcm_family = AF_UNSPEC, .tcm_ifindex = (int)ifindex, .tcm_parent = parent}};
	char buf[16384];
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), n = 0, rc = -EIO;

	if (fd < 0)
		return -errno;
	if (send(fd, &req, req.nh.nlmsg_len, 0) < 0)
		goto out;
	for (;;) {
		ssize_t len = recv(fd, buf, sizeof(buf), 0);

		if (len <= 0)
			goto out;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)len);
		     h = NLMSG_NEXT(h, len)) {
			if (h->nlmsg_type == NLMSG_DONE) {
				rc = n;
				goto out;
			}
			if (h->nlmsg_type == NLMSG_ERROR)
				goto out;
			n += h->nlmsg_type == RTM_NEWTFILTER;
		}
	}
out:
	close(fd);
	return rc;
}

/* Takes our filter off; the qdisc too when we made it and nothing else is on it. */
static void tc_detach(const struct kernel_iface *ifc, bool print)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)ifc->ifindex,
		    .attach_point = BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = KERNEL_TC_HANDLE, .priority = KERNEL_TC_PRIORITY);
	char name[BPF_OBJ_NAME_LEN];
	int in, eg;

	if (bpf_tc_query(&hook, &opts) == 0) {
		prog_name(opts.prog_id, name);
		opts.prog_id = 0;
		opts.prog_fd = 0;
		opts.flags = 0;
		if (!strcmp(name, TG_PROG_TC) && bpf_tc_detach(&hook, &opts) == 0 && print)
			printf("%s: TC ingress filter removed\n", ifc->name);
	}
	if (!(ifc->flags & KERNEL_IF_CLSACT_OURS))
		return;
	in = tc_filters_count(ifc->ifindex, TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS));
	eg = tc_filters_count(ifc->ifindex, TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS));
	if (in == 0 && eg == 0) {
		hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
		if (bpf_tc_hook_destroy(&hook) == 0 && print)
			printf("%s: clsact qdisc removed (tollgated created it)\n", ifc->name);
	} else if (print) {
		printf("%s: clsact qdisc kept: other filters use it\n", ifc->name);
	}
}

/* ---- XDP ---- */

/* Takes every program named tg_xdp_penalty out of the interface's dispatcher. */
static int xdp_detach_ours(const struct kernel_iface *ifc, bool print)
{
	struct xdp_multiprog *mp = xdp_multiprog__get_from_ifindex((int)ifc->ifindex);
	struct xdp_program *p, *ours[8];
	enum xdp_attach_mode mode;
	size_t n = 0;
	int rc = 0;

	if (!mp || libxdp_get_error(mp))
		return 0; /* no XDP program on this interface */
	mode = xdp_multiprog__attach_mode(mp);
	if (xdp_multiprog__is_legacy(mp)) {
		p = xdp_multiprog__main_prog(mp);
		if (p && !strcmp(xdp_program__name(p), TG_PROG_XDP))
			ours[n++] = p;
	}
	for (p = xdp_multiprog__next_prog(NULL, mp); p && n < 8;
	     p = xdp_multiprog__next_prog(p, mp)) {
		if (!strcmp(xdp_program__name(p), TG_PROG_XDP))
			ours[n++] = p;
	}
	for (size_t i = 0; i < n && !rc; i++) {
		rc = xdp_program__detach(ours[i], (int)ifc->ifindex, mode, 0);
		if (rc)
			log_warnx("%s: cannot detach the XDP program: %s", ifc->name,
				  strerror(-rc));
		else if (print)
			printf("%s: XDP program removed%s\n", ifc->name,
			       xdp_multiprog__is_legacy(mp) ? "" : " from the dispatcher");
	}
	xdp_multiprog__close(mp);
	return rc;
}

/* Says whether libxdp's dispatcher holds our program (others can run beside it) or not. */
static void xdp_log_dispatcher(const struct kernel_iface *ifc)
{
	struct xdp_multiprog *mp = xdp_multiprog__get_from_ifindex((int)ifc->ifindex);

	if (!mp || libxdp_get_error(mp))
		return;
	if (xdp_multiprog__is_legacy(mp))
		log_info("%s: XDP program attached alone (libxdp's dispatcher did not load here): "
			 "another XDP program cannot share this interface",
			 ifc->name);
	else
		log_info("%s: XDP program attached through libxdp's dispatcher", ifc->name);
	xdp_multiprog__close(mp);
}

static struct xdp_program *xdp_open(struct kernel *k)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = k->pin_dir,
		    .object_name = "tollgate_xdp");
	DECLARE_LIBXDP_OPTS(xdp_program_opts, xo, .prog_name = TG_PROG_XDP);
	struct xdp_program *p;
	struct bpf_map *m;
	size_t sz = 0;
	const void *elf = tollgate_xdp__elf_bytes(&sz);

	xo.obj = bpf_object__open_mem(elf, sz, &oo);
	if (!xo.obj)
		return NULL;
	/* the shared maps are reused from the pins only when their shapes are identical */
	bpf_object__for_each_map(m, xo.obj)
	{
		if (!strcmp(bpf_map__name(m), TG_MAP_SLOTS))
			bpf_map__set_max_entries(m, k->capacity);
		else if (!strcmp(bpf_map__name(m), TG_MAP_KEYS))
			bpf_map__set_max_entries(m, k->keys_max);
	}
	p = xdp_program__create(&xo);
	if (!p || libxdp_get_error(p)) {
		bpf_object__close(xo.obj);
		return NULL;
	}
	return p;
}

static int xdp_attach(struct kernel *k, size_t i)
{
	struct kernel_iface *ifc = &k->ifaces[i];
	struct xdp_program *p = xdp_open(k);
	int rc = -EINVAL;

	if (!p) {
		log_warnx("%s: cannot open the XDP object", ifc->name);
		return -EINVAL;
	}
	/* libxdp tries its dispatcher first and falls back to the program alone; native mode
	 * may be missing: expected failures, logged by us below (details at debug level) */
	kernel_log_quiet(true);
	if (k->xdp_mode != KERNEL_XDP_GENERIC) {
		rc = xdp_program__attach(p, (int)ifc->ifindex, XDP_MODE_NATIVE, 0);
		if (!rc)
			ifc->flags |= KERNEL_IF_XDP_NATIVE;
	}
	if (rc && k->xdp_mode != KERNEL_XDP_NATIVE) {
		if (k->xdp_mode == KERNEL_XDP_AUTO)
			log_info("%s: no native XDP (%s): generic mode", ifc->name, strerror(-rc));
		rc = xdp_program__attach(p, (int)ifc->ifindex, XDP_MODE_SKB, 0);
		if (!rc)
			ifc->flags |= KERNEL_IF_XDP_SKB;
	}
	kernel_log_quiet(false);
	if (rc) {
		log_warnx("%s: cannot attach the XDP program: %s (log.level=debug shows libbpf's "
			  "and libxdp's details)",
			  ifc->name, strerror(-rc));
		xdp_program__close(p);
		return rc;
	}
	k->xdp[i] = p;
	xdp_log_dispatcher(ifc);
	return 0;
}

/* ---- attach all ---- */

static int pin_prog(struct kernel *k, int fd, const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", k->pin_dir, name);
	unlink(path); /* the previous daemon's program: replaced by this one */
	if (bpf_obj_pin(fd, path)) {
		log_warn("cannot pin %s", path);
		return -errno;
	}
	return 0;
}

/* Interfaces of a previous run that are no longer configured lose our programs. */
static void drop_unlisted(struct kernel *k)
{
	uint32_t key, next;
	bool first = true;

	while (bpf_map_get_next_key(k->ifaces_fd, first ? NULL : &key, &next) == 0) {
		struct kernel_iface old;
		bool listed = false;

		for (size_t i = 0; i < k->n_ifaces; i++)
			listed |= k->ifaces[i].ifindex == next;
		if (!listed && bpf_map_lookup_elem(k->ifaces_fd, &next, &old) == 0) {
			log_info("%s: no longer in kernel.interfaces: detaching", old.name);
			tc_detach(&old, false);
			xdp_detach_ours(&old, false);
			bpf_map_delete_elem(k->ifaces_fd, &next);
			continue;
		}
		key = next;
		first = false;
	}
}

static int attach_one(struct kernel *k, size_t i, int tc_fd)
{
	struct kernel_iface *ifc = &k->ifaces[i], old;
	int rc;

	ifc->flags = 0;
	/* a clsact created by our previous run is still ours */
	if (bpf_map_lookup_elem(k->ifaces_fd, &ifc->ifindex, &old) == 0) {
		ifc->flags = old.flags & KERNEL_IF_CLSACT_OURS;
		if (old.flags & (KERNEL_IF_XDP_NATIVE | KERNEL_IF_XDP_SKB))
			xdp_detach_ours(&old, false);
	}
	rc = tc_attach(ifc, tc_fd);
	if (!rc && k->mode == TG_MODE_FULL)
		rc = xdp_attach(k, i);
	bpf_map_update_elem(k->ifaces_fd, &ifc->ifindex, ifc, BPF_ANY);
	if (!rc)
		log_info("%s: attached (TC ingress%s)", ifc->name,
			 ifc->flags & KERNEL_IF_XDP_NATIVE ? ", XDP native"
			 : ifc->flags & KERNEL_IF_XDP_SKB  ? ", XDP generic"
							   : "");
	return rc;
}

int kernel_attach_all(struct kernel *k)
{
	struct bpf_program *tc = bpf_object__find_program_by_name(k->tc_obj, TG_PROG_TC);
	int tc_fd = tc ? bpf_program__fd(tc) : -1, rc = 0;
	bool xdp_pinned = false;

	if (tc_fd < 0) {
		log_warnx("the TC object has no program %s", TG_PROG_TC);
		return -ENOENT;
	}
	drop_unlisted(k);
	for (size_t i = 0; i < k->n_ifaces && !rc; i++)
		rc = attach_one(k, i, tc_fd);
	if (!rc)
		rc = pin_prog(k, tc_fd, TG_PROG_TC);
	for (size_t i = 0; i < k->n_ifaces && !rc && !xdp_pinned; i++) {
		if (k->xdp[i]) {
			rc = pin_prog(k, xdp_program__fd(k->xdp[i]), TG_PROG_XDP);
			xdp_pinned = true;
		}
	}
	if (!xdp_pinned) { /* mode tc: no XDP program of ours is left pinned */
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/%s", k->pin_dir, TG_PROG_XDP);
		unlink(path);
	}
	return rc;
}

/* ---- tollgated detach ---- */

static size_t detach_targets(const char *pin_dir, const char *interfaces, struct kernel_iface *v,
			     size_t cap)
{
	uint32_t key, next;
	size_t n = 0;
	bool first = true;
	int fd = ifaces_map_get(pin_dir, false);

	while (fd >= 0 && n < cap && bpf_map_get_next_key(fd, first ? NULL : &key, &next) == 0) {
		if (bpf_map_lookup_elem(fd, &next, &v[n]) == 0)
			n++;
		key = next;
		first = false;
	}
	if (fd >= 0)
		close(fd);
	if (interfaces && *interfaces) { /* named ones: our programs, the qdisc left alone */
		size_t before = n;

		if (ifaces_from_list(v, &n, interfaces))
			printf("some of the interfaces named are unknown (see the log)\n");
		for (size_t i = before; i < n; i++)
			v[i].flags = KERNEL_IF_TC;
	}
	return n;
}

static int detach_all(const char *pin_dir, const char *interfaces);

int kernel_detach(const char *pin_dir, const char *interfaces)
{
	int rc, lock;

	kernel_log_setup();
	rc = kernel_bpffs_mount();
	if (rc)
		return rc;
	lock = kernel_pin_dir_lock(pin_dir);
	if (lock < 0) {
		printf("%s: a running tollgated uses it: stop it first\n", pin_dir);
		return lock;
	}
	rc = detach_all(pin_dir, interfaces);
	if (!rc) { /* nothing of this pin directory is left: its lock file goes too */
		char path[PATH_MAX];

		kernel_pin_dir_lock_path(pin_dir, path);
		unlink(path);
	}
	close(lock);
	return rc;
}

static int detach_all(const char *pin_dir, const char *interfaces)
{
	struct kernel_iface v[KERNEL_MAX_IFACES * 4];
	struct stat st;
	size_t n;
	int rc = 0;

	n = detach_targets(pin_dir, interfaces, v, sizeof(v) / sizeof(v[0]));
	for (size_t i = 0; i < n; i++) {
		tc_detach(&v[i], true);
		rc = xdp_detach_ours(&v[i], true) ?: rc;
	}
	if (stat(pin_dir, &st) != 0) {
		printf("%s: nothing pinned there\n", pin_dir);
		return rc;
	}
	if (kernel_unpin_dir(pin_dir)) {
		log_warn("cannot remove everything under %s", pin_dir);
		return -EIO;
	}
	printf("%s: unpinned and removed\n", pin_dir);
	return rc;
}
