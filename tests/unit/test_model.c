/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * model: limits are named, ranged and merged as the admin API documents; key status follows
 * revocation and expiry; names validate exactly as model.h says; every record kind encodes and
 * decodes back to the same bytes (longest strings, unset overrides included) within
 * MODEL_*_MAX, and truncated, padded or corrupted encodings are refused.
 */
#include <errno.h>

#include "model.h"
#include "tg_test.h"

static void limit_names_round_trip(void)
{
	static const char *const want[LIMIT__COUNT] = {
	    "requests_per_second", "burst",
	    "requests_per_minute", "requests_per_hour",
	    "requests_per_day",	   "tokens_per_minute",
	    "tokens_per_month",	   "max_concurrent",
	    "requests_per_month",  "tokens_per_hour",
	    "tokens_per_day",	   "token_quota_days",
	    "cost_per_hour",	   "cost_per_day",
	    "cost_per_month",	   "cost_window",
	    "bytes_per_month",	   "compute_seconds_per_month",
	    "alert_threshold",	   "mode",
	    "action",
	};

	for (int f = 0; f < LIMIT__COUNT; f++) {
		TG_CHECK_STR(limit_descs[f].name, want[f]);
		TG_CHECK_INT(limit_field_by_name(want[f]), f);
		TG_CHECK_INT(limit_descs[f].milli, f == LIMIT_RPS || f == LIMIT_COMPUTE_MONTH ||
							f == LIMIT_ALERT_THRESHOLD);
		TG_CHECK_INT(limit_descs[f].nano, f >= LIMIT_COST_HOUR && f <= LIMIT_COST_MONTH);
	}
	TG_CHECK_INT(limit_enum_parse(LIMIT_MODE, "soft"), LIMIT_MODE_SOFT);
	TG_CHECK_INT(limit_enum_parse(LIMIT_MODE, "inherit"), -EINVAL);
	TG_CHECK_INT(limit_enum_parse(LIMIT_ACTION, "downgrade"), LIMIT_ACT_DOWNGRADE);
	TG_CHECK_INT(limit_enum_parse(LIMIT_ACTION, "Block"), -EINVAL);
	TG_CHECK_INT(limit_enum_parse(LIMIT_COST_WINDOW, "rolling"), LIMIT_WINDOW_ROLLING);
	TG_CHECK_INT(limit_enum_parse(LIMIT_BURST, "rolling"), -EINVAL);
	TG_CHECK_STR(limit_enum_name(LIMIT_ACTION, LIMIT_ACT_ALERT), "alert");
	TG_CHECK(limit_enum_name(LIMIT_MODE, 0) == NULL);
	TG_CHECK(limit_enum_name(LIMIT_MODE, 3) == NULL);
	TG_CHECK_INT(limit_field_by_name("rps"), -ENOENT);
	TG_CHECK_INT(limit_field_by_name(""), -ENOENT);
	TG_CHECK_INT(limit_field_by_name("Burst"), -ENOENT);
}

static const struct {
	enum limit_field f;
	uint64_t v;
	int want; /* 0 or -ERANGE */
} check_table[] = {
    {LIMIT_RPS, 0, -ERANGE},
    {LIMIT_RPS, 1, 0},		/* 0.001 req/s */
    {LIMIT_RPS, 1000000000, 0}, /* 1,000,000 req/s */
    {LIMIT_RPS, 1000000001, -ERANGE},
    {LIMIT_BURST, 0, -ERANGE},
    {LIMIT_BURST, 1, 0},
    {LIMIT_BURST, 1000000000, 0},
    {LIMIT_BURST, 1000000001, -ERANGE},
    {LIMIT_RPM, 0, 0},
    {LIMIT_RPH, 1000000000000ull, 0},
    {LIMIT_RPD, 1000000000001ull, -ERANGE},
    {LIMIT_TPM, 0, 0},
    {LIMIT_TOKENS_MONTH, 1000000000000000ull, 0},
    {LIMIT_TOKENS_MONTH, 1000000000000001ull, -ERANGE},
    {LIMIT_MAX_CONCURRENT, 0, 0},
    {LIMIT_MAX_CONCURRENT, 1000000000, 0},
    {LIMIT_MAX_CONCURRENT, 1000000001, -ERANGE},
    {LIMIT_BURST, LIMIT_UNSET, -ERANGE},
    {LIMIT__COUNT, 1, -ERANGE},
};

static void limit_check_table(void)
{
	for (size_t i = 0; i < TG_NCASES(check_table); i++) {
		int rc = limit_check(check_table[i].f, check_table[i].v);

		if (rc != check_table[i].want) {
			printf("#   field %d value %" PRIu64 ": %d, want %d\n", check_table[i].f,
			       check_table[i].v, rc, check_table[i].want);
			tg_failed++;
		}
	}
	/* LIMIT_UNSET is never a valid value of any field. */
	for (int f = 0; f < LIMIT__COUNT; f++)
		TG_CHECK_INT(limit_check((enum limit_field)f, LIMIT_UNSET), -ERANGE);
}

