/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The limits engine (see budget.h): subjects in a hash table (made on first sight, kept
 * until the engine is freed), each with a mutex, its bucket rings, the amounts reserved by
 * calls in flight, and for owners and tenants their explicit limits. The check and the
 * reservation happen under the locks of all the call's subjects (see subjects_sort).
 *
 * What keeps the check cheap (issue 5: a full check of 12 limits on three subjects in well
 * under a microsecond): each subject keeps a plan of its limits (which apply, their values,
 * windows, actions), rebuilt only when its limits change; running totals per window kept
 * with the rings (windows.h), so a window's usage is read, not summed; and the period
 * bounds of every window from a per-thread clock that does calendar arithmetic once a
 * minute. Everything that does not need the subjects' locks (the clock, finding the
 * subjects) happens before they are taken.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"
#include "util.h"

#define MINUTE_BUCKETS BUDGET_RING_MINUTES
#define HOUR_BUCKETS   BUDGET_RING_HOURS
#define DAY_BUCKETS    BUDGET_RING_DAYS
#define TABLE_SIZE     4096u /* hash chains; subjects are not limited by it */
#define NLIMITS	       12    /* entries of ldefs */

/* Running totals per ring (see total_of): minute 2, hour 2, day 4. */
#define MINUTE_TOTALS 2
#define HOUR_TOTALS   2
#define DAY_TOTALS    4

/* Alert state of one limit: the period it last fired in (calendar), or 1 (rolling). */
struct alert_state {
	int64_t thr; /* threshold crossed */
	int64_t exc; /* limit exceeded */
};

/* A subject's limits as the check reads them, built when they change (plan_build). */
struct plan {
	uint32_t set;		    /* bit i: ldefs[i] applies (its value is not 0) */
	enum limit_mode mode;	    /* resolved */
	uint32_t permille;	    /* alert threshold, resolved */
	uint8_t tmask[WIN_DAY + 1]; /* running totals the limits read, by ring */
	struct win_def tdef[WIN_DAY + 1][DAY_TOTALS]; /* the window each of those keeps */
	struct plan_limit {
		uint64_t value;
		struct win_def w;	  /* the window it is counted over */
		uint8_t total;		  /* w's running total in ring w.ring_unit */
		enum limit_action action; /* resolved */
	} l[NLIMITS];
};

struct budget_subj {
	struct budget_subj *next; /* hash chain; set before the subject is published */
	char name[BUDGET_SUBJECT_MAX];
	bool is_key;
	pthread_mutex_t mu;
	/* under mu */
	struct win_bucket mb[MINUTE_BUCKETS], hb[HOUR_BUCKETS], db[DAY_BUCKETS];
	struct win_total mt[MINUTE_TOTALS], ht[HOUR_TOTALS], dt[DAY_TOTALS];
	struct win_ring ring[WIN_DAY + 1]; /* by ring unit */
	uint64_t reserved[WIN_M__COUNT];
	uint64_t inflight;
	bool has_lim;	   /* owners and tenants: lim (with its per-limit actions) is set */
	struct limits lim; /* keys: the effective limits of the last reservation */
	struct plan plan;  /* of lim */
	struct alert_state alert[LIMIT__COUNT];
};

struct budget {
	struct budget_opts o;
	pthread_rwlock_t table_lock;
	struct budget_subj *table[TABLE_SIZE];
	uint64_t tenants; /* tenant subjects in the table; written under table_lock */
	pthread_mutex_t hook_mu;
	void (*on_threshold)(const struct budget_event *ev, void *arg);
	void *threshold_arg;
	void (*on_release)(const char *const *subjects, unsigned n, void *arg);
	void *release_arg;
};

/* The limits the engine counts, in the order statuses are listed. */
struct ldef {
	enum limit_field f;
	enum win_metric m;
	enum budget_kind k;
};

static const struct ldef ldefs[] = {
    {LIMIT_TPM, WIN_M_TOKENS, BUDGET_KIND_TOKENS},
    {LIMIT_TPH, WIN_M_TOKENS, BUDGET_KIND_TOKENS},
    {LIMIT_TPD, WIN_M_TOKENS, BUDGET_KIND_TOKENS},
    {LIMIT_TOKENS_MONTH, WIN_M_TOKENS, BUDGET_KIND_TOKENS},
    {LIMIT_RPD, WIN_M_REQUESTS, BUDGET_KIND_REQUESTS},
    {LIMIT_RP_MONTH, WIN_M_REQUESTS, BUDGET_KIND_REQUESTS},
    {LIMIT_COST_HOUR, WIN_M_COST, BUDGET_KIND_COST},
    {LIMIT_COST_DAY, WIN_M_COST, BUDGET_KIND_COST},
    {LIMIT_COST_MONTH, WIN_M_COST, BUDGET_KIND_COST},
    {LIMIT_BYTES_MONTH, WIN_M_BYTES, BUDGET_KIND_BYTES},
    {LIMIT_COMPUTE_MONTH, WIN_M_COMPUTE, BUDGET_KIND_COMPUTE},
    {LIMIT_MAX_CONCURRENT, WIN_M_REQUESTS, BUDGET_KIND_CONCURRENCY},
};

