/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The limits engine (see budget.h): subjects in a hash table (made on first sight, kept
 * until the engine is freed), each with a mutex, its bucket rings, the amounts reserved by
 * calls in flight, and for owners and tenants their explicit limits. The check and the
 * reservation happen under the locks of all the call's subjects, taken in address order.
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

/* Alert state of one limit: the period it last fired in (calendar), or 1 (rolling). */
struct alert_state {
	int64_t thr; /* threshold crossed */
	int64_t exc; /* limit exceeded */
};

struct budget_subj {
	struct budget_subj *next; /* hash chain */
	char name[BUDGET_SUBJECT_MAX];
	bool is_key;
	pthread_mutex_t mu;
	/* under mu */
	struct win_bucket mb[MINUTE_BUCKETS], hb[HOUR_BUCKETS], db[DAY_BUCKETS];
	struct win_ring ring[WIN_DAY + 1]; /* by ring unit */
	uint64_t reserved[WIN_M__COUNT];
	uint64_t inflight;
	bool has_lim;	   /* owners and tenants: lim and actions are set */
	struct limits lim; /* keys: the effective limits of the last reservation */
	uint8_t actions[LIMIT__COUNT];
	struct alert_state alert[LIMIT__COUNT];
};

struct budget {
	struct budget_opts o;
	pthread_rwlock_t table_lock;
	struct budget_subj *table[TABLE_SIZE];
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
_Static_assert(NLDEFS <= BUDGET_STATUS_MAX, "BUDGET_STATUS_MAX too small");

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

static struct budget_subj *subj_new(const char *name)
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
	s->ring[WIN_MINUTE] = (struct win_ring){60, MINUTE_BUCKETS, s->mb};
	s->ring[WIN_HOUR] = (struct win_ring){3600, HOUR_BUCKETS, s->hb};
	s->ring[WIN_DAY] = (struct win_ring){86400, DAY_BUCKETS, s->db};
	for (int u = WIN_MINUTE; u <= WIN_DAY; u++)
		win_ring_reset(&s->ring[u]);
	limits_clear(&s->lim);
	return s;
}

static struct budget_subj *subj_find(struct budget *b, const char *name, uint32_t h)
{
	struct budget_subj *s;

	for (s = b->table[h]; s; s = s->next)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

/* The subject named name, made if create; NULL (errno ENOENT or ENOMEM) otherwise. */
static struct budget_subj *subj_get(struct budget *b, const char *name, bool create)
{
	uint32_t h = name_hash(name);
	struct budget_subj *s;

