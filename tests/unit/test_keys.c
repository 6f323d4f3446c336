/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The key registry (userspace/keys.h) as a specification: credential format and parsing,
 * no secret at rest, verification and its cache, revocation, expiry and rotation taking
 * effect at once, the throttles that keep wrong secrets from burning CPU, changes and
 * listings, tiers, admin tokens, bootstrap, and a reopen that restores everything. Each
 * case runs on its own temporary store with tiny argon2 parameters and fake clocks.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"
#include "keys_internal.h"
#include "log.h"
#include "model.h"
#include "store.h"
#include "tg_test.h"
#include "tollgate/siphash.h"
#include "util.h"

#define T0_UNIX 1900000000LL
#define T0_MONO 5000000000000LL
#define SEC 1000000000LL

static int64_t fake_unix = T0_UNIX;
static int64_t fake_mono = T0_MONO;

static int64_t clk_unix(void)
{
	return fake_unix;
}

static int64_t clk_mono(void)
{
	return fake_mono;
}

/* A store in a fresh temporary directory and a registry on it. */
struct fx {
	char dir[64];
	struct store *s;
	struct keys *k;
	struct keys_opts o;
};

static void fx_opts(struct keys_opts *o)
{
	keys_opts_default(o);
	o->t_cost = 1;
	o->m_cost_kib = 64;
	o->argon2_per_sec = 1000;
	o->cache_max = 1024;
	o->clock_unix = clk_unix;
	o->clock_mono_ns = clk_mono;
}

static bool fx_store_open(struct fx *f)
{
	struct store_opts so = {
		.path = f->dir,
		.map_size = 1 << 20,
		.max_map_size = 1 << 28,
		.sync = STORE_SYNC_NONE,
	};

	f->s = store_open(&so);
	return f->s != NULL;
}

/* Opens with o (NULL: fx_opts defaults). */
static bool fx_open_with(struct fx *f, const struct keys_opts *o)
{
	memset(f, 0, sizeof(*f));
	fake_unix = T0_UNIX;
	fake_mono = T0_MONO;
	snprintf(f->dir, sizeof(f->dir), "/tmp/tg_keys_XXXXXX");
	if (!mkdtemp(f->dir))
		return false;
	if (o)
		f->o = *o;
	else
		fx_opts(&f->o);
	if (!fx_store_open(f))
		return false;
	f->k = keys_open(f->s, &f->o);
	return f->k != NULL;
}

static bool fx_open(struct fx *f)
{
	return fx_open_with(f, NULL);
}

static void fx_close(struct fx *f)
{
	DIR *d;
	struct dirent *e;
	char path[400];

	keys_close(f->k);
	store_close(f->s);
	f->k = NULL;
	f->s = NULL;
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

/* Creates a key for owner (tier NULL = basic); 0 or the error. */
static int mk_key(struct fx *f, const char *owner, const char *service, const char *tier,
		  struct key_record *r, char pt[TG_CRED_MAX])
{
	struct key_spec s = {.name = "test key", .owner = owner, .service = service, .tier = tier};

	limits_clear(&s.overrides);
	return keys_create(f->k, &s, r, pt);
}

/* Verifies an API key presented from peer (NULL: the unknown source). */
static int verify_from(struct fx *f, const char *cred, const struct sockaddr *peer,
		       struct keys_auth *a)
{
	struct keys_auth tmp;

	return keys_verify(f->k, cred, strlen(cred), KEYS_API, peer, a ? a : &tmp);
}

static int verify(struct fx *f, const char *cred, struct keys_auth *a)
{
	return verify_from(f, cred, NULL, a);
}

static int verify_admin(struct fx *f, const char *cred, struct keys_auth *a)
{
	struct keys_auth tmp;

	return keys_verify(f->k, cred, strlen(cred), KEYS_ADMIN, NULL, a ? a : &tmp);
}

/* The same key with its last secret character changed (still well-formed). */
static void wrong_secret(const char *pt, char out[TG_CRED_MAX], char c)
{
	size_t n = strlen(pt);

	memcpy(out, pt, n + 1);
	out[n - 1] = out[n - 1] == c ? (c == 'A' ? 'B' : 'A') : c;
}

static bool in_alphabet(const char *s, size_t n, const char *alphabet)
{
	for (size_t i = 0; i < n; i++) {
		if (!s[i] || !strchr(alphabet, s[i]))
			return false;
	}
	return true;
}

/* ---- format and parsing ---- */

static void t_format(void)
{
	struct fx f;
	struct key_record r;
	struct token_record tr;
	struct token_spec ts = {.name = "ops", .role = ROLE_ADMIN};
	char pt[TG_CRED_MAX], tok[TG_CRED_MAX];

	TG_REQUIRE(fx_open(&f));
	TG_CHECK_INT(mk_key(&f, "team:ml", NULL, NULL, &r, pt), 0);
	TG_CHECK_INT(strlen(pt), 3 + 12 + 1 + 43);
	TG_CHECK(strncmp(pt, "tg_", 3) == 0);
	TG_CHECK(strncmp(pt + 3, r.id, 12) == 0 && pt[15] == '_');
	TG_CHECK(in_alphabet(pt + 3, 12, TG_ID_ALPHABET));
	TG_CHECK(in_alphabet(pt + 16, 43, TG_SECRET_ALPHABET));
	TG_CHECK(model_id_valid(r.id));
	TG_CHECK_INT(keys_token_create(f.k, &ts, &tr, tok), 0);
	TG_CHECK_INT(strlen(tok), 6 + 12 + 1 + 43);
	TG_CHECK(strncmp(tok, "tgadm_", 6) == 0 && strncmp(tok + 6, tr.id, 12) == 0);
	TG_CHECK(in_alphabet(tok + 19, 43, TG_SECRET_ALPHABET));
	explicit_bzero(pt, sizeof(pt));
	explicit_bzero(tok, sizeof(tok));
	fx_close(&f);
}

static void t_parse_strict(void)
{
	struct fx f;
	struct key_record r;
	struct keys_auth a;
	char pt[TG_CRED_MAX], bad[TG_CRED_MAX + 8];
	unsigned long before;
	struct {
		const char *what;
		size_t pos; /* index to change, or SIZE_MAX for a length change */
		char c;
		int dlen; /* length change */
	} muts[] = {
		{"prefix tG_", 1, 'G', 0},
		{"prefix tk_", 1, 'k', 0},
		{"separator after prefix", 2, '-', 0},
		{"uppercase in id", 5, 'A', 0},
		{"punctuation in id", 8, '.', 0},
		{"separator before secret", 15, 'x', 0},
		{"punctuation in secret", 30, '-', 0},
		{"underscore in secret", 58, '_', 0},
		{"NUL in secret", 40, '\0', 0},
		{"one character short", SIZE_MAX, 0, -1},
		{"one character long", SIZE_MAX, 'a', 1},
	};

	TG_REQUIRE(fx_open(&f));
	TG_REQUIRE(mk_key(&f, "team:ml", NULL, NULL, &r, pt) == 0);
	before = keys_argon2_count();
	for (size_t i = 0; i < TG_ARRAY_SIZE(muts); i++) {
		size_t len = strlen(pt);

		memcpy(bad, pt, len + 1);
		if (muts[i].pos != SIZE_MAX) {
			bad[muts[i].pos] = muts[i].c;
		} else if (muts[i].dlen < 0) {
			len--;
		} else {
			bad[len++] = muts[i].c;
		}
		if (keys_verify(f.k, bad, len, KEYS_API, NULL, &a) != -EINVAL)
			printf("#   mutation \"%s\" was not -EINVAL\n", muts[i].what);
		TG_CHECK_INT(keys_verify(f.k, bad, len, KEYS_API, NULL, &a), -EINVAL);
	}
	TG_CHECK_INT(keys_verify(f.k, "", 0, KEYS_API, NULL, &a), -EINVAL);
	TG_CHECK_INT(keys_verify(f.k, NULL, 0, KEYS_API, NULL, &a), -EINVAL);
	TG_CHECK_INT(keys_verify(f.k, pt, strlen(pt), (enum keys_kind)7, NULL, &a), -EINVAL);
	/* malformed input is refused before any argon2 */
	TG_CHECK_INT(keys_argon2_count(), before);
	TG_CHECK_INT(keys_verify(f.k, pt, strlen(pt), KEYS_API, NULL, &a), 0);
	fx_close(&f);
}

static void t_kind_mismatch(void)
{
	struct fx f;
	struct key_record r;
	struct token_record tr;
	struct token_spec ts = {.name = "ops", .role = ROLE_ADMIN};
	char pt[TG_CRED_MAX], tok[TG_CRED_MAX];

	TG_REQUIRE(fx_open(&f));
	TG_REQUIRE(mk_key(&f, "team:ml", NULL, NULL, &r, pt) == 0);
	TG_REQUIRE(keys_token_create(f.k, &ts, &tr, tok) == 0);
	TG_CHECK_INT(verify_admin(&f, tok, NULL), 0);
	TG_CHECK_INT(verify(&f, pt, NULL), 0);
	/* an admin token is not an API key, even when both are cached */
	TG_CHECK_INT(verify(&f, tok, NULL), -EINVAL);
	/* an API key presented as admin token is a bootstrap candidate: no such token */
	TG_CHECK(verify_admin(&f, pt, NULL) < 0);
	TG_CHECK_INT(verify(&f, pt, NULL), 0);
	fx_close(&f);
}

/* ---- no secret at rest ---- */

static bool file_contains(const char *path, const void *needle, size_t n)
{
	struct stat st;
	char *buf;
	bool found = false;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) != 0) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	buf = malloc((size_t)st.st_size);
	if (buf && read(fd, buf, (size_t)st.st_size) == st.st_size)
		found = memmem(buf, (size_t)st.st_size, needle, n) != NULL;
	free(buf);
	close(fd);
	return found;
}

