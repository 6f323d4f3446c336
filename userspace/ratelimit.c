/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Per-key request rates: the slot array and the charge of up to three GCRA windows (second,
 * minute, hour) with the shared decision of include/tollgate/gcra.h. Each window is one
 * 64-bit TAT word in the key's slot, changed only by compare-and-swap; a refusal by a later
 * window refunds the earlier ones. Also the verdict's headers and refusal message. No I/O
 * beyond the mmap of the array.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ratelimit.h"
#include "util.h"
#include "tollgate/gcra.h"

#define NS_PER_MS 1000000ULL

struct slots {
	struct tg_slot *v; /* capacity slots, MAP_SHARED */
	uint32_t capacity;
	bool borrowed; /* slots_wrap: the memory is not ours to unmap */
};

/* One window's parameters for the key's current limits. */
struct rl_win {
	bool present; /* the limits define this window */
	struct tg_gcra g;
	uint64_t limit; /* requests per window (burst for the second window) */
	double rate;	/* sustained requests per window length */
};

static const char *const window_names[RL__COUNT] = {"second", "minute", "hour"};

const char *rl_window_name(enum rl_window w)
{
	return (unsigned)w < RL__COUNT ? window_names[w] : "unknown";
}

struct slots *slots_open(uint32_t capacity)
{
	struct slots *s;
	int saved;

	if (capacity == 0) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	/* Populated at once: one call is far cheaper than a fault per page at first use (the
	 * key sync touches every active key's slot at start), and a BPF array map is fully
	 * allocated anyway. */
	s->v = mmap(NULL, (size_t)capacity * sizeof(struct tg_slot), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (s->v == MAP_FAILED) {
		saved = errno;
		free(s);
		errno = saved;
		return NULL;
	}
	s->capacity = capacity;
	return s;
}

struct slots *slots_wrap(struct tg_slot *mem, uint32_t capacity)
{
	struct slots *s;

	if (!mem || capacity == 0) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->v = mem;
	s->capacity = capacity;
	s->borrowed = true;
	return s;
}

void slots_close(struct slots *s)
{
	if (!s)
		return;
	if (!s->borrowed)
		munmap(s->v, (size_t)s->capacity * sizeof(struct tg_slot));
	free(s);
}

uint32_t slots_capacity(const struct slots *s)
{
	return s ? s->capacity : 0;
}

struct tg_slot *slots_at(struct slots *s, uint32_t i)
{
	return s && i < s->capacity ? &s->v[i] : NULL;
}

/*
 * A window of n requests per period_ns: GCRA with T = period / n and burst n. Known
 * imprecision: T is truncated to whole ns, as in tg_gcra_params, so the window runs fast
 * by under 1 ns per interval: one extra request after more than 10^9 intervals (decades
 * for any per-minute limit).
 */
static struct tg_gcra window_params(uint64_t period_ns, uint64_t n)
{
	struct tg_gcra g;

