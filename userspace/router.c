/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The provider router (see router.h): per-provider health under one mutex, the three
 * policies, and the status snapshot. A pick first marks which candidates are available
 * without changing anything, orders them by the policy's key, takes the tie group at the
 * front and chooses within it by weight; only the chosen provider's state changes (its
 * breaker turns half-open and lends a probe place, its outbound bucket is charged). A
 * provider whose outbound bucket is empty is dropped and the pick tries again.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"
#include "tollgate/gcra.h"

#define NS_PER_SEC   1000000000LL
#define EWMA_ALPHA   0.3 /* weight of the newest latency */
#define HISTORY_BITS 64	 /* attempts the error rate looks back on */

struct rt_prov {
	const struct provider *p;
	enum breaker_state state;
	uint32_t fails_in_row;
	uint32_t probes; /* half-open probes in flight */
	int64_t open_until;
	int64_t cooldown_until;
	bool measured;
	double ewma_ns;
	int64_t measured_at;
	uint32_t window[ROUTER_WINDOW]; /* latencies, us */
	uint32_t wn, wpos;
	uint64_t history; /* bit i: attempt i back failed */
	uint32_t hn;
	uint64_t requests;
	uint64_t outcomes[ROUTER__COUNT];
	uint64_t rate_skips;
	struct tg_gcra g;
	uint64_t tat;
	int64_t wrr; /* smooth weighted round robin's current weight */
};

struct router {
	pthread_mutex_t mu;
	const struct providers *ps;
	struct routing_cfg cfg;
	struct rt_prov *v;
	size_t n;
	uint64_t latency_picks; /* for the exploration schedule */
};

/* One provider serving the model, while a pick looks at it. */
struct cand {
	size_t i;
	const struct model_price *price;
	uint64_t key; /* the policy's order: lower first */
	bool probe;
};

static const char *const outcome_names[ROUTER__COUNT] = {
    "ok",      "client_error", "rate_limited", "server_error",
    "timeout", "connect",      "broken",       "cancelled",
};

const char *router_outcome_name(enum router_outcome o)
{
	return (unsigned)o < ROUTER__COUNT ? outcome_names[o] : "unknown";
}

const char *breaker_state_name(enum breaker_state s)
{
	return s == BREAKER_OPEN ? "open" : s == BREAKER_HALF_OPEN ? "half_open" : "closed";
}

/* Outcomes that count against the breaker (a 429 only cools the provider down). */
static bool breaker_failure(enum router_outcome o)
{
	return o == ROUTER_SERVER_ERROR || o == ROUTER_TIMEOUT || o == ROUTER_CONNECT ||
	       o == ROUTER_BROKEN;
}

bool router_outcome_retryable(enum router_outcome o)
{
	return o == ROUTER_RATE_LIMITED || breaker_failure(o);
}

struct router *router_new(const struct providers *p, const struct routing_cfg *cfg)
{
	struct router *r;

	if (!p || !cfg || p->n > ROUTER_PROVIDERS_MAX) {
		errno = EINVAL;
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->v = calloc(p->n ? p->n : 1, sizeof(*r->v));
	if (!r->v || pthread_mutex_init(&r->mu, NULL)) {
		free(r->v);
		free(r);
		errno = ENOMEM;
		return NULL;
	}
	r->ps = p;
	r->cfg = *cfg;
	r->n = p->n;
	for (size_t i = 0; i < p->n; i++) {
		r->v[i].p = &p->v[i];
		if (p->v[i].rate_limit)
			r->v[i].g =
			    tg_gcra_params((uint64_t)p->v[i].rate_limit * 1000, p->v[i].rate_limit);
	}
	return r;
}

void router_free(struct router *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->mu);
	free(r->v);
	free(r);
}

const struct routing_cfg *router_cfg(const struct router *r)
{
	return &r->cfg;
}

size_t router_count(const struct router *r)
{
	return r ? r->n : 0;
}

/* The provider's price for model, or NULL if it does not serve it. */
static const struct model_price *serves(const struct provider *p, const char *model)
{
	for (size_t j = 0; j < p->nmodels; j++)
		if (strcmp(p->models[j].name, model) == 0)
			return &p->models[j];
	return NULL;
}

