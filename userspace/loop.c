/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The event loop (see loop.h). One turn: the hooks' before() (each may shorten the wait),
 * epoll_wait, the ready descriptors' callbacks, the hooks' after(), then the calls other
 * threads posted with loop_call. A watch removed during a turn may still have an event in
 * the batch being dispatched: it is marked dead and freed once the batch is over.
 *
 * Wake-ups cost the eventfd only when the loop sleeps: a write by the waker and a read by
 * the loop are two system calls, which on a paravirtualised VM cost more than many small
 * events' work, and a data-plane loop is woken once per call another thread releases.
 * loop_wake always sets `woken`, and writes the eventfd only when the loop is in (or about
 * to enter) epoll_wait and no write is pending; the loop checks `woken` after announcing
 * that it waits, and then does not wait. Both sides store their flag, then load the other's
 * (sequentially consistent atomics), so either the loop sees `woken` or the waker sees
 * `waiting`: no wake-up is lost.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"

#define LOOP_EVENTS 256 /* epoll events taken per wait */

struct loop_watch {
	loop_fd_fn fn;
	void *arg;
	int fd;
	bool dead;
	struct loop_watch *next; /* dead list */
};

struct loop_call {
	void (*fn)(void *arg);
	void *arg;
	bool done;
	struct loop_call *next;
};

struct loop {
	int epfd;
	int wakefd;
	pthread_t thread;
	struct loop_hook *hooks;
	struct loop_watch *dead; /* freed at the end of the turn */
	pthread_mutex_t mu;	 /* calls, stopping */
	pthread_cond_t cv;	 /* a call is done */
	struct loop_call *calls;
	bool stopping;
	atomic_bool waiting;   /* in epoll_wait, or past the last check of woken before it */
	atomic_bool woken;     /* loop_wake ran since the loop last checked */
	atomic_bool wake_sent; /* the eventfd was written and the loop has not read it yet */
	char name[16];
};

static __thread struct loop *loop_self;

static void loop_run_calls(struct loop *l)
{
	struct loop_call *c;

	pthread_mutex_lock(&l->mu);
	while ((c = l->calls)) {
		l->calls = c->next;
		pthread_mutex_unlock(&l->mu);
		c->fn(c->arg);
		pthread_mutex_lock(&l->mu);
		c->done = true;
		pthread_cond_broadcast(&l->cv);
	}
	pthread_mutex_unlock(&l->mu);
}

static int loop_before(struct loop *l)
{
	int wait = -1;

	for (struct loop_hook *h = l->hooks; h; h = h->next) {
		int w = h->before ? h->before(h->arg) : -1;

		if (w >= 0 && (wait < 0 || w < wait))
			wait = w;
	}
	return wait;
}

