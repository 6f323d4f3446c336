/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Calendar periods and bucket rings of the limits engine (see windows.h). The civil-date
 * arithmetic is the days-from-civil algorithm over 400-year eras, so month ends, leap years
 * (including 1900/2000-style centuries) and year wraps need no tables and no libc time zone.
 */
#include <string.h>

#include "windows.h"

const char *win_unit_name(enum win_unit u)
{
	static const char *const names[] = {"minute", "hour", "day", "month"};

	return (unsigned)u < WIN__COUNT ? names[u] : "unknown";
}

int64_t win_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* Year and month (1..12) of day number z (days since 1970-01-01). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

int64_t win_bucket_id(int64_t t, unsigned secs)
{
	int64_t q = t / (int64_t)secs;

	return t % (int64_t)secs < 0 ? q - 1 : q;
}

unsigned win_unit_secs(enum win_unit u)
{
	switch (u) {
	case WIN_MINUTE:
		return 60;
	case WIN_HOUR:
		return 3600;
	default:
		return 86400;
	}
}

void win_calendar(enum win_unit u, int64_t t, int64_t *start, int64_t *end)
{
	int64_t day, y;
	unsigned m, secs;

	if (u != WIN_MONTH) {
		secs = win_unit_secs(u);
		*start = win_bucket_id(t, secs) * secs;
		*end = *start + secs;
		return;
	}
	day = win_bucket_id(t, 86400);
	civil_from_days(day, &y, &m);
	*start = win_days_from_civil(y, m, 1) * 86400;
	*end =
	    (m == 12 ? win_days_from_civil(y + 1, 1, 1) : win_days_from_civil(y, m + 1, 1)) * 86400;
}

/* The total covers bucket id. */
static bool total_has(const struct win_total *t, int64_t id)
{
	return id >= t->from && id <= t->to;
}

/* v[] entered every total covering id; a sum that would pass UINT64_MAX goes stale. */
static void totals_add(struct win_ring *r, int64_t id, const uint64_t v[WIN_M__COUNT])
{
	for (unsigned k = 0; k < r->ntot; k++) {
		struct win_total *t = &r->tot[k];

		if (!total_has(t, id) || t->stale)
			continue;
		for (int m = 0; m < WIN_M__COUNT; m++) {
			if (v[m] > UINT64_MAX - t->sum[m])
				t->stale = true;
			t->sum[m] += v[m];
		}
	}
}

/* v[] left every total covering id (it was counted there, so no sum goes below 0). */
static void totals_sub(struct win_ring *r, int64_t id, const uint64_t v[WIN_M__COUNT])
{
	for (unsigned k = 0; k < r->ntot; k++) {
		struct win_total *t = &r->tot[k];

		if (!total_has(t, id) || t->stale)
			continue;
		for (int m = 0; m < WIN_M__COUNT; m++) {
			if (v[m] > t->sum[m])
				t->stale =
				    true; /* cannot happen while the totals track every change */
			t->sum[m] -= v[m];
		}
	}
}

void win_ring_reset(struct win_ring *r)
{
	for (unsigned i = 0; i < r->n; i++) {
		memset(&r->b[i], 0, sizeof(r->b[i]));
		r->b[i].id = INT64_MIN;
	}
	for (unsigned k = 0; k < r->ntot; k++) {
		memset(&r->tot[k], 0, sizeof(r->tot[k]));
		r->tot[k].from = 1; /* covers nothing */
	}
}

/* The slot of bucket id, reset for it if it held an older one; NULL if id is too old. */
static struct win_bucket *ring_slot(struct win_ring *r, int64_t id)
{
	int64_t i = id % (int64_t)r->n;
	struct win_bucket *b = &r->b[i < 0 ? i + r->n : i];

	if (b->id == id)
		return b;
	if (b->id > id)
		return NULL;
	if (b->id != INT64_MIN)
		totals_sub(r, b->id, b->v); /* the older bucket leaves the ring */
	memset(b->v, 0, sizeof(b->v));
	b->id = id;
	return b;
}

bool win_ring_add(struct win_ring *r, int64_t id, const uint64_t add[WIN_M__COUNT])
{
	struct win_bucket *b = ring_slot(r, id);
	uint64_t delta[WIN_M__COUNT];

	if (!b)
		return false;
	for (int m = 0; m < WIN_M__COUNT; m++) {
		uint64_t v = add[m] > UINT64_MAX - b->v[m] ? UINT64_MAX : b->v[m] + add[m];

		delta[m] = v - b->v[m]; /* what really entered (less at saturation) */
		b->v[m] = v;
	}
	totals_add(r, id, delta);
	return true;
}

uint64_t win_ring_get(const struct win_ring *r, int64_t id, enum win_metric m)
{
	int64_t i = id % (int64_t)r->n;
	const struct win_bucket *b = &r->b[i < 0 ? i + r->n : i];

	return b->id == id ? b->v[m] : 0;
}

uint64_t win_ring_sum(const struct win_ring *r, int64_t from, int64_t to, enum win_metric m)
{
	uint64_t sum = 0, v;

	/* never more than the ring holds: older ids are gone, and would alias newer slots */
	if (to - from >= (int64_t)r->n)
		from = to - r->n + 1;
	for (int64_t id = from; id <= to; id++) {
		v = win_ring_get(r, id, m);
		sum = v > UINT64_MAX - sum ? UINT64_MAX : sum + v;
	}
	return sum;
}