#define NLDEFS (sizeof(ldefs) / sizeof(ldefs[0]))
_Static_assert(NLDEFS == NLIMITS, "NLIMITS is the number of ldefs");
_Static_assert(NLDEFS <= BUDGET_STATUS_MAX, "BUDGET_STATUS_MAX too small");
_Static_assert(NLDEFS <= 32, "plan.set is a 32-bit map");

unsigned budget_ring_size(enum win_unit ring)
{
	return ring == WIN_MINUTE ? MINUTE_BUCKETS : ring == WIN_HOUR ? HOUR_BUCKETS : DAY_BUCKETS;
}

bool budget_tenant_valid(const char *s)
{
	return tg_ident_valid(s, BUDGET_TENANT_MAX, "._:-");
}

const char *budget_kind_name(enum budget_kind k)
{
	static const char *const names[] = {"requests", "tokens",  "cost",
					    "bytes",	"compute", "concurrency"};

	return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "unknown";
}

/* ---- subjects ---- */

static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h & (TABLE_SIZE - 1);
}

static void plan_build(const struct budget *b, const struct budget_subj *s,
		       const struct limits *key_limits, struct plan *p);

/*
 * Which running total of its ring window w keeps: a fixed place per kind of window, so the
 * limits sharing a window (the month's five quotas) share one total. Any place would be
 * exact (a total is moved to whatever span it is asked for); these keep moves rare.
 */
static uint8_t total_of(const struct win_def *w)
{
	if (w->ring_unit != WIN_DAY)
		return w->rolling; /* calendar minute or hour; rolling 60 min or 24 h */
	if (!w->rolling)
		return w->unit == WIN_DAY ? 0 : 1; /* calendar day, month */
	return w->back == 30 ? 2 : 3;		   /* rolling 30 days; token_quota_days */
}

static struct budget_subj *subj_new(const struct budget *b, const char *name)
{
	struct budget_subj *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	if (pthread_mutex_init(&s->mu, NULL)) {
		free(s);
		return NULL;
	}
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->is_key = strncmp(name, "key:", 4) == 0;
	s->ring[WIN_MINUTE] = (struct win_ring){60, MINUTE_BUCKETS, s->mb, s->mt, MINUTE_TOTALS};
	s->ring[WIN_HOUR] = (struct win_ring){3600, HOUR_BUCKETS, s->hb, s->ht, HOUR_TOTALS};
	s->ring[WIN_DAY] = (struct win_ring){86400, DAY_BUCKETS, s->db, s->dt, DAY_TOTALS};
	for (int u = WIN_MINUTE; u <= WIN_DAY; u++)
		win_ring_reset(&s->ring[u]);
	limits_clear(&s->lim);
	plan_build(b, s, NULL, &s->plan);
	return s;
}

/*
 * Lock-free: subjects are only ever pushed at the head of a chain (under table_lock, the
 * head stored with release order after the subject is complete) and freed with the engine.
 */
static struct budget_subj *subj_find(struct budget *b, const char *name, uint32_t h)
{
	struct budget_subj *s;

	for (s = __atomic_load_n(&b->table[h], __ATOMIC_ACQUIRE); s; s = s->next)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

/* How subj_get treats a subject not seen yet: not made (ENOENT); made; made while under
 * max_tenants if a tenant (one a request names; the admin's and persisted ones are made). */
enum subj_make { SUBJ_FIND = 0, SUBJ_MAKE, SUBJ_MAKE_BOUNDED };

/*
 * The subject named name, made as how says; NULL (errno ENOENT, EDQUOT, ENOMEM) otherwise.
 * Subjects are never freed: without the bound any key holder could grow the daemon by one
 * subject per made-up tenant name.
 */
static struct budget_subj *subj_get(struct budget *b, const char *name, enum subj_make how)
{
	uint32_t h = name_hash(name);
	struct budget_subj *s = subj_find(b, name, h);
	bool tenant = strncmp(name, "tenant:", 7) == 0;

