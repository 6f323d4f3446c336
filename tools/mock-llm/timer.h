/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * One thread that wakes waiting connections when they are due: latency before an answer,
 * the spacing between streamed tokens, and hung requests. Items wait in a min-heap of due
 * times; the thread sleeps on a condition variable until the earliest one, so thousands of
 * waiting streams cost no thread each and no CPU between their tokens. What waking means
 * is the caller's (the server resumes a suspended connection).
 */
#ifndef MOCK_LLM_TIMER_H
#define MOCK_LLM_TIMER_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/*
 * Items due within this much of the earliest one are woken together: one wake-up then
 * serves a whole batch of streams instead of one each (see STREAM_EARLY_NS).
 */
#define TIMER_SLACK_NS 1000000ULL

/* How long a hung request is held at most before its connection is closed anyway. */
#define TIMER_HANG_MAX_NS (600ULL * 1000000000ULL)

static inline uint64_t timer_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/*
 * Starts the thread; FIRE(item) is called on it, without the timer's lock held, for each item
 * that comes due. Returns 0 or a negative errno.
 */
int timer_start(void (*fire)(void *item));

/*
 * Wakes ITEM at monotonic time DUE_NS. HUNG marks an item timer_release_hung may wake early.
 * Returns 0, -ESHUTDOWN once timer_stop has begun (ITEM will not be woken), or -ENOMEM.
 */
int timer_add(void *item, uint64_t due_ns, bool hung);

/* Makes every hung item due now. */
void timer_release_hung(void);

/*
 * Stops the thread, then fires every item still waiting, on the caller's thread, so nothing
 * stays asleep; later timer_add calls fail with -ESHUTDOWN. Safe to call when not started.
 */
void timer_stop(void);

#endif
