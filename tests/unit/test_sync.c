/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Request-rate slots and key sync as a specification: the registry hands out the lowest
 * free slot at creation, frees it at revocation, keeps it through rotation and reopen, and
 * refuses creation (writing nothing) when every slot is taken; the sync module (sync.h)
 * turns each committed change into slot state and kernel calls, recorded here by a fake
 * kernel: create puts the key, rotation puts both hashes, the grace end deletes the
 * previous one, revocation and expiry delete both and retire the slot, a limits change
 * keeps the bucket, and reconcile passes exactly the active keys and adopts slots whose
 * state is still the key's. Each case runs on its own temporary store with fake clocks.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include "keys.h"
#include "log.h"
#include "model.h"
#include "ratelimit.h"
#include "store.h"
#include "sync.h"
#include "tg_test.h"

#define T0_UNIX 1900000000LL
#define SEC	1000000000ULL
#define T0_MONO (1000 * SEC)

static int64_t fake_unix = T0_UNIX;

static int64_t clk_unix(void)
{
	return fake_unix;
}

static int64_t clk_mono(void)
{
	return (int64_t)T0_MONO;
}

/* ---- a fake kernel: every call recorded ---- */

enum kop {
	KOP_PUT = 1,
	KOP_DEL,
};

struct kcall {
	enum kop op;
	uint64_t khash;
	uint32_t slot, gen;
};

struct fake_kernel {
	struct kcall calls[64];
	size_t ncalls;
	uint64_t rec_khash[16];
	uint32_t rec_slot[16], rec_gen[16];
	size_t nrec;
	int nreconcile;
};

static int fk_put(void *ctx, uint64_t khash, uint32_t slot, uint32_t gen)
{
	struct fake_kernel *fk = ctx;

	if (fk->ncalls < TG_NCASES(fk->calls))
		fk->calls[fk->ncalls++] = (struct kcall){KOP_PUT, khash, slot, gen};
	return 0;
}

static int fk_del(void *ctx, uint64_t khash)
{
	struct fake_kernel *fk = ctx;

	if (fk->ncalls < TG_NCASES(fk->calls))
		fk->calls[fk->ncalls++] = (struct kcall){KOP_DEL, khash, 0, 0};
	return 0;
}

static int fk_reconcile(void *ctx, const uint64_t *khash, const uint32_t *slot, const uint32_t *gen,
			size_t n)
{
	struct fake_kernel *fk = ctx;

	fk->nreconcile++;
	fk->nrec = 0;
	for (size_t i = 0; i < n && i < TG_NCASES(fk->rec_khash); i++, fk->nrec++) {
		fk->rec_khash[i] = khash[i];
		fk->rec_slot[i] = slot[i];
		fk->rec_gen[i] = gen[i];
	}
	return 0;
}

static const struct sync_kernel_ops fk_ops = {fk_put, fk_del, fk_reconcile};
static const struct keys_sync_ops sync_ops = {.changed = sync_key_changed};

/* Was there a call op(khash) (and, for puts, to slot with gen)? */
static bool fk_has(const struct fake_kernel *fk, enum kop op, uint64_t khash, uint32_t slot,
		   uint32_t gen)
{
	for (size_t i = 0; i < fk->ncalls; i++) {
		const struct kcall *c = &fk->calls[i];

		if (c->op == op && c->khash == khash &&
		    (op == KOP_DEL || (c->slot == slot && c->gen == gen)))
			return true;
	}
	return false;
}

static size_t fk_count(const struct fake_kernel *fk, enum kop op)
{
	size_t n = 0;

	for (size_t i = 0; i < fk->ncalls; i++)
		n += fk->calls[i].op == op;
	return n;
}

/* ---- fixture: store, registry, slots, sync ---- */

struct fx {
	char dir[64];
	struct store *s;
	struct keys *k;
	struct keys_opts o;
	struct slots *slots;
	struct sync *sy;
	struct fake_kernel fk;
};

static bool fx_keys_open(struct fx *f)
{
	struct store_opts so = {
	    .path = f->dir, .map_size = 1 << 20, .max_map_size = 1 << 28, .sync = STORE_SYNC_NONE};

	f->s = store_open(&so);
	f->k = f->s ? keys_open(f->s, &f->o) : NULL;
	return f->k != NULL;
}