static void limits_merge_applies_set_overrides(void)
{
	struct limits tier, ov, out;

	memset(&tier, 0, sizeof(tier));
	for (int f = 0; f < LIMIT__COUNT; f++)
		tier.v[f] = 100 + (uint64_t)f;
	limits_clear(&ov);
	for (int f = 0; f < LIMIT__COUNT; f++)
		TG_CHECK(ov.v[f] == LIMIT_UNSET);
	limits_merge(&tier, &ov, &out);
	TG_CHECK(memcmp(&out, &tier, sizeof(out)) == 0);

	ov.v[LIMIT_RPS] = 5000;
	ov.v[LIMIT_MAX_CONCURRENT] = 0; /* 0 is a value ("none"), not "unset" */
	limits_merge(&tier, &ov, &out);
	for (int f = 0; f < LIMIT__COUNT; f++) {
		uint64_t want = f == LIMIT_RPS ? 5000 : f == LIMIT_MAX_CONCURRENT ? 0 : tier.v[f];

		TG_CHECK_INT(out.v[f], want);
	}
	/* out may alias the tier. */
	limits_merge(&tier, &ov, &tier);
	TG_CHECK(memcmp(&out, &tier, sizeof(out)) == 0);
}

static const struct {
	int64_t expires_at, revoked_at, now;
	enum key_status want;
} status_table[] = {
    {0, 0, 1000, KEY_ACTIVE},	     {1001, 0, 1000, KEY_ACTIVE},
    {1000, 0, 1000, KEY_EXPIRED}, /* expires_at <= now */
    {999, 0, 1000, KEY_EXPIRED},     {0, 500, 1000, KEY_REVOKED},
    {999, 500, 1000, KEY_REVOKED},   /* revoked beats expired */
    {5000, 2000, 1000, KEY_REVOKED}, /* revocation is immediate */
};

static void key_status_table(void)
{
	for (size_t i = 0; i < TG_NCASES(status_table); i++) {
		struct key_record k = {0};

		k.expires_at = status_table[i].expires_at;
		k.revoked_at = status_table[i].revoked_at;
		TG_CHECK_INT(key_status_at(&k, status_table[i].now), status_table[i].want);
	}
	TG_CHECK_STR(key_status_name(KEY_ACTIVE), "active");
	TG_CHECK_STR(key_status_name(KEY_REVOKED), "revoked");
	TG_CHECK_STR(key_status_name(KEY_EXPIRED), "expired");
}

static void token_roles_round_trip(void)
{
	static const char *const names[] = {"admin", "viewer", "consumer"};

	for (int r = ROLE_ADMIN; r <= ROLE_CONSUMER; r++) {
		TG_CHECK_STR(token_role_name((enum token_role)r), names[r]);
		TG_CHECK_INT(token_role_parse(names[r]), r);
	}
	TG_CHECK_INT(token_role_parse("Admin"), -EINVAL);
	TG_CHECK_INT(token_role_parse(""), -EINVAL);
	TG_CHECK_INT(token_role_parse("root"), -EINVAL);
}

enum validator { V_NAME = 0, V_OWNER, V_SERVICE, V_TIER, V_CONSUMER, V_ID };

static bool validate(enum validator v, const char *s)
{
	switch (v) {
	case V_NAME:
		return model_name_valid(s);
	case V_OWNER:
		return model_owner_valid(s);
	case V_SERVICE:
		return model_service_valid(s);
	case V_TIER:
		return model_tier_name_valid(s);
	case V_CONSUMER:
		return model_consumer_id_valid(s);
	case V_ID:
		return model_id_valid(s);
	}
	return false;
}

#define S64 "abcdefghij0123456789ABCDEFGHIJabcdefghij0123456789ABCDEFGHIJ.-_x"
#define S32 "abcdefghij0123456789abcdefghij-_"

static const struct {
	enum validator v;
	const char *s;
	bool ok;
} valid_table[] = {
    {V_NAME, "billing-bot", true},
    {V_NAME, "a", true},
    {V_NAME, "Équipe données ✓ 🚀", true},
    {V_NAME, "with space and ~!@#$%^&*()", true},
    {V_NAME, "", false},
    {V_NAME, "tab\there", false},
    {V_NAME, "nl\n", false},
    {V_NAME, "del\x7f", false},
    {V_NAME, "c1 \xc2\x85", false}, /* U+0085 NEL, a C1 control */
    {V_NAME, "bad \xff utf8", false},
    {V_NAME, "cut \xe2\x82", false}, /* truncated sequence */
    {V_NAME, "overlong \xc0\xaf", false},
    {V_NAME, "overlong \xe0\x80\xaf", false},
    {V_NAME, "surrogate \xed\xa0\x80", false},
    {V_NAME, "too big \xf4\x90\x80\x80", false},
    {V_NAME, "lone \x80", false},
    {V_OWNER, "team:ml-platform", true},
    {V_OWNER, "consumer:acme", true},
    {V_OWNER, "user:a.b_c-d", true},
    {V_OWNER, "consumer:" S64, true},
    {V_OWNER, "consumer:" S64 "x", false},
    {V_OWNER, "team:", false},
    {V_OWNER, "group:x", false},
    {V_OWNER, "Team:x", false},
    {V_OWNER, "team:a b", false},
    {V_OWNER, "team:a:b", false},
    {V_OWNER, "ml", false},
    {V_SERVICE, "default", true},
    {V_SERVICE, S64, true},
    {V_SERVICE, S64 "x", false},
    {V_SERVICE, "", false},
    {V_SERVICE, "chat/v1", false},
    {V_TIER, "basic", true},
    {V_TIER, "gold_2-x", true},
    {V_TIER, S32, true},
    {V_TIER, S32 "x", false},
    {V_TIER, "Basic", false},
    {V_TIER, "a.b", false},
    {V_TIER, "", false},
    {V_CONSUMER, "acme.co_1-x", true},
    {V_CONSUMER, S64, true},
    {V_CONSUMER, S64 "x", false},
    {V_CONSUMER, "a@b", false},
    {V_CONSUMER, "", false},
    {V_ID, "k7dq2m9xa4bz", true},
    {V_ID, "k7dq2m9xa4b", false},
    {V_ID, "k7dq2m9xa4bzz", false},
    {V_ID, "K7dq2m9xa4bz", false},
    {V_ID, "k7dq2m9xa4b_", false},
    {V_ID, "", false},
};