static void t_no_secret_at_rest(void)
{
	struct fx f;
	struct key_record r;
	struct token_record tr;
	struct token_spec ts = {.name = "ops", .role = ROLE_ADMIN};
	char pt[TG_CRED_MAX], rot[TG_CRED_MAX], tok[TG_CRED_MAX], path[128];
	const char *boot = "operator-chosen-bootstrap-secret-0123456789";

	TG_REQUIRE(fx_open(&f));
	TG_REQUIRE(mk_key(&f, "team:ml", NULL, NULL, &r, pt) == 0);
	TG_REQUIRE(keys_rotate(f.k, r.id, -1, &r, rot) == 0);
	TG_REQUIRE(keys_token_create(f.k, &ts, &tr, tok) == 0);
	TG_REQUIRE(keys_bootstrap(f.k, boot, NULL, NULL) == 0);
	TG_CHECK_INT(verify(&f, rot, NULL), 0);
	keys_close(f.k);
	store_close(f.s);
	f.k = NULL;
	f.s = NULL;
	snprintf(path, sizeof(path), "%s/data.mdb", f.dir);
	/* the scan works: the public id is there */
	TG_CHECK(file_contains(path, r.id, TG_ID_LEN));
	TG_CHECK(!file_contains(path, pt, strlen(pt)));
	TG_CHECK(!file_contains(path, pt + 16, TG_SECRET_LEN));
	TG_CHECK(!file_contains(path, rot + 16, TG_SECRET_LEN));
	TG_CHECK(!file_contains(path, tok + 19, TG_SECRET_LEN));
	TG_CHECK(!file_contains(path, boot, strlen(boot)));
	fx_close(&f);
}

/* ---- verification ---- */

static void t_verify_ok(void)
{
	struct fx f;
	struct key_record r;
	struct keys_auth a;
	struct key_spec s = {.name = "bot", .owner = "team:ml", .service = "chat",
			     .tier = "premium"};
	struct limits want;
	char pt[TG_CRED_MAX];

	TG_REQUIRE(fx_open(&f));
	limits_clear(&s.overrides);
	s.overrides.v[LIMIT_BURST] = 7;
	TG_REQUIRE(keys_create(f.k, &s, &r, pt) == 0);
	TG_CHECK_STR(r.tier, "premium");
	TG_CHECK_INT(r.created_at, T0_UNIX);
	TG_CHECK_INT(verify(&f, pt, &a), 0);
	TG_CHECK_STR(a.id, r.id);
	TG_CHECK_STR(a.owner, "team:ml");
	TG_CHECK_STR(a.service, "chat");
	TG_CHECK_STR(a.tier, "premium");
	TG_CHECK(!a.via_previous);
	limits_merge(&model_default_tiers[1].lim, &s.overrides, &want);
	TG_CHECK(memcmp(&a.limits, &want, sizeof(want)) == 0);
	TG_CHECK_INT(a.limits.v[LIMIT_BURST], 7);
	/* the defaults: service "default", tier "basic" */
	TG_REQUIRE(mk_key(&f, "user:bo", NULL, NULL, &r, pt) == 0);
	TG_CHECK_INT(verify(&f, pt, &a), 0);
	TG_CHECK_STR(a.service, "default");
	TG_CHECK_STR(a.tier, "basic");
	TG_CHECK(memcmp(&a.limits, &model_default_tiers[0].lim, sizeof(a.limits)) == 0);
	fx_close(&f);
}

static void t_wrong_secret(void)
{
	struct fx f;
	struct key_record r;
	char pt[TG_CRED_MAX], bad[TG_CRED_MAX];

	TG_REQUIRE(fx_open(&f));
	TG_REQUIRE(mk_key(&f, "team:ml", NULL, NULL, &r, pt) == 0);
	wrong_secret(pt, bad, 'Q');
	TG_CHECK_INT(verify(&f, bad, NULL), -EACCES);
	TG_CHECK_INT(verify(&f, pt, NULL), 0);
	fx_close(&f);
}

static void t_unknown_id(void)
{
	struct fx f;
	struct key_record r;
	char pt[TG_CRED_MAX];
	unsigned long before;

	TG_REQUIRE(fx_open(&f));
	TG_REQUIRE(mk_key(&f, "team:ml", NULL, NULL, &r, pt) == 0);
	memcpy(pt + 3, r.id[0] == 'a' ? "bbbbbbbbbbbb" : "aaaaaaaaaaaa", 12);
	before = keys_argon2_count();
	TG_CHECK_INT(verify(&f, pt, NULL), -ENOENT);
	TG_CHECK_INT(keys_argon2_count(), before);
	fx_close(&f);
}

static void t_cache_no_argon2(void)
{
	struct fx f;
	struct key_record r;
	char pt[TG_CRED_MAX];
	unsigned long before;

	TG_REQUIRE(fx_open(&f));
	TG_REQUIRE(mk_key(&f, "team:ml", NULL, NULL, &r, pt) == 0);
	before = keys_argon2_count();
	TG_CHECK_INT(verify(&f, pt, NULL), 0);
	TG_CHECK_INT(keys_argon2_count(), before + 1);
	for (int i = 0; i < 100; i++)
		TG_CHECK_INT(verify(&f, pt, NULL), 0);
	TG_CHECK_INT(keys_argon2_count(), before + 1);
	fx_close(&f);
}

static void t_revoke(void)
{
	struct fx f;
	struct key_record r, got;
	char pt[TG_CRED_MAX];

	TG_REQUIRE(fx_open(&f));
	TG_REQUIRE(mk_key(&f, "team:ml", NULL, NULL, &r, pt) == 0);
	TG_CHECK_INT(verify(&f, pt, NULL), 0);
	fake_unix += 5;
	TG_CHECK_INT(keys_revoke(f.k, r.id, &got), 0);
	TG_CHECK_INT(got.revoked_at, T0_UNIX + 5);
	TG_CHECK_INT(verify(&f, pt, NULL), -EKEYREVOKED);
	TG_CHECK_INT(keys_revoke(f.k, r.id, &got), -EKEYREVOKED);
	TG_CHECK_INT(keys_revoke(f.k, "zzzzzzzzzzzz", &got), -ENOENT);
	TG_CHECK_INT(keys_get(f.k, r.id, &got), 0);
	TG_CHECK_INT(key_status_at(&got, fake_unix), KEY_REVOKED);
	fx_close(&f);
}

static void t_expiry(void)
{
	struct fx f;
	struct key_record r;
	struct key_spec s = {.name = "tmp", .owner = "team:ml", .expires_at = T0_UNIX + 100};
	char pt[TG_CRED_MAX];

	TG_REQUIRE(fx_open(&f));
	limits_clear(&s.overrides);
	TG_REQUIRE(keys_create(f.k, &s, &r, pt) == 0);
	TG_CHECK_INT(verify(&f, pt, NULL), 0);
	fake_unix += 99;
	TG_CHECK_INT(verify(&f, pt, NULL), 0);
	fake_unix += 1;
	TG_CHECK_INT(verify(&f, pt, NULL), -EKEYEXPIRED);
	s.expires_at = fake_unix;
	TG_CHECK_INT(keys_create(f.k, &s, &r, pt), -EINVAL);
	fx_close(&f);
}