/* Registry with rate_slots slots; the slot array and a sync with the fake kernel on it. */
static bool fx_open(struct fx *f, uint32_t rate_slots)
{
	memset(f, 0, sizeof(*f));
	fake_unix = T0_UNIX;
	snprintf(f->dir, sizeof(f->dir), "/tmp/tg_sync_XXXXXX");
	if (!mkdtemp(f->dir))
		return false;
	keys_opts_default(&f->o);
	f->o.t_cost = 1;
	f->o.m_cost_kib = 64;
	f->o.argon2_per_sec = 1000;
	f->o.cache_max = 1024;
	f->o.clock_unix = clk_unix;
	f->o.clock_mono_ns = clk_mono;
	f->o.rate_slots = rate_slots;
	if (!fx_keys_open(f))
		return false;
	f->slots = slots_open(rate_slots);
	f->sy = f->slots ? sync_new(f->slots, &fk_ops, &f->fk) : NULL;
	if (!f->sy)
		return false;
	keys_set_sync(f->k, &sync_ops, f->sy);
	return true;
}

static void fx_keys_close(struct fx *f)
{
	keys_close(f->k);
	store_close(f->s);
	f->k = NULL;
	f->s = NULL;
}

static void fx_close(struct fx *f)
{
	DIR *d;
	struct dirent *e;
	char path[400];

	fx_keys_close(f);
	sync_free(f->sy);
	slots_close(f->slots);
	d = opendir(f->dir);
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", f->dir, e->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(f->dir);
}

static int mk_key(struct fx *f, int64_t expires_at, struct key_record *r, char pt[TG_CRED_MAX])
{
	struct key_spec s = {.name = "k", .owner = "team:ml", .expires_at = expires_at};

	limits_clear(&s.overrides);
	return keys_create(f->k, &s, r, pt);
}

static int verify(struct fx *f, const char *pt, struct keys_auth *a)
{
	return keys_verify(f->k, pt, strlen(pt), KEYS_API, NULL, a);
}

static const struct tier *basic_tier(void)
{
	return &model_default_tiers[0];
}

/* ---- the allocator ---- */

static void lowest_free_and_reuse_after_revoke(void)
{
	struct fx f;
	struct key_record r[4];
	char pt[TG_CRED_MAX];
	struct keys_auth a;

	TG_REQUIRE(fx_open(&f, 16));
	for (int i = 0; i < 3; i++) {
		TG_REQUIRE(mk_key(&f, 0, &r[i], pt) == 0);
		TG_CHECK_INT(r[i].slot, i);
	}
	TG_CHECK_INT(verify(&f, pt, &a), 0);
	TG_CHECK_INT(a.slot, 2);
	TG_CHECK_INT(keys_slots_used(f.k), 3);
	TG_CHECK_INT(keys_slots_capacity(f.k), 16);
	TG_CHECK_INT(keys_revoke(f.k, r[1].id, &r[3]), 0);
	TG_CHECK_INT(r[3].slot, TG_SLOT_NONE);
	TG_CHECK_INT(keys_slots_used(f.k), 2);
	TG_CHECK_INT(mk_key(&f, 0, &r[3], pt), 0);
	TG_CHECK_INT(r[3].slot, 1); /* the freed one, lowest */
	TG_CHECK_INT(mk_key(&f, 0, &r[3], pt), 0);
	TG_CHECK_INT(r[3].slot, 3);
	fx_close(&f);
}

static void full_array_refuses_and_writes_nothing(void)
{
	struct fx f;
	struct key_record r[3], back, listed[3];
	char pt[TG_CRED_MAX];
	size_t n = 0;
	bool more;

	TG_REQUIRE(fx_open(&f, 2));
	TG_REQUIRE(mk_key(&f, 0, &r[0], pt) == 0);
	TG_REQUIRE(mk_key(&f, 0, &r[1], pt) == 0);
	f.fk.ncalls = 0;
	memset(pt, 'x', sizeof(pt));
	TG_CHECK_INT(mk_key(&f, 0, &r[2], pt), -ENOBUFS);
	TG_CHECK(pt[0] == '\0' && pt[TG_CRED_MAX - 1] == '\0'); /* no key handed out */
	TG_CHECK_INT(keys_count(f.k), 2);
	TG_CHECK_INT(keys_list(f.k, NULL, NULL, 3, listed, &n, &more), 0);
	TG_CHECK_INT(n, 2);
	TG_CHECK_INT(f.fk.ncalls, 0); /* nothing synced */
	TG_CHECK_INT(keys_slots_used(f.k), 2);
	/* a revocation makes room again */
	TG_CHECK_INT(keys_revoke(f.k, r[0].id, &back), 0);
	TG_CHECK_INT(mk_key(&f, 0, &r[2], pt), 0);
	TG_CHECK_INT(r[2].slot, 0);
	fx_close(&f);
}