static void validators_table(void)
{
	char name[TG_NAME_MAX + 2];

	for (size_t i = 0; i < TG_NCASES(valid_table); i++) {
		if (validate(valid_table[i].v, valid_table[i].s) != valid_table[i].ok) {
			printf("#   validator %d on \"%s\": want %s\n", valid_table[i].v,
			       valid_table[i].s, valid_table[i].ok ? "accept" : "reject");
			tg_failed++;
		}
	}
	/* Names are bounded in bytes: 128 accepted, 129 refused, however they are spelt. */
	memset(name, 'n', TG_NAME_MAX);
	name[TG_NAME_MAX] = '\0';
	TG_CHECK(model_name_valid(name));
	name[TG_NAME_MAX] = 'n';
	name[TG_NAME_MAX + 1] = '\0';
	TG_CHECK(!model_name_valid(name));
	for (int i = 0; i < TG_NAME_MAX; i += 2)
		memcpy(name + i, "\xc3\xa9", 2); /* 64 × é = 128 bytes */
	name[TG_NAME_MAX] = '\0';
	TG_CHECK(model_name_valid(name));
}

static void default_tiers_as_documented(void)
{
	static const struct {
		const char *name;
		uint64_t rps_milli, burst, tokens_month;
	} want[] = {
	    {"basic", 10000, 20, 100000},
	    {"premium", 100000, 200, 10000000},
	    {"enterprise", 1000000, 2000, 1000000000},
	};

	for (size_t i = 0; i < TG_NCASES(want); i++) {
		const struct tier *t = &model_default_tiers[i];

		TG_CHECK_STR(t->name, want[i].name);
		TG_CHECK(model_tier_name_valid(t->name));
		TG_CHECK_INT(t->lim.v[LIMIT_RPS], want[i].rps_milli);
		TG_CHECK_INT(t->lim.v[LIMIT_BURST], want[i].burst);
		TG_CHECK_INT(t->lim.v[LIMIT_TOKENS_MONTH], want[i].tokens_month);
		for (int f = 0; f < LIMIT__COUNT; f++) {
			TG_CHECK_INT(limit_check((enum limit_field)f, t->lim.v[f]), 0);
			if (f != LIMIT_RPS && f != LIMIT_BURST && f != LIMIT_TOKENS_MONTH)
				TG_CHECK_INT(t->lim.v[f], 0);
		}
	}
}

/* Fills a with n bytes that are not NUL, so strings sit at their longest. */
static void fill(char *a, size_t n, char c)
{
	memset(a, c, n);
	a[n] = '\0';
}

static void fill_pwhash(struct pwhash *h, uint8_t seed)
{
	h->t_cost = 0xfffffff0u + seed;
	h->m_cost_kib = 0x80000000u | seed;
	h->parallelism = seed;
	for (size_t i = 0; i < sizeof(h->salt); i++)
		h->salt[i] = (uint8_t)(seed + i);
	for (size_t i = 0; i < sizeof(h->hash); i++)
		h->hash[i] = (uint8_t)(0xff - seed - i);
}

/* A key with every string at its longest and every number at an extreme. */
static void key_largest(struct key_record *k)
{
	memset(k, 0, sizeof(*k));
	fill(k->id, TG_ID_LEN, 'k');
	fill(k->name, TG_NAME_MAX, 'N');
	fill(k->owner, TG_OWNER_MAX, 'o');
	fill(k->service, TG_SERVICE_MAX, 's');
	fill(k->tier, TG_TIER_NAME_MAX, 't');
	for (int f = 0; f < LIMIT__COUNT; f++) {
		k->overrides.v[f] = (uint64_t)f * 0x0101010101010101ull;
		if (limit_takes_action((enum limit_field)f))
			k->overrides.act[f] = LIMIT_ACT_ALERT;
	}
	k->created_at = INT64_MIN;
	k->expires_at = INT64_MAX;
	k->revoked_at = -1;
	k->last_used_at = 1795428000;
	k->rotated_at = 1;
	k->prev_valid_until = 0x7fffffff00000000;
	k->secret_gen = UINT32_MAX;
	fill_pwhash(&k->cur, 1);
	fill_pwhash(&k->prev, 2);
	k->khash_cur = UINT64_MAX;
	k->khash_prev = 0x8000000000000001ull;
	k->slot = UINT32_MAX - 1;
}