	pthread_rwlock_rdlock(&b->table_lock);
	s = subj_find(b, name, h);
	pthread_rwlock_unlock(&b->table_lock);
	if (s || !create) {
		if (!s)
			errno = ENOENT;
		return s;
	}
	pthread_rwlock_wrlock(&b->table_lock);
	s = subj_find(b, name, h); /* made by another thread meanwhile? */
	if (!s && (s = subj_new(name))) {
		s->next = b->table[h];
		b->table[h] = s;
	}
	pthread_rwlock_unlock(&b->table_lock);
	if (!s)
		errno = ENOMEM;
	return s;
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
	b->on_threshold = fn;
	b->threshold_arg = arg;
	pthread_mutex_unlock(&b->hook_mu);
}

void budget_on_release(struct budget *b,
		       void (*fn)(const char *const *subjects, unsigned n, void *arg), void *arg)
{
	pthread_mutex_lock(&b->hook_mu);
	b->on_release = fn;
	b->release_arg = arg;
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

/*
 * Owners and tenants: their per-limit action, their action, limits.action. Keys: l is the
 * key's effective limits, whose act[] limits_merge resolved (key per-limit, key action, tier
 * per-limit, tier action), then limits.action.
 */
static enum limit_action resolve_action(const struct budget *b, const struct budget_subj *s,
					const struct limits *l, enum limit_field f)
{
	uint64_t a = s->has_lim ? s->actions[f] : l->act[f];

	if (!a || a >= LIMIT_ACT__COUNT)
		a = lval(l, LIMIT_ACTION);
	if (!a || a >= LIMIT_ACT__COUNT)
		a = b->o.action;
	return (enum limit_action)a;
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

/*
 * The windows one subject's check has summed: the limits sharing a window (the month's five
 * quotas, say) share one walk of its buckets and one calendar computation.
 */
struct span_cache {
	unsigned n;
	struct span_entry {
		struct win_def w;
		int64_t reset_at;
		uint64_t sum[WIN_M__COUNT];
	} e[NLDEFS];
};

static bool def_eq(const struct win_def *a, const struct win_def *b)
{
	return a->unit == b->unit && a->ring_unit == b->ring_unit && a->rolling == b->rolling &&
	       a->back == b->back;
}

static const struct span_entry *span_get(struct span_cache *c, const struct budget_subj *s,
					 const struct win_def *w, int64_t now)
{
	struct span_entry *e;
	int64_t from, to;

	for (unsigned i = 0; i < c->n; i++)
		if (def_eq(&c->e[i].w, w))
			return &c->e[i];
	e = &c->e[c->n < NLDEFS ? c->n++ : NLDEFS - 1];
	e->w = *w;
	win_span(w, now, &from, &to);
	win_ring_sum_all(&s->ring[w->ring_unit], from, to, e->sum);
	e->reset_at = win_reset_at(w, now);
	return e;
}

/* When a call refused by hit could fit: for a rolling window, once enough has left it. */
static uint64_t retry_after(const struct budget_subj *s, const struct win_def *w,
			    const struct budget_hit *hit, enum win_metric m, int64_t now)
{
	uint64_t over = hit->used + hit->reserved + hit->estimate - hit->value;
	int64_t frees = win_frees_at(w, &s->ring[w->ring_unit], now, over, m);

	/* never fits by expiry alone (the reservations or the estimate are the excess): the
	 * window's length is an honest upper bound for when to look again */
	if (frees == INT64_MAX)
		frees = now + (int64_t)win_unit_secs(w->ring_unit) * (w->rolling ? w->back + 1 : 1);
	return frees > now ? (uint64_t)(frees - now) : 1;
}

/*
 * Where s stands against limit d (value != 0) at now, with est reserved on top; s->mu held.
 * Fills hit but its subject (estimate, exceeded, retry_after_sec included).
 */
static void limit_eval(const struct budget *b, const struct budget_subj *s, const struct limits *l,
		       const struct ldef *d, int64_t now, const uint64_t *est,
		       struct span_cache *c, struct budget_hit *hit)
{
	struct win_def w = limit_window(l, d->f);
	const struct span_entry *e;

	hit->limit = d->f;
	hit->kind = d->k;
	hit->value = lval(l, d->f);
	hit->action = resolve_action(b, s, l, d->f);
	hit->mode = resolve_mode(b, l);
	if (d->k == BUDGET_KIND_CONCURRENCY) {
		hit->window = "concurrent";
		hit->rolling = false;
		hit->used = s->inflight;
		hit->reserved = 0;
		hit->estimate = est ? 1 : 0;
		hit->reset_at = now + 1;
		hit->exceeded = hit->used + hit->estimate > hit->value;
		hit->retry_after_sec = 1;
		return;
	}
	e = span_get(c, s, &w, now);
	hit->window = win_unit_name(w.unit);
	hit->rolling = w.rolling;
	hit->used = e->sum[d->m];
	hit->reserved = s->reserved[d->m];
	hit->estimate = est ? est[d->m] : 0;
	hit->reset_at = e->reset_at;
	hit->exceeded = hit->used + hit->reserved + hit->estimate > hit->value;
	hit->retry_after_sec = hit->exceeded ? retry_after(s, &w, hit, d->m, now) : 0;
}

/* Names hit's subject (left out by limit_eval: most hits are never shown). */
static void hit_name(struct budget_hit *hit, const struct budget_subj *s)
{
	size_t n = strlen(s->name);

	memcpy(hit->subject, s->name, n + 1);
}

static uint64_t remaining(const struct budget_hit *h)
{
	uint64_t u = h->used + h->reserved;

	return u >= h->value ? 0 : h->value - u;
}

/* Keeps the tightest token limit and cost budget for the headers. */
static void note_tightest(struct budget_verdict *v, const struct budget_hit *h)
{
	uint64_t rem = remaining(h);

	if (h->kind == BUDGET_KIND_TOKENS && (!v->has_tokens || rem < v->tokens_remaining)) {
		v->has_tokens = true;
		v->tokens_limit = h->value;
		v->tokens_remaining = rem;
		v->tokens_reset_at = h->reset_at;
	}
	if (h->kind == BUDGET_KIND_COST && (!v->has_cost || rem < v->cost_remaining)) {
		v->has_cost = true;
		v->cost_limit = h->value;
		v->cost_used = h->used + h->reserved;
		v->cost_remaining = rem;
		v->cost_reset_at = h->reset_at;
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

/* Queues an event for h unless this subject x limit x period had one; s->mu held. */
static void event_note(struct events *e, struct budget_subj *s, const struct budget_hit *h,
		       bool exceeded, int64_t now)
{
	int64_t *slot = exceeded ? &s->alert[h->limit].exc : &s->alert[h->limit].thr;
	int64_t period = h->rolling ? 1 : h->reset_at;

	if (*slot == period || e->n >= EVENTS_MAX)
		return;
	*slot = period;
	if (!e->wanted)
		return;
	e->ev[e->n] = (struct budget_event){exceeded, *h, 0, now};
	e->ev[e->n].ratio = h->value ? (double)(h->used + h->reserved) / (double)h->value : 0;
	e->n++;
}

/* Threshold crossings of s after its usage changed; s->mu held. */
static void thresholds_check(const struct budget *b, struct budget_subj *s, const struct limits *l,
			     int64_t now, struct events *e)
{
	uint32_t pm = resolve_permille(b, l);
	struct span_cache c = {0};
	struct budget_hit h;

	for (size_t i = 0; i < NLDEFS; i++) {
		if (!lval(l, ldefs[i].f) || ldefs[i].k == BUDGET_KIND_CONCURRENCY)
			continue;
		limit_eval(b, s, l, &ldefs[i], now, NULL, &c, &h);
		hit_name(&h, s);
		if ((h.used + h.reserved) * 1000 >= (uint64_t)pm * h.value)
			event_note(e, s, &h, false, now);
		else if (h.rolling)
			s->alert[h.limit].thr = 0; /* back under: a rolling window re-arms */
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

static bool threshold_wanted(struct budget *b)
{
	bool w;

	pthread_mutex_lock(&b->hook_mu);
	w = b->on_threshold != NULL;
	pthread_mutex_unlock(&b->hook_mu);
	return w;
}

/* ---- reserve, settle ---- */

static void lock_all(struct budget_subj **s, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		pthread_mutex_lock(&s[i]->mu);
}

static void unlock_all(struct budget_subj **s, unsigned n)
{
	for (unsigned i = n; i-- > 0;)
		pthread_mutex_unlock(&s[i]->mu);
}

/* Sorted by address (the lock order), without duplicates. */
static unsigned subjects_sort(struct budget_subj **s, unsigned n)
{
	for (unsigned i = 1; i < n; i++)
		for (unsigned j = i; j > 0 && (uintptr_t)s[j] < (uintptr_t)s[j - 1]; j--) {
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

/* The call's subjects (made on first sight); the count, or -ENOMEM. */
static int call_subjects(struct budget *b, const struct budget_req *r, struct budget_subj **s)
{
	char name[BUDGET_SUBJECT_MAX];
	unsigned n = 0;

	snprintf(name, sizeof(name), "key:%s", r->key_id);
	if (!(s[n++] = subj_get(b, name, true)))
		return -ENOMEM;
	if (r->owner && r->owner[0] && !(s[n++] = subj_get(b, r->owner, true)))
		return -ENOMEM;
	if (r->tenant && r->tenant[0]) {
		snprintf(name, sizeof(name), "tenant:%s", r->tenant);
		if (!(s[n++] = subj_get(b, name, true)))
			return -ENOMEM;
	}
	return (int)subjects_sort(s, n);
}

/* Every limit of s against r; the strongest refusal and the first warning into v. */
static void subject_check(const struct budget *b, struct budget_subj *s, const struct budget_req *r,
			  struct budget_verdict *v, bool *refused, struct events *e)
{
	struct span_cache c;
	struct limits l;
	struct budget_hit h;

	c.n = 0;
	if (s->is_key && r->key_limits)
		s->lim = *r->key_limits; /* for the thresholds at settle and for statuses */
	subj_limits(b, s, r->key_limits, &l);
	for (size_t i = 0; i < NLDEFS; i++) {
		if (!lval(&l, ldefs[i].f))
			continue;
		limit_eval(b, s, &l, &ldefs[i], r->now, r->est, &c, &h);
		note_tightest(v, &h);
		if (!h.exceeded)
			continue;
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
}

int budget_reserve(struct budget *b, const struct budget_req *r, struct budget_call *c,
		   struct budget_verdict *v)
{
	struct budget_subj *s[BUDGET_PER_CALL];
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
	lock_all(s, (unsigned)n);
	for (int i = 0; i < n; i++)
		subject_check(b, s[i], r, v, &refused, c ? &e : NULL);
	if (!refused && c) {
		for (int i = 0; i < n; i++) {
			for (int m = 0; m < WIN_M__COUNT; m++)
				s[i]->reserved[m] += r->est[m];
			s[i]->inflight++;
			c->s[i] = s[i];
		}
		c->n = (unsigned)n;
		memcpy(c->res, r->est, sizeof(c->res));
		c->start = r->now;
		c->held = true;
	}
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

void budget_settle(struct budget *b, struct budget_call *c, const uint64_t actual[WIN_M__COUNT])
{
	const char *names[BUDGET_PER_CALL];
	void (*rel)(const char *const *, unsigned, void *);
	void *arg;
	struct events e;
	struct limits l;

	if (!c || !c->held)
		return;
	e.n = 0;
	e.wanted = threshold_wanted(b);
	for (unsigned i = 0; i < c->n; i++) {
		struct budget_subj *s = c->s[i];

		pthread_mutex_lock(&s->mu);
		for (int m = 0; m < WIN_M__COUNT; m++)
			s->reserved[m] = sub_sat(s->reserved[m], c->res[m]);
		s->inflight = sub_sat(s->inflight, 1);
		for (int u = WIN_MINUTE; u <= WIN_DAY; u++)
			win_ring_add(&s->ring[u], win_bucket_id(c->start, s->ring[u].secs), actual);
		subj_limits(b, s, NULL, &l);
		thresholds_check(b, s, &l, c->start, &e);
		pthread_mutex_unlock(&s->mu);
		names[i] = s->name;
	}
	c->held = false;
	events_fire(b, &e);
	pthread_mutex_lock(&b->hook_mu);
	rel = b->on_release;
	arg = b->release_arg;
	pthread_mutex_unlock(&b->hook_mu);
	if (rel)
		rel(names, c->n, arg);
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

int budget_set_limits(struct budget *b, const char *subject, const struct limits *lim,
		      const uint8_t actions[LIMIT__COUNT])
{
	struct budget_subj *s;

	if (!limits_subject(subject))
		return -EINVAL;
	s = subj_get(b, subject, true);
	if (!s)
		return -ENOMEM;
	pthread_mutex_lock(&s->mu);
	s->has_lim = lim != NULL;
	if (lim)
		s->lim = *lim;
	else
		limits_clear(&s->lim);
	memset(s->actions, 0, sizeof(s->actions));
	if (lim && actions)
		memcpy(s->actions, actions, sizeof(s->actions));
	pthread_mutex_unlock(&s->mu);
	return 0;
}

bool budget_subject_limits(struct budget *b, const char *subject, struct limits *lim,
			   uint8_t actions[LIMIT__COUNT])
{
	struct budget_subj *s = subj_get(b, subject, false);
	bool has;

	limits_clear(lim);
	memset(actions, 0, LIMIT__COUNT);
	if (!s)
		return false;
	pthread_mutex_lock(&s->mu);
	has = s->has_lim;
	if (has) {
		*lim = s->lim;
		memcpy(actions, s->actions, LIMIT__COUNT);
	}
	pthread_mutex_unlock(&s->mu);
	return has;
}

int budget_load_bucket(struct budget *b, const char *subject, enum win_unit ring, int64_t id,
		       const uint64_t v[WIN_M__COUNT])
{
	struct budget_subj *s;

	if (ring > WIN_DAY || !subject[0])
		return -EINVAL;
	s = subj_get(b, subject, true);
	if (!s)
		return -ENOMEM;
	pthread_mutex_lock(&s->mu);
	win_ring_put(&s->ring[ring], id, v); /* an old bucket is simply not kept */
	pthread_mutex_unlock(&s->mu);
	return 0;
}

size_t budget_status(struct budget *b, const char *subject, const struct limits *key_limits,
		     int64_t now, struct budget_hit *out, size_t cap)
{
	struct budget_subj *s = subj_get(b, subject, true);
	struct span_cache c = {0};
	struct limits l;
	size_t n = 0;

	if (!s)
		return 0;
	pthread_mutex_lock(&s->mu);
	subj_limits(b, s, key_limits, &l);
	for (size_t i = 0; i < NLDEFS && n < cap; i++) {
		if (!lval(&l, ldefs[i].f))
			continue;
		limit_eval(b, s, &l, &ldefs[i], now, NULL, &c, &out[n]);
		hit_name(&out[n], s);
		n++;
	}
	pthread_mutex_unlock(&s->mu);
	return n;
}

void budget_max_ratios(struct budget *b, int64_t now, double out[LIMIT__COUNT])
{
	struct budget_hit h;

	for (int f = 0; f < LIMIT__COUNT; f++)
		out[f] = 0;
	pthread_rwlock_rdlock(&b->table_lock);
	for (unsigned i = 0; i < TABLE_SIZE; i++) {
		for (struct budget_subj *s = b->table[i]; s; s = s->next) {
			struct span_cache c = {0};
			struct limits l;

			pthread_mutex_lock(&s->mu);
			subj_limits(b, s, NULL, &l);
			for (size_t k = 0; k < NLDEFS; k++) {
				double r;

				if (!lval(&l, ldefs[k].f))
					continue;
				limit_eval(b, s, &l, &ldefs[k], now, NULL, &c, &h);
				r = (double)(h.used + h.reserved) / (double)h.value;
				if (r > out[ldefs[k].f])
					out[ldefs[k].f] = r;
			}
			pthread_mutex_unlock(&s->mu);
		}
	}
	pthread_rwlock_unlock(&b->table_lock);
}