static void t_rotation_grace(void)
{
	struct fx f;
	struct key_record r, r2;
	struct keys_auth a;
	char old[TG_CRED_MAX], cur[TG_CRED_MAX];
	unsigned long before;

	TG_REQUIRE(fx_open(&f));
	TG_REQUIRE(mk_key(&f, "team:ml", NULL, NULL, &r, old) == 0);
	TG_CHECK_INT(verify(&f, old, NULL), 0); /* cached before the rotation */
	TG_REQUIRE(keys_rotate(f.k, r.id, 600, &r2, cur) == 0);
	TG_CHECK_STR(r2.id, r.id);
	TG_CHECK(strcmp(old, cur) != 0);
	TG_CHECK_INT(r2.secret_gen, r.secret_gen + 1);
	TG_CHECK_INT(r2.rotated_at, T0_UNIX);
	TG_CHECK_INT(r2.prev_valid_until, T0_UNIX + 600);
	TG_CHECK_INT(verify(&f, cur, &a), 0);
	TG_CHECK(!a.via_previous);
	before = keys_argon2_count();
	TG_CHECK_INT(verify(&f, old, &a), 0);
	TG_CHECK(a.via_previous);
	TG_CHECK_INT(keys_argon2_count(), before); /* still a cache hit */
	fake_unix += 599;
	TG_CHECK_INT(verify(&f, old, NULL), 0);
	fake_unix += 1;
	TG_CHECK_INT(verify(&f, old, NULL), -EACCES);
	TG_CHECK_INT(verify(&f, cur, NULL), 0);
	/* a previous secret never seen before the rotation is checked by argon2, same rule */
	TG_REQUIRE(mk_key(&f, "team:ml", NULL, NULL, &r, old) == 0);
	TG_REQUIRE(keys_rotate(f.k, r.id, -1, &r2, cur) == 0);
	TG_CHECK_INT(r2.prev_valid_until, fake_unix + f.o.rotation_grace_sec);
	TG_CHECK_INT(verify(&f, old, &a), 0);
	TG_CHECK(a.via_previous);
	/* grace 0: the old secret stops at once */
	TG_REQUIRE(keys_rotate(f.k, r.id, 0, &r2, old) == 0);
	TG_CHECK_INT(verify(&f, cur, NULL), -EACCES);
	TG_CHECK_INT(verify(&f, old, NULL), 0);
	fx_close(&f);
}

static void t_rotation_twice(void)
{
	struct fx f;
	struct key_record r;
	struct keys_auth a;
	char k1[TG_CRED_MAX], k2[TG_CRED_MAX], k3[TG_CRED_MAX];

	TG_REQUIRE(fx_open(&f));
	TG_REQUIRE(mk_key(&f, "team:ml", NULL, NULL, &r, k1) == 0);
	TG_CHECK_INT(verify(&f, k1, NULL), 0);
	TG_REQUIRE(keys_rotate(f.k, r.id, 3600, &r, k2) == 0);
	TG_CHECK_INT(verify(&f, k2, NULL), 0);
	TG_CHECK_INT(verify(&f, k1, NULL), 0);
	fake_unix += 10;
	TG_REQUIRE(keys_rotate(f.k, r.id, 3600, &r, k3) == 0);
	TG_CHECK_INT(verify(&f, k1, NULL), -EACCES); /* its grace ended with the second rotation */
	TG_CHECK_INT(verify(&f, k2, &a), 0);
	TG_CHECK(a.via_previous);
	TG_CHECK_INT(verify(&f, k3, &a), 0);
	TG_CHECK(!a.via_previous);
	TG_CHECK_INT(r.prev_valid_until, fake_unix + 3600);
	fx_close(&f);
}

static void t_rotation_khash(void)
{
	struct fx f;
	struct key_record r, r2;
	char pt[TG_CRED_MAX], pt2[TG_CRED_MAX];
	const uint8_t *sec;

	TG_REQUIRE(fx_open(&f));
	sec = store_hash_secret(f.s);
	TG_REQUIRE(mk_key(&f, "team:ml", NULL, NULL, &r, pt) == 0);
	TG_CHECK(r.khash_cur == tg_siphash64(sec, pt, strlen(pt)));
	TG_CHECK(r.khash_prev == 0);
	TG_REQUIRE(keys_rotate(f.k, r.id, -1, &r2, pt2) == 0);
	TG_CHECK(r2.khash_cur == tg_siphash64(sec, pt2, strlen(pt2)));
	TG_CHECK(r2.khash_prev == r.khash_cur);
	TG_CHECK(r2.khash_cur != r.khash_cur);
	TG_CHECK_INT(keys_get(f.k, r.id, &r), 0);
	TG_CHECK(r.khash_prev == r2.khash_prev && r.khash_cur == r2.khash_cur);
	fx_close(&f);
}

static void t_rotate_refused(void)
{
	struct fx f;
	struct key_record r;
	struct key_spec s = {.name = "tmp", .owner = "team:ml", .expires_at = T0_UNIX + 10};
	char pt[TG_CRED_MAX], pt2[TG_CRED_MAX];

	TG_REQUIRE(fx_open(&f));
	limits_clear(&s.overrides);
	TG_REQUIRE(keys_create(f.k, &s, &r, pt) == 0);
	fake_unix += 10;
	TG_CHECK_INT(keys_rotate(f.k, r.id, -1, &r, pt2), -EKEYEXPIRED);
	TG_CHECK_INT(pt2[0], 0); /* wiped on failure */
	TG_REQUIRE(mk_key(&f, "team:ml", NULL, NULL, &r, pt) == 0);
	TG_REQUIRE(keys_revoke(f.k, r.id, NULL) == 0);
	TG_CHECK_INT(keys_rotate(f.k, r.id, -1, &r, pt2), -EKEYREVOKED);
	TG_CHECK_INT(keys_rotate(f.k, "nonexistent0", -1, &r, pt2), -ENOENT);
	TG_CHECK_INT(verify(&f, pt, NULL), -EKEYREVOKED);
	fx_close(&f);
}

/* ---- throttles ---- */

static void t_negative_cache(void)
{
	struct fx f;
	struct key_record r;
	char pt[TG_CRED_MAX], bad[TG_CRED_MAX];
	unsigned long before;

	TG_REQUIRE(fx_open(&f));
	TG_REQUIRE(mk_key(&f, "team:ml", NULL, NULL, &r, pt) == 0);
	wrong_secret(pt, bad, 'Z');
	before = keys_argon2_count();
	TG_CHECK_INT(verify(&f, bad, NULL), -EACCES);
	TG_CHECK_INT(keys_argon2_count(), before + 1);
	for (int i = 0; i < 20; i++)
		TG_CHECK_INT(verify(&f, bad, NULL), -EACCES);
	TG_CHECK_INT(keys_argon2_count(), before + 1);
	/* remembered for fail_window_sec, then verified again */
	fake_mono += (int64_t)f.o.fail_window_sec * SEC;
	TG_CHECK_INT(verify(&f, bad, NULL), -EACCES);
	TG_CHECK_INT(keys_argon2_count(), before + 2);
	fx_close(&f);
}

static void t_per_id_lockout(void)
{
	struct fx f;
	struct key_record r;
	struct keys_auth a;
	char old[TG_CRED_MAX], cur[TG_CRED_MAX], bad[TG_CRED_MAX];
	unsigned long before;

	TG_REQUIRE(fx_open(&f));
	TG_REQUIRE(mk_key(&f, "team:ml", NULL, NULL, &r, old) == 0);
	TG_CHECK_INT(verify(&f, old, NULL), 0);	/* the user's working key, cached */
	TG_REQUIRE(keys_rotate(f.k, r.id, 3600, &r, cur) == 0); /* a valid secret not yet seen */
	for (uint32_t i = 0; i < f.o.fail_limit; i++) {
		wrong_secret(old, bad, (char)('a' + i));
		TG_CHECK_INT(verify(&f, bad, NULL), -EACCES);
		fake_mono += SEC;
	}
	before = keys_argon2_count();
	wrong_secret(old, bad, 'z');
	TG_CHECK_INT(verify(&f, bad, &a), -EAGAIN);
	TG_CHECK_INT(a.retry_after_sec, f.o.fail_window_sec - f.o.fail_limit);
	/* a cache miss for this id, even with the right secret, waits too ... */
	TG_CHECK_INT(verify(&f, cur, &a), -EAGAIN);
	TG_CHECK(a.retry_after_sec > 0);
	/* ... but the cached working key still verifies: no lock-out of the real user */
	TG_CHECK_INT(verify(&f, old, &a), 0);
	TG_CHECK(a.via_previous);
	TG_CHECK_INT(keys_argon2_count(), before);
	/* the window passes: verification resumes */
	fake_mono += (int64_t)(f.o.fail_window_sec - f.o.fail_limit) * SEC;
	TG_CHECK_INT(verify(&f, cur, &a), 0);
	TG_CHECK(!a.via_previous);
	fx_close(&f);
}

/* An address as a socket address: IPv6 if it has a ':' in it, else IPv4. */
static struct sockaddr_storage peer(const char *addr)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;

	if (strchr(addr, ':')) {
		in6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, addr, &in6->sin6_addr);
	} else {
		in->sin_family = AF_INET;
		inet_pton(AF_INET, addr, &in->sin_addr);
	}
	return ss;
}

/* Locks (id, peer) out with fail_limit wrong secrets from peer, a second apart. */
static void lock_out(struct fx *f, const char *pt, const struct sockaddr_storage *peer)
{
	char bad[TG_CRED_MAX];

	for (uint32_t i = 0; i < f->o.fail_limit; i++) {
		wrong_secret(pt, bad, (char)('a' + i));
		TG_CHECK_INT(verify_from(f, bad, peer ? (const struct sockaddr *)peer : NULL, NULL),
			     -EACCES);
		fake_mono += SEC;
	}
}

