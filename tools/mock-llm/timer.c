/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The wake-up thread (timer.h): a binary min-heap of due times under one mutex. Adding is
 * O(log n) and signals the thread only when the new item is the earliest, so a busy stream
 * schedule costs one futex wake per batch at most, not one per token.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "timer.h"

/* Items handed to FIRE per pass, so the lock is not held while firing. */
#define TIMER_BATCH 256

struct timer_entry {
	uint64_t due_ns;
	void *item;
	bool hung;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake; /* on CLOCK_MONOTONIC */
	pthread_t thread;
	struct timer_entry *heap;
	size_t len, cap;
	bool started, stopping;
	void (*fire)(void *item);
} tm = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void heap_swap(size_t a, size_t b)
{
	struct timer_entry t = tm.heap[a];

	tm.heap[a] = tm.heap[b];
	tm.heap[b] = t;
}

static void heap_up(size_t i)
{
	while (i > 0 && tm.heap[(i - 1) / 2].due_ns > tm.heap[i].due_ns) {
		heap_swap(i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void heap_down(size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < tm.len && tm.heap[l].due_ns < tm.heap[m].due_ns)
			m = l;
		if (r < tm.len && tm.heap[r].due_ns < tm.heap[m].due_ns)
			m = r;
		if (m == i)
			return;
		heap_swap(i, m);
		i = m;
	}
}

static struct timer_entry heap_pop(void)
{
	struct timer_entry top = tm.heap[0];

	tm.heap[0] = tm.heap[--tm.len];
	heap_down(0);
	return top;
}

/* Sleeps until DUE_NS or a signal; called with the lock held. */
static void wait_until(uint64_t due_ns)
{
	struct timespec ts = {
	    .tv_sec = (time_t)(due_ns / 1000000000ULL),
	    .tv_nsec = (long)(due_ns % 1000000000ULL),
	};

	pthread_cond_timedwait(&tm.wake, &tm.lock, &ts);
}

static void *timer_main(void *arg)
{
	struct timer_entry batch[TIMER_BATCH];

	(void)arg;
	pthread_mutex_lock(&tm.lock);
	while (!tm.stopping) {
		uint64_t now = timer_now_ns();
		size_t n = 0;

		while (tm.len && tm.heap[0].due_ns <= now + TIMER_SLACK_NS && n < TIMER_BATCH)
			batch[n++] = heap_pop();
		if (n) {
			pthread_mutex_unlock(&tm.lock);
			for (size_t i = 0; i < n; i++)
				tm.fire(batch[i].item);
			pthread_mutex_lock(&tm.lock);
		} else if (tm.len) {
			wait_until(tm.heap[0].due_ns);
		} else {
			pthread_cond_wait(&tm.wake, &tm.lock);
		}
	}
	pthread_mutex_unlock(&tm.lock);
	return NULL;
}

int timer_start(void (*fire)(void *item))
{
	pthread_condattr_t attr;
	int err;

	tm.fire = fire;
	err = pthread_condattr_init(&attr);
	if (!err)
		err = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (!err)
		err = pthread_cond_init(&tm.wake, &attr);
	pthread_condattr_destroy(&attr);
	if (err)
		return -err;
	err = pthread_create(&tm.thread, NULL, timer_main, NULL);
	if (err) {
		pthread_cond_destroy(&tm.wake);
		return -err;
	}
	tm.started = true;
	return 0;
}

int timer_add(void *item, uint64_t due_ns, bool hung)
{
	int err = 0;

	pthread_mutex_lock(&tm.lock);
	if (tm.stopping || !tm.started) {
		err = -ESHUTDOWN;
	} else if (tm.len == tm.cap) {
		size_t cap = tm.cap ? tm.cap * 2 : 1024;
		struct timer_entry *h = realloc(tm.heap, cap * sizeof(*h));

		if (h) {
			tm.heap = h;
			tm.cap = cap;
		} else {
			err = -ENOMEM;
		}
	}
	if (!err) {
		tm.heap[tm.len] =
		    (struct timer_entry){.due_ns = due_ns, .item = item, .hung = hung};
		heap_up(tm.len++);
		if (tm.heap[0].item == item)
			pthread_cond_signal(&tm.wake);
	}
	pthread_mutex_unlock(&tm.lock);
	return err;
}

void timer_release_hung(void)
{
	bool any = false;

	pthread_mutex_lock(&tm.lock);
	for (size_t i = 0; i < tm.len; i++) {
		if (tm.heap[i].hung) {
			tm.heap[i].due_ns = 0;
			tm.heap[i].hung = false;
			any = true;
		}
	}
	if (any) {
		for (size_t i = tm.len / 2; i-- > 0;)
			heap_down(i);
		pthread_cond_signal(&tm.wake);
	}
	pthread_mutex_unlock(&tm.lock);
}

void timer_stop(void)
{
	pthread_mutex_lock(&tm.lock);
	tm.stopping = true;
	pthread_cond_signal(&tm.wake);
	pthread_mutex_unlock(&tm.lock);
	if (!tm.started)
		return;
	pthread_join(tm.thread, NULL);
	tm.started = false;
	/* No one adds once stopping is set, so the heap is ours alone now. */
	for (size_t i = 0; i < tm.len; i++)
		tm.fire(tm.heap[i].item);
	tm.len = 0;
	free(tm.heap);
	tm.heap = NULL;
	tm.cap = 0;
	pthread_cond_destroy(&tm.wake);
}