static void slots_survive_reopen(void)
{
	struct fx f;
	struct key_record r[3], back;
	char pt[3][TG_CRED_MAX];
	struct keys_auth a;

	TG_REQUIRE(fx_open(&f, 16));
	for (int i = 0; i < 3; i++)
		TG_REQUIRE(mk_key(&f, 0, &r[i], pt[i]) == 0);
	TG_REQUIRE(keys_revoke(f.k, r[0].id, &back) == 0);
	keys_set_sync(f.k, NULL, NULL);
	fx_keys_close(&f);
	TG_REQUIRE(fx_keys_open(&f));
	TG_CHECK_INT(keys_slots_used(f.k), 2);
	TG_CHECK_INT(keys_get(f.k, r[2].id, &back), 0);
	TG_CHECK_INT(back.slot, 2);
	TG_CHECK_INT(verify(&f, pt[1], &a), 0);
	TG_CHECK_INT(a.slot, 1);
	TG_CHECK_INT(keys_get(f.k, r[0].id, &back), 0);
	TG_CHECK_INT(back.slot, TG_SLOT_NONE);
	TG_CHECK_INT(mk_key(&f, 0, &back, pt[0]), 0); /* slot 0 was freed by the revocation */
	TG_CHECK_INT(back.slot, 0);
	fx_close(&f);
}

/* ---- sync ---- */

static void create_puts_and_activates(void)
{
	struct fx f;
	struct key_record r;
	char pt[TG_CRED_MAX];
	struct tg_slot *sl;

	TG_REQUIRE(fx_open(&f, 16));
	TG_REQUIRE(mk_key(&f, 0, &r, pt) == 0);
	sl = slots_at(f.slots, r.slot);
	TG_CHECK_INT(slots_flags(sl), TG_SLOT_ACTIVE | TG_SLOT_KERNEL_REFUSE);
	TG_CHECK(slots_key_gen(sl) != 0);
	TG_CHECK(slots_limits_match(sl, &basic_tier()->lim));
	TG_CHECK(r.khash_cur != 0);
	TG_CHECK_INT(f.fk.ncalls, 1);
	TG_CHECK(fk_has(&f.fk, KOP_PUT, r.khash_cur, r.slot, slots_key_gen(sl)));
	TG_CHECK_INT(sync_active_count(f.sy), 1);
	fx_close(&f);
}

static void rotate_puts_both_then_grace_end_deletes_prev(void)
{
	struct fx f;
	struct key_record r, rot;
	char pt[TG_CRED_MAX];
	struct tg_slot *sl;
	struct rl_verdict v;
	uint32_t gen;
	uint64_t tat;

	TG_REQUIRE(fx_open(&f, 16));
	TG_REQUIRE(mk_key(&f, 0, &r, pt) == 0);
	sl = slots_at(f.slots, r.slot);
	gen = slots_key_gen(sl);
	ratelimit_charge(sl, &basic_tier()->lim, T0_MONO, false, &v);
	tat = sl->win[0].tat_ns;
	f.fk.ncalls = 0;
	TG_REQUIRE(keys_rotate(f.k, r.id, 60, &rot, pt) == 0);
	TG_CHECK_INT(rot.slot, r.slot);	      /* rotation keeps the slot */
	TG_CHECK_INT(slots_key_gen(sl), gen); /* and the bucket */
	TG_CHECK_INT(sl->win[0].tat_ns, tat);
	TG_CHECK(fk_has(&f.fk, KOP_PUT, rot.khash_cur, r.slot, gen));
	TG_CHECK(fk_has(&f.fk, KOP_PUT, r.khash_cur, r.slot, gen)); /* the previous key */
	TG_CHECK_INT(fk_count(&f.fk, KOP_DEL), 0);
	f.fk.ncalls = 0;
	sync_tick(f.sy, T0_UNIX + 59);
	TG_CHECK_INT(f.fk.ncalls, 0); /* still in its grace */
	sync_tick(f.sy, T0_UNIX + 60);
	TG_CHECK_INT(f.fk.ncalls, 1);
	TG_CHECK(fk_has(&f.fk, KOP_DEL, r.khash_cur, 0, 0));
	TG_CHECK_INT(slots_flags(sl), TG_SLOT_ACTIVE | TG_SLOT_KERNEL_REFUSE);
	f.fk.ncalls = 0;
	sync_tick(f.sy, T0_UNIX + 61);
	TG_CHECK_INT(f.fk.ncalls, 0); /* nothing due any more */
	fx_close(&f);
}

static void revoke_deletes_both_and_retires_the_slot(void)
{
	struct fx f;
	struct key_record r, rot, rev;
	char pt[TG_CRED_MAX];
	struct tg_slot *sl;

	TG_REQUIRE(fx_open(&f, 16));
	TG_REQUIRE(mk_key(&f, 0, &r, pt) == 0);
	TG_REQUIRE(keys_rotate(f.k, r.id, 3600, &rot, pt) == 0);
	sl = slots_at(f.slots, r.slot);
	f.fk.ncalls = 0;
	TG_REQUIRE(keys_revoke(f.k, r.id, &rev) == 0);
	TG_CHECK(fk_has(&f.fk, KOP_DEL, rot.khash_cur, 0, 0));
	TG_CHECK(fk_has(&f.fk, KOP_DEL, r.khash_cur, 0, 0));
	TG_CHECK_INT(fk_count(&f.fk, KOP_PUT), 0);
	TG_CHECK_INT(slots_flags(sl), 0);
	TG_CHECK_INT(sync_active_count(f.sy), 0);
	f.fk.ncalls = 0;
	sync_tick(f.sy, T0_UNIX + 7200); /* the grace end of a revoked key: nothing left */
	TG_CHECK_INT(f.fk.ncalls, 0);
	fx_close(&f);
}

