// SPDX-License-Identifier: BSD-2-Clause
/*
 * The penalty box attached for real, the way the loader does it: the XDP object opened with
 * a pin_root_path (its maps pinned by name there) and attached through libxdp's
 * multi-program dispatcher to one end of a veth pair between two network namespaces this
 * test creates (the test process's own and a child's; both vanish with the processes). A TCP
 * client in the child's namespace connects to a listener on guarded port 8080: it connects
 * while its address is not in the box; with its address penalised its SYNs are dropped (the
 * entry's dropped_total and the XDP_DROPPED counter move, the connection does not complete);
 * with the entry removed it connects again. Then detach leaves no program on the device.
 *
 * Pins go to a fresh directory /sys/fs/bpf/tg-test-<pid>, removed at the end.
 */
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <net/if.h>
#include <netinet/in.h>
#include <linux/magic.h>

#include <xdp/libxdp.h>

#include "tg_bpf_test.h"
#include "tollgate_xdp.skel.h"

#define SRV_ADDR "10.77.0.1"
#define CLI_ADDR "10.77.0.2"
#define SRV_PORT 8080

static struct {
	pid_t child;	      /* holds the client namespace */
	int ns_self, ns_cli;  /* namespace fds */
	int listen_fd;
	int ifindex;
	char pin_dir[64];
	struct tollgate_xdp *skel;
	struct xdp_program *prog;
	enum xdp_attach_mode mode;
	int attached;
} t = { .ns_self = -1, .ns_cli = -1, .listen_fd = -1 };

static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	if (rc != 0)
		printf("#   command failed (%d): %s\n", rc, cmd);
	return rc == 0 ? 0 : -1;
}

/* Mounts bpffs at /sys/fs/bpf when it is not (libxdp and pinning need it). */
static int bpffs_ensure(void)
{
	struct statfs st;

	if (statfs("/sys/fs/bpf", &st) == 0 && st.f_type == BPF_FS_MAGIC)
		return 0;
	return sh("mount -t bpf bpf /sys/fs/bpf");
}

/* Two namespaces joined by a veth pair: tgx0 (server, here) and tgx1 (client, child). */
static int netns_setup(void)
{
	char path[64];
	int sync[2];
	char c;

	if (unshare(CLONE_NEWNET) || pipe(sync))
		return -1;
	t.ns_self = open("/proc/self/ns/net", O_RDONLY);
	t.child = fork();
	if (t.child == 0) {
		/* Dies with the test, whatever kills it: the namespace must not outlive it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(sync[0]);
		if (unshare(CLONE_NEWNET) == 0)
			(void)!write(sync[1], "x", 1);
		pause();
		_exit(0);
	}
	close(sync[1]);
	if (t.child < 0 || read(sync[0], &c, 1) != 1)
		return -1;
	close(sync[0]);
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)t.child);
	t.ns_cli = open(path, O_RDONLY);
	if (t.ns_self < 0 || t.ns_cli < 0)
		return -1;
	if (sh("ip link set lo up && ip link add tgx0 type veth peer name tgx1 netns %d && "
	       "ip addr add %s/24 dev tgx0 && ip link set tgx0 up", (int)t.child, SRV_ADDR))
		return -1;
	if (setns(t.ns_cli, CLONE_NEWNET))
		return -1;
	if (sh("ip link set lo up && ip addr add %s/24 dev tgx1 && ip link set tgx1 up", CLI_ADDR)) {
		(void)!setns(t.ns_self, CLONE_NEWNET);
		return -1;
	}
	if (setns(t.ns_self, CLONE_NEWNET))
		return -1;
	t.ifindex = (int)if_nametoindex("tgx0");
	return t.ifindex > 0 ? 0 : -1;
}

static int listener_open(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(SRV_PORT) };
	int one = 1;

	inet_pton(AF_INET, SRV_ADDR, &a.sin_addr);
	t.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	if (t.listen_fd < 0 ||
	    setsockopt(t.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(t.listen_fd, (struct sockaddr *)&a, sizeof(a)) || listen(t.listen_fd, 16))
		return -1;
	return 0;
}

/* Connects from the client namespace; 1 if the handshake completed within wait_ms, 0 if
 * not, -1 on error. (A SYN dropped at the server never completes: the client keeps
 * retransmitting; the counters, not this wait, prove the drop.) */
static int client_connects(int wait_ms)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(SRV_PORT) };
	struct pollfd p = { .events = POLLOUT };
	int fd, err = 0, ok;
	socklen_t len = sizeof(err);

	inet_pton(AF_INET, SRV_ADDR, &a.sin_addr);
	if (setns(t.ns_cli, CLONE_NEWNET))
		return -1;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (setns(t.ns_self, CLONE_NEWNET) || fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	p.fd = fd;
	ok = poll(&p, 1, wait_ms) == 1 &&
	     getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
	close(fd);
	return ok;
}

/* The loader's way: open with pin_root_path, attach through libxdp (native, else generic). */
static int xdp_attach(void)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = t.pin_dir);
	int err;

	snprintf(t.pin_dir, sizeof(t.pin_dir), "/sys/fs/bpf/tg-test-%d", (int)getpid());
	if (mkdir(t.pin_dir, 0700))
		return -1;
	t.skel = tollgate_xdp__open_opts(&oo);
	if (!t.skel)
		return -1;
	t.prog = xdp_program__from_bpf_obj(t.skel->obj, "xdp");
	if (libxdp_get_error(t.prog)) {
		t.prog = NULL;
		return -1;
	}
	t.mode = XDP_MODE_NATIVE;
	err = xdp_program__attach(t.prog, t.ifindex, t.mode, 0);
	if (err) {
		printf("# native XDP attach failed (%d); generic mode\n", err);
		t.mode = XDP_MODE_SKB;
		err = xdp_program__attach(t.prog, t.ifindex, t.mode, 0);
	}
	t.attached = err == 0;
	return err;
}