/* A typical key: short strings, no overrides, never rotated. */
static void key_typical(struct key_record *k)
{
	memset(k, 0, sizeof(*k));
	strcpy(k->id, "k7dq2m9xa4bz");
	strcpy(k->name, "billing-bot ✓");
	strcpy(k->owner, "team:ml-platform");
	strcpy(k->service, "chat");
	strcpy(k->tier, "basic");
	limits_clear(&k->overrides);
	k->created_at = 1795428000;
	fill_pwhash(&k->cur, 7);
	k->khash_cur = 0x0123456789abcdefull;
	k->slot = 42;
}

/*
 * Key records written before migration 3 (format 1: no slot) still decode, with no slot;
 * format 2 adds the slot; format 3 every limit field (formats 1/2 decode the new ones unset,
 * tiers of format 1 with 0); an unknown format 5 is refused.
 */
static void key_format_1_decodes_without_slot(void)
{
	struct key_record k, back;
	uint8_t buf[MODEL_KEY_MAX];
	int n;

	key_typical(&k);
	k.overrides.v[LIMIT_COST_DAY] = 10000000000ull;
	n = key_record_encode_format(&k, 3, buf, sizeof(buf));
	TG_REQUIRE(n > 8);
	TG_CHECK_INT(buf[0], 3);
	TG_CHECK_INT(buf[n - 4], 42); /* the slot is format 3's last field, little-endian */
	TG_CHECK_INT(key_record_decode(buf, (size_t)n, &back), 0);
	TG_CHECK_INT(back.slot, 42);
	TG_CHECK(memcmp(&back, &k, sizeof(k)) == 0);
	n = key_record_encode_format(&k, 1, buf, sizeof(buf));
	TG_REQUIRE(n > 8);
	TG_CHECK_INT(buf[0], 1);
	TG_CHECK_INT(key_record_decode(buf, (size_t)n, &back), 0);
	TG_CHECK_INT(back.slot, TG_SLOT_NONE);
	TG_CHECK(back.overrides.v[LIMIT_COST_DAY] == LIMIT_UNSET);
	TG_CHECK(back.overrides.v[LIMIT_ACTION] == LIMIT_UNSET);
	TG_CHECK(back.overrides.v[LIMIT_TOKENS_MONTH] == k.overrides.v[LIMIT_TOKENS_MONTH]);
	TG_CHECK_INT(key_record_decode(buf, (size_t)n + 4, &back), -EINVAL); /* truncated+4 */
	n = key_record_encode_format(&k, 2, buf, sizeof(buf));
	TG_CHECK_INT(key_record_decode(buf, (size_t)n, &back), 0);
	TG_CHECK_INT(back.slot, 42);
	TG_CHECK(back.overrides.v[LIMIT_MODE] == LIMIT_UNSET);
	buf[0] = 5;
	TG_CHECK_INT(key_record_decode(buf, (size_t)n, &back), -EINVAL);
	{
		struct tier t = model_default_tiers[0], tb;
		uint8_t tbuf[MODEL_TIER_MAX];
		int tn = tier_encode_format(&t, 3, tbuf, sizeof(tbuf));

		TG_REQUIRE(tn > 0);
		TG_CHECK_INT(tbuf[0], 3);
		tbuf[0] = 2; /* tiers have no format 2 */
		TG_CHECK_INT(tier_decode(tbuf, (size_t)tn, &tb), -EINVAL);
		t.lim.v[LIMIT_COST_MONTH] = 5;
		tn = tier_encode_format(&t, 1, tbuf, sizeof(tbuf));
		TG_CHECK_INT(tier_decode(tbuf, (size_t)tn, &tb), 0);
		TG_CHECK_INT(tb.lim.v[LIMIT_COST_MONTH], 0);
		TG_CHECK_INT(tb.lim.v[LIMIT_TOKENS_MONTH], t.lim.v[LIMIT_TOKENS_MONTH]);
	}
}

/*
 * Format 4 appends one action byte per limit field to key records and tiers: the actions
 * round-trip; the same record in format 3 decodes with none; an unknown action, or one on a
 * field that takes none (burst), is refused.
 */