	if (s || how == SUBJ_FIND) {
		if (!s)
			errno = ENOENT;
		return s;
	}
	pthread_rwlock_wrlock(&b->table_lock);
	s = subj_find(b, name, h); /* made by another thread meanwhile? */
	if (!s && tenant && how == SUBJ_MAKE_BOUNDED && b->tenants >= b->o.max_tenants) {
		errno = EDQUOT;
	} else if (!s && (s = subj_new(b, name))) {
		s->next = b->table[h];
		__atomic_store_n(&b->table[h], s, __ATOMIC_RELEASE);
		if (tenant)
			__atomic_store_n(&b->tenants, b->tenants + 1, __ATOMIC_RELAXED);
	} else if (!s) {
		errno = ENOMEM;
	}
	pthread_rwlock_unlock(&b->table_lock);
	return s;
}

uint64_t budget_tenants(struct budget *b)
{
	return __atomic_load_n(&b->tenants, __ATOMIC_RELAXED);
}

/* ---- lifecycle ---- */

struct budget *budget_new(const struct budget_opts *o)
{
	struct budget *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->o = *o;
	if (b->o.mode == LIMIT_MODE_INHERIT)
		b->o.mode = LIMIT_MODE_HARD;
	if (b->o.action == LIMIT_ACT_INHERIT)
		b->o.action = LIMIT_ACT_BLOCK;
	if (!b->o.alert_permille || b->o.alert_permille > 1000)
		b->o.alert_permille = 800;
	if (pthread_rwlock_init(&b->table_lock, NULL)) {
		free(b);
		return NULL;
	}
	if (pthread_mutex_init(&b->hook_mu, NULL)) {
		pthread_rwlock_destroy(&b->table_lock);
		free(b);
		return NULL;
	}
	return b;
}

void budget_free(struct budget *b)
{
	if (!b)
		return;
	for (unsigned i = 0; i < TABLE_SIZE; i++) {
		while (b->table[i]) {
			struct budget_subj *s = b->table[i];

			b->table[i] = s->next;
			pthread_mutex_destroy(&s->mu);
			free(s);
		}
	}
	pthread_mutex_destroy(&b->hook_mu);
	pthread_rwlock_destroy(&b->table_lock);
	free(b);
}

const struct budget_opts *budget_opts(const struct budget *b)
{
	return &b->o;
}

void budget_on_threshold(struct budget *b, void (*fn)(const struct budget_event *ev, void *arg),
			 void *arg)
{
	pthread_mutex_lock(&b->hook_mu);
	b->threshold_arg = arg;
	__atomic_store_n(&b->on_threshold, fn, __ATOMIC_RELEASE); /* threshold_wanted's hint */
	pthread_mutex_unlock(&b->hook_mu);
}

void budget_on_release(struct budget *b,
		       void (*fn)(const char *const *subjects, unsigned n, void *arg), void *arg)
{
	pthread_mutex_lock(&b->hook_mu);
	b->release_arg = arg;
	__atomic_store_n(&b->on_release, fn, __ATOMIC_RELEASE); /* release_notify's hint */
	pthread_mutex_unlock(&b->hook_mu);
}

void budget_estimate(const struct model_price *price, uint64_t prompt_tokens,
		     uint64_t completion_tokens, uint64_t bytes_in, uint64_t est[WIN_M__COUNT])
{
	struct cost c = {0};

	if (price)
		pricing_cost(price, prompt_tokens, completion_tokens, &c);
	est[WIN_M_REQUESTS] = 1;
	est[WIN_M_TOKENS] = prompt_tokens + completion_tokens;
	est[WIN_M_COST] = c.total_nano;
	est[WIN_M_BYTES] = bytes_in;
	est[WIN_M_COMPUTE] = 0;
}

/* ---- one limit of one subject ---- */

/* A stored limit value: LIMIT_UNSET (not set in an owner's record) counts as 0. */
static uint64_t lval(const struct limits *l, enum limit_field f)
{
	return l->v[f] == LIMIT_UNSET ? 0 : l->v[f];
}

/* The window limit f is counted over, given the subject's limits. */
static struct win_def limit_window(const struct limits *l, enum limit_field f)
{
	bool rolling = lval(l, LIMIT_COST_WINDOW) == LIMIT_WINDOW_ROLLING;
	uint64_t days = lval(l, LIMIT_TOKEN_QUOTA_DAYS);