static void t_per_source_lockout(void)
{
	struct sockaddr_storage attacker = peer("192.0.2.7"), owner = peer("198.51.100.9"),
				mapped = peer("::ffff:192.0.2.7"), v6a = peer("2001:db8:1:2::10"),
				v6b = peer("2001:db8:1:2:ffff::1"), v6c = peer("2001:db8:1:3::10"),
				unknown = {0};
	struct key_record r;
	struct keys_auth a;
	char pt[TG_CRED_MAX];
	struct fx f;

	TG_REQUIRE(fx_open(&f));
	TG_REQUIRE(mk_key(&f, "team:ml", NULL, NULL, &r, pt) == 0);
	lock_out(&f, pt, &attacker);
	/* the right secret, never verified, from the attacker's address: throttled ... */
	TG_CHECK_INT(verify_from(&f, pt, (const struct sockaddr *)&attacker, &a), -EAGAIN);
	TG_CHECK(a.retry_after_sec > 0);
	/* ... and from the same host as a v4-mapped IPv6 address ... */
	TG_CHECK_INT(verify_from(&f, pt, (const struct sockaddr *)&mapped, NULL), -EAGAIN);
	/* ... but the key's owner elsewhere is not locked out by someone else's guesses */
	TG_CHECK_INT(verify_from(&f, pt, (const struct sockaddr *)&owner, &a), 0);
	TG_CHECK_STR(a.id, r.id);
	fx_close(&f);

	/* IPv6 counts by /64: another address of the same /64 is the same source */
	TG_REQUIRE(fx_open(&f));
	TG_REQUIRE(mk_key(&f, "team:ml", NULL, NULL, &r, pt) == 0);
	lock_out(&f, pt, &v6a);
	TG_CHECK_INT(verify_from(&f, pt, (const struct sockaddr *)&v6b, NULL), -EAGAIN);
	TG_CHECK_INT(verify_from(&f, pt, (const struct sockaddr *)&v6c, NULL), 0);
	fx_close(&f);

	/* no address, or one of no known family, is one shared source, throttled like any other */
	TG_REQUIRE(fx_open(&f));
	TG_REQUIRE(mk_key(&f, "team:ml", NULL, NULL, &r, pt) == 0);
	lock_out(&f, pt, NULL);
	TG_CHECK_INT(verify_from(&f, pt, (const struct sockaddr *)&unknown, NULL), -EAGAIN);
	TG_CHECK_INT(verify_from(&f, pt, (const struct sockaddr *)&owner, NULL), 0);
	fx_close(&f);
}

static void t_global_budget(void)
{
	struct fx f;
	struct keys_opts o;
	struct key_record r[4];
	struct keys_auth a;
	char pt[4][TG_CRED_MAX], bad[TG_CRED_MAX];
	unsigned long before;

	fx_opts(&o);
	o.argon2_per_sec = 3;
	TG_REQUIRE(fx_open_with(&f, &o));
	for (int i = 0; i < 4; i++)
		TG_REQUIRE(mk_key(&f, "team:ml", NULL, NULL, &r[i], pt[i]) == 0);
	for (int i = 0; i < 3; i++) {
		wrong_secret(pt[i], bad, 'Y');
		TG_CHECK_INT(verify(&f, bad, NULL), -EACCES);
	}
	before = keys_argon2_count();
	TG_CHECK_INT(verify(&f, pt[3], &a), -EAGAIN);
	TG_CHECK_INT(a.retry_after_sec, 1);
	TG_CHECK_INT(keys_argon2_count(), before);
	/* a third of a second later one verification is back */
	fake_mono += SEC / 3 + 1;
	TG_CHECK_INT(verify(&f, pt[3], NULL), 0);
	TG_CHECK_INT(verify(&f, pt[2], NULL), -EAGAIN);
	fake_mono += SEC;
	TG_CHECK_INT(verify(&f, pt[2], NULL), 0);
	TG_CHECK_INT(verify(&f, pt[1], NULL), 0);
	/* cached keys are not charged */
	for (int i = 0; i < 10; i++)
		TG_CHECK_INT(verify(&f, pt[3], NULL), 0);
	fx_close(&f);
}

/* ---- changes ---- */

static void t_create_invalid(void)
{
	struct fx f;
	struct key_record r;
	struct key_spec s = {.name = "x", .owner = "team:ml"};
	char pt[TG_CRED_MAX];
	struct {
		const char *what;
		struct key_spec s;
		int rc;
	} rows[] = {
		{"no name", {.owner = "team:ml"}, -EINVAL},
		{"no owner", {.name = "x"}, -EINVAL},
		{"owner without kind", {.name = "x", .owner = "ml"}, -EINVAL},
		{"owner of unknown kind", {.name = "x", .owner = "group:ml"}, -EINVAL},
		{"bad service", {.name = "x", .owner = "team:ml", .service = "a b"}, -EINVAL},
		{"bad tier name", {.name = "x", .owner = "team:ml", .tier = "Basic!"}, -EINVAL},
		{"unknown tier", {.name = "x", .owner = "team:ml", .tier = "gold"}, -ESRCH},
		{"expired already", {.name = "x", .owner = "team:ml", .expires_at = 1}, -EINVAL},
	};

	TG_REQUIRE(fx_open(&f));
	for (size_t i = 0; i < TG_ARRAY_SIZE(rows); i++) {
		int rc;

		limits_clear(&rows[i].s.overrides);
		pt[0] = 'x';
		rc = keys_create(f.k, &rows[i].s, &r, pt);
		if (rc != rows[i].rc)
			printf("#   row \"%s\": %d\n", rows[i].what, rc);
		TG_CHECK_INT(rc, rows[i].rc);
		TG_CHECK_INT(pt[0], 0);
	}
	limits_clear(&s.overrides);
	s.overrides.v[LIMIT_BURST] = 0; /* below the minimum */
	TG_CHECK_INT(keys_create(f.k, &s, &r, pt), -EINVAL);
	TG_CHECK_INT(keys_count(f.k), 0);
	fx_close(&f);
}

struct owner_ctx {
	const char *owner;
	struct owner_record o;
};

static int owner_txn(struct store_txn *t, void *arg)
{
	struct owner_ctx *c = arg;
	uint8_t buf[MODEL_OWNER_MAX];
	size_t len;
	int rc = store_get(t, STORE_DB_OWNERS, c->owner, strlen(c->owner), buf, sizeof(buf), &len);

	return rc ? rc : owner_record_decode(buf, len, &c->o);
}

static void t_owner_record(void)
{
	struct fx f;
	struct key_record r;
	struct owner_ctx c = {.owner = "team:ml"};
	char pt[TG_CRED_MAX];

	TG_REQUIRE(fx_open(&f));
	TG_REQUIRE(mk_key(&f, "team:ml", NULL, NULL, &r, pt) == 0);
	fake_unix += 50;
	TG_REQUIRE(mk_key(&f, "team:ml", NULL, NULL, &r, pt) == 0);
	TG_REQUIRE(keys_revoke(f.k, r.id, NULL) == 0);
	TG_REQUIRE(mk_key(&f, "user:x", NULL, NULL, &r, pt) == 0);
	TG_CHECK_INT(store_read(f.s, owner_txn, &c), 0);
	TG_CHECK_STR(c.o.owner, "team:ml");
	TG_CHECK_INT(c.o.created_at, T0_UNIX);
	TG_CHECK_INT(c.o.keys, 2);
	c.owner = "user:x";
	TG_CHECK_INT(store_read(f.s, owner_txn, &c), 0);
	TG_CHECK_INT(c.o.keys, 1);
	fx_close(&f);
}

static void t_update(void)
{
	struct fx f;
	struct key_record r, got;
	struct keys_auth a;
	struct key_spec s = {.name = "bot", .owner = "team:ml"};
	struct key_patch p = {.name = "bot2", .service = "embed", .tier = "enterprise",
			      .clear_mask = 1u << LIMIT_BURST, .set_expires = true,
			      .expires_at = T0_UNIX + 1000};
	char pt[TG_CRED_MAX];

	TG_REQUIRE(fx_open(&f));
	limits_clear(&s.overrides);
	s.overrides.v[LIMIT_BURST] = 5;
	s.overrides.v[LIMIT_RPM] = 100;
	TG_REQUIRE(keys_create(f.k, &s, &r, pt) == 0);
	TG_CHECK_INT(verify(&f, pt, &a), 0);
	TG_CHECK_INT(a.limits.v[LIMIT_BURST], 5);
	limits_clear(&p.set);
	p.set.v[LIMIT_TPM] = 9000;
	TG_CHECK_INT(keys_update(f.k, r.id, &p, &got), 0);
	TG_CHECK_STR(got.name, "bot2");
	TG_CHECK_STR(got.service, "embed");
	TG_CHECK_STR(got.tier, "enterprise");
	TG_CHECK_STR(got.owner, "team:ml");
	TG_CHECK_INT(got.expires_at, T0_UNIX + 1000);
	TG_CHECK(got.overrides.v[LIMIT_BURST] == LIMIT_UNSET);
	TG_CHECK_INT(got.overrides.v[LIMIT_RPM], 100); /* untouched */
	TG_CHECK_INT(got.overrides.v[LIMIT_TPM], 9000);
	/* the cached verification sees the change at once */
	TG_CHECK_INT(verify(&f, pt, &a), 0);
	TG_CHECK_STR(a.tier, "enterprise");
	TG_CHECK_STR(a.service, "embed");
	TG_CHECK_INT(a.limits.v[LIMIT_BURST], model_default_tiers[2].lim.v[LIMIT_BURST]);
	TG_CHECK_INT(a.limits.v[LIMIT_TPM], 9000);
	/* a patch of nothing but set_expires with 0 removes the expiry, nothing else */
	memset(&p, 0, sizeof(p));
	limits_clear(&p.set);
	p.set_expires = true;
	TG_CHECK_INT(keys_update(f.k, r.id, &p, &got), 0);
	TG_CHECK_INT(got.expires_at, 0);
	TG_CHECK_STR(got.name, "bot2");
	TG_CHECK_INT(got.overrides.v[LIMIT_TPM], 9000);
	fx_close(&f);
}