static void key_format_4_round_trips_actions(void)
{
	struct key_record k, back;
	uint8_t buf[MODEL_KEY_MAX], b3[MODEL_KEY_MAX];
	int n, n3;

	key_typical(&k);
	k.overrides.v[LIMIT_ACTION] = LIMIT_ACT_BLOCK;
	k.overrides.act[LIMIT_TPM] = LIMIT_ACT_ALERT;
	k.overrides.act[LIMIT_RPS] = LIMIT_ACT_QUEUE;
	k.overrides.act[LIMIT_COMPUTE_MONTH] = LIMIT_ACT_DOWNGRADE;
	n = key_record_encode(&k, buf, sizeof(buf));
	n3 = key_record_encode_format(&k, 3, b3, sizeof(b3));
	TG_REQUIRE(n > 8 && n3 > 8);
	TG_CHECK_INT(buf[0], 4);
	TG_CHECK_INT(n, n3 + LIMIT__COUNT); /* format 3 plus the action bytes */
	TG_CHECK_INT(key_record_decode(buf, (size_t)n, &back), 0);
	TG_CHECK(memcmp(&back, &k, sizeof(k)) == 0);
	TG_CHECK_INT(back.overrides.act[LIMIT_TPM], LIMIT_ACT_ALERT);
	/* format 3: no per-limit action, everything else the same */
	TG_CHECK_INT(key_record_decode(b3, (size_t)n3, &back), 0);
	for (int f = 0; f < LIMIT_ACT_SLOTS; f++)
		TG_CHECK_INT(back.overrides.act[f], 0);
	TG_CHECK_INT(back.overrides.v[LIMIT_ACTION], LIMIT_ACT_BLOCK);
	TG_CHECK_INT(back.slot, 42);
	buf[n - LIMIT__COUNT + LIMIT_BURST] = LIMIT_ACT_ALERT; /* burst takes no action */
	TG_CHECK_INT(key_record_decode(buf, (size_t)n, &back), -EINVAL);
	buf[n - LIMIT__COUNT + LIMIT_BURST] = 0;
	buf[n - LIMIT__COUNT + LIMIT_TPM] = LIMIT_ACT__COUNT; /* not an action */
	TG_CHECK_INT(key_record_decode(buf, (size_t)n, &back), -EINVAL);
	{
		struct tier t = model_default_tiers[0], tb;
		uint8_t tbuf[MODEL_TIER_MAX];
		int tn;

		t.lim.act[LIMIT_TOKENS_MONTH] = LIMIT_ACT_ALERT;
		tn = tier_encode(&t, tbuf, sizeof(tbuf));
		TG_REQUIRE(tn > 0);
		TG_CHECK_INT(tbuf[0], 4);
		TG_CHECK_INT(tier_decode(tbuf, (size_t)tn, &tb), 0);
		TG_CHECK(memcmp(&tb, &t, sizeof(t)) == 0);
		tn = tier_encode_format(&t, 3, tbuf, sizeof(tbuf));
		TG_CHECK_INT(tier_decode(tbuf, (size_t)tn, &tb), 0);
		TG_CHECK_INT(tb.lim.act[LIMIT_TOKENS_MONTH], 0);
	}
}

/*
 * A STORE_DB_LIMITS record as tollgated wrote it before owners and tenants kept their
 * per-limit actions in lim.act (a separate actions[] then): team:ml, tokens_per_day 5000,
 * action alert, tokens_per_day's own action queue. Bytes from that build's encoder.
 */
static const uint8_t old_limits_record[] = {
    0x03, 0x00, 0x05, 0x00, 0x07, 't', 'e', 'a', 'm', ':', 'm', 'l',
    /* v[0..9]: unset */
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    /* v[LIMIT_TPD] = 5000 */
    0x88, 0x13, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /* v[11..19]: unset */
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    /* v[LIMIT_ACTION] = alert */
    0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /* actions[LIMIT__COUNT]: tokens_per_day (10) queue */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00};

_Static_assert(sizeof(old_limits_record) == 12 + 8 * LIMIT__COUNT + LIMIT__COUNT,
	       "the old record holds every limit field and one action byte each");

/* The old bytes decode into lim.act; encoding gives the same bytes back (older builds read
 * what this one writes); corrupt action bytes are refused. */
static void subject_limits_old_record_decodes(void)
{
	struct subject_limits r, back;
	uint8_t buf[MODEL_LIMITS_MAX];
	int n;

	TG_CHECK_INT(subject_limits_decode(old_limits_record, sizeof(old_limits_record), &r), 0);
	TG_CHECK_STR(r.subject, "team:ml");
	for (int f = 0; f < LIMIT__COUNT; f++) {
		uint64_t want = f == LIMIT_TPD	    ? 5000
				: f == LIMIT_ACTION ? LIMIT_ACT_ALERT
						    : LIMIT_UNSET;

		TG_CHECK(r.lim.v[f] == want);
		TG_CHECK_INT(r.lim.act[f], f == LIMIT_TPD ? LIMIT_ACT_QUEUE : 0);
	}
	for (int f = LIMIT__COUNT; f < LIMIT_ACT_SLOTS; f++)
		TG_CHECK_INT(r.lim.act[f], 0);
	TG_CHECK_INT(limit_action_of(&r.lim, LIMIT_TPD, LIMIT_ACT_BLOCK), LIMIT_ACT_QUEUE);
	TG_CHECK_INT(limit_action_of(&r.lim, LIMIT_RPD, LIMIT_ACT_BLOCK), LIMIT_ACT_ALERT);
	n = subject_limits_encode(&r, buf, sizeof(buf));
	TG_REQUIRE(n == (int)sizeof(old_limits_record));
	TG_CHECK(memcmp(buf, old_limits_record, sizeof(old_limits_record)) == 0);
	TG_CHECK_INT(subject_limits_decode(buf, (size_t)n, &back), 0);
	TG_CHECK(memcmp(&back, &r, sizeof(r)) == 0);
	buf[n - LIMIT__COUNT + LIMIT_BURST] = LIMIT_ACT_ALERT; /* burst takes no action */
	TG_CHECK_INT(subject_limits_decode(buf, (size_t)n, &back), -EINVAL);
	buf[n - LIMIT__COUNT + LIMIT_BURST] = 0;
	buf[n - LIMIT__COUNT + LIMIT_TPD] = LIMIT_ACT__COUNT; /* not an action */
	TG_CHECK_INT(subject_limits_decode(buf, (size_t)n, &back), -EINVAL);
}