static void limits_change_keeps_the_bucket(void)
{
	struct fx f;
	struct key_record r, up;
	char pt[TG_CRED_MAX];
	struct key_patch p = {0};
	struct tg_slot *sl;
	struct rl_verdict v;
	struct limits want;
	uint64_t tat;
	uint32_t gen;

	TG_REQUIRE(fx_open(&f, 16));
	TG_REQUIRE(mk_key(&f, 0, &r, pt) == 0);
	sl = slots_at(f.slots, r.slot);
	for (int i = 0; i < 5; i++)
		ratelimit_charge(sl, &basic_tier()->lim, T0_MONO, false, &v);
	tat = sl->win[0].tat_ns;
	gen = slots_key_gen(sl);
	limits_clear(&p.set);
	p.set.v[LIMIT_BURST] = 50;
	p.set.v[LIMIT_RPM] = 100;
	TG_REQUIRE(keys_update(f.k, r.id, &p, &up) == 0);
	limits_merge(&basic_tier()->lim, &up.overrides, &want);
	TG_CHECK(slots_limits_match(sl, &want));
	TG_CHECK(!slots_limits_match(sl, &basic_tier()->lim));
	TG_CHECK_INT(sl->win[0].tat_ns, tat); /* what was spent stays spent */
	TG_CHECK_INT(slots_key_gen(sl), gen);
	TG_CHECK_INT(sl->allowed, 5);
	fx_close(&f);
}

static void tier_change_reaches_its_keys(void)
{
	struct fx f;
	struct key_record r;
	char pt[TG_CRED_MAX];
	struct tier t = *basic_tier();

	TG_REQUIRE(fx_open(&f, 16));
	TG_REQUIRE(mk_key(&f, 0, &r, pt) == 0);
	t.lim.v[LIMIT_RPS] = 7000;
	TG_REQUIRE(keys_tier_put(f.k, &t) == 0);
	TG_CHECK(slots_limits_match(slots_at(f.slots, r.slot), &t.lim));
	fx_close(&f);
}

static void expiry_via_tick_deletes_and_retires(void)
{
	struct fx f;
	struct key_record r, r2, back;
	char pt[TG_CRED_MAX];
	struct key_patch p = {0};
	struct tg_slot *sl;
	uint32_t gen;

	TG_REQUIRE(fx_open(&f, 16));
	TG_REQUIRE(mk_key(&f, T0_UNIX + 100, &r, pt) == 0);
	TG_REQUIRE(mk_key(&f, 0, &r2, pt) == 0);
	sl = slots_at(f.slots, r.slot);
	gen = slots_key_gen(sl);
	f.fk.ncalls = 0;
	sync_tick(f.sy, T0_UNIX + 99);
	TG_CHECK_INT(f.fk.ncalls, 0);
	sync_tick(f.sy, T0_UNIX + 100);
	TG_CHECK_INT(f.fk.ncalls, 1);
	TG_CHECK(fk_has(&f.fk, KOP_DEL, r.khash_cur, 0, 0));
	TG_CHECK_INT(slots_flags(sl), 0);
	TG_CHECK_INT(slots_flags(slots_at(f.slots, r2.slot)),
		     TG_SLOT_ACTIVE | TG_SLOT_KERNEL_REFUSE);
	/* extended again: a fresh bucket on the same slot, back in the kernel */
	fake_unix = T0_UNIX + 200;
	limits_clear(&p.set);
	p.set_expires = true;
	p.expires_at = 0;
	f.fk.ncalls = 0;
	TG_REQUIRE(keys_update(f.k, r.id, &p, &back) == 0);
	TG_CHECK_INT(back.slot, r.slot);
	TG_CHECK_INT(slots_key_gen(sl), gen + 1);
	TG_CHECK_INT(slots_flags(sl), TG_SLOT_ACTIVE | TG_SLOT_KERNEL_REFUSE);
	TG_CHECK(fk_has(&f.fk, KOP_PUT, r.khash_cur, r.slot, gen + 1));
	fx_close(&f);
}

