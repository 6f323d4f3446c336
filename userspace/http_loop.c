/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Listener daemons driven from event loops (loop.h) instead of the library's own threads.
 * Each loop gets a daemon in external-epoll mode: the daemon's epoll fd is watched by the
 * loop, its timeout bounds the loop's wait, and MHD_run runs on the loop thread after a
 * turn in which the fd was ready or the timeout came. Handlers therefore run on the loop
 * thread, where the data plane's upstream calls (upstream_start_on, same loop) also
 * complete: an allowed call is accepted, forwarded, answered and logged on one thread.
 *
 * The daemons share one listen socket (the first binds it, the others get its fd with
 * MHD_OPTION_LISTEN_SOCKET) rather than SO_REUSEPORT sockets: the listener keeps its
 * TCP_DEFER_ACCEPT and address in one place (the kernel fast path finds one socket, tests
 * 90-95), port 0 needs no second bind, and no other process can join the port. Every loop
 * waits on it; an accept that another loop won fails with EAGAIN in the library, which
 * costs a wake-up per new connection, not per request.
 */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "http_internal.h"
#include "log.h"
#include "loop.h"
#include "util.h"

struct http_loopd {
	struct http_server *h;
	struct loop *l;
	struct MHD_Daemon *d;
	struct loop_watch *w; /* the daemon's epoll fd */
	struct loop_hook hook;
	atomic_bool ready; /* the epoll fd was ready, or a connection resumed: run it */
	int64_t due_ns; /* the daemon's timeout (CLOCK_MONOTONIC); 0 = none */
	MHD_socket qfd; /* what MHD_quiesce_daemon returned */
};

static void ld_on_ready(void *arg, int fd, uint32_t events)
{
	struct http_loopd *ld = arg;

	(void)fd;
	(void)events;
	atomic_store(&ld->ready, true);
}

static int ld_before(void *arg)
{
	struct http_loopd *ld = arg;
	MHD_UNSIGNED_LONG_LONG ms;

	if (atomic_load(&ld->ready))
		return 0;
	if (MHD_get_timeout(ld->d, &ms) != MHD_YES) {
		ld->due_ns = 0;
		return -1;
	}
	if (ms > INT_MAX)
		ms = INT_MAX;
	ld->due_ns = tg_now_mono_ns() + (int64_t)ms * 1000000;
	return (int)ms;
}

static void ld_after(void *arg)
{
	struct http_loopd *ld = arg;

	if (!atomic_load(&ld->ready) && !(ld->due_ns && tg_now_mono_ns() >= ld->due_ns))
		return;
	atomic_store(&ld->ready, false);
	MHD_run(ld->d);
}

static void ld_attach(void *arg)
{
	struct http_loopd *ld = arg;
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(ld->d, MHD_DAEMON_INFO_EPOLL_FD);
	int err = info ? loop_watch_add(ld->l, info->epoll_fd, EPOLLIN, ld_on_ready, ld, &ld->w)
		       : -EINVAL;

	if (err) { /* the daemon still runs on its timeout: slow, but not lost */
		log_warnx("%s: cannot watch the listener's events: %s", ld->h->name,
			  strerror(-err));
		ld->w = NULL;
	}
	ld->hook = (struct loop_hook){.before = ld_before, .after = ld_after, .arg = ld};
	loop_hook_add(ld->l, &ld->hook);
	atomic_store(&ld->ready, true); /* a first run, for what came before the watch */
}

static void ld_quiesce(void *arg)
{
	struct http_loopd *ld = arg;

	ld->qfd = MHD_quiesce_daemon(ld->d);
}

/* On the loop thread: no turn of this loop runs the daemon while it stops. */
static void ld_stop(void *arg)
{
	struct http_loopd *ld = arg;

	loop_hook_del(ld->l, &ld->hook);
	loop_watch_del(ld->l, ld->w);
	ld->w = NULL;
	MHD_stop_daemon(ld->d);
	ld->d = NULL;
}

struct MHD_Daemon *http_loops_start(struct http_server *h, const struct http_opts *o,
				    const struct sockaddr_storage *ss, bool v6)
{
	const union MHD_DaemonInfo *info;
	int fd = -1, err = 0;

	h->ld = calloc(o->nloops, sizeof(*h->ld));
	if (!h->ld) {
		errno = ENOMEM;
		return NULL;
	}
	for (unsigned i = 0; i < o->nloops && !err; i++) {
		struct http_loopd *ld = &h->ld[i];

		ld->h = h;
		ld->l = o->loops[i];
		ld->qfd = MHD_INVALID_SOCKET;
		errno = 0;
		ld->d = http_daemon_start(h, o, ss, v6, fd, o->nloops);
		if (!ld->d) {
			err = errno ? errno : EADDRNOTAVAIL;
			break;
		}
		h->nld = i + 1;
		if (i == 0) {
			info = MHD_get_daemon_info(ld->d, MHD_DAEMON_INFO_LISTEN_FD);
			fd = info ? info->listen_fd : -1;
			if (fd < 0)
				err = EINVAL;
		}
	}
	if (err) {
		/* not attached yet: stopped here; only the first closes the shared socket */
		while (h->nld) {
			struct MHD_Daemon *d = h->ld[--h->nld].d;

			if (h->nld)
				MHD_quiesce_daemon(d);
			MHD_stop_daemon(d);
		}
		free(h->ld);
		h->ld = NULL;
		errno = err;
		return NULL;
	}
	for (unsigned i = 0; i < h->nld; i++)
		loop_call(h->ld[i].l, ld_attach, &h->ld[i]);
	return h->ld[0].d;
}

struct http_loopd *http_loops_here(struct http_server *h)
{
	struct loop *l = loop_current();

	for (unsigned i = 0; l && i < h->nld; i++) {
		if (h->ld[i].l == l)
			return &h->ld[i];
	}
	return NULL;
}

void http_loops_kick(struct http_loopd *ld)
{
	atomic_store(&ld->ready, true);
	if (!loop_on_thread(ld->l))
		loop_wake(ld->l);
}

MHD_socket http_loops_quiesce(struct http_server *h)
{
	for (unsigned i = 0; i < h->nld; i++)
		loop_call(h->ld[i].l, ld_quiesce, &h->ld[i]);
	return h->ld[0].qfd;
}

void http_loops_stop(struct http_server *h)
{
	for (unsigned i = 0; i < h->nld; i++)
		loop_call(h->ld[i].l, ld_stop, &h->ld[i]);
	free(h->ld);
	h->ld = NULL;
	h->nld = 0;
	h->d = NULL;
}