/* limits_merge + limit_action_of: key per-limit, key action, tier per-limit, tier action,
 * then the default (limits.action). */
static void action_resolution_order(void)
{
	static const struct {
		const char *name;
		uint8_t key_act, tier_act;	  /* per-limit actions of tokens_per_minute */
		uint64_t key_action, tier_action; /* LIMIT_UNSET / 0: not set */
		enum limit_action want;
	} rows[] = {
	    {"nothing set: limits.action", 0, 0, LIMIT_UNSET, 0, LIMIT_ACT_QUEUE},
	    {"tier action", 0, 0, LIMIT_UNSET, LIMIT_ACT_ALERT, LIMIT_ACT_ALERT},
	    {"tier per-limit beats tier action", 0, LIMIT_ACT_DOWNGRADE, LIMIT_UNSET,
	     LIMIT_ACT_ALERT, LIMIT_ACT_DOWNGRADE},
	    {"key action beats tier per-limit", 0, LIMIT_ACT_DOWNGRADE, LIMIT_ACT_BLOCK,
	     LIMIT_ACT_ALERT, LIMIT_ACT_BLOCK},
	    {"key per-limit beats key action", LIMIT_ACT_ALERT, LIMIT_ACT_DOWNGRADE,
	     LIMIT_ACT_BLOCK, LIMIT_ACT_QUEUE, LIMIT_ACT_ALERT},
	    {"key per-limit alone", LIMIT_ACT_ALERT, 0, LIMIT_UNSET, 0, LIMIT_ACT_ALERT},
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct limits tier, key, eff;
		enum limit_action got;

		memset(&tier, 0, sizeof(tier));
		limits_clear(&key);
		tier.act[LIMIT_TPM] = rows[i].tier_act;
		tier.v[LIMIT_ACTION] = rows[i].tier_action;
		key.act[LIMIT_TPM] = rows[i].key_act;
		key.v[LIMIT_ACTION] = rows[i].key_action;
		limits_merge(&tier, &key, &eff);
		got = limit_action_of(&eff, LIMIT_TPM, LIMIT_ACT_QUEUE);
		if (got != rows[i].want) {
			printf("#   %s: got %s, want %s\n", rows[i].name, limit_action_name(got),
			       limit_action_name(rows[i].want));
			tg_failed++;
		}
		/* another limit of the same key is untouched by tokens_per_minute's action */
		TG_CHECK_INT(eff.act[LIMIT_TPD], 0);
	}
	TG_CHECK(limit_takes_action(LIMIT_RPS) && limit_takes_action(LIMIT_MAX_CONCURRENT));
	TG_CHECK(!limit_takes_action(LIMIT_BURST) && !limit_takes_action(LIMIT_ACTION) &&
		 !limit_takes_action(LIMIT_TOKEN_QUOTA_DAYS) && !limit_takes_action(LIMIT_MODE));
}

static void token_largest(struct token_record *t)
{
	memset(t, 0, sizeof(*t));
	fill(t->id, TG_ID_LEN, 'i');
	fill(t->name, TG_NAME_MAX, 'n');
	t->role = ROLE_CONSUMER;
	fill(t->consumer, TG_OWNER_ID_MAX, 'c');
	fill(t->tier, TG_TIER_NAME_MAX, 't');
	t->created_at = INT64_MAX;
	t->revoked_at = INT64_MIN;
	t->last_used_at = -5;
	fill_pwhash(&t->hash, 9);
}

static void tier_largest(struct tier *t)
{
	memset(t, 0, sizeof(*t));
	fill(t->name, TG_TIER_NAME_MAX, 'z');
	for (int f = 0; f < LIMIT__COUNT; f++)
		t->lim.v[f] = UINT64_MAX - (uint64_t)f;
}

static void owner_largest(struct owner_record *o)
{
	memset(o, 0, sizeof(*o));
	fill(o->owner, TG_OWNER_MAX, 'w');
	o->created_at = INT64_MIN;
	o->keys = UINT64_MAX;
}

/*
 * One record kind behind a common shape, so the round-trip, bound and corruption checks run
 * over every kind from the same code.
 */
struct kind {
	const char *name;
	size_t size, max;
	int (*enc)(const void *r, void *buf, size_t cap);
	int (*dec)(const void *buf, size_t len, void *r);
};

#define KIND(n, type, e, d, m)                                                                     \
	static int n##_enc(const void *r, void *buf, size_t cap)                                   \
	{                                                                                          \
		return e((const type *)r, buf, cap);                                               \
	}                                                                                          \
	static int n##_dec(const void *buf, size_t len, void *r)                                   \
	{                                                                                          \
		return d(buf, len, (type *)r);                                                     \
	}                                                                                          \
	static const struct kind n##_kind = {#n, sizeof(type), m, n##_enc, n##_dec}

KIND(key, struct key_record, key_record_encode, key_record_decode, MODEL_KEY_MAX);
KIND(tier, struct tier, tier_encode, tier_decode, MODEL_TIER_MAX);
KIND(token, struct token_record, token_record_encode, token_record_decode, MODEL_TOKEN_MAX);
KIND(owner, struct owner_record, owner_record_encode, owner_record_decode, MODEL_OWNER_MAX);

#define BIG 2048