static void cleanup(void)
{
	if (t.attached)
		xdp_program__detach(t.prog, t.ifindex, t.mode, 0);
	if (t.skel && t.pin_dir[0])
		bpf_object__unpin_maps(t.skel->obj, NULL);
	xdp_program__close(t.prog); /* does not close the bpf_object it was made from */
	tollgate_xdp__destroy(t.skel);
	if (t.pin_dir[0])
		rmdir(t.pin_dir);
	if (t.listen_fd >= 0)
		close(t.listen_fd);
	if (t.child > 0) {
		kill(t.child, SIGKILL);
		waitpid(t.child, NULL, 0);
	}
}

#define TG_XDP_DISPATCHER_OBJ "/usr/lib/x86_64-linux-gnu/bpf/xdp-dispatcher.o"

/*
 * libxdp's own compatibility test, replayed to tell why it fell back to a legacy attach:
 * load the dispatcher, then its xdp_pass as an freplace (BPF_PROG_TYPE_EXT) program of it.
 * 0 when the kernel accepts that (so a fallback is our program's fault), else -errno.
 */
static int ext_probe(void)
{
	struct bpf_object *disp = bpf_object__open_file(TG_XDP_DISPATCHER_OBJ, NULL);
	struct bpf_object *ext = bpf_object__open_file(TG_XDP_DISPATCHER_OBJ, NULL);
	struct bpf_program *p;
	int err = -ENOENT;

	if (!disp || !ext)
		goto out;
	bpf_object__for_each_program(p, disp)
		bpf_program__set_autoload(p, strcmp(bpf_program__name(p), "xdp_dispatcher") == 0);
	err = bpf_object__load(disp);
	if (err)
		goto out;
	bpf_object__for_each_program(p, ext)
		bpf_program__set_autoload(p, strcmp(bpf_program__name(p), "xdp_pass") == 0);
	p = bpf_object__find_program_by_name(ext, "xdp_pass");
	err = -ENOENT;
	if (!p)
		goto out;
	bpf_program__set_type(p, BPF_PROG_TYPE_EXT);
	bpf_program__set_expected_attach_type(p, 0);
	err = bpf_program__set_attach_target(
		p, bpf_program__fd(bpf_object__find_program_by_name(disp, "xdp_dispatcher")),
		"prog0");
	err = err ?: bpf_object__load(ext);
out:
	bpf_object__close(ext);
	bpf_object__close(disp);
	return err;
}

/* The run configuration libxdp read from the object (.xdp_run_config). */
static void case_run_config(void)
{
	TG_REQUIRE(t.prog);
	TG_CHECK_STR(xdp_program__name(t.prog), TG_PROG_XDP);
	TG_CHECK_INT(xdp_program__run_prio(t.prog), 10);
	TG_CHECK(xdp_program__chain_call_enabled(t.prog, XDP_PASS));
	TG_CHECK(!xdp_program__chain_call_enabled(t.prog, XDP_DROP));
}

static void case_pinned(void)
{
	static const char *const names[] = { TG_MAP_KEYS,    TG_MAP_SLOTS, TG_MAP_CONFIG,
					     TG_MAP_SECRET,  TG_MAP_STATS, TG_MAP_PENALTY,
					     TG_MAP_ALLOW,   TG_MAP_KILLED };
	char pin[128];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(pin, sizeof(pin), "%s/%s", t.pin_dir, names[i]);
		if (access(pin, F_OK) != 0)
			printf("#   not pinned: %s\n", pin);
		TG_CHECK(access(pin, F_OK) == 0);
	}
}

/* Runs under libxdp's dispatcher when the kernel allows freplace programs; otherwise
 * libxdp attaches it alone (legacy), which is only acceptable when the kernel is why. */