/*
 * Whether s can take a call at now, without changing it: NULL if so (*probe: through a
 * half-open breaker), else why not.
 */
static const char *unavailable(const struct router *r, const struct rt_prov *s, int64_t now,
			       bool *probe)
{
	*probe = false;
	if (s->cooldown_until > now)
		return "cooling down";
	if (s->state == BREAKER_OPEN && now < s->open_until)
		return "circuit open";
	if (s->state == BREAKER_CLOSED)
		return NULL;
	if (s->state == BREAKER_HALF_OPEN && s->probes >= r->cfg.breaker_probes)
		return "circuit half-open, probes in flight";
	*probe = true;
	return NULL;
}

static void why_add(char *why, size_t whylen, size_t *used, const char *name, const char *reason)
{
	int n;

	if (!why || *used >= whylen)
		return;
	n = snprintf(why + *used, whylen - *used, "%s%s: %s", *used ? "; " : "", name, reason);
	if (n > 0)
		*used += (size_t)n;
}

static uint64_t policy_key(const struct rt_prov *s, const struct model_price *m,
			   enum route_policy pol)
{
	switch (pol) {
	case ROUTE_COST:
		return m->prompt_nano_per_1k + m->completion_nano_per_1k;
	case ROUTE_LATENCY:
		/* unmeasured first, so every provider gets measured */
		return s->measured ? (uint64_t)s->ewma_ns + 1 : 0;
	default:
		return s->p->priority;
	}
}

/* Orders by key, then priority, then position: a stable, total order. */
static void cands_sort(struct cand *c, size_t n, const struct rt_prov *v)
{
	for (size_t i = 1; i < n; i++) {
		struct cand x = c[i];
		size_t j = i;

		while (j > 0) {
			const struct cand *y = &c[j - 1];
			uint32_t px = v[x.i].p->priority, py = v[y->i].p->priority;

			if (y->key < x.key ||
			    (y->key == x.key && (py < px || (py == px && y->i < x.i))))
				break;
			c[j] = c[j - 1];
			j--;
		}
		c[j] = x;
	}
}

/* Smooth weighted round robin over c[0..n): the chosen one's position in c. */
static size_t wrr_choose(struct router *r, const struct cand *c, size_t n)
{
	int64_t total = 0;
	size_t best = 0;

	if (n == 1)
		return 0;
	for (size_t k = 0; k < n; k++) {
		struct rt_prov *s = &r->v[c[k].i];

		s->wrr += s->p->weight;
		total += s->p->weight;
		if (s->wrr > r->v[c[best].i].wrr)
			best = k;
	}
	r->v[c[best].i].wrr -= total;
	return best;
}

/* latency_weighted's exploration: the candidate measured longest ago, other than c[0]. */
static size_t explore_choose(const struct router *r, const struct cand *c, size_t n)
{
	size_t best = 1;

	for (size_t k = 2; k < n; k++)
		if (r->v[c[k].i].measured_at < r->v[c[best].i].measured_at)
			best = k;
	return best;
}

/*
 * Candidates serving model, not excluded and available at now into c (returns how many);
 * the others go into why. *served counts every provider serving the model.
 */
static size_t cands_collect(struct router *r, const char *model, uint64_t excluded, int64_t now,
			    enum route_policy pol, struct cand *c, size_t *served, char *why,
			    size_t whylen, size_t *used)
{
	size_t n = 0;

	*served = 0;
	for (size_t i = 0; i < r->n; i++) {
		const struct model_price *m = serves(r->v[i].p, model);
		const char *no;
		bool probe;

		if (!m)
			continue;
		(*served)++;
		if (excluded & (1ULL << i))
			continue;
		no = unavailable(r, &r->v[i], now, &probe);
		if (no) {
			why_add(why, whylen, used, r->v[i].p->name, no);
			continue;
		}
		c[n++] = (struct cand){
		    .i = i, .price = m, .key = policy_key(&r->v[i], m, pol), .probe = probe};
	}
	return n;
}