/* Room for a decoded record of any kind, suitably aligned. */
union any_record {
	struct key_record key;
	struct tier tier;
	struct token_record token;
	struct owner_record owner;
};

/* Encodes r, decodes it back and compares both the struct and a second encoding. */
static int round_trip(const struct kind *k, const void *r)
{
	uint8_t buf[BIG], buf2[BIG];
	union any_record back;
	int n = k->enc(r, buf, sizeof(buf)), n2;

	if (n <= 0) {
		printf("#   %s: encode failed: %d\n", k->name, n);
		return -1;
	}
	if (k->dec(buf, (size_t)n, &back) != 0 || memcmp(&back, r, k->size) != 0) {
		printf("#   %s: decode does not give back the record\n", k->name);
		return -1;
	}
	n2 = k->enc(&back, buf2, sizeof(buf2));
	if (n2 != n || memcmp(buf, buf2, (size_t)n) != 0) {
		printf("#   %s: re-encoding differs\n", k->name);
		return -1;
	}
	return n;
}

static void round_trips_every_kind(void)
{
	struct key_record k;
	struct tier t;
	struct token_record tok;
	struct owner_record o;

	key_typical(&k);
	TG_CHECK(round_trip(&key_kind, &k) > 0);
	key_largest(&k);
	TG_CHECK(round_trip(&key_kind, &k) > 0);
	memset(&k, 0, sizeof(k)); /* empty strings, zero everything */
	TG_CHECK(round_trip(&key_kind, &k) > 0);
	for (size_t i = 0; i < TG_NCASES(model_default_tiers); i++)
		TG_CHECK(round_trip(&tier_kind, &model_default_tiers[i]) > 0);
	tier_largest(&t);
	TG_CHECK(round_trip(&tier_kind, &t) > 0);
	for (int role = ROLE_ADMIN; role <= ROLE_CONSUMER; role++) {
		token_largest(&tok);
		tok.role = (uint32_t)role;
		TG_CHECK(round_trip(&token_kind, &tok) > 0);
	}
	memset(&tok, 0, sizeof(tok));
	strcpy(tok.id, TG_BOOTSTRAP_ID);
	strcpy(tok.name, "bootstrap");
	TG_CHECK(round_trip(&token_kind, &tok) > 0);
	owner_largest(&o);
	TG_CHECK(round_trip(&owner_kind, &o) > 0);
}

static void unset_overrides_survive(void)
{
	uint8_t buf[BIG];
	struct key_record k, back;
	int n;

	key_typical(&k);
	k.overrides.v[LIMIT_BURST] = 0;
	k.overrides.v[LIMIT_RPS] = 1;
	n = key_record_encode(&k, buf, sizeof(buf));
	TG_REQUIRE(n > 0);
	TG_REQUIRE(key_record_decode(buf, (size_t)n, &back) == 0);
	for (int f = 0; f < LIMIT__COUNT; f++) {
		uint64_t want = f == LIMIT_BURST ? 0 : f == LIMIT_RPS ? 1 : LIMIT_UNSET;

		TG_CHECK(back.overrides.v[f] == want);
	}
}

/* The record of each kind with every field at its longest, and its bound. */
static void largest_encodings_fit_model_max(void)
{
	struct key_record k;
	struct tier t;
	struct token_record tok;
	struct owner_record o;
	const struct {
		const struct kind *k;
		const void *r;
	} rows[] = {{&key_kind, &k}, {&tier_kind, &t}, {&token_kind, &tok}, {&owner_kind, &o}};

	key_largest(&k);
	tier_largest(&t);
	token_largest(&tok);
	owner_largest(&o);
	for (size_t i = 0; i < TG_NCASES(rows); i++) {
		uint8_t buf[BIG];
		int n = rows[i].k->enc(rows[i].r, buf, sizeof(buf));

		if (n < 0 || (size_t)n > rows[i].k->max) {
			printf(
			    "#   %s record: largest encoding is %d bytes, its MODEL_*_MAX is %zu\n",
			    rows[i].k->name, n, rows[i].k->max);
			tg_failed++;
		}
	}
}

static void encode_refuses_small_buffers(void)
{
	const struct kind *kinds[] = {&key_kind, &tier_kind, &token_kind, &owner_kind};
	struct key_record k;
	struct tier t;
	struct token_record tok;
	struct owner_record o;
	const void *recs[] = {&k, &t, &tok, &o};

	key_typical(&k);
	tier_largest(&t);
	token_largest(&tok);
	owner_largest(&o);
	for (size_t i = 0; i < TG_NCASES(kinds); i++) {
		uint8_t buf[BIG];
		int n = kinds[i]->enc(recs[i], buf, sizeof(buf));

		TG_REQUIRE(n > 0);
		for (int cap = 0; cap < n; cap++)
			TG_CHECK_INT(kinds[i]->enc(recs[i], buf, (size_t)cap), -EMSGSIZE);
		TG_CHECK_INT(kinds[i]->enc(recs[i], buf, (size_t)n), n);
	}
	/* A string with no NUL inside its array cannot be encoded. */
	memset(t.name, 'x', sizeof(t.name));
	TG_CHECK_INT(tier_encode(&t, (uint8_t[BIG]){0}, BIG), -EINVAL);
}