	g.interval_ns = period_ns / n;
	if (g.interval_ns == 0)
		g.interval_ns = 1;
	g.tolerance_ns =
	    n - 1 > TG_GCRA_MAX_NS / g.interval_ns ? TG_GCRA_MAX_NS : (n - 1) * g.interval_ns;
	return g;
}

static void windows_of(const struct limits *lim, struct rl_win w[RL__COUNT])
{
	uint64_t burst = lim->v[LIMIT_BURST] ? lim->v[LIMIT_BURST] : 1;
	uint64_t rpm = lim->v[LIMIT_RPM], rph = lim->v[LIMIT_RPH];

	w[RL_SECOND] = (struct rl_win){true, tg_gcra_params(lim->v[LIMIT_RPS], burst), burst,
				       (double)lim->v[LIMIT_RPS] / 1000.0};
	w[RL_MINUTE] = (struct rl_win){rpm > 0, {0, 0}, rpm, (double)rpm};
	w[RL_HOUR] = (struct rl_win){rph > 0, {0, 0}, rph, (double)rph};
	if (rpm)
		w[RL_MINUTE].g = window_params(60 * TG_NSEC_PER_SEC, rpm);
	if (rph)
		w[RL_HOUR].g = window_params(3600 * TG_NSEC_PER_SEC, rph);
}

/*
 * Writes the windows' parameters for lim into the slot, each word atomically because the
 * kernel may read the slot at any moment. An absent window gets interval 0 (the kernel and
 * the daemon skip it). TATs are left alone: a limits change keeps what was spent.
 */
void slots_set_limits(struct tg_slot *slot, const struct limits *lim)
{
	struct rl_win w[RL__COUNT];

	windows_of(lim, w);
	for (int i = 0; i < RL__COUNT; i++) {
		struct tg_window *sw = &slot->win[i];
		__u64 iv = w[i].present ? w[i].g.interval_ns : 0;
		__u64 tol = w[i].present ? w[i].g.tolerance_ns : 0;

		if (__atomic_load_n(&sw->interval_ns, __ATOMIC_RELAXED) != iv)
			__atomic_store_n(&sw->interval_ns, iv, __ATOMIC_RELAXED);
		if (__atomic_load_n(&sw->tolerance_ns, __ATOMIC_RELAXED) != tol)
			__atomic_store_n(&sw->tolerance_ns, tol, __ATOMIC_RELAXED);
	}
}

bool slots_limits_match(const struct tg_slot *slot, const struct limits *lim)
{
	struct rl_win w[RL__COUNT];

	windows_of(lim, w);
	for (int i = 0; i < RL__COUNT; i++) {
		__u64 iv = w[i].present ? w[i].g.interval_ns : 0;
		__u64 tol = w[i].present ? w[i].g.tolerance_ns : 0;

		if (__atomic_load_n(&slot->win[i].interval_ns, __ATOMIC_RELAXED) != iv ||
		    __atomic_load_n(&slot->win[i].tolerance_ns, __ATOMIC_RELAXED) != tol)
			return false;
	}
	return true;
}

void slots_set_flags(struct tg_slot *slot, uint32_t flags)
{
	__atomic_store_n(&slot->flags, flags, __ATOMIC_RELEASE);
}

uint32_t slots_flags(const struct tg_slot *slot)
{
	return __atomic_load_n(&slot->flags, __ATOMIC_ACQUIRE);
}

uint32_t slots_key_gen(const struct tg_slot *slot)
{
	return __atomic_load_n(&slot->key_gen, __ATOMIC_ACQUIRE);
}

/*
 * Every store is atomic because the kernel may read the slot at any moment; it sees either
 * the old key's or the new key's words, each whole, and key_gen tells readers which.
 * key_gen and flags have one writer (the key sync, serialised), so plain atomic stores do:
 * no locked read-modify-write, which matters when a million slots are assigned at start.
 */
void slots_assign(struct tg_slot *slot, const struct limits *lim)
{
	__u32 gen = __atomic_load_n(&slot->key_gen, __ATOMIC_RELAXED);

	for (int i = 0; i < RL__COUNT; i++)
		__atomic_store_n(&slot->win[i].tat_ns, 0, __ATOMIC_RELAXED);
	slots_set_limits(slot, lim);
	__atomic_store_n(&slot->allowed, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&slot->refused, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&slot->key_gen, gen + 1, __ATOMIC_RELAXED);
	__atomic_store_n(&slot->flags,
			 __atomic_load_n(&slot->flags, __ATOMIC_RELAXED) | TG_SLOT_ACTIVE,
			 __ATOMIC_RELEASE);
}

static __u64 *window_word(struct tg_slot *slot, enum rl_window w)
{
	return &slot->win[w].tat_ns;
}

static __u64 window_load(const struct tg_slot *slot, enum rl_window w)
{
	return __atomic_load_n(&slot->win[w].tat_ns, __ATOMIC_ACQUIRE);
}

/* Charges one window: decide on the loaded TAT, store by CAS, retry on a lost race. */
static int window_charge(__u64 *word, uint64_t now_ns, const struct tg_gcra *g,
			 struct tg_gcra_verdict *gv)
{
	__u64 old = __atomic_load_n(word, __ATOMIC_ACQUIRE);