/* Which of the n ordered candidates the policy takes. */
static size_t choose(struct router *r, struct cand *c, size_t n, enum route_policy pol)
{
	size_t tie = 1;

	if (pol == ROUTE_LATENCY && n > 1 && ++r->latency_picks % ROUTER_EXPLORE_EVERY == 0)
		return explore_choose(r, c, n);
	while (tie < n && c[tie].key == c[0].key)
		tie++;
	return wrr_choose(r, c, tie);
}

/* Charges s's outbound bucket; false if it is empty (the provider is skipped). */
static bool outbound_take(struct rt_prov *s, int64_t now)
{
	struct tg_gcra_verdict v;

	if (!s->p->rate_limit)
		return true;
	if (!tg_gcra_decide(s->tat, (uint64_t)now, &s->g, &v))
		return false;
	s->tat = v.new_tat_ns;
	return true;
}

int router_pick(struct router *r, const char *model, const char *service, uint64_t excluded,
		int64_t now_ns, struct router_choice *out, char *why, size_t whylen)
{
	enum route_policy pol = routing_policy_for(&r->cfg, model, service);
	struct cand c[ROUTER_PROVIDERS_MAX];
	size_t n, served, used = 0, k;
	int rc = -EAGAIN;

	if (why && whylen)
		why[0] = '\0';
	pthread_mutex_lock(&r->mu);
	n = cands_collect(r, model, excluded, now_ns, pol, c, &served, why, whylen, &used);
	cands_sort(c, n, r->v);
	while (n > 0) {
		struct rt_prov *s;

		k = choose(r, c, n, pol);
		s = &r->v[c[k].i];
		if (!outbound_take(s, now_ns)) {
			s->rate_skips++;
			why_add(why, whylen, &used, s->p->name, "outbound rate limit");
			memmove(&c[k], &c[k + 1], (n - k - 1) * sizeof(c[0]));
			n--;
			continue;
		}
		if (c[k].probe) {
			s->state = BREAKER_HALF_OPEN;
			s->probes++;
		}
		s->requests++;
		*out = (struct router_choice){
		    .idx = (int)c[k].i, .prov = s->p, .price = c[k].price, .probe = c[k].probe};
		rc = 0;
		break;
	}
	pthread_mutex_unlock(&r->mu);
	return served ? rc : -ENOENT;
}

/* When s can take a call again: now if it can, else the end of its cooldown or open
 * breaker; -1 if that is not known (half-open with every probe place taken). */
static int64_t available_at(const struct router *r, const struct rt_prov *s, int64_t now)
{
	int64_t at = now;
	bool probe;

	if (!unavailable(r, s, now, &probe))
		return now;
	if (s->cooldown_until > at)
		at = s->cooldown_until;
	if (s->state == BREAKER_OPEN && s->open_until > at)
		at = s->open_until;
	return at > now ? at : -1;
}

int64_t router_wait_ns(struct router *r, const char *model, int64_t now_ns)
{
	int64_t best = -1;

	pthread_mutex_lock(&r->mu);
	for (size_t i = 0; i < r->n; i++) {
		int64_t at;

		if (!serves(r->v[i].p, model))
			continue;
		at = available_at(r, &r->v[i], now_ns);
		if (at >= 0 && (best < 0 || at < best))
			best = at;
	}
	pthread_mutex_unlock(&r->mu);
	return best > now_ns ? best - now_ns : 0;
}

static void latency_note(struct rt_prov *s, int64_t ns, int64_t now)
{
	if (ns < 0)
		ns = 0;
	s->ewma_ns = s->measured ? s->ewma_ns + EWMA_ALPHA * ((double)ns - s->ewma_ns) : (double)ns;
	s->measured = true;
	s->measured_at = now;
	s->window[s->wpos] = ns / 1000 > UINT32_MAX ? UINT32_MAX : (uint32_t)(ns / 1000);
	s->wpos = (s->wpos + 1) % ROUTER_WINDOW;
	if (s->wn < ROUTER_WINDOW)
		s->wn++;
}