	switch (f) {
	case LIMIT_TPM:
		return (struct win_def){WIN_MINUTE, WIN_MINUTE, false, 0};
	case LIMIT_TPH:
		return (struct win_def){WIN_HOUR, WIN_HOUR, false, 0};
	case LIMIT_TPD:
	case LIMIT_RPD:
		return (struct win_def){WIN_DAY, WIN_DAY, false, 0};
	case LIMIT_TOKENS_MONTH:
		if (days)
			return (struct win_def){
			    WIN_MONTH, WIN_DAY, true,
			    (unsigned)(days < DAY_BUCKETS - 1 ? days : DAY_BUCKETS - 2)};
		return (struct win_def){WIN_MONTH, WIN_DAY, false, 0};
	case LIMIT_COST_HOUR:
		return rolling ? (struct win_def){WIN_HOUR, WIN_MINUTE, true, 60}
			       : (struct win_def){WIN_HOUR, WIN_HOUR, false, 0};
	case LIMIT_COST_DAY:
		return rolling ? (struct win_def){WIN_DAY, WIN_HOUR, true, 24}
			       : (struct win_def){WIN_DAY, WIN_DAY, false, 0};
	default: /* the month quotas, cost_per_month */
		return rolling && f == LIMIT_COST_MONTH
			   ? (struct win_def){WIN_MONTH, WIN_DAY, true, 30}
			   : (struct win_def){WIN_MONTH, WIN_DAY, false, 0};
	}
}

/* The limit values of subject s: key limits, or its own; plus the default daily quota. */
static void subj_limits(const struct budget *b, const struct budget_subj *s,
			const struct limits *key_limits, struct limits *out)
{
	if (s->is_key && key_limits)
		*out = *key_limits;
	else if (s->has_lim || s->is_key)
		*out = s->lim;
	else
		limits_clear(out);
	if (b->o.default_daily_tokens && !lval(out, LIMIT_TPD) && !lval(out, LIMIT_TOKENS_MONTH) &&
	    (s->is_key || strncmp(s->name, "tenant:", 7) == 0))
		out->v[LIMIT_TPD] = b->o.default_daily_tokens;
}

static enum limit_mode resolve_mode(const struct budget *b, const struct limits *l)
{
	uint64_t m = lval(l, LIMIT_MODE);