static void loop_dispatch(struct loop *l, const struct epoll_event *evs, int n)
{
	for (int i = 0; i < n; i++) {
		struct loop_watch *w = evs[i].data.ptr;

		if (!w) { /* the wake eventfd */
			uint64_t v;

			/* before the read: a wake-up after it writes again if the loop sleeps */
			atomic_store(&l->wake_sent, false);
			if (read(l->wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				log_warnx("loop %s: wake-up read: %s", l->name, strerror(errno));
			continue;
		}
		if (!w->dead)
			w->fn(w->arg, w->fd, evs[i].events);
	}
	for (struct loop_hook *h = l->hooks; h; h = h->next) {
		if (h->after)
			h->after(h->arg);
	}
	while (l->dead) {
		struct loop_watch *w = l->dead;

		l->dead = w->next;
		free(w);
	}
}

/*
 * Waits for events as long as the hooks allow; not at all if loop_wake ran since the last
 * check (what it announced may have come after the hooks looked: the next turn sees it).
 */
static int loop_wait(struct loop *l, struct epoll_event *evs)
{
	int timeout = loop_before(l), n;

	atomic_store(&l->waiting, true);
	if (atomic_exchange(&l->woken, false))
		timeout = 0;
	n = epoll_wait(l->epfd, evs, LOOP_EVENTS, timeout);
	atomic_store(&l->waiting, false);
	return n;
}

static void *loop_main(void *arg)
{
	struct loop *l = arg;
	struct epoll_event evs[LOOP_EVENTS];

	loop_self = l;
	for (;;) {
		int n;
		bool stop;

		loop_run_calls(l);
		pthread_mutex_lock(&l->mu);
		stop = l->stopping;
		pthread_mutex_unlock(&l->mu);
		if (stop)
			break;
		n = loop_wait(l, evs);
		loop_dispatch(l, evs, n > 0 ? n : 0);
	}
	return NULL;
}

static void loop_free(struct loop *l)
{
	if (l->wakefd >= 0)
		close(l->wakefd);
	if (l->epfd >= 0)
		close(l->epfd);
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

struct loop *loop_start(const char *name)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	struct loop *l = calloc(1, sizeof(*l));
	int err;

	if (!l) {
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	strncpy(l->name, name ? name : "loop", sizeof(l->name) - 1);
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	err = l->epfd < 0 || l->wakefd < 0 ? errno : 0;
	if (!err && epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &ev))
		err = errno;
	if (!err)
		err = pthread_create(&l->thread, NULL, loop_main, l);
	if (err) {
		loop_free(l);
		errno = err;
		return NULL;
	}
	pthread_setname_np(l->thread, l->name);
	return l;
}

void loop_stop(struct loop *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->mu);
	l->stopping = true;
	pthread_mutex_unlock(&l->mu);
	loop_wake(l);
	pthread_join(l->thread, NULL);
	loop_run_calls(l); /* none should be left; never leave a caller waiting */
	while (l->dead) {
		struct loop_watch *w = l->dead;

		l->dead = w->next;
		free(w);
	}
	loop_free(l);
}

int loop_watch_add(struct loop *l, int fd, uint32_t events, loop_fd_fn fn, void *arg,
		   struct loop_watch **out)
{
	struct loop_watch *w = calloc(1, sizeof(*w));
	struct epoll_event ev = {.events = events};

	if (!w)
		return -ENOMEM;
	w->fn = fn;
	w->arg = arg;
	w->fd = fd;
	ev.data.ptr = w;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		int err = -errno;

		free(w);
		return err;
	}
	*out = w;
	return 0;
}

int loop_watch_mod(struct loop *l, struct loop_watch *w, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};

	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev))
		return -errno;
	return 0;
}

void loop_watch_del(struct loop *l, struct loop_watch *w)
{
	if (!w)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL); /* EBADF if closed already: fine */
	w->dead = true;
	w->next = l->dead;
	l->dead = w;
}

/* Appended: hooks run in the order they were added (the upstream's before the listener's). */
void loop_hook_add(struct loop *l, struct loop_hook *h)
{
	struct loop_hook **p = &l->hooks;

	while (*p)
		p = &(*p)->next;
	h->next = NULL;
	*p = h;
}

void loop_hook_del(struct loop *l, struct loop_hook *h)
{
	for (struct loop_hook **p = &l->hooks; *p; p = &(*p)->next) {
		if (*p == h) {
			*p = h->next;
			break;
		}
	}
}

void loop_wake(struct loop *l)
{
	uint64_t one = 1;

	atomic_store(&l->woken, true);
	/* awake, the loop sees woken before it waits; asleep, one write wakes it */
	if (!atomic_load(&l->waiting) || atomic_exchange(&l->wake_sent, true))
		return;
	if (write(l->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warnx("loop %s: wake-up write: %s", l->name, strerror(errno));
}

void loop_call(struct loop *l, void (*fn)(void *arg), void *arg)
{
	struct loop_call c = {.fn = fn, .arg = arg};

	if (loop_on_thread(l)) {
		fn(arg);
		return;
	}
	pthread_mutex_lock(&l->mu);
	c.next = l->calls;
	l->calls = &c;
	pthread_mutex_unlock(&l->mu);
	loop_wake(l);
	pthread_mutex_lock(&l->mu);
	while (!c.done)
		pthread_cond_wait(&l->cv, &l->mu);
	pthread_mutex_unlock(&l->mu);
}

bool loop_on_thread(const struct loop *l)
{
	return l && loop_self == l;
}

struct loop *loop_current(void)
{
	return loop_self;
}