/* Keys: active, revoked, expired, rotated in grace. A fresh sync reconciles them. */
static void reconcile_passes_exactly_the_active_keys(void)
{
	struct fx f;
	struct key_record r[4], rot, back;
	char pt[TG_CRED_MAX];
	struct sync *sy;
	struct fake_kernel fk = {0};
	bool seen_cur = false, seen_prev = false, seen_plain = false;

	TG_REQUIRE(fx_open(&f, 16));
	TG_REQUIRE(mk_key(&f, 0, &r[0], pt) == 0);
	TG_REQUIRE(mk_key(&f, 0, &r[1], pt) == 0);
	TG_REQUIRE(mk_key(&f, T0_UNIX + 10, &r[2], pt) == 0);
	TG_REQUIRE(mk_key(&f, 0, &r[3], pt) == 0);
	TG_REQUIRE(keys_revoke(f.k, r[1].id, &back) == 0);
	TG_REQUIRE(keys_rotate(f.k, r[3].id, 3600, &rot, pt) == 0);
	fake_unix = T0_UNIX + 20; /* r[2] expired, unnoticed by any tick */
	/* stale state a crashed daemon could leave: an ACTIVE slot no key owns */
	slots_assign(slots_at(f.slots, 9), &basic_tier()->lim);
	sy = sync_new(f.slots, &fk_ops, &fk);
	TG_REQUIRE(sy);
	keys_set_sync(f.k, &sync_ops, sy);
	TG_CHECK_INT(sync_reconcile(sy, f.k), 0);
	TG_CHECK_INT(fk.nreconcile, 1);
	TG_CHECK_INT(fk.nrec, 3); /* r[0], r[3] and r[3]'s previous key */
	for (size_t i = 0; i < fk.nrec; i++) {
		uint32_t gen = slots_key_gen(slots_at(f.slots, fk.rec_slot[i]));

		TG_CHECK_INT(fk.rec_gen[i], gen);
		seen_plain |= fk.rec_khash[i] == r[0].khash_cur && fk.rec_slot[i] == r[0].slot;
		seen_cur |= fk.rec_khash[i] == rot.khash_cur && fk.rec_slot[i] == r[3].slot;
		seen_prev |= fk.rec_khash[i] == r[3].khash_cur && fk.rec_slot[i] == r[3].slot;
	}
	TG_CHECK(seen_plain && seen_cur && seen_prev);
	TG_CHECK_INT(fk.ncalls, 0); /* one batch, no single puts */
	TG_CHECK_INT(sync_active_count(sy), 2);
	TG_CHECK_INT(slots_flags(slots_at(f.slots, r[2].slot)), 0);
	TG_CHECK_INT(slots_flags(slots_at(f.slots, 9)), 0);
	TG_CHECK(slots_flags(slots_at(f.slots, r[0].slot)) & TG_SLOT_ACTIVE);
	keys_set_sync(f.k, NULL, NULL);
	sync_free(sy);
	fx_close(&f);
}

/* After a restart over adopted (pinned) slots, a slot still the key's keeps its TATs. */
static void reconcile_adopts_matching_slots(void)
{
	struct fx f;
	struct key_record r[2];
	char pt[TG_CRED_MAX];
	struct sync *sy;
	struct rl_verdict v;
	struct tg_slot *s0, *s1;
	uint64_t tat0;
	uint32_t gen0, gen1;
	struct limits other = basic_tier()->lim;

	TG_REQUIRE(fx_open(&f, 16));
	TG_REQUIRE(mk_key(&f, 0, &r[0], pt) == 0);
	TG_REQUIRE(mk_key(&f, 0, &r[1], pt) == 0);
	s0 = slots_at(f.slots, r[0].slot);
	s1 = slots_at(f.slots, r[1].slot);
	for (int i = 0; i < 3; i++)
		ratelimit_charge(s0, &basic_tier()->lim, T0_MONO, false, &v);
	tat0 = s0->win[0].tat_ns;
	gen0 = slots_key_gen(s0);
	other.v[LIMIT_RPS] = 1000; /* the pinned slot 1 holds other parameters: not adopted */
	slots_set_limits(s1, &other);
	gen1 = slots_key_gen(s1);
	/* "restart": a new sync that remembers nothing, over the same slot memory */
	keys_set_sync(f.k, NULL, NULL);
	sy = sync_new(f.slots, NULL, NULL); /* BPF off: no kernel ops at all */
	TG_REQUIRE(sy);
	TG_CHECK_INT(sync_reconcile(sy, f.k), 0);
	TG_CHECK_INT(s0->win[0].tat_ns, tat0);
	TG_CHECK_INT(slots_key_gen(s0), gen0);
	TG_CHECK_INT(slots_key_gen(s1), gen1 + 1); /* fresh bucket */
	TG_CHECK(slots_limits_match(s1, &basic_tier()->lim));
	/* after reconcile, a change of the adopted key keeps its bucket */
	keys_set_sync(f.k, &sync_ops, sy);
	{
		struct key_patch p = {0};
		struct key_record up;

		limits_clear(&p.set);
		p.name = "renamed";
		TG_CHECK_INT(keys_update(f.k, r[0].id, &p, &up), 0);
	}
	TG_CHECK_INT(s0->win[0].tat_ns, tat0);
	TG_CHECK_INT(slots_key_gen(s0), gen0);
	keys_set_sync(f.k, NULL, NULL);
	sync_free(sy);
	fx_close(&f);
}