static void t_update_refused(void)
{
	struct fx f;
	struct key_record r, got, before;
	struct key_spec s = {.name = "bot", .owner = "team:ml"};
	char pt[TG_CRED_MAX];
	struct {
		const char *what;
		struct key_patch p;
		enum limit_field f; /* a field of p.set to give v */
		uint64_t v;
		int rc;
	} rows[] = {
		{"unknown tier", {.tier = "gold"}, LIMIT_RPM, LIMIT_UNSET, -ESRCH},
		{"invalid tier name", {.tier = "Gold!"}, LIMIT_RPM, LIMIT_UNSET, -EINVAL},
		{"invalid name", {.name = ""}, LIMIT_RPM, LIMIT_UNSET, -EINVAL},
		{"invalid service", {.service = "a/b"}, LIMIT_RPM, LIMIT_UNSET, -EINVAL},
		{"limit below its minimum", {.name = "x"}, LIMIT_RPS, 0, -EINVAL},
		{"set and cleared at once", {.clear_mask = 1u << LIMIT_RPS}, LIMIT_RPS, 1000, -EINVAL},
		{"unknown field cleared", {.clear_mask = 1u << LIMIT__COUNT}, LIMIT_RPM, LIMIT_UNSET,
		 -EINVAL},
		{"expiry in the past", {.set_expires = true, .expires_at = T0_UNIX - 1}, LIMIT_RPM,
		 LIMIT_UNSET, -EINVAL},
	};

	TG_REQUIRE(fx_open(&f));
	limits_clear(&s.overrides);
	TG_REQUIRE(keys_create(f.k, &s, &r, pt) == 0);
	TG_REQUIRE(keys_get(f.k, r.id, &before) == 0);
	for (size_t i = 0; i < TG_ARRAY_SIZE(rows); i++) {
		int rc;

		limits_clear(&rows[i].p.set);
		rows[i].p.set.v[rows[i].f] = rows[i].v;
		rc = keys_update(f.k, r.id, &rows[i].p, &got);
		if (rc != rows[i].rc)
			printf("#   row \"%s\": %d\n", rows[i].what, rc);
		TG_CHECK_INT(rc, rows[i].rc);
	}
	TG_CHECK_INT(keys_get(f.k, r.id, &got), 0);
	TG_CHECK(memcmp(&got, &before, sizeof(got)) == 0); /* nothing changed */
	rows[0].p.tier = NULL;
	TG_CHECK_INT(keys_update(f.k, "nonexistent0", &rows[0].p, &got), -ENOENT);
	TG_CHECK_INT(keys_update(f.k, "bad id", &rows[0].p, &got), -EINVAL);
	TG_REQUIRE(keys_revoke(f.k, r.id, NULL) == 0);
	rows[0].p.name = "again";
	TG_CHECK_INT(keys_update(f.k, r.id, &rows[0].p, &got), -EKEYREVOKED);
	fx_close(&f);
}

/* Five keys: team:a x3 (two "chat"), team:b x2 (premium, one "chat", revoked). */
static bool list_fixture(struct fx *f, char ids[5][TG_ID_LEN + 1])
{
	static const struct {
		const char *owner, *service, *tier;
	} mk[5] = {
		{"team:a", "chat", NULL}, {"team:a", "chat", NULL}, {"team:a", NULL, NULL},
		{"team:b", NULL, "premium"}, {"team:b", "chat", "premium"},
	};
	struct key_record r;
	char pt[TG_CRED_MAX];

	if (!fx_open(f))
		return false;
	for (int i = 0; i < 5; i++) {
		if (mk_key(f, mk[i].owner, mk[i].service, mk[i].tier, &r, pt))
			return false;
		memcpy(ids[i], r.id, TG_ID_LEN + 1);
	}
	return keys_revoke(f->k, ids[4], NULL) == 0;
}

static void t_list_filters(void)
{
	struct fx f;
	struct key_record out[8];
	char ids[5][TG_ID_LEN + 1];
	size_t n;
	bool more;
	struct {
		struct keys_filter f;
		size_t n;
		int only; /* index of the only match, or -1 */
	} rows[] = {
		{{.status = -1}, 5, -1},
		{{.owner = "team:a", .status = -1}, 3, -1},
		{{.service = "chat", .status = -1}, 3, -1},
		{{.tier = "premium", .status = -1}, 2, -1},
		{{.status = KEY_REVOKED}, 1, 4},
		{{.owner = "team:b", .status = KEY_ACTIVE}, 1, 3},
		{{.owner = "team:b", .service = "chat", .tier = "basic", .status = -1}, 0, -1},
	};

	TG_REQUIRE(list_fixture(&f, ids));
	for (size_t i = 0; i < TG_ARRAY_SIZE(rows); i++) {
		TG_CHECK_INT(keys_list(f.k, &rows[i].f, NULL, 8, out, &n, &more), 0);
		TG_CHECK_INT(n, rows[i].n);
		TG_CHECK(!more);
		if (rows[i].only >= 0 && n == 1)
			TG_CHECK_STR(out[0].id, ids[rows[i].only]);
	}
	TG_CHECK_INT(keys_list(f.k, NULL, NULL, 8, out, &n, &more), 0);
	TG_CHECK_INT(n, 5);
	rows[0].f.status = 3;
	TG_CHECK_INT(keys_list(f.k, &rows[0].f, NULL, 8, out, &n, &more), -EINVAL);
	fx_close(&f);
}

static void t_list_pages(void)
{
	struct fx f;
	struct key_record out[8];
	struct keys_filter flt = {.status = -1};
	char ids[5][TG_ID_LEN + 1], after[TG_ID_LEN + 1] = "";
	size_t n, total = 0;
	bool more;

	TG_REQUIRE(list_fixture(&f, ids));
	/* pages of two, in id order, every key once, has_more until the last */
	do {
		TG_REQUIRE(keys_list(f.k, &flt, after, 2, out, &n, &more) == 0);
		for (size_t i = 0; i < n; i++) {
			TG_CHECK(strcmp(out[i].id, after) > 0);
			memcpy(after, out[i].id, sizeof(after));
			TG_CHECK(out[i].cur.t_cost == 0); /* hashes stay inside the registry */
		}
		total += n;
		TG_CHECK(more == (total < 5));
	} while (more && total < 10);
	TG_CHECK_INT(total, 5);
	/* exactly as many as the limit: no more; a limit of 0 only says whether any match */
	TG_CHECK_INT(keys_list(f.k, &flt, "", 5, out, &n, &more), 0);
	TG_CHECK_INT(n, 5);
	TG_CHECK(!more);
	TG_CHECK_INT(keys_list(f.k, &flt, NULL, 0, NULL, &n, &more), 0);
	TG_CHECK_INT(n, 0);
	TG_CHECK(more);
	/* a filtered page stops at the limit and resumes after its last id */
	flt.owner = "team:a";
	TG_CHECK_INT(keys_list(f.k, &flt, NULL, 2, out, &n, &more), 0);
	TG_CHECK(n == 2 && more);
	TG_CHECK_INT(keys_list(f.k, &flt, out[1].id, 2, out, &n, &more), 0);
	TG_CHECK(n == 1 && !more);
	fx_close(&f);
}

/* ---- tiers ---- */

