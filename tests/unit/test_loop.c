/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The event loop (userspace/loop.c): a watched descriptor's callback runs on the loop
 * thread with its events, a hook's before() bounds the wait and after() follows the events,
 * loop_call runs on the loop thread (and directly when already there), loop_wake ends a wait
 * that no descriptor or timeout would end (also when it races with the loop going to sleep,
 * from several threads at once), and a watch removed by another watch's callback in the
 * same batch is never called. Waits are bounded; no duration is asserted.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "loop.h"
#include "tg_test.h"

#define WAIT_MS 10000 /* the bound on any wait: reaching it is a failure */

struct probe {
	struct loop *l;
	atomic_int fired;
	atomic_bool on_thread;
	atomic_int befores, afters;
	int wait_ms; /* what before() returns */
	int fd;
	struct loop_watch *w, *other; /* other: deleted by this one's callback */
};

static int wait_for(atomic_int *v, int want)
{
	for (int i = 0; i < WAIT_MS; i++) {
		if (atomic_load(v) >= want)
			return 0;
		usleep(1000);
	}
	return -ETIMEDOUT;
}

static void on_fd(void *arg, int fd, uint32_t events)
{
	struct probe *p = arg;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0)
		return;
	atomic_store(&p->on_thread, loop_on_thread(p->l) && loop_current() == p->l);
	if ((events & EPOLLIN) && p->other) {
		loop_watch_del(p->l, p->other);
		p->other = NULL;
	}
	atomic_fetch_add(&p->fired, 1);
}

static void kick(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0)
		perror("write");
}

static void add_watch(void *arg)
{
	struct probe *p = arg;

	TG_CHECK_INT(loop_watch_add(p->l, p->fd, EPOLLIN, on_fd, p, &p->w), 0);
}

static void del_watch(void *arg)
{
	struct probe *p = arg;

	loop_watch_del(p->l, p->w);
}

static void case_watch_fires_on_loop_thread(void)
{
	struct probe p = {.l = loop_start("t-loop"), .fd = eventfd(0, EFD_NONBLOCK)};

	TG_REQUIRE(p.l && p.fd >= 0);
	TG_CHECK(!loop_on_thread(p.l));
	TG_CHECK(loop_current() == NULL);
	loop_call(p.l, add_watch, &p);
	kick(p.fd);
	TG_CHECK_INT(wait_for(&p.fired, 1), 0);
	TG_CHECK(atomic_load(&p.on_thread));
	loop_call(p.l, del_watch, &p);
	loop_stop(p.l);
	close(p.fd);
}

static int hook_before(void *arg)
{
	struct probe *p = arg;

	atomic_fetch_add(&p->befores, 1);
	return p->wait_ms;
}

static void hook_after(void *arg)
{
	struct probe *p = arg;

	atomic_fetch_add(&p->afters, 1);
}

static void add_hook(void *arg)
{
	struct loop_hook *h = arg;
	struct probe *p = h->arg;

	loop_hook_add(p->l, h);
}

static void del_hook(void *arg)
{
	struct loop_hook *h = arg;
	struct probe *p = h->arg;

	loop_hook_del(p->l, h);
}

/* before() returning 0 makes the loop turn without sleeping: the hooks keep running */
static void case_hook_bounds_the_wait(void)
{
	struct probe p = {.l = loop_start("t-hook"), .wait_ms = 0};
	struct loop_hook h = {.before = hook_before, .after = hook_after, .arg = &p};

	TG_REQUIRE(p.l);
	loop_call(p.l, add_hook, &h);
	TG_CHECK_INT(wait_for(&p.afters, 50), 0);
	TG_CHECK(atomic_load(&p.befores) >= 50);
	loop_call(p.l, del_hook, &h);
	loop_stop(p.l);
}

/* with no bound (-1) and nothing ready, only loop_wake ends the wait */
static void case_wake_ends_an_unbounded_wait(void)
{
	struct probe p = {.l = loop_start("t-wake"), .wait_ms = -1};
	struct loop_hook h = {.before = hook_before, .after = hook_after, .arg = &p};
	int before;

	TG_REQUIRE(p.l);
	loop_call(p.l, add_hook, &h);
	TG_CHECK_INT(wait_for(&p.befores, 1), 0);
	before = atomic_load(&p.afters);
	loop_wake(p.l);
	TG_CHECK_INT(wait_for(&p.afters, before + 1), 0);
	loop_call(p.l, del_hook, &h);
	loop_stop(p.l);
}

/*
 * Work announced by other threads, as a loop's modules see it: before() takes what was
 * posted and then allows an unbounded wait. A wake-up lost in the race with the loop going
 * to sleep leaves posted ahead of seen for good, and the poster's bounded wait fails.
 */