static int count_one(void *ctx, const struct keys_sync_key *k)
{
	size_t *n = ctx;

	(*n)++;
	return k->active ? 0 : -EINVAL;
}

static int stop_at_two(void *ctx, const struct keys_sync_key *k)
{
	size_t *n = ctx;

	(void)k;
	return ++*n == 2 ? 42 : 0;
}

static void foreach_active_skips_and_stops(void)
{
	struct fx f;
	struct key_record r[3], back;
	char pt[TG_CRED_MAX];
	size_t n = 0;

	TG_REQUIRE(fx_open(&f, 16));
	for (int i = 0; i < 3; i++)
		TG_REQUIRE(mk_key(&f, 0, &r[i], pt) == 0);
	TG_REQUIRE(keys_revoke(f.k, r[1].id, &back) == 0);
	TG_CHECK_INT(keys_foreach_active(f.k, count_one, &n), 0);
	TG_CHECK_INT(n, 2);
	n = 0;
	TG_REQUIRE(mk_key(&f, 0, &r[1], pt) == 0);
	TG_CHECK_INT(keys_foreach_active(f.k, stop_at_two, &n), 42);
	TG_CHECK_INT(n, 2);
	TG_CHECK_INT(keys_foreach_active(f.k, NULL, NULL), -EINVAL);
	fx_close(&f);
}

/* ---- kernel refusals follow the limits policy (DESIGN invariant 1) ---- */

static void kernel_refuse_policy_table(void)
{
	static const struct {
		const char *name;
		bool enabled;
		enum limit_mode gmode;
		enum limit_action gaction;
		uint64_t kmode, kaction; /* the key's effective LIMIT_MODE / LIMIT_ACTION */
		bool want;
	} rows[] = {
	    {"defaults: hard, block", true, LIMIT_MODE_HARD, LIMIT_ACT_BLOCK, 0, 0, true},
	    {"limits disabled", false, LIMIT_MODE_HARD, LIMIT_ACT_BLOCK, 0, 0, false},
	    {"global soft", true, LIMIT_MODE_SOFT, LIMIT_ACT_BLOCK, 0, 0, false},
	    {"global queue", true, LIMIT_MODE_HARD, LIMIT_ACT_QUEUE, 0, 0, false},
	    {"global alert", true, LIMIT_MODE_HARD, LIMIT_ACT_ALERT, 0, 0, false},
	    {"global downgrade", true, LIMIT_MODE_HARD, LIMIT_ACT_DOWNGRADE, 0, 0, false},
	    {"key soft over global hard", true, LIMIT_MODE_HARD, LIMIT_ACT_BLOCK,
	     LIMIT_MODE_SOFT, 0, false},
	    {"key hard over global soft", true, LIMIT_MODE_SOFT, LIMIT_ACT_BLOCK,
	     LIMIT_MODE_HARD, 0, true},
	    {"key queue over global block", true, LIMIT_MODE_HARD, LIMIT_ACT_BLOCK, 0,
	     LIMIT_ACT_QUEUE, false},
	    {"key block over global alert", true, LIMIT_MODE_HARD, LIMIT_ACT_ALERT, 0,
	     LIMIT_ACT_BLOCK, true},
	    {"key hard block, limits disabled", false, LIMIT_MODE_HARD, LIMIT_ACT_BLOCK,
	     LIMIT_MODE_HARD, LIMIT_ACT_BLOCK, false},
	    {"unset (override form) inherits", true, LIMIT_MODE_HARD, LIMIT_ACT_BLOCK,
	     LIMIT_UNSET, LIMIT_UNSET, true},
	};

	for (size_t i = 0; i < TG_NCASES(rows); i++) {
		struct sync_policy p = {rows[i].enabled, rows[i].gmode, rows[i].gaction};
		struct limits l = basic_tier()->lim;

		l.v[LIMIT_MODE] = rows[i].kmode;
		l.v[LIMIT_ACTION] = rows[i].kaction;
		if (sync_kernel_refuse(&p, &l) != rows[i].want) {
			TG_CHECK(!"sync_kernel_refuse as in the row");
			printf("#   %s: got %d\n", rows[i].name, !rows[i].want);
		}
	}
}

/*
 * Per-limit actions of the request-rate limits (the windows the kernel enforces): the kernel
 * refuses only when each one in use resolves to block; other limits' actions do not matter.
 */