static void t_tiers(void)
{
	struct fx f;
	struct tier t = model_default_tiers[0], got, list[8];
	char in_use[TG_TIER_NAME_MAX + 1] = "", pt[TG_CRED_MAX];
	struct key_record r;
	size_t n;

	TG_REQUIRE(fx_open(&f));
	TG_CHECK_INT(keys_tiers_list(f.k, list, 8, &n), 0);
	TG_CHECK_INT(n, 3);
	TG_CHECK_STR(list[0].name, "basic");
	TG_CHECK_STR(list[1].name, "enterprise");
	TG_CHECK_STR(list[2].name, "premium");
	snprintf(t.name, sizeof(t.name), "gold");
	t.lim.v[LIMIT_BURST] = 77;
	TG_CHECK_INT(keys_tier_put(f.k, &t), 0);
	TG_CHECK_INT(keys_tier_get(f.k, "gold", &got), 0);
	TG_CHECK_INT(got.lim.v[LIMIT_BURST], 77);
	TG_CHECK_INT(keys_tier_get(f.k, "silver", &got), -ESRCH);
	t.lim.v[LIMIT_RPM] = LIMIT_UNSET;
	TG_CHECK_INT(keys_tier_put(f.k, &t), -EINVAL);
	t.lim.v[LIMIT_RPM] = 0;
	t.lim.v[LIMIT_RPS] = 0; /* rps must be > 0 */
	TG_CHECK_INT(keys_tier_put(f.k, &t), -EINVAL);
	t.lim.v[LIMIT_RPS] = 5000;
	snprintf(t.name, sizeof(t.name), "Gold");
	TG_CHECK_INT(keys_tier_put(f.k, &t), -EINVAL);
	/* gold used by a revoked key: still in use */
	TG_REQUIRE(mk_key(&f, "team:ml", NULL, "gold", &r, pt) == 0);
	TG_REQUIRE(keys_revoke(f.k, r.id, NULL) == 0);
	TG_CHECK_INT(keys_tiers_replace(f.k, model_default_tiers, 3, in_use), -EBUSY);
	TG_CHECK_STR(in_use, "gold");
	TG_CHECK_INT(keys_tier_get(f.k, "gold", &got), 0);
	/* a set that keeps gold and drops enterprise (unused) is fine */
	list[0] = model_default_tiers[0];
	list[1] = got;
	TG_CHECK_INT(keys_tiers_replace(f.k, list, 2, in_use), 0);
	TG_CHECK_INT(keys_tiers_list(f.k, list, 8, &n), 0);
	TG_CHECK_INT(n, 2);
	TG_CHECK_STR(list[0].name, "basic");
	TG_CHECK_STR(list[1].name, "gold");
	TG_CHECK_INT(keys_tier_get(f.k, "enterprise", &got), -ESRCH);
	/* duplicates are refused */
	list[1] = list[0];
	TG_CHECK_INT(keys_tiers_replace(f.k, list, 2, in_use), -EINVAL);
	fx_close(&f);
}

static void t_tier_used_by_token(void)
{
	struct fx f;
	struct token_spec ts = {.name = "shop", .role = ROLE_CONSUMER, .consumer = "acme",
				.tier = "premium"};
	struct token_record tr;
	char in_use[TG_TIER_NAME_MAX + 1] = "", tok[TG_CRED_MAX];
	struct tier keep[2] = {model_default_tiers[0], model_default_tiers[2]};

	TG_REQUIRE(fx_open(&f));
	TG_REQUIRE(keys_token_create(f.k, &ts, &tr, tok) == 0);
	TG_CHECK_INT(keys_tiers_replace(f.k, keep, 2, in_use), -EBUSY);
	TG_CHECK_STR(in_use, "premium");
	keep[1] = model_default_tiers[1];
	TG_CHECK_INT(keys_tiers_replace(f.k, keep, 2, in_use), 0);
	fx_close(&f);
}

/* ---- admin tokens ---- */

static void t_token_specs(void)
{
	struct fx f;
	struct token_record tr;
	char tok[TG_CRED_MAX];
	struct {
		const char *what;
		struct token_spec s;
		int rc;
	} rows[] = {
		{"admin", {.name = "ops", .role = ROLE_ADMIN}, 0},
		{"viewer", {.name = "ro", .role = ROLE_VIEWER}, 0},
		{"consumer, default tier", {.name = "c", .role = ROLE_CONSUMER, .consumer = "acme"}, 0},
		{"consumer without consumer id", {.name = "c", .role = ROLE_CONSUMER}, -EINVAL},
		{"consumer with a bad consumer id",
		 {.name = "c", .role = ROLE_CONSUMER, .consumer = "a b"}, -EINVAL},
		{"consumer with an unknown tier",
		 {.name = "c", .role = ROLE_CONSUMER, .consumer = "acme", .tier = "gold"}, -ESRCH},
		{"viewer with a consumer id", {.name = "v", .role = ROLE_VIEWER, .consumer = "acme"},
		 -EINVAL},
		{"admin with a tier", {.name = "a", .role = ROLE_ADMIN, .tier = "basic"}, -EINVAL},
		{"unknown role", {.name = "x", .role = (enum token_role)9}, -EINVAL},
		{"no name", {.role = ROLE_ADMIN}, -EINVAL},
	};

	TG_REQUIRE(fx_open(&f));
	for (size_t i = 0; i < TG_ARRAY_SIZE(rows); i++) {
		int rc = keys_token_create(f.k, &rows[i].s, &tr, tok);

		if (rc != rows[i].rc)
			printf("#   row \"%s\": %d\n", rows[i].what, rc);
		TG_CHECK_INT(rc, rows[i].rc);
		if (rc == 0 && rows[i].s.role == ROLE_CONSUMER)
			TG_CHECK_STR(tr.tier, "basic");
		if (rc)
			TG_CHECK_INT(tok[0], 0); /* wiped */
	}
	TG_CHECK_INT(keys_token_count(f.k), 3);
	fx_close(&f);
}

static void t_tokens(void)
{
	struct fx f;
	struct token_spec ts = {.name = "ops", .role = ROLE_ADMIN};
	struct token_spec cs = {.name = "shop", .role = ROLE_CONSUMER, .consumer = "acme"};
	struct token_record tr, *all = NULL;
	struct keys_auth a;
	char adm[TG_CRED_MAX], view[TG_CRED_MAX], cons[TG_CRED_MAX], tmp[TG_CRED_MAX];
	size_t n = 0;

	TG_REQUIRE(fx_open(&f));
	TG_REQUIRE(keys_token_create(f.k, &ts, &tr, adm) == 0);
	ts.role = ROLE_VIEWER;
	TG_REQUIRE(keys_token_create(f.k, &ts, &tr, view) == 0);
	TG_REQUIRE(keys_token_create(f.k, &cs, &tr, cons) == 0);
	TG_CHECK_INT(verify_admin(&f, adm, &a), 0);
	TG_CHECK_INT(a.role, ROLE_ADMIN);
	TG_CHECK_INT(verify_admin(&f, view, &a), 0);
	TG_CHECK_INT(a.role, ROLE_VIEWER);
	TG_CHECK_INT(verify_admin(&f, cons, &a), 0);
	TG_CHECK_INT(a.role, ROLE_CONSUMER);
	TG_CHECK_STR(a.consumer, "acme");
	TG_CHECK_STR(a.tier, "basic");
	wrong_secret(adm, tmp, 'X');
	TG_CHECK_INT(verify_admin(&f, tmp, &a), -EACCES);
	TG_CHECK_INT(keys_token_list(f.k, &all, &n), 0);
	TG_CHECK_INT(n, 3);
	for (size_t i = 0; i < n; i++)
		TG_CHECK(all[i].hash.t_cost == 0 && all[i].last_used_at == T0_UNIX);
	free(all);
	memcpy(tmp, view + 6, TG_ID_LEN);
	tmp[TG_ID_LEN] = '\0';
	TG_CHECK_INT(keys_token_revoke(f.k, tmp, &tr), 0);
	TG_CHECK_INT(tr.revoked_at, T0_UNIX);
	TG_CHECK_INT(verify_admin(&f, view, &a), -EKEYREVOKED);
	TG_CHECK_INT(keys_token_revoke(f.k, tmp, &tr), -EKEYREVOKED);
	TG_CHECK_INT(keys_token_revoke(f.k, "zzzzzzzzzzzz", &tr), -ENOENT);
	fx_close(&f);
}

/* ---- bootstrap ---- */

static void t_bootstrap_env(void)
{
	struct fx f;
	struct keys_auth a;
	char gen[TG_CRED_MAX];
	bool made = true;
	const char *v1 = "correct-horse-battery-staple-0123456789";
	const char *v2 = "another-operator-chosen-admin-secret-42";
	unsigned long before;

	TG_REQUIRE(fx_open(&f));
	TG_CHECK_INT(keys_bootstrap(f.k, "too-short", gen, &made), -EINVAL);
	TG_CHECK_INT(keys_bootstrap(f.k, "with a space in it, long enough to pass", gen, &made),
		     -EINVAL);
	/* shaped like a tgadm_ token, it would never be looked up as the bootstrap token */
	TG_CHECK_INT(keys_bootstrap(f.k, "tgadm_abcdefghijkl_"
					 "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq",
				    gen, &made),
		     -EINVAL);
	TG_CHECK_INT(keys_bootstrap(f.k, v1, gen, &made), 0);
	TG_CHECK(!made);
	TG_CHECK_INT(keys_token_count(f.k), 1);
	TG_CHECK_INT(verify_admin(&f, v1, &a), 0);
	TG_CHECK_STR(a.id, TG_BOOTSTRAP_ID);
	TG_CHECK_INT(a.role, ROLE_ADMIN);
	/* the same value again: one argon2 to compare, nothing rewritten */
	before = keys_argon2_count();
	TG_CHECK_INT(keys_bootstrap(f.k, v1, gen, &made), 0);
	TG_CHECK_INT(keys_argon2_count(), before + 1);
	TG_CHECK_INT(verify_admin(&f, v1, &a), 0);
	/* a changed value replaces it: the old one fails at once, even though cached */
	TG_CHECK_INT(verify_admin(&f, v2, &a), -EACCES);
	TG_CHECK_INT(keys_bootstrap(f.k, v2, gen, &made), 0);
	TG_CHECK_INT(verify_admin(&f, v1, &a), -EACCES);
	TG_CHECK_INT(verify_admin(&f, v2, &a), 0); /* failed before, not remembered after */
	TG_CHECK_INT(keys_token_count(f.k), 1);
	/* with tokens existing and no env token, nothing happens */
	TG_CHECK_INT(keys_bootstrap(f.k, NULL, gen, &made), 0);
	TG_CHECK(!made);
	TG_CHECK_INT(keys_token_count(f.k), 1);
	fx_close(&f);
}

