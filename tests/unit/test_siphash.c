/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * SipHash-2-4 (include/tollgate/siphash.h) against the reference implementation's test
 * vectors: key = bytes 0..15, message = bytes 0..len-1. The kernel fast path and the
 * daemon must compute the same function, so these pin it to the published one.
 */
#include <stdint.h>

#include "tg_test.h"
#include "tollgate/siphash.h"

static void vec_key(__u8 key[TG_SIPHASH_KEY_LEN])
{
	for (int i = 0; i < TG_SIPHASH_KEY_LEN; i++)
		key[i] = (__u8)i;
}

static void vec_msg(__u8 *msg, size_t len)
{
	for (size_t i = 0; i < len; i++)
		msg[i] = (__u8)i;
}

/* Serialises a 128-bit tag as out[0] then out[1], little-endian, in hex. */
static void tag128_hex(const __u64 t[2], char hex[33])
{
	for (int w = 0; w < 2; w++) {
		for (int b = 0; b < 8; b++)
			snprintf(hex + w * 16 + b * 2, 3, "%02x", (unsigned)((t[w] >> (8 * b)) & 0xff));
	}
}

static void check64(size_t len, __u64 want)
{
	__u8 key[TG_SIPHASH_KEY_LEN], msg[64];
	__u64 got;

	vec_key(key);
	vec_msg(msg, len);
	got = tg_siphash64(key, msg, len);
	TG_CHECK(got == want);
	if (got != want)
		printf("#   len %zu: got 0x%016llx, expected 0x%016llx\n", len,
		       (unsigned long long)got, (unsigned long long)want);
}

static void check128(size_t len, const char *want)
{
	__u8 key[TG_SIPHASH_KEY_LEN], msg[64];
	__u64 t[2];
	char hex[33];

	vec_key(key);
	vec_msg(msg, len);
	tg_siphash128(key, msg, len, t);
	tag128_hex(t, hex);
	TG_CHECK_STR(hex, want);
}

static void t_64_len0(void)
{
	check64(0, 0x726fdb47dd0e0e31ULL);
}

static void t_64_len15(void)
{
	check64(15, 0xa129ca6149be45e5ULL);
}

static void t_128_len0(void)
{
	check128(0, "a3817f04ba25a8e66df67214c7550293");
}

static void t_128_len1(void)
{
	check128(1, "da87c1d86b99af44347659119b22fc45");
}

static void t_128_len2(void)
{
	check128(2, "8177228da4a45dc7fca38bdef60affe4");
}

static void t_128_len3(void)
{
	check128(3, "9c70b60c5267a94e5f33b6b02985ed51");
}

static void t_128_len4(void)
{
	check128(4, "f88164c12d9c8faf7d0f6e7c7bcd5579");
}

/* Every length through two blocks: the tail handling differs for len % 8. */
static void t_64_lengths_differ(void)
{
	__u8 key[TG_SIPHASH_KEY_LEN], msg[17];
	__u64 seen[17];

	vec_key(key);
	vec_msg(msg, sizeof(msg));
	for (size_t len = 0; len < 17; len++) {
		seen[len] = tg_siphash64(key, msg, len);
		for (size_t j = 0; j < len; j++)
			TG_CHECK(seen[j] != seen[len]);
	}
}

static void t_key_matters(void)
{
	__u8 key[TG_SIPHASH_KEY_LEN], msg[8] = "tollgate";
	__u64 a, b;

	vec_key(key);
	a = tg_siphash64(key, msg, sizeof(msg));
	key[15] ^= 1;
	b = tg_siphash64(key, msg, sizeof(msg));
	TG_CHECK(a != b);
}

static const struct tg_case cases[] = {
	{"64-bit tag of the empty message matches the reference", t_64_len0},
	{"64-bit tag of 15 bytes matches the reference", t_64_len15},
	{"128-bit tag of the empty message matches the reference", t_128_len0},
	{"128-bit tag of 1 byte matches the reference", t_128_len1},
	{"128-bit tag of 2 bytes matches the reference", t_128_len2},
	{"128-bit tag of 3 bytes matches the reference", t_128_len3},
	{"128-bit tag of 4 bytes matches the reference", t_128_len4},
	{"every length 0..16 gives a different tag", t_64_lengths_differ},
	{"a one-bit change of the key changes the tag", t_key_matters},
};

int main(void)
{
	return tg_run("siphash", cases, TG_NCASES(cases));
}