static void kernel_refuse_per_limit_actions(void)
{
	static const struct {
		const char *name;
		uint8_t rps, rpm, tpm; /* per-limit actions of the key's effective limits */
		uint64_t rpm_value;    /* requests_per_minute, 0 = none */
		uint64_t kaction;      /* the key's effective LIMIT_ACTION */
		bool want;
	} rows[] = {
	    {"requests_per_second alert: never refused", LIMIT_ACT_ALERT, 0, 0, 0, 0, false},
	    {"requests_per_second alert over key action block", LIMIT_ACT_ALERT, 0, 0, 0,
	     LIMIT_ACT_BLOCK, false},
	    {"requests_per_second block over key action alert", LIMIT_ACT_BLOCK, 0, 0, 0,
	     LIMIT_ACT_ALERT, true},
	    {"requests_per_minute queue while set", 0, LIMIT_ACT_QUEUE, 0, 100, 0, false},
	    {"requests_per_minute queue, not set: ignored", 0, LIMIT_ACT_QUEUE, 0, 0, 0, true},
	    {"tokens_per_minute alert: not a request rate", 0, 0, LIMIT_ACT_ALERT, 0, 0, true},
	    {"rps and rpm block over global-less alert", LIMIT_ACT_BLOCK, LIMIT_ACT_BLOCK, 0, 100,
	     LIMIT_ACT_ALERT, true},
	};

	for (size_t i = 0; i < TG_NCASES(rows); i++) {
		struct sync_policy p = {true, LIMIT_MODE_HARD, LIMIT_ACT_BLOCK};
		struct limits l = basic_tier()->lim;

		l.act[LIMIT_RPS] = rows[i].rps;
		l.act[LIMIT_RPM] = rows[i].rpm;
		l.act[LIMIT_TPM] = rows[i].tpm;
		l.v[LIMIT_RPM] = rows[i].rpm_value;
		l.v[LIMIT_ACTION] = rows[i].kaction;
		if (sync_kernel_refuse(&p, &l) != rows[i].want) {
			TG_CHECK(!"sync_kernel_refuse as in the row");
			printf("#   %s: got %d\n", rows[i].name, !rows[i].want);
		}
	}
}

/*
 * Through the registry: a key whose actions.requests_per_second is alert loses the kernel
 * flag, even with its tier's action block, and gets it back when the action is removed; a
 * tier-level per-limit alert does the same for the tier's keys.
 */
static void kernel_refuse_follows_per_limit_actions(void)
{
	struct fx f;
	struct key_record r, up;
	char pt[TG_CRED_MAX];
	struct key_patch p = {0};
	struct tier t = *basic_tier();
	struct tg_slot *sl;

	TG_REQUIRE(fx_open(&f, 16));
	TG_REQUIRE(mk_key(&f, 0, &r, pt) == 0);
	sl = slots_at(f.slots, r.slot);
	TG_CHECK_INT(slots_flags(sl), TG_SLOT_ACTIVE | TG_SLOT_KERNEL_REFUSE);
	limits_clear(&p.set);
	p.set.v[LIMIT_ACTION] = LIMIT_ACT_BLOCK;
	p.set.act[LIMIT_RPS] = LIMIT_ACT_ALERT;
	TG_REQUIRE(keys_update(f.k, r.id, &p, &up) == 0);
	TG_CHECK_INT(up.overrides.act[LIMIT_RPS], LIMIT_ACT_ALERT);
	TG_CHECK_INT(slots_flags(sl), TG_SLOT_ACTIVE); /* alert: never refused by the kernel */
	limits_clear(&p.set);
	p.clear_act_mask = 1u << LIMIT_RPS;
	TG_REQUIRE(keys_update(f.k, r.id, &p, &up) == 0);
	TG_CHECK_INT(up.overrides.act[LIMIT_RPS], 0);
	TG_CHECK_INT(slots_flags(sl), TG_SLOT_ACTIVE | TG_SLOT_KERNEL_REFUSE);
	/* the key's own action block outranks its tier's per-limit alert */
	t.lim.act[LIMIT_RPS] = LIMIT_ACT_ALERT;
	TG_REQUIRE(keys_tier_put(f.k, &t) == 0);
	TG_CHECK_INT(slots_flags(sl), TG_SLOT_ACTIVE | TG_SLOT_KERNEL_REFUSE);
	p.clear_act_mask = 0;
	p.clear_mask = 1u << LIMIT_ACTION;
	TG_REQUIRE(keys_update(f.k, r.id, &p, &up) == 0);
	TG_CHECK_INT(slots_flags(sl), TG_SLOT_ACTIVE); /* now the tier's alert applies */
	fx_close(&f);
}