static void t_bootstrap_generated(void)
{
	struct fx f;
	struct keys_auth a;
	char gen[TG_CRED_MAX];
	bool made = false;

	TG_REQUIRE(fx_open(&f));
	TG_CHECK_INT(keys_bootstrap(f.k, NULL, gen, &made), 0);
	TG_CHECK(made);
	TG_CHECK_INT(strlen(gen), 62);
	TG_CHECK_INT(verify_admin(&f, gen, &a), 0);
	TG_CHECK_INT(a.role, ROLE_ADMIN);
	made = false;
	TG_CHECK_INT(keys_bootstrap(f.k, NULL, gen, &made), 0);
	TG_CHECK(!made);
	TG_CHECK_INT(keys_token_count(f.k), 1);
	explicit_bzero(gen, sizeof(gen));
	fx_close(&f);
}

/* ---- persistence ---- */

struct rec_ctx {
	const char *id;
	struct key_record r;
};

static int rec_txn(struct store_txn *t, void *arg)
{
	struct rec_ctx *c = arg;

	return keys_rec_get(t, c->id, &c->r);
}

static void t_last_used_flush(void)
{
	struct fx f;
	struct key_record r;
	struct rec_ctx c;
	char pt[TG_CRED_MAX];

	TG_REQUIRE(fx_open(&f));
	TG_REQUIRE(mk_key(&f, "team:ml", NULL, NULL, &r, pt) == 0);
	c.id = r.id;
	fake_unix += 30;
	TG_CHECK_INT(verify(&f, pt, NULL), 0);
	TG_CHECK_INT(keys_get(f.k, r.id, &r), 0);
	TG_CHECK_INT(r.last_used_at, T0_UNIX + 30); /* from memory */
	TG_CHECK_INT(store_read(f.s, rec_txn, &c), 0);
	TG_CHECK_INT(c.r.last_used_at, 0); /* not yet in the store */
	keys_tick(f.k);
	TG_CHECK_INT(store_read(f.s, rec_txn, &c), 0);
	TG_CHECK_INT(c.r.last_used_at, 0); /* not due yet */
	fake_mono += (int64_t)f.o.last_used_flush_sec * SEC;
	keys_tick(f.k);
	TG_CHECK_INT(store_read(f.s, rec_txn, &c), 0);
	TG_CHECK_INT(c.r.last_used_at, T0_UNIX + 30);
	fx_close(&f);
}

static void t_reopen(void)
{
	struct fx f;
	struct key_record r, r2, got;
	struct token_record tr;
	struct token_spec ts = {.name = "ops", .role = ROLE_CONSUMER, .consumer = "acme"};
	struct keys_auth a;
	struct tier t = model_default_tiers[0];
	char pt[TG_CRED_MAX], pt2[TG_CRED_MAX], old2[TG_CRED_MAX], tok[TG_CRED_MAX];
	unsigned long before;

	TG_REQUIRE(fx_open(&f));
	snprintf(t.name, sizeof(t.name), "gold");
	TG_REQUIRE(keys_tier_put(f.k, &t) == 0);
	TG_REQUIRE(mk_key(&f, "team:ml", "chat", "gold", &r, pt) == 0);
	TG_REQUIRE(mk_key(&f, "team:ml", NULL, NULL, &r2, old2) == 0);
	TG_REQUIRE(keys_rotate(f.k, r2.id, 600, &r2, pt2) == 0);
	TG_REQUIRE(keys_token_create(f.k, &ts, &tr, tok) == 0);
	fake_unix += 7;
	TG_CHECK_INT(verify(&f, pt, NULL), 0);
	TG_CHECK_INT(verify_admin(&f, tok, NULL), 0);
	keys_close(f.k);
	f.k = keys_open(f.s, &f.o);
	TG_REQUIRE(f.k != NULL);
	TG_CHECK_INT(keys_count(f.k), 2);
	TG_CHECK_INT(keys_token_count(f.k), 1);
	TG_CHECK_INT(keys_get(f.k, r.id, &got), 0);
	TG_CHECK_INT(got.last_used_at, T0_UNIX + 7);
	before = keys_argon2_count();
	TG_CHECK_INT(verify(&f, pt, &a), 0);
	TG_CHECK_INT(keys_argon2_count(), before + 1); /* a new process cache */
	TG_CHECK_STR(a.tier, "gold");
	TG_CHECK_STR(a.service, "chat");
	TG_CHECK_INT(verify(&f, old2, &a), 0);
	TG_CHECK(a.via_previous);
	TG_CHECK_INT(verify(&f, pt2, NULL), 0);
	TG_CHECK_INT(verify_admin(&f, tok, &a), 0);
	TG_CHECK_STR(a.consumer, "acme");
	TG_CHECK_INT(keys_tier_get(f.k, "gold", &t), 0);
	/* and the store alone, reopened, restores the same */
	keys_close(f.k);
	store_close(f.s);
	f.k = NULL;
	TG_REQUIRE(fx_store_open(&f));
	f.k = keys_open(f.s, &f.o);
	TG_REQUIRE(f.k != NULL);
	TG_CHECK_INT(keys_count(f.k), 2);
	TG_CHECK_INT(verify(&f, pt, NULL), 0);
	fx_close(&f);
}

/*
 * Per-limit actions alone (no value override) are the key's: verification gives them in the
 * effective limits, beside the tier's; PATCH sets and removes one; a reopen (the store's
 * format 4 records) restores them.
 */
static void t_actions_only_overrides(void)
{
	struct fx f;
	struct key_record r, up;
	struct keys_auth a;
	struct key_patch p;
	struct tier t = model_default_tiers[0];
	struct key_spec s = {.name = "bot", .owner = "team:ml", .tier = "gold"};
	char pt[TG_CRED_MAX];

	TG_REQUIRE(fx_open(&f));
	snprintf(t.name, sizeof(t.name), "gold");
	t.lim.act[LIMIT_TOKENS_MONTH] = LIMIT_ACT_QUEUE;
	TG_REQUIRE(keys_tier_put(f.k, &t) == 0);
	limits_clear(&s.overrides);
	s.overrides.act[LIMIT_TPM] = LIMIT_ACT_ALERT;
	TG_REQUIRE(keys_create(f.k, &s, &r, pt) == 0);
	TG_CHECK_INT(verify(&f, pt, &a), 0);
	TG_CHECK_INT(a.limits.act[LIMIT_TPM], LIMIT_ACT_ALERT);
	TG_CHECK_INT(a.limits.act[LIMIT_TOKENS_MONTH], LIMIT_ACT_QUEUE); /* the tier's */
	memset(&p, 0, sizeof(p));
	limits_clear(&p.set);
	p.clear_act_mask = 1u << LIMIT_TPM;
	p.set.act[LIMIT_COST_DAY] = LIMIT_ACT_DOWNGRADE;
	TG_REQUIRE(keys_update(f.k, r.id, &p, &up) == 0);
	TG_CHECK_INT(verify(&f, pt, &a), 0);
	TG_CHECK_INT(a.limits.act[LIMIT_TPM], 0);
	TG_CHECK_INT(a.limits.act[LIMIT_COST_DAY], LIMIT_ACT_DOWNGRADE);
	/* an action on a limit that takes none, or both set and cleared: refused */
	limits_clear(&p.set);
	p.clear_act_mask = 0;
	p.set.act[LIMIT_BURST] = LIMIT_ACT_ALERT;
	TG_CHECK_INT(keys_update(f.k, r.id, &p, &up), -EINVAL);
	p.set.act[LIMIT_BURST] = 0;
	p.set.act[LIMIT_TPM] = LIMIT_ACT_ALERT;
	p.clear_act_mask = 1u << LIMIT_TPM;
	TG_CHECK_INT(keys_update(f.k, r.id, &p, &up), -EINVAL);
	keys_close(f.k);
	f.k = keys_open(f.s, &f.o);
	TG_REQUIRE(f.k != NULL);
	TG_CHECK_INT(keys_get(f.k, r.id, &up), 0);
	TG_CHECK_INT(up.overrides.act[LIMIT_COST_DAY], LIMIT_ACT_DOWNGRADE);
	TG_CHECK_INT(verify(&f, pt, &a), 0);
	TG_CHECK_INT(a.limits.act[LIMIT_COST_DAY], LIMIT_ACT_DOWNGRADE);
	TG_CHECK_INT(a.limits.act[LIMIT_TOKENS_MONTH], LIMIT_ACT_QUEUE);
	fx_close(&f);
}