static void truncated_or_padded_refused(void)
{
	const struct kind *kinds[] = {&key_kind, &tier_kind, &token_kind, &owner_kind};
	struct key_record k;
	struct tier t;
	struct token_record tok;
	struct owner_record o;
	const void *recs[] = {&k, &t, &tok, &o};
	union any_record back;

	key_largest(&k);
	tier_largest(&t);
	token_largest(&tok);
	owner_largest(&o);
	for (size_t i = 0; i < TG_NCASES(kinds); i++) {
		uint8_t buf[BIG];
		int n = kinds[i]->enc(recs[i], buf, sizeof(buf) - 1);

		TG_REQUIRE(n > 0);
		for (int len = 0; len < n; len++)
			TG_CHECK_INT(kinds[i]->dec(buf, (size_t)len, &back), -EINVAL);
		buf[n] = 0;
		TG_CHECK_INT(kinds[i]->dec(buf, (size_t)n + 1, &back), -EINVAL);
		/* Another kind's decoder refuses it. */
		TG_CHECK_INT(kinds[(i + 1) % TG_NCASES(kinds)]->dec(buf, (size_t)n, &back),
			     -EINVAL);
	}
}

static void corrupt_fields_refused(void)
{
	uint8_t buf[BIG], bad[BIG];
	struct token_record tok, back;
	int n;

	token_largest(&tok);
	n = token_record_encode(&tok, buf, sizeof(buf));
	TG_REQUIRE(n > 0);
	/* Unknown format version. */
	memcpy(bad, buf, (size_t)n);
	bad[0] = 2;
	TG_CHECK_INT(token_record_decode(bad, (size_t)n, &back), -EINVAL);
	/* The id's length byte (offset 4) past TG_ID_LEN. */
	memcpy(bad, buf, (size_t)n);
	bad[4] = TG_ID_LEN + 1;
	TG_CHECK_INT(token_record_decode(bad, (size_t)n, &back), -EINVAL);
	/* A NUL inside the name. */
	memcpy(bad, buf, (size_t)n);
	bad[4 + 1 + TG_ID_LEN + 1 + 3] = '\0';
	TG_CHECK_INT(token_record_decode(bad, (size_t)n, &back), -EINVAL);
	/* A role this build does not know. */
	tok.role = ROLE_CONSUMER + 1;
	n = token_record_encode(&tok, bad, sizeof(bad));
	TG_REQUIRE(n > 0);
	TG_CHECK_INT(token_record_decode(bad, (size_t)n, &back), -EINVAL);
}

/*
 * Random damage never crashes the decoder, and whatever it still accepts is canonical: it
 * encodes back to exactly the damaged bytes (nothing is silently dropped or reinterpreted).
 */
static void random_damage_is_refused_or_canonical(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;
	uint8_t buf[BIG], bad[BIG], again[BIG];
	struct key_record k, back;
	int n;

	key_typical(&k);
	n = key_record_encode(&k, buf, sizeof(buf));
	TG_REQUIRE(n > 0);
	for (int round = 0; round < 20000; round++) {
		size_t len = (size_t)n;
		int m;

		memcpy(bad, buf, len);
		for (int flips = 0; flips < 1 + round % 3; flips++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			bad[x % len] = (uint8_t)(x >> 32);
		}
		if (round % 5 == 0)
			len -= x % 8;
		if (key_record_decode(bad, len, &back) != 0)
			continue;
		m = key_record_encode(&back, again, sizeof(again));
		if (m != (int)len || memcmp(again, bad, len) != 0) {
			printf("#   round %d: accepted input is not canonical\n", round);
			tg_failed++;
			return;
		}
	}
}

static const struct tg_case cases[] = {
    {"key records: format 1 without slot, 2 with, 3 every limit; older limits decode unset",
     key_format_1_decodes_without_slot},
    {"key records and tiers: format 4 round-trips per-limit actions, format 3 has none",
     key_format_4_round_trips_actions},
    {"limits records: the old bytes decode into lim.act and re-encode identically",
     subject_limits_old_record_decodes},
    {"a limit's action: key per-limit, key action, tier per-limit, tier action, default",
     action_resolution_order},
    {"every limit field is found by its JSON name", limit_names_round_trip},
    {"limit values are checked against the documented ranges", limit_check_table},
    {"merge applies set overrides and keeps the tier elsewhere",
     limits_merge_applies_set_overrides},
    {"key status: revoked beats expired, expires_at <= now is expired", key_status_table},
    {"token roles print and parse", token_roles_round_trip},
    {"name, owner, service, tier, consumer and id validators", validators_table},
    {"default tiers are basic, premium and enterprise as documented", default_tiers_as_documented},
    {"every record kind round-trips exactly", round_trips_every_kind},
    {"unset overrides stay unset through the encoding", unset_overrides_survive},
    {"MODEL_*_MAX bound the largest encoding of each kind", largest_encodings_fit_model_max},
    {"encode into a short buffer is -EMSGSIZE", encode_refuses_small_buffers},
    {"truncated, padded or wrong-kind encodings are refused", truncated_or_padded_refused},
    {"bad version, oversize or NUL-holding strings, unknown role are refused",
     corrupt_fields_refused},
    {"randomly damaged records are refused or decode canonically",
     random_damage_is_refused_or_canonical},
};

int main(void)
{
	return tg_run("model", cases, TG_NCASES(cases));
}