/* A key's slot flag follows its limits as they change, and the policy at reconcile. */
static void kernel_refuse_follows_the_key_and_the_policy(void)
{
	struct fx f;
	struct key_record r, up;
	char pt[TG_CRED_MAX];
	struct key_patch p = {0};
	struct tg_slot *sl;
	uint32_t gen;

	TG_REQUIRE(fx_open(&f, 16));
	TG_REQUIRE(mk_key(&f, 0, &r, pt) == 0);
	sl = slots_at(f.slots, r.slot);
	gen = slots_key_gen(sl);
	TG_CHECK_INT(slots_flags(sl), TG_SLOT_ACTIVE | TG_SLOT_KERNEL_REFUSE);
	limits_clear(&p.set);
	p.set.v[LIMIT_MODE] = LIMIT_MODE_SOFT;
	TG_REQUIRE(keys_update(f.k, r.id, &p, &up) == 0);
	TG_CHECK_INT(slots_flags(sl), TG_SLOT_ACTIVE); /* soft: the kernel must not refuse */
	limits_clear(&p.set);
	p.set.v[LIMIT_MODE] = LIMIT_MODE_HARD;
	p.set.v[LIMIT_ACTION] = LIMIT_ACT_QUEUE;
	TG_REQUIRE(keys_update(f.k, r.id, &p, &up) == 0);
	TG_CHECK_INT(slots_flags(sl), TG_SLOT_ACTIVE); /* queue: the daemon decides */
	limits_clear(&p.set);
	p.set.v[LIMIT_ACTION] = LIMIT_ACT_BLOCK;
	TG_REQUIRE(keys_update(f.k, r.id, &p, &up) == 0);
	TG_CHECK_INT(slots_flags(sl), TG_SLOT_ACTIVE | TG_SLOT_KERNEL_REFUSE);
	TG_CHECK_INT(slots_key_gen(sl), gen); /* flags only: the bucket is the same */
	/* limits disabled in the config: the next start's reconcile clears the flag */
	sync_set_policy(f.sy, &(struct sync_policy){false, LIMIT_MODE_HARD, LIMIT_ACT_BLOCK});
	TG_CHECK_INT(sync_reconcile(f.sy, f.k), 0);
	TG_CHECK_INT(slots_flags(sl), TG_SLOT_ACTIVE);
	sync_set_policy(f.sy, &(struct sync_policy){true, LIMIT_MODE_HARD, LIMIT_ACT_BLOCK});
	TG_CHECK_INT(sync_reconcile(f.sy, f.k), 0);
	TG_CHECK_INT(slots_flags(sl), TG_SLOT_ACTIVE | TG_SLOT_KERNEL_REFUSE);
	fx_close(&f);
}

static const struct tg_case cases[] = {
    {"allocator: lowest free slot; a revoked key's slot is reused",
     lowest_free_and_reuse_after_revoke},
    {"allocator: full array refuses creation (-ENOBUFS), writes and syncs nothing",
     full_array_refuses_and_writes_nothing},
    {"allocator: slots survive a reopen of the store", slots_survive_reopen},
    {"create: kernel put with slot and key_gen, slot ACTIVE with the key's limits",
     create_puts_and_activates},
    {"rotate: puts current and previous, same bucket; grace end via tick deletes previous",
     rotate_puts_both_then_grace_end_deletes_prev},
    {"revoke: deletes current and previous, clears the slot's flags",
     revoke_deletes_both_and_retires_the_slot},
    {"limits change: new parameters, TATs and key_gen kept", limits_change_keeps_the_bucket},
    {"tier change: its keys' slots get the new limits", tier_change_reaches_its_keys},
    {"expiry via tick: deleted and retired; extending it gives a fresh bucket",
     expiry_via_tick_deletes_and_retires},
    {"reconcile: one batch of exactly the active keys' hashes; other slots retired",
     reconcile_passes_exactly_the_active_keys},
    {"reconcile: adopts ACTIVE slots with matching parameters (TATs kept), assigns others",
     reconcile_adopts_matching_slots},
    {"keys_foreach_active: skips revoked keys, stops on a non-zero return",
     foreach_active_skips_and_stops},
    {"kernel_refuse: only enabled, hard, block (key over global), as a table",
     kernel_refuse_policy_table},
    {"kernel_refuse: a key's flag follows its mode/action changes and the policy at reconcile",
     kernel_refuse_follows_the_key_and_the_policy},
    {"kernel_refuse: each request-rate limit's own action must block",
     kernel_refuse_per_limit_actions},
    {"kernel_refuse: a key with actions.requests_per_second alert is never kernel-refused",
     kernel_refuse_follows_per_limit_actions},
};

int main(void)
{
	log_init("test_sync", LOG_LVL_ERROR);
	return tg_run("sync", cases, TG_NCASES(cases));
}