/* ---- bounds and threads ---- */

static void t_cache_bounded(void)
{
	struct fx f;
	struct keys_opts o;
	struct key_record r;
	char pt[12][TG_CRED_MAX];

	fx_opts(&o);
	o.cache_max = 4;
	TG_REQUIRE(fx_open_with(&f, &o));
	for (int i = 0; i < 12; i++)
		TG_REQUIRE(mk_key(&f, "team:ml", NULL, NULL, &r, pt[i]) == 0);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 12; i++)
			TG_CHECK_INT(verify(&f, pt[i], NULL), 0);
	}
	TG_REQUIRE(keys_revoke(f.k, r.id, NULL) == 0);
	TG_CHECK_INT(verify(&f, pt[11], NULL), -EKEYREVOKED);
	fx_close(&f);
}

struct thr_arg {
	struct fx *f;
	const char *pt;
	int fails;
};

static void *thr_verify(void *p)
{
	struct thr_arg *t = p;

	for (int i = 0; i < 20000; i++) {
		if (verify(t->f, t->pt, NULL) != 0)
			t->fails++;
	}
	return NULL;
}

static void t_threads(void)
{
	struct fx f;
	struct key_record r;
	char pt[4][TG_CRED_MAX], extra[TG_CRED_MAX];
	struct thr_arg args[4];
	pthread_t th[4];

	TG_REQUIRE(fx_open(&f));
	for (int i = 0; i < 4; i++)
		TG_REQUIRE(mk_key(&f, "team:ml", NULL, NULL, &r, pt[i]) == 0);
	for (int i = 0; i < 4; i++) {
		args[i] = (struct thr_arg){.f = &f, .pt = pt[i]};
		TG_REQUIRE(pthread_create(&th[i], NULL, thr_verify, &args[i]) == 0);
	}
	/* changes while verifications run: the index grows, tiers change */
	for (int i = 0; i < 20; i++)
		TG_CHECK_INT(mk_key(&f, "team:other", NULL, NULL, &r, extra), 0);
	TG_CHECK_INT(keys_tier_put(f.k, &model_default_tiers[0]), 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		TG_CHECK_INT(args[i].fails, 0);
	}
	TG_CHECK_INT(keys_count(f.k), 24);
	fx_close(&f);
}

static void t_open_invalid(void)
{
	struct fx f;
	struct keys_opts o;

	TG_REQUIRE(fx_open(&f));
	fx_opts(&o);
	o.parallelism = 0;
	errno = 0;
	TG_CHECK(keys_open(f.s, &o) == NULL && errno == EINVAL);
	fx_opts(&o);
	o.argon2_per_sec = 0;
	TG_CHECK(keys_open(f.s, &o) == NULL && errno == EINVAL);
	keys_close(NULL);
	fx_close(&f);
}

/* What the index holds room for: any change here between kidx_prepare and a put would be
 * an allocation after the commit. */
struct idx_room {
	uint64_t nchunks, strs_cap, strs_mask, strs_n, ovr_cap, ovr_mask, ovr_n, keys_mask, tiers_cap;
}; /* all one width: no padding for memcmp to see */

static struct idx_room idx_room(const struct kidx *x)
{
	return (struct idx_room){x->nchunks, x->strs.cap,     x->strs.mask, x->strs.n,
				 x->ovr.cap, x->ovr.mask,     x->ovr.n,	   x->keys.mask,
				 x->tiers_cap};
}

static void t_index_put_after_prepare(void)
{
	struct idx_room before, prepared, after;
	unsigned grew = 0, chunk_grew = 0;
	struct key_record r;
	struct kidx x;

	TG_REQUIRE(kidx_init(&x, 1, 1) == 0);
	/* every key brings a new owner, service and override set, past a chunk boundary */
	for (uint32_t i = 0; i < KIDX_CHUNK + 100; i++) {
		const char *strs[3];
		int e;

		memset(&r, 0, sizeof(r));
		snprintf(r.id, sizeof(r.id), "k%011u", i);
		snprintf(r.owner, sizeof(r.owner), "user:u%u", i);
		snprintf(r.service, sizeof(r.service), "s%u", i);
		snprintf(r.tier, sizeof(r.tier), "basic");
		limits_clear(&r.overrides);
		r.overrides.v[LIMIT_RPS] = 1000 + i;
		r.slot = TG_SLOT_NONE;
		strs[0] = r.owner, strs[1] = r.service, strs[2] = r.tier;
		before = idx_room(&x);
		TG_REQUIRE(kidx_prepare(&x, strs, 3, &r.overrides, 0) == 0);
		prepared = idx_room(&x);
		grew += memcmp(&before, &prepared, sizeof(before)) != 0;
		chunk_grew += prepared.nchunks != before.nchunks;
		e = kidx_put_key(&x, &r);
		after = idx_room(&x);
		if (e < 0 || memcmp(&prepared, &after, sizeof(after)) != 0) {
			TG_CHECK(e >= 0);
			TG_CHECK(!memcmp(&prepared, &after, sizeof(after)));
			break;
		}
		if (strcmp(kidx_str(&x, kidx_at(&x, (uint32_t)e)->owner), r.owner) ||
		    kidx_overrides(&x, kidx_at(&x, (uint32_t)e)->overrides)->v[LIMIT_RPS] != 1000 + i) {
			TG_CHECK_STR(kidx_str(&x, kidx_at(&x, (uint32_t)e)->owner), r.owner);
			break;
		}
	}
	/* the walk did make the index grow (in prepare, every time), chunks included */
	TG_CHECK(grew >= 10);
	TG_CHECK(chunk_grew >= 1);
	kidx_free(&x);
}

static const struct tg_case cases[] = {
	{"created credentials have the tg_/tgadm_ format with the right alphabets", t_format},
	{"wrong prefix, length or alphabet is -EINVAL before any argon2", t_parse_strict},
	{"an admin token is not an API key and the other way round", t_kind_mismatch},
	{"the store holds no key, token or secret in plaintext", t_no_secret_at_rest},
	{"create then verify gives owner, service, tier and merged limits", t_verify_ok},
	{"a wrong secret is -EACCES", t_wrong_secret},
	{"an unknown id is -ENOENT without argon2", t_unknown_id},
	{"a cached verification runs no argon2", t_cache_no_argon2},
	{"revocation is immediate, even for a cached key", t_revoke},
	{"expiry is immediate, even for a cached key", t_expiry},
	{"rotation: old secret works until the grace ends, then fails", t_rotation_grace},
	{"a second rotation ends the first grace", t_rotation_twice},
	{"rotation moves khash_cur to khash_prev", t_rotation_khash},
	{"revoked, expired and unknown keys are not rotated", t_rotate_refused},
	{"a repeated wrong secret is refused without argon2", t_negative_cache},
	{"per-id lockout: -EAGAIN on misses, cached key still works, lifted", t_per_id_lockout},
	{"per-source lockout: another address (or /64) still verifies the right secret",
	 t_per_source_lockout},
	{"the global argon2 budget refuses with -EAGAIN and refills", t_global_budget},
	{"invalid key specs are refused and create nothing", t_create_invalid},
	{"creating keys keeps the owner record", t_owner_record},
	{"update sets and clears fields, and verification sees it at once", t_update},
	{"refused updates (bad tier, limits, expiry, revoked) change nothing", t_update_refused},
	{"list filters by owner, service, tier and status", t_list_filters},
	{"list pages in id order from after and reports has_more", t_list_pages},
	{"tiers: put validates, replace refuses to drop a tier in use", t_tiers},
	{"a consumer token keeps its tier in use", t_tier_used_by_token},
	{"token specs: roles, consumer id and tier rules", t_token_specs},
	{"admin tokens verify with their role, list without hashes, revoke", t_tokens},
	{"bootstrap from TOLLGATE_ADMIN_TOKEN: create, keep, replace", t_bootstrap_env},
	{"bootstrap without env: generated once, only when no token exists", t_bootstrap_generated},
	{"last_used is written by keys_tick when due", t_last_used_flush},
	{"reopening restores keys, tokens, tiers, rotation and last_used", t_reopen},
	{"per-limit actions alone: verified, patched, and restored by a reopen",
	 t_actions_only_overrides},
	{"a put after kidx_prepare allocates nothing (a committed change reaches the index)",
	 t_index_put_after_prepare},
	{"a tiny cache evicts and stays correct", t_cache_bounded},
	{"verifications in threads while keys change", t_threads},
	{"keys_open refuses invalid options", t_open_invalid},
};

int main(void)
{
	log_init("test_keys", LOG_LVL_WARN);
	return tg_run("keys", cases, TG_NCASES(cases));
}