	for (;;) {
		if (!tg_gcra_decide(old, now_ns, g, gv))
			return 0;
		if (__atomic_compare_exchange_n(word, &old, gv->new_tat_ns, true, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			return 1;
	}
}

/*
 * Gives back one interval taken by window_charge. Subtracting (rather than restoring the
 * old TAT) stays right when other requests charged the word in between.
 */
static void window_refund(__u64 *word, __u64 interval_ns)
{
	__u64 old = __atomic_load_n(word, __ATOMIC_ACQUIRE), nv;

	do {
		nv = old > interval_ns ? old - interval_ns : 0;
	} while (
	    !__atomic_compare_exchange_n(word, &old, nv, true, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
}

static uint64_t ns_to_ms_up(uint64_t ns)
{
	return ns / NS_PER_MS + (ns % NS_PER_MS != 0);
}

static void verdict_fill(struct rl_verdict *v, bool allowed, enum rl_window w,
			 const struct rl_win *win, const struct tg_gcra_verdict *gv)
{
	v->allowed = allowed;
	v->window = w;
	v->limit = win->limit;
	v->remaining = allowed ? gv->remaining : 0;
	v->reset_ms = ns_to_ms_up(gv->reset_ns);
	v->retry_after_ms = allowed ? 0 : ns_to_ms_up(gv->retry_after_ns);
	v->rate = win->rate;
}

/*
 * After window `first` refused: of it and the later windows that would refuse too, the one
 * that keeps refusing longest, so Retry-After is a time at which every window has room
 * (ties: the shorter window). Later windows are only read, never charged.
 */
static enum rl_window refusing_window(const struct tg_slot *slot, const struct rl_win *win,
				      enum rl_window first, uint64_t now_ns,
				      struct tg_gcra_verdict *gv)
{
	enum rl_window pick = first;

	for (int w = first + 1; w < RL__COUNT; w++) {
		if (!win[w].present ||
		    tg_gcra_decide(window_load(slot, w), now_ns, &win[w].g, &gv[w]))
			continue;
		if (gv[w].retry_after_ns > gv[pick].retry_after_ns)
			pick = w;
	}
	return pick;
}

/* Of the windows that allowed the request, the one with the fewest requests left. */
static enum rl_window tightest_window(const struct rl_win *win, const struct tg_gcra_verdict *gv)
{
	enum rl_window pick = RL_SECOND;

	for (int w = RL_SECOND + 1; w < RL__COUNT; w++)
		if (win[w].present && gv[w].remaining < gv[pick].remaining)
			pick = w;
	return pick;
}

bool ratelimit_charge(struct tg_slot *slot, const struct limits *lim, uint64_t now_ns, bool dry_run,
		      struct rl_verdict *v)
{
	struct rl_win win[RL__COUNT];
	struct tg_gcra_verdict gv[RL__COUNT];
	enum rl_window pick;
	int w, ok = 1;

	windows_of(lim, win);
	if (!dry_run)
		slots_set_limits(slot, lim); /* the kernel decides from the slot's parameters */
	for (w = RL_SECOND; w < RL__COUNT && ok; w++) {
		if (!win[w].present)
			continue;
		ok = dry_run ? tg_gcra_decide(window_load(slot, w), now_ns, &win[w].g, &gv[w])
			     : window_charge(window_word(slot, w), now_ns, &win[w].g, &gv[w]);
	}
	if (ok) {
		pick = tightest_window(win, gv);
		verdict_fill(v, true, pick, &win[pick], &gv[pick]);
		if (!dry_run)
			__atomic_fetch_add(&slot->allowed, 1, __ATOMIC_RELAXED);
		return true;
	}
	w--; /* the loop stepped past the refusing window */
	pick = refusing_window(slot, win, w, now_ns, gv);
	verdict_fill(v, false, pick, &win[pick], &gv[pick]);
	if (dry_run)
		return false;
	while (w-- > RL_SECOND)
		if (win[w].present)
			window_refund(window_word(slot, w), win[w].g.interval_ns);
	__atomic_fetch_add(&slot->refused, 1, __ATOMIC_RELAXED);
	return false;
}

/*
 * A window's state without a request: remaining counts this request too (the GCRA verdict
 * counts those left after one), reset is when the bucket is full, not one interval later.
 */
static void window_status(const struct tg_slot *slot, enum rl_window w, const struct rl_win *win,
			  uint64_t now_ns, struct rl_verdict *v)
{
	struct tg_gcra_verdict gv;
	__u64 tat = window_load(slot, w);
	bool allowed = tg_gcra_decide(tat, now_ns, &win->g, &gv);

	verdict_fill(v, allowed, w, win, &gv);
	v->remaining = allowed ? gv.remaining + 1 : 0;
	v->reset_ms = ns_to_ms_up(tat > now_ns ? tat - now_ns : 0);
}

void ratelimit_status(const struct tg_slot *slot, const struct limits *lim, uint64_t now_ns,
		      struct rl_verdict out[RL__COUNT])
{
	struct rl_win win[RL__COUNT];

	windows_of(lim, win);
	for (int w = RL_SECOND; w < RL__COUNT; w++) {
		if (win[w].present) {
			window_status(slot, w, &win[w], now_ns, &out[w]);
			continue;
		}
		/* No such window: nothing limits there, so it allows and reports zeros. */
		memset(&out[w], 0, sizeof(out[w]));
		out[w].allowed = true;
		out[w].window = w;
	}
}

/*
 * Milliseconds as seconds with up to 3 decimals, trailing zeros dropped ("0.1", "60",
 * "0.02"); min_decimals keeps at least that many (1 gives "2.0" for messages).
 */
static void fmt_seconds(uint64_t ms, int min_decimals, char *buf, size_t len)
{
	char tmp[32];
	size_t n = tg_fixed_dec(ms, 3, (unsigned)min_decimals, tmp);

	/* no snprintf: this runs for every answer's rate headers (see tg_u64_dec) */
	if (n < len)
		memcpy(buf, tmp, n + 1);
	else if (len)
		buf[0] = '\0';
}

static uint64_t ms_to_s_up(uint64_t ms)
{
	return ms / 1000 + (ms % 1000 != 0);
}

void ratelimit_headers(const struct rl_verdict *v,
		       void (*add)(void *ctx, const char *name, const char *value), void *ctx)
{
	char limit[24], remaining[24], reset[40], buf[32];
	uint64_t retry_s;
	size_t n;

	tg_u64_dec(v->limit, limit);
	tg_u64_dec(v->remaining, remaining);
	fmt_seconds(v->reset_ms, 0, reset, sizeof(reset) - 1);
	n = strlen(reset);
	reset[n] = 's';
	reset[n + 1] = '\0';
	add(ctx, "x-ratelimit-limit-requests", limit);
	add(ctx, "x-ratelimit-remaining-requests", remaining);
	add(ctx, "x-ratelimit-reset-requests", reset);
	add(ctx, "X-RateLimit-Limit", limit);
	add(ctx, "X-RateLimit-Remaining", remaining);
	tg_u64_dec(ms_to_s_up(v->reset_ms), buf);
	add(ctx, "X-RateLimit-Reset", buf);
	if (v->allowed)
		return;
	retry_s = ms_to_s_up(v->retry_after_ms);
	tg_u64_dec(retry_s ? retry_s : 1, buf);
	add(ctx, "Retry-After", buf);
}

/* The per-second window also says its sustained rate, since its limit is the burst. */
/* Appends the decimal v. */
static void put_u64(char *out, size_t cap, size_t *n, uint64_t v)
{
	char d[21];

	tg_put(out, cap, n, d, tg_u64_dec(v, d));
}

/* Appends ms as seconds with at least min_decimals decimals. */
static void put_secs(char *out, size_t cap, size_t *n, uint64_t ms, unsigned min_decimals)
{
	char d[32];

	tg_put(out, cap, n, d, tg_fixed_dec(ms, 3, min_decimals, d));
}

/* "20 requests per second (rate 10/s, burst 20)", "600 requests per minute" */
static void put_window_limit(char *out, size_t cap, size_t *n, const struct rl_verdict *v)
{
	const char *w = rl_window_name(v->window);

	put_u64(out, cap, n, v->limit);
	if (v->limit == 1)
		TG_PUT_LIT(out, cap, n, " request per ");
	else
		TG_PUT_LIT(out, cap, n, " requests per ");
	tg_put(out, cap, n, w, strlen(w));
	if (v->window != RL_SECOND)
		return;
	TG_PUT_LIT(out, cap, n, " (rate ");
	put_secs(out, cap, n, (uint64_t)(v->rate * 1000.0 + 0.5), 0);
	TG_PUT_LIT(out, cap, n, "/s, burst ");
	put_u64(out, cap, n, v->limit);
	TG_PUT_LIT(out, cap, n, ")");
}

/* Without printf: a flood of refusals builds one of these per request. */
void ratelimit_message(const struct rl_verdict *v, const char *key_id, char *buf, size_t len)
{
	const char *id = key_id ? key_id : "(unknown)";
	size_t n = 0;

	if (!len)
		return;
	TG_PUT_LIT(buf, len, &n, "Rate limit exceeded for key ");
	tg_put(buf, len, &n, id, strlen(id));
	TG_PUT_LIT(buf, len, &n, ": ");
	put_window_limit(buf, len, &n, v);
	TG_PUT_LIT(buf, len, &n, "; retry after ");
	put_secs(buf, len, &n, v->retry_after_ms, 1);
	TG_PUT_LIT(buf, len, &n, " s (bucket full again in ");
	put_secs(buf, len, &n, v->reset_ms, 1);
	TG_PUT_LIT(buf, len, &n, " s)");
	buf[n < len ? n : len - 1] = '\0';
}
