/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A small event loop: one thread, one epoll set. Modules register file descriptors with a
 * callback (loop_watch) and hooks that run on every turn (loop_hook: before the wait, with
 * how long it may last, and after the events). Other threads reach the loop through
 * loop_wake (an eventfd in the set) and loop_call (run a function on the loop thread and
 * wait for it). No library is included here: the HTTP layer (MHD) and the upstream client
 * (curl) each register with a loop from their own module, so that a data-plane call is
 * accepted, forwarded, answered and logged on one thread.
 */
#ifndef TG_LOOP_H
#define TG_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct loop_watch;

typedef void (*loop_fd_fn)(void *arg, int fd, uint32_t events);

struct loop_hook {
	/* before each wait: returns the longest wait it allows in ms (-1: no bound) */
	int (*before)(void *arg);
	/* after each wait, once every ready descriptor's callback has run */
	void (*after)(void *arg);
	void *arg;
	struct loop_hook *next; /* the loop's list */
};

/* A loop and its thread (named name, at most 15 characters). NULL and errno on failure. */
struct loop *loop_start(const char *name);
/* Stops the thread after its current turn and frees the loop. Hooks and watches must have
 * been removed. Accepts NULL. Not from the loop thread. */
void loop_stop(struct loop *l);

/* Watches fd for events (EPOLLIN/EPOLLOUT...); fn runs on the loop thread. 0 or -errno. */
int loop_watch_add(struct loop *l, int fd, uint32_t events, loop_fd_fn fn, void *arg,
		   struct loop_watch **out);
int loop_watch_mod(struct loop *l, struct loop_watch *w, uint32_t events);
/* Stops watching (the fd may be closed already); the watch is freed after the turn. */
void loop_watch_del(struct loop *l, struct loop_watch *w);

/* Adds or removes a hook; on the loop thread, or before any wait concerns it. */
void loop_hook_add(struct loop *l, struct loop_hook *h);
void loop_hook_del(struct loop *l, struct loop_hook *h);

/* Ends the current wait (any thread); the hooks run again. */
void loop_wake(struct loop *l);
/* Runs fn(arg) on the loop thread and returns once it has (directly on the loop thread). */
void loop_call(struct loop *l, void (*fn)(void *arg), void *arg);
/* True on l's thread. */
bool loop_on_thread(const struct loop *l);
/* The loop whose thread this is, or NULL. */
struct loop *loop_current(void);

#endif /* TG_LOOP_H */