void win_ring_sum_all(const struct win_ring *r, int64_t from, int64_t to,
		      uint64_t out[WIN_M__COUNT])
{
	int64_t i;

	memset(out, 0, WIN_M__COUNT * sizeof(out[0]));
	if (to < from)
		return;
	if (to - from >= (int64_t)r->n)
		from = to - r->n + 1;
	/* one division for the first slot, then a walk: this is the engine's hot loop */
	i = from % (int64_t)r->n;
	if (i < 0)
		i += r->n;
	for (int64_t id = from; id <= to; id++) {
		const struct win_bucket *b = &r->b[i];

		if (b->id == id)
			for (int m = 0; m < WIN_M__COUNT; m++)
				out[m] =
				    b->v[m] > UINT64_MAX - out[m] ? UINT64_MAX : out[m] + b->v[m];
		if (++i == (int64_t)r->n)
			i = 0;
	}
}

/*
 * Adds (add) or subtracts the kept buckets with ids in [from, to] (at most n of them) to
 * t's sums; false if a sum would pass UINT64_MAX or go below 0 (then sum afresh).
 */
static bool total_shift(struct win_total *t, const struct win_ring *r, int64_t from, int64_t to,
			bool add)
{
	for (int64_t id = from; id <= to; id++) {
		int64_t i = id % (int64_t)r->n;
		const struct win_bucket *b = &r->b[i < 0 ? i + r->n : i];

		if (b->id != id)
			continue;
		for (int m = 0; m < WIN_M__COUNT; m++) {
			if (add ? b->v[m] > UINT64_MAX - t->sum[m] : b->v[m] > t->sum[m])
				return false;
			t->sum[m] = add ? t->sum[m] + b->v[m] : t->sum[m] - b->v[m];
		}
	}
	return true;
}

/* t summed afresh over [from, to]; a saturated sum stays stale (summed on every read). */
static void total_fresh(struct win_total *t, const struct win_ring *r, int64_t from, int64_t to)
{
	win_ring_sum_all(r, from, to, t->sum);
	t->stale = false;
	for (int m = 0; m < WIN_M__COUNT; m++)
		if (t->sum[m] == UINT64_MAX)
			t->stale = true;
}

const uint64_t *win_ring_total(struct win_ring *r, unsigned k, int64_t from, int64_t to)
{
	struct win_total *t = &r->tot[k];
	bool ok;

	if (to - from >= (int64_t)r->n)
		from = to - r->n + 1;
	if (t->from == from && t->to == to && !t->stale)
		return t->sum;
	/* incremental only when the spans overlap and fewer buckets moved than the span holds */
	ok = !t->stale && t->from <= t->to && from <= to && from <= t->to && t->from <= to &&
	     (from > t->from ? from - t->from : t->from - from) +
		     (to > t->to ? to - t->to : t->to - to) <=
		 to - from;
	if (ok && from != t->from)
		ok = from > t->from ? total_shift(t, r, t->from, from - 1, false)
				    : total_shift(t, r, from, t->from - 1, true);
	if (ok && to != t->to)
		ok = to < t->to ? total_shift(t, r, to + 1, t->to, false)
				: total_shift(t, r, t->to + 1, to, true);
	if (!ok)
		total_fresh(t, r, from, to);
	t->from = from;
	t->to = to;
	return t->sum;
}

void win_span(const struct win_def *w, int64_t t, int64_t *from, int64_t *to)
{
	unsigned secs = win_unit_secs(w->ring_unit);
	int64_t start, end;

	*to = win_bucket_id(t, secs);
	if (w->rolling) {
		*from = *to - w->back;
		return;
	}
	win_calendar(w->unit, t, &start, &end);
	*from = win_bucket_id(start, secs);
}

int64_t win_reset_at(const struct win_def *w, int64_t t)
{
	int64_t start, end;
	unsigned secs = win_unit_secs(w->ring_unit);

	if (w->rolling)
		return (win_bucket_id(t, secs) + 1) * secs;
	win_calendar(w->unit, t, &start, &end);
	return end;
}

int64_t win_frees_at(const struct win_def *w, const struct win_ring *r, int64_t t, uint64_t need,
		     enum win_metric m)
{
	unsigned secs = win_unit_secs(w->ring_unit);
	int64_t from, to;
	uint64_t freed = 0;

	if (!w->rolling)
		return win_reset_at(w, t);
	win_span(w, t, &from, &to);
	/* bucket j is counted while the current id is at most j + back: it leaves after that */
	for (int64_t id = from; id <= to; id++) {
		freed += win_ring_get(r, id, m);
		if (freed >= need)
			return (id + w->back + 1) * secs;
	}
	return INT64_MAX;
}

uint64_t win_retry_after(const struct win_def *w, const struct win_ring *r, int64_t t,
			 uint64_t need, enum win_metric m)
{
	int64_t frees = win_frees_at(w, r, t, need, m);

	if (frees == INT64_MAX)
		frees = t + (int64_t)win_unit_secs(w->ring_unit) * (w->rolling ? w->back + 1 : 1);
	return frees > t ? (uint64_t)(frees - t) : 1;
}

void win_clock_set(struct win_clock *c, int64_t t)
{
	int64_t start[WIN__COUNT];

	if (t >= c->t_from && t < c->t_until)
		return;
	for (int u = WIN_MINUTE; u < WIN__COUNT; u++)
		win_calendar((enum win_unit)u, t, &start[u], &c->end[u]);
	for (int ru = WIN_MINUTE; ru <= WIN_DAY; ru++) {
		unsigned secs = win_unit_secs((enum win_unit)ru);

		c->id[ru] = win_bucket_id(t, secs);
		for (int u = WIN_MINUTE; u < WIN__COUNT; u++)
			c->first[u][ru] = win_bucket_id(start[u], secs);
	}
	c->t_from = start[WIN_MINUTE];
	c->t_until = c->end[WIN_MINUTE];
}