/* The breaker after an attempt's outcome; a probe decides a half-open breaker. */
static void breaker_note(const struct router *r, struct rt_prov *s, bool probe, bool failed,
			 int64_t now)
{
	if (probe && s->probes)
		s->probes--;
	if (!failed) {
		s->fails_in_row = 0;
		if (probe || s->state == BREAKER_CLOSED)
			s->state = BREAKER_CLOSED;
		return;
	}
	s->fails_in_row++;
	if ((probe && s->state == BREAKER_HALF_OPEN) ||
	    (s->state == BREAKER_CLOSED && s->fails_in_row >= r->cfg.breaker_failures)) {
		s->state = BREAKER_OPEN;
		s->open_until = now + (int64_t)r->cfg.breaker_open_sec * NS_PER_SEC;
		s->probes = 0;
	}
}

void router_report(struct router *r, const struct router_choice *ch, enum router_outcome o,
		   int64_t latency_ns, uint32_t retry_after_sec, int64_t now_ns)
{
	struct rt_prov *s;
	bool failed = breaker_failure(o);
	uint32_t cool = 0;

	if (!r || !ch || ch->idx < 0 || (size_t)ch->idx >= r->n || (unsigned)o >= ROUTER__COUNT)
		return;
	pthread_mutex_lock(&r->mu);
	s = &r->v[ch->idx];
	s->outcomes[o]++;
	if (o == ROUTER_CANCELLED) {
		/* says nothing of the provider: the probe place is free for another call */
		if (ch->probe && s->probes)
			s->probes--;
		pthread_mutex_unlock(&r->mu);
		return;
	}
	s->history = (s->history << 1) | (router_outcome_retryable(o) ? 1u : 0u);
	if (s->hn < HISTORY_BITS)
		s->hn++;
	if (o == ROUTER_OK || o == ROUTER_CLIENT_ERROR || o == ROUTER_TIMEOUT)
		latency_note(s, latency_ns, now_ns);
	if (r->cfg.retry_after)
		retry_after_sec = 0; /* routing.retry_after: ignore */
	if (o == ROUTER_RATE_LIMITED)
		cool = retry_after_sec ? retry_after_sec : r->cfg.cooldown_sec;
	else if (o == ROUTER_SERVER_ERROR)
		cool = retry_after_sec; /* a 503 telling when to come back */
	if (cool && now_ns + (int64_t)cool * NS_PER_SEC > s->cooldown_until)
		s->cooldown_until = now_ns + (int64_t)cool * NS_PER_SEC;
	breaker_note(r, s, ch->probe, failed, now_ns);
	pthread_mutex_unlock(&r->mu);
}

static double median_ms(const struct rt_prov *s)
{
	uint32_t w[ROUTER_WINDOW];

	if (!s->wn)
		return 0;
	memcpy(w, s->window, sizeof(w[0]) * s->wn);
	for (uint32_t i = 1; i < s->wn; i++) {
		uint32_t x = w[i], j = i;

		for (; j > 0 && w[j - 1] > x; j--)
			w[j] = w[j - 1];
		w[j] = x;
	}
	return w[s->wn / 2] / 1000.0;
}

int router_status(struct router *r, size_t i, int64_t now_ns, struct router_status *out)
{
	const struct rt_prov *s;
	uint64_t mask;

	if (!r || i >= r->n)
		return -ERANGE;
	pthread_mutex_lock(&r->mu);
	s = &r->v[i];
	mask = s->hn >= HISTORY_BITS ? ~0ULL : (1ULL << s->hn) - 1;
	*out = (struct router_status){
	    .prov = s->p,
	    .state =
		s->state == BREAKER_OPEN && now_ns >= s->open_until ? BREAKER_HALF_OPEN : s->state,
	    .failures_in_row = s->fails_in_row,
	    .open_until_ns = s->state == BREAKER_OPEN ? s->open_until : 0,
	    .cooldown_until_ns = s->cooldown_until > now_ns ? s->cooldown_until : 0,
	    .measured = s->measured,
	    .ewma_ms = s->ewma_ns / 1e6,
	    .p50_ms = median_ms(s),
	    .error_rate = s->hn ? (double)__builtin_popcountll(s->history & mask) / s->hn : 0,
	    .requests = s->requests,
	    .rate_limited_skips = s->rate_skips,
	};
	memcpy(out->outcomes, s->outcomes, sizeof(out->outcomes));
	pthread_mutex_unlock(&r->mu);
	return 0;
}