struct mailbox {
	struct loop *l;
	atomic_int posted, seen;
	atomic_int lost; /* posts whose wake-up never came */
};

#define WAKE_THREADS 3
#define WAKE_POSTS   5000 /* per thread */

static int mailbox_before(void *arg)
{
	struct mailbox *m = arg;

	atomic_store(&m->seen, atomic_load(&m->posted));
	usleep(20); /* widens the window between looking and waiting, where wake-ups get lost */
	return -1;
}

static void *poster(void *arg)
{
	struct mailbox *m = arg;

	for (int i = 0; i < WAKE_POSTS; i++) {
		int mine = atomic_fetch_add(&m->posted, 1) + 1, t;

		loop_wake(m->l);
		/* spins, sleeping now and then: the loop must get to sleep between posts too */
		for (t = 0; t < WAIT_MS * 10 && atomic_load(&m->seen) < mine; t++) {
			if (t % 16 == 15)
				usleep(100);
		}
		if (atomic_load(&m->seen) < mine) {
			atomic_fetch_add(&m->lost, 1);
			return NULL;
		}
	}
	return NULL;
}

static void mailbox_hook_add(void *arg)
{
	struct loop_hook *h = arg;
	struct mailbox *m = h->arg;

	loop_hook_add(m->l, h);
}

static void mailbox_hook_del(void *arg)
{
	struct loop_hook *h = arg;
	struct mailbox *m = h->arg;

	loop_hook_del(m->l, h);
}

/* every post is seen: the eventfd is skipped only while the loop is awake to see it */
static void case_wake_never_lost(void)
{
	struct mailbox m = {.l = loop_start("t-mail")};
	struct loop_hook h = {.before = mailbox_before, .arg = &m};
	pthread_t th[WAKE_THREADS];
	int started = 0;

	TG_REQUIRE(m.l);
	loop_call(m.l, mailbox_hook_add, &h);
	for (; started < WAKE_THREADS; started++) {
		if (pthread_create(&th[started], NULL, poster, &m))
			break;
	}
	TG_CHECK_INT(started, WAKE_THREADS);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	TG_CHECK_INT(atomic_load(&m.lost), 0);
	TG_CHECK_INT(atomic_load(&m.seen), started * WAKE_POSTS);
	loop_call(m.l, mailbox_hook_del, &h);
	loop_stop(m.l);
}

struct pair {
	struct probe *a, *b;
};

/* Both watches in one call: their descriptors are ready already, so one batch has both. */
static void add_two(void *arg)
{
	struct pair *pr = arg;

	TG_CHECK_INT(loop_watch_add(pr->a->l, pr->a->fd, EPOLLIN, on_fd, pr->a, &pr->a->w), 0);
	TG_CHECK_INT(loop_watch_add(pr->b->l, pr->b->fd, EPOLLIN, on_fd, pr->b, &pr->b->w), 0);
	/* each callback deletes the other's watch: whichever runs first, the other never does */
	pr->a->other = pr->b->w;
	pr->b->other = pr->a->w;
}

static void case_watch_deleted_in_batch_not_called(void)
{
	struct probe a = {.l = loop_start("t-del"), .fd = eventfd(0, EFD_NONBLOCK)};
	struct probe b = {.l = a.l, .fd = eventfd(0, EFD_NONBLOCK)};
	struct pair pr = {&a, &b};

	TG_REQUIRE(a.l && a.fd >= 0 && b.fd >= 0);
	kick(a.fd);
	kick(b.fd);
	loop_call(a.l, add_two, &pr);
	for (int i = 0; i < WAIT_MS && atomic_load(&a.fired) + atomic_load(&b.fired) == 0; i++)
		usleep(1000);
	usleep(50000); /* room for a wrong second call */
	TG_CHECK_INT(atomic_load(&a.fired) + atomic_load(&b.fired), 1);
	/* the watch of the one that fired is still there */
	loop_call(a.l, del_watch, atomic_load(&a.fired) ? &a : &b);
	loop_stop(a.l);
	close(a.fd);
	close(b.fd);
}

static const struct tg_case cases[] = {
    {"a watched descriptor's callback runs on the loop thread", case_watch_fires_on_loop_thread},
    {"a hook's before() of 0 keeps the loop turning; after() follows each wait",
     case_hook_bounds_the_wait},
    {"loop_wake ends a wait no descriptor or timeout would end", case_wake_ends_an_unbounded_wait},
    {"loop_wake from several threads racing with the loop's sleep: no wake-up is lost",
     case_wake_never_lost},
    {"a watch removed by another callback of the same batch is not called",
     case_watch_deleted_in_batch_not_called},
};

int main(void)
{
	return tg_run("loop", cases, TG_NCASES(cases));
}