static void case_dispatcher(void)
{
	struct xdp_multiprog *mp = xdp_multiprog__get_from_ifindex(t.ifindex);
	static char why[160];
	struct xdp_program *p;
	int ext;

	TG_REQUIRE(!libxdp_get_error(mp) && mp);
	if (xdp_multiprog__is_legacy(mp)) {
		p = xdp_multiprog__main_prog(mp);
		TG_CHECK(p && strcmp(xdp_program__name(p), TG_PROG_XDP) == 0);
		xdp_multiprog__close(mp);
		ext = ext_probe();
		TG_CHECK(ext != 0); /* the kernel took freplace, yet libxdp did not: our bug */
		snprintf(why, sizeof(why),
			 "this kernel refuses freplace (EXT) programs (%s), so libxdp attached "
			 "tg_xdp_penalty alone (legacy mode)",
			 strerror(-ext));
		TG_SKIP(why);
	}
	TG_CHECK_INT(xdp_multiprog__program_count(mp), 1);
	p = xdp_multiprog__next_prog(NULL, mp);
	TG_CHECK(p && strcmp(xdp_program__name(p), TG_PROG_XDP) == 0);
	TG_CHECK(p && xdp_program__run_prio(p) == 10);
	xdp_multiprog__close(mp);
}

static void case_penalty_drops_syns(void)
{
	struct tg_config cfg = tg_bpf_config_default();
	struct tg_penalty p = { .until_ns = 1ULL << 62 };
	__u64 before[TG_V__COUNT], after[TG_V__COUNT];

	TG_REQUIRE(tg_bpf_set_config(t.skel->obj, &cfg) == 0);
	TG_CHECK_INT(client_connects(5000), 1);
	TG_REQUIRE(tg_bpf_penalty_set(t.skel->obj, CLI_ADDR, &p) == 0);
	TG_REQUIRE(tg_bpf_stats(t.skel->obj, before) == 0);
	TG_CHECK_INT(client_connects(1500), 0);
	TG_REQUIRE(tg_bpf_stats(t.skel->obj, after) == 0);
	TG_REQUIRE(tg_bpf_penalty_get(t.skel->obj, CLI_ADDR, &p) == 0);
	TG_CHECK(p.dropped_total >= 1);
	TG_CHECK(after[TG_V_XDP_DROPPED] - before[TG_V_XDP_DROPPED] >= 1);
	TG_CHECK(after[TG_V_XDP_SEEN] > before[TG_V_XDP_SEEN]);
	TG_REQUIRE(tg_bpf_map_clear(tg_bpf_map_fd(t.skel->obj, TG_MAP_PENALTY)) == 0);
	TG_CHECK_INT(client_connects(5000), 1);
}

static void case_detach(void)
{
	struct xdp_multiprog *mp;

	TG_REQUIRE(t.attached);
	TG_CHECK_INT(xdp_program__detach(t.prog, t.ifindex, t.mode, 0), 0);
	t.attached = 0;
	mp = xdp_multiprog__get_from_ifindex(t.ifindex);
	TG_CHECK(libxdp_get_error(mp) != 0 || mp == NULL);
	if (!libxdp_get_error(mp))
		xdp_multiprog__close(mp);
}

/* On SIGTERM/SIGINT (a timeout): remove the pins; the namespaces, the veth and the XDP
 * attachment on it die with the processes. Only async-signal-safe calls. */
static void on_signal(int sig)
{
	static const char *const names[] = { TG_MAP_KEYS,   TG_MAP_SLOTS, TG_MAP_CONFIG,
					     TG_MAP_SECRET, TG_MAP_STATS, TG_MAP_PENALTY,
					     TG_MAP_ALLOW,  TG_MAP_KILLED };
	char path[128];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && t.pin_dir[0]; i++) {
		size_t n = strlen(t.pin_dir), m = strlen(names[i]);

		memcpy(path, t.pin_dir, n);
		path[n] = '/';
		memcpy(path + n + 1, names[i], m + 1);
		unlink(path);
	}
	if (t.pin_dir[0])
		rmdir(t.pin_dir);
	if (t.child > 0) {
		kill(t.child, SIGKILL);
		waitpid(t.child, NULL, 0);
	}
	_exit(128 + sig);
}

static const struct tg_case cases[] = {
	{ "libxdp reads the run config: priority 10, chain on XDP_PASS only", case_run_config },
	{ "every map pinned by name under the pin_root_path", case_pinned },
	{ "attached under libxdp's multi-program dispatcher", case_dispatcher },
	{ "a penalised client's SYNs are dropped on the wire; unpenalised it connects",
	  case_penalty_drops_syns },
	{ "detach leaves no XDP program on the device", case_detach },
};

static int quiet_libxdp(enum libxdp_print_level level, const char *fmt, va_list ap)
{
	char line[512];

	if (level == LIBXDP_DEBUG)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	return printf("# libxdp: %s", line);
}

int main(void)
{
	const char *why = tg_bpf_env_problem();
	int rc = 1;

	if (why)
		return tg_bpf_unavailable("bpf/xdp_attach", why);
	libxdp_set_print(quiet_libxdp);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	if (bpffs_ensure() || netns_setup() || listener_open()) {
		printf("not ok - bpf/xdp_attach: namespaces, veth or listener setup failed\n");
		goto out;
	}
	if (xdp_attach()) {
		printf("not ok - bpf/xdp_attach: libxdp could not attach tg_xdp_penalty\n");
		goto out;
	}
	printf("# attached in %s mode\n", t.mode == XDP_MODE_NATIVE ? "native" : "generic");
	rc = tg_run("bpf/xdp_attach", cases, TG_NCASES(cases));
out:
	cleanup();
	return rc;
}