	return m == LIMIT_MODE_HARD || m == LIMIT_MODE_SOFT ? (enum limit_mode)m : b->o.mode;
}

static uint32_t resolve_permille(const struct budget *b, const struct limits *l)
{
	uint64_t p = lval(l, LIMIT_ALERT_THRESHOLD);

	return p && p <= 1000 ? (uint32_t)p : b->o.alert_permille;
}

/* Builds p from s's limits (key_limits instead for a key subject, when given). */
static void plan_build(const struct budget *b, const struct budget_subj *s,
		       const struct limits *key_limits, struct plan *p)
{
	struct limits l;

	subj_limits(b, s, key_limits, &l);
	memset(p, 0, sizeof(*p));
	p->mode = resolve_mode(b, &l);
	p->permille = resolve_permille(b, &l);
	for (unsigned i = 0; i < NLDEFS; i++) {
		struct plan_limit *pl = &p->l[i];

		pl->value = lval(&l, ldefs[i].f);
		if (!pl->value)
			continue;
		p->set |= 1u << i;
		pl->w = limit_window(&l, ldefs[i].f);
		pl->total = total_of(&pl->w);
		/* one resolution for every subject (a key's l: limits_merge resolved its act[]) */
		pl->action = limit_action_of(&l, ldefs[i].f, b->o.action);
		if (ldefs[i].k != BUDGET_KIND_CONCURRENCY) {
			p->tmask[pl->w.ring_unit] |= (uint8_t)(1u << pl->total);
			p->tdef[pl->w.ring_unit][pl->total] = pl->w;
		}
	}
}

/* A key subject takes the limits of its call: the plan is rebuilt when they changed. */
static void key_limits_take(const struct budget *b, struct budget_subj *s, const struct limits *l)
{
	if (!s->is_key || !l || memcmp(&s->lim, l, sizeof(*l)) == 0)
		return;
	s->lim = *l; /* for the thresholds at settle and for statuses */
	plan_build(b, s, NULL, &s->plan);
}

/* Calendar bounds of the current minute, per thread (see struct win_clock). */
static __thread struct win_clock tls_clock;

static const struct win_clock *clock_at(int64_t now)
{
	win_clock_set(&tls_clock, now);
	return &tls_clock;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/*
 * Moves every running total that s's plan p reads to its window at clk's instant (one move
 * per window, however many limits share it); s->mu held. Then limit_used reads them.
 */
static void totals_refresh(struct budget_subj *s, const struct plan *p, const struct win_clock *clk)
{
	int64_t from, to;

	for (int ru = WIN_MINUTE; ru <= WIN_DAY; ru++)
		for (unsigned m = p->tmask[ru]; m; m &= m - 1) {
			unsigned k = (unsigned)__builtin_ctz(m);

			win_clock_span(clk, &p->tdef[ru][k], &from, &to);
			win_ring_total(&s->ring[ru], k, from, to);
		}
}

/* Settled usage of limit i of plan p, once totals_refresh(s, p) moved the totals. */
static uint64_t limit_used(const struct budget_subj *s, const struct plan *p, unsigned i)
{
	const struct plan_limit *pl = &p->l[i];

	if (ldefs[i].k == BUDGET_KIND_CONCURRENCY)
		return s->inflight;
	return s->ring[pl->w.ring_unit].tot[pl->total].sum[ldefs[i].m];
}

/*
 * Where s stands against limit i of its plan p at clk's instant (now), with est reserved on
 * top; s->mu held, totals_refresh(s, p, clk) done. Fills hit but its subject (estimate,
 * exceeded, retry_after_sec included). The whole record: for statuses and hits, not for
 * the check's common path.
 */
static void limit_eval(const struct budget_subj *s, const struct plan *p, unsigned i,
		       const struct win_clock *clk, int64_t now, const uint64_t *est,
		       struct budget_hit *hit)
{
	const struct ldef *d = &ldefs[i];
	const struct plan_limit *pl = &p->l[i];

	hit->limit = d->f;
	hit->kind = d->k;
	hit->value = pl->value;
	hit->action = pl->action;
	hit->mode = p->mode;
	hit->used = limit_used(s, p, i);
	if (d->k == BUDGET_KIND_CONCURRENCY) {
		hit->window = "concurrent";
		hit->rolling = false;
		hit->reserved = 0;
		hit->estimate = est ? 1 : 0;
		hit->reset_at = now + 1;
		hit->exceeded = hit->used + hit->estimate > hit->value;
		hit->retry_after_sec = 1;
		return;
	}
	hit->window = win_unit_name(pl->w.unit);
	hit->rolling = pl->w.rolling;
	hit->reserved = s->reserved[d->m];
	hit->estimate = est ? est[d->m] : 0;
	hit->reset_at = win_clock_reset_at(clk, &pl->w);
	hit->exceeded = add_sat(add_sat(hit->used, hit->reserved), hit->estimate) > hit->value;
	hit->retry_after_sec =
	    hit->exceeded
		? win_retry_after(&pl->w, &s->ring[pl->w.ring_unit], now,
				  hit->used + hit->reserved + hit->estimate - hit->value, d->m)
		: 0;
}

/* Names hit's subject (left out by limit_eval: most hits are never shown). */
static void hit_name(struct budget_hit *hit, const struct budget_subj *s)
{
	size_t n = strlen(s->name);

	memcpy(hit->subject, s->name, n + 1);
}

/* Keeps the tightest token limit and cost budget for the headers (taken: used + reserved). */
static void note_tightest(struct budget_verdict *v, enum budget_kind k, uint64_t value,
			  uint64_t taken, int64_t reset_at)
{
	uint64_t rem = taken >= value ? 0 : value - taken;

	if (k == BUDGET_KIND_TOKENS && (!v->has_tokens || rem < v->tokens_remaining)) {
		v->has_tokens = true;
		v->tokens_limit = value;
		v->tokens_remaining = rem;
		v->tokens_reset_at = reset_at;
	}
	if (k == BUDGET_KIND_COST && (!v->has_cost || rem < v->cost_remaining)) {
		v->has_cost = true;
		v->cost_limit = value;
		v->cost_used = taken;
		v->cost_remaining = rem;
		v->cost_reset_at = reset_at;
	}
}

/* Action strength when several limits refuse one call: block over queue over downgrade. */
static int action_rank(enum limit_action a)
{
	return a == LIMIT_ACT_BLOCK ? 3 : a == LIMIT_ACT_QUEUE ? 2 : a == LIMIT_ACT_DOWNGRADE;
}

static bool refuses(const struct budget_hit *h)
{
	return h->exceeded && h->mode == LIMIT_MODE_HARD && action_rank(h->action) > 0;
}

/* ---- events ---- */

#define EVENTS_MAX (BUDGET_PER_CALL * NLDEFS)

struct events {
	struct budget_event ev[EVENTS_MAX];
	unsigned n;
	bool wanted; /* a threshold hook is set */
};

/*
 * True when an event of this kind for s x f in period (the window's reset, 1 for rolling
 * windows) is due and there is room for it; marks it sent. s->mu held.
 */
static bool event_due(const struct events *e, struct budget_subj *s, enum limit_field f,
		      bool exceeded, int64_t period)
{
	int64_t *slot = exceeded ? &s->alert[f].exc : &s->alert[f].thr;

	if (*slot == period || e->n >= EVENTS_MAX)
		return false;
	*slot = period;
	return e->wanted;
}

/* Queues an event for h unless this subject x limit x period had one; s->mu held. */
static void event_note(struct events *e, struct budget_subj *s, const struct budget_hit *h,
		       bool exceeded, int64_t now)
{
	if (!event_due(e, s, h->limit, exceeded, h->rolling ? 1 : h->reset_at))
		return;
	e->ev[e->n] = (struct budget_event){exceeded, *h, 0, now};
	e->ev[e->n].ratio = h->value ? (double)(h->used + h->reserved) / (double)h->value : 0;
	e->n++;
}

/* Threshold crossings of s after its usage changed, at clk's instant (now); s->mu held. */
static void thresholds_check(struct budget_subj *s, const struct win_clock *clk, int64_t now,
			     struct events *e)
{
	const struct plan *p = &s->plan;
	struct budget_hit h;

	totals_refresh(s, p, clk);
	for (uint32_t set = p->set; set; set &= set - 1) {
		unsigned i = (unsigned)__builtin_ctz(set);
		const struct plan_limit *pl = &p->l[i];
		enum limit_field f = ldefs[i].f;
		uint64_t taken;
		bool over;

		if (ldefs[i].k == BUDGET_KIND_CONCURRENCY)
			continue;
		taken = add_sat(limit_used(s, p, i), s->reserved[ldefs[i].m]);
		over =
		    (unsigned __int128)taken * 1000 >= (unsigned __int128)p->permille * pl->value;
		if (!over) {
			if (pl->w.rolling)
				s->alert[f].thr = 0; /* back under: a rolling window re-arms */
			continue;
		}
		if (s->alert[f].thr == (pl->w.rolling ? 1 : win_clock_reset_at(clk, &pl->w)))
			continue; /* told already (event_note would say the same) */
		limit_eval(s, p, i, clk, now, NULL, &h);
		hit_name(&h, s);
		event_note(e, s, &h, false, now);
	}
}

static void events_fire(struct budget *b, const struct events *e)
{
	void (*fn)(const struct budget_event *, void *);
	void *arg;

	if (!e->n)
		return;
	pthread_mutex_lock(&b->hook_mu);
	fn = b->on_threshold;
	arg = b->threshold_arg;
	pthread_mutex_unlock(&b->hook_mu);
	for (unsigned i = 0; fn && i < e->n; i++)
		fn(&e->ev[i], arg);
}

/* A hint without the hook lock: events_fire reads the hook under it before calling. */
static bool threshold_wanted(struct budget *b)
{
	return __atomic_load_n(&b->on_threshold, __ATOMIC_ACQUIRE) != NULL;
}

/* ---- reserve, settle ---- */

static void unlock_all(struct budget_subj **s, unsigned n)
{
	for (unsigned i = n; i-- > 0;)
		pthread_mutex_unlock(&s[i]->mu);
}

/* The lock order: key subjects before the others (owners, tenants), by address within each. */
static bool lock_before(const struct budget_subj *a, const struct budget_subj *b)
{
	return a->is_key != b->is_key ? a->is_key : (uintptr_t)a < (uintptr_t)b;
}

/*
 * Sorted in the lock order, without duplicates. Every reserve takes its subjects' locks in
 * this one global order (and holds none while it takes a key's lock after an owner's), so
 * no two reserves deadlock; keys first because a key's lock is rarely contended: its check
 * runs before the shared owner and tenant locks are taken, which shortens their hold.
 */
static unsigned subjects_sort(struct budget_subj **s, unsigned n)
{
	for (unsigned i = 1; i < n; i++)
		for (unsigned j = i; j > 0 && lock_before(s[j], s[j - 1]); j--) {
			struct budget_subj *t = s[j];

			s[j] = s[j - 1];
			s[j - 1] = t;
		}
	for (unsigned i = 1; i < n; i++)
		if (s[i] == s[i - 1]) {
			memmove(&s[i], &s[i + 1], (n - i - 1) * sizeof(s[0]));
			n--;
			i--;
		}
	return n;
}

/* "prefix" + id into name (BUDGET_SUBJECT_MAX), truncated as snprintf would. */
static void subject_name(char *name, const char *prefix, const char *id)
{
	size_t p = strlen(prefix), n = strnlen(id, BUDGET_SUBJECT_MAX - 1 - p);

	memcpy(name, prefix, p);
	memcpy(name + p, id, n);
	name[p + n] = '\0';
}

/* The call's subjects (made on first sight; tenants under the bound); count, -ENOMEM, -EDQUOT. */
static int call_subjects(struct budget *b, const struct budget_req *r, struct budget_subj **s)
{
	char name[BUDGET_SUBJECT_MAX];
	unsigned n = 0;

	subject_name(name, "key:", r->key_id);
	if (!(s[n++] = subj_get(b, name, SUBJ_MAKE)))
		return -ENOMEM;
	if (r->owner && r->owner[0] && !(s[n++] = subj_get(b, r->owner, SUBJ_MAKE)))
		return -ENOMEM;
	if (r->tenant && r->tenant[0]) {
		subject_name(name, "tenant:", r->tenant);
		if (!(s[n++] = subj_get(b, name, SUBJ_MAKE_BOUNDED)))
			return -errno;
	}
	return (int)subjects_sort(s, n);
}

/* A limit r's call would exceed: the strongest refusal, else the first warning, into v. */
static void subject_hit(const struct budget *b, struct budget_subj *s, unsigned i,
			const struct budget_req *r, const struct win_clock *clk,
			struct budget_verdict *v, bool *refused, struct events *e)
{
	struct budget_hit h;

	limit_eval(s, &s->plan, i, clk, r->now, r->est, &h);
	hit_name(&h, s);
	if (e)
		event_note(e, s, &h, true, r->now);
	if (b->o.enabled && refuses(&h)) {
		if (!*refused || action_rank(h.action) > action_rank(v->hit.action))
			v->hit = h;
		*refused = true;
	} else if (!v->warned) {
		v->warned = true;
		v->warn = h;
	}
}

/*
 * Every limit of s against r at clk's instant; s->mu held. The common path reads a running
 * total and compares; the full record is made only for a limit that would be exceeded.
 */
static void subject_check(const struct budget *b, struct budget_subj *s, const struct budget_req *r,
			  const struct win_clock *clk, struct budget_verdict *v, bool *refused,
			  struct events *e)
{
	const struct plan *p = &s->plan;

	key_limits_take(b, s, r->key_limits);
	totals_refresh(s, p, clk);
	for (uint32_t set = p->set; set; set &= set - 1) {
		unsigned i = (unsigned)__builtin_ctz(set);
		const struct ldef *d = &ldefs[i];
		uint64_t taken = limit_used(s, p, i), est = 1;

		if (d->k != BUDGET_KIND_CONCURRENCY) {
			taken = add_sat(taken, s->reserved[d->m]);
			est = r->est[d->m];
		}
		if (d->k == BUDGET_KIND_TOKENS || d->k == BUDGET_KIND_COST)
			note_tightest(v, d->k, p->l[i].value, taken,
				      win_clock_reset_at(clk, &p->l[i].w));
		if (add_sat(taken, est) > p->l[i].value)
			subject_hit(b, s, i, r, clk, v, refused, e);
	}
}

/* Takes r's reservation in the n subjects s (locked) and records it in c. */
static void reservation_take(struct budget_subj **s, unsigned n, const struct budget_req *r,
			     struct budget_call *c)
{
	for (unsigned i = 0; i < n; i++) {
		for (int m = 0; m < WIN_M__COUNT; m++)
			s[i]->reserved[m] += r->est[m];
		s[i]->inflight++;
		c->s[i] = s[i];
	}
	c->n = n;
	memcpy(c->res, r->est, sizeof(c->res));
	c->start = r->now;
	c->held = true;
}

int budget_reserve(struct budget *b, const struct budget_req *r, struct budget_call *c,
		   struct budget_verdict *v)
{
	struct budget_subj *s[BUDGET_PER_CALL];
	const struct win_clock *clk = clock_at(r->now);
	struct events e;
	bool refused = false;
	int n = call_subjects(b, r, s);

	memset(v, 0, sizeof(*v));
	if (c)
		memset(c, 0, sizeof(*c));
	if (n < 0)
		return n;
	e.n = 0;
	e.wanted = threshold_wanted(b);
	/*
	 * The check of every subject and the reservation in each: one step under their locks
	 * (all held before any is released). Each subject is checked as soon as it is locked.
	 */
	for (int i = 0; i < n; i++) {
		pthread_mutex_lock(&s[i]->mu);
		subject_check(b, s[i], r, clk, v, &refused, c ? &e : NULL);
	}
	if (!refused && c)
		reservation_take(s, (unsigned)n, r, c);
	unlock_all(s, (unsigned)n);
	v->allowed = !refused;
	events_fire(b, &e);
	return 0;
}

int budget_peek(struct budget *b, const struct budget_req *r, struct budget_verdict *v)
{
	return budget_reserve(b, r, NULL, v);
}

static uint64_t sub_sat(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

/* The release hook's callers: after the subjects' locks are dropped. */
static void release_notify(struct budget *b, const char *const *names, unsigned n)
{
	void (*rel)(const char *const *, unsigned, void *);
	void *arg;

	if (!__atomic_load_n(&b->on_release, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&b->hook_mu);
	rel = b->on_release;
	arg = b->release_arg;
	pthread_mutex_unlock(&b->hook_mu);
	if (rel)
		rel(names, n, arg);
}

void budget_settle(struct budget *b, struct budget_call *c, const uint64_t actual[WIN_M__COUNT])
{
	const char *names[BUDGET_PER_CALL];
	const struct win_clock *clk;
	int64_t ids[WIN_DAY + 1];
	struct events e;
	bool used = false;

	if (!c || !c->held)
		return;
	clk = clock_at(c->start);
	for (int u = WIN_MINUTE; u <= WIN_DAY; u++)
		ids[u] = clk->id[u];
	for (int m = 0; m < WIN_M__COUNT; m++)
		used |= actual[m] != 0;
	e.n = 0;
	e.wanted = threshold_wanted(b);
	for (unsigned i = 0; i < c->n; i++) {
		struct budget_subj *s = c->s[i];

		pthread_mutex_lock(&s->mu);
		for (int m = 0; m < WIN_M__COUNT; m++)
			s->reserved[m] = sub_sat(s->reserved[m], c->res[m]);
		s->inflight = sub_sat(s->inflight, 1);
		for (int u = WIN_MINUTE; used && u <= WIN_DAY; u++)
			win_ring_add(&s->ring[u], ids[u], actual);
		thresholds_check(s, clk, c->start, &e);
		pthread_mutex_unlock(&s->mu);
		names[i] = s->name;
	}
	c->held = false;
	events_fire(b, &e);
	release_notify(b, names, c->n);
}

void budget_release(struct budget *b, struct budget_call *c)
{
	static const uint64_t zero[WIN_M__COUNT];

	budget_settle(b, c, zero);
}

/* ---- subjects' limits, persisted buckets, statuses ---- */

/* True for the subjects that carry limits of their own (owners and tenants). */
static bool limits_subject(const char *subject)
{
	return (strncmp(subject, "tenant:", 7) == 0 && budget_tenant_valid(subject + 7)) ||
	       model_owner_valid(subject);
}

int budget_set_limits(struct budget *b, const char *subject, const struct limits *lim)
{
	struct budget_subj *s;

	if (!limits_subject(subject))
		return -EINVAL;
	s = subj_get(b, subject, SUBJ_MAKE);
	if (!s)
		return -ENOMEM;
	pthread_mutex_lock(&s->mu);
	s->has_lim = lim != NULL;
	if (lim)
		s->lim = *lim;
	else
		limits_clear(&s->lim);
	plan_build(b, s, NULL, &s->plan);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

bool budget_subject_limits(struct budget *b, const char *subject, struct limits *lim)
{
	struct budget_subj *s = subj_get(b, subject, SUBJ_FIND);
	bool has;

	limits_clear(lim);
	if (!s)
		return false;
	pthread_mutex_lock(&s->mu);
	has = s->has_lim;
	if (has)
		*lim = s->lim;
	pthread_mutex_unlock(&s->mu);
	return has;
}

int budget_load_bucket(struct budget *b, const char *subject, enum win_unit ring, int64_t id,
		       const uint64_t v[WIN_M__COUNT])
{
	struct budget_subj *s;

	if (ring > WIN_DAY || !subject[0])
		return -EINVAL;
	s = subj_get(b, subject, SUBJ_MAKE);
	if (!s)
		return -ENOMEM;
	pthread_mutex_lock(&s->mu);
	win_ring_add(&s->ring[ring], id, v); /* an old bucket is simply not kept */
	pthread_mutex_unlock(&s->mu);
	return 0;
}

size_t budget_status(struct budget *b, const char *subject, const struct limits *key_limits,
		     int64_t now, struct budget_hit *out, size_t cap)
{
	struct budget_subj *s = subj_get(b, subject, SUBJ_MAKE_BOUNDED);
	const struct win_clock *clk = clock_at(now);
	const struct plan *p;
	struct plan kp;
	size_t n = 0;

	if (!s)
		return 0;
	pthread_mutex_lock(&s->mu);
	p = &s->plan;
	if (s->is_key && key_limits) {
		plan_build(b, s, key_limits, &kp); /* shown, not taken: the key's calls take them */
		p = &kp;
	}
	totals_refresh(s, p, clk);
	for (uint32_t set = p->set; set && n < cap; set &= set - 1) {
		limit_eval(s, p, (unsigned)__builtin_ctz(set), clk, now, NULL, &out[n]);
		hit_name(&out[n], s);
		n++;
	}
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* Raises out[f] to s's (used + reserved) / value of every limit f it has; s->mu held. */
static void subject_ratios(struct budget_subj *s, const struct win_clock *clk, int64_t now,
			   double out[LIMIT__COUNT])
{
	struct budget_hit h;

	totals_refresh(s, &s->plan, clk);
	for (uint32_t set = s->plan.set; set; set &= set - 1) {
		unsigned i = (unsigned)__builtin_ctz(set);
		double r;

		limit_eval(s, &s->plan, i, clk, now, NULL, &h);
		r = (double)(h.used + h.reserved) / (double)h.value;
		if (r > out[ldefs[i].f])
			out[ldefs[i].f] = r;
	}
}

void budget_max_ratios(struct budget *b, int64_t now, double out[LIMIT__COUNT])
{
	const struct win_clock *clk = clock_at(now);

	for (int f = 0; f < LIMIT__COUNT; f++)
		out[f] = 0;
	pthread_rwlock_rdlock(&b->table_lock);
	for (unsigned i = 0; i < TABLE_SIZE; i++) {
		for (struct budget_subj *s = b->table[i]; s; s = s->next) {
			pthread_mutex_lock(&s->mu);
			subject_ratios(s, clk, now, out);
			pthread_mutex_unlock(&s->mu);
		}
	}
	pthread_rwlock_unlock(&b->table_lock);
}
