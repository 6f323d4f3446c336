/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * util: RFC 3339 times parse and format exactly (offsets, fractions, calendar limits), random
 * identifiers draw only from their alphabet, comparisons are exact, identifiers validate,
 * numbers format as printf's %llu does, JSON strings come out byte for byte as cJSON prints
 * them, the usable CPU count follows the affinity mask.
 */
#include <errno.h>
#include <sched.h>

#include <cjson/cJSON.h>

#include "tg_test.h"
#include "util.h"

static const struct {
	const char *text;
	int64_t want; /* Unix seconds; INT64_MIN = must be refused */
} rfc3339_table[] = {
	{"1970-01-01T00:00:00Z", 0},
	{"2026-11-23T10:00:00Z", 1795428000},
	{"2026-11-23T12:00:00+02:00", 1795428000},
	{"2026-11-23T08:30:00-01:30", 1795428000},
	{"2026-11-23T10:00:00.123456Z", 1795428000},
	{"2026-11-23t10:00:00z", 1795428000},
	{"2024-02-29T00:00:00Z", 1709164800},
	{"2000-03-01T00:00:00Z", 951868800},
	{"2038-01-19T03:14:08Z", 2147483648LL},
	{"2023-02-29T00:00:00Z", INT64_MIN},
	{"2026-13-01T00:00:00Z", INT64_MIN},
	{"2026-11-31T00:00:00Z", INT64_MIN},
	{"2026-11-23T24:00:00Z", INT64_MIN},
	{"2026-11-23 10:00:00Z", INT64_MIN},
	{"2026-11-23T10:00:00", INT64_MIN},
	{"2026-11-23T10:00:00+2", INT64_MIN},
	{"2026-11-23T10:00:00+02:00x", INT64_MIN},
	{"2026-11-23T10:00:00.Z", INT64_MIN},
	{"tomorrow", INT64_MIN},
	{"", INT64_MIN},
};

static void rfc3339_parse_table(void)
{
	for (size_t i = 0; i < TG_NCASES(rfc3339_table); i++) {
		int64_t got = 0;
		int rc = tg_rfc3339_parse(rfc3339_table[i].text, &got);

		if (rfc3339_table[i].want == INT64_MIN) {
			if (rc != -EINVAL) {
				printf("#   '%s' accepted as %lld\n", rfc3339_table[i].text,
				       (long long)got);
				tg_failed++;
			}
		} else if (rc != 0 || got != rfc3339_table[i].want) {
			printf("#   '%s': rc %d, got %lld, want %lld\n", rfc3339_table[i].text, rc,
			       (long long)got, (long long)rfc3339_table[i].want);
			tg_failed++;
		}
	}
}

static void rfc3339_format_round_trips(void)
{
	static const int64_t times[] = {0, 951868800, 1709164800, 1795428000, 4102444799LL};
	char buf[32];

	for (size_t i = 0; i < TG_NCASES(times); i++) {
		int64_t back = -1;

		tg_rfc3339_format(times[i], buf);
		TG_CHECK_INT(strlen(buf), 20);
		TG_CHECK_INT(tg_rfc3339_parse(buf, &back), 0);
		TG_CHECK_INT(back, times[i]);
	}
	tg_rfc3339_format(1795428000, buf);
	TG_CHECK_STR(buf, "2026-11-23T10:00:00Z");
}

static void random_chars_stay_in_alphabet(void)
{
	static const char alpha[] = "abc";
	int seen[3] = {0};
	char out[3001];

	TG_REQUIRE(tg_random_chars(out, 3000, alpha) == 0);
	TG_CHECK_INT(strlen(out), 3000);
	for (size_t i = 0; i < 3000; i++) {
		const char *p = strchr(alpha, out[i]);

		TG_REQUIRE(p != NULL);
		seen[p - alpha]++;
	}
	/* 3000 draws of 3 letters: each appears about 1000 times; 800 is > 8 sigma away. */
	for (int i = 0; i < 3; i++)
		TG_CHECK(seen[i] > 800);
	TG_CHECK(tg_random_chars(out, 4, "") == -EINVAL);
}

static void ct_equal_is_exact(void)
{
	TG_CHECK(tg_ct_equal("abcdef", "abcdef", 6));
	TG_CHECK(!tg_ct_equal("abcdef", "abcdeg", 6));
	TG_CHECK(!tg_ct_equal("xbcdef", "abcdef", 6));
	TG_CHECK(tg_ct_equal("a", "b", 0));
}

static void ident_validation(void)
{
	TG_CHECK(tg_ident_valid("abc-1.2_x", 64, "._-"));
	TG_CHECK(!tg_ident_valid("", 64, "._-"));
	TG_CHECK(!tg_ident_valid("a b", 64, "._-"));
	TG_CHECK(!tg_ident_valid("a/b", 64, "._-"));
	TG_CHECK(tg_ident_valid("abcd", 4, NULL));
	TG_CHECK(!tg_ident_valid("abcde", 4, NULL));
	TG_CHECK(!tg_ident_valid("a-b", 4, NULL));
}

static void monotonic_clock_moves_forward(void)
{
	int64_t a = tg_now_mono_ns(), b = tg_now_mono_ns();

	TG_CHECK(a > 0);
	TG_CHECK(b >= a);
	TG_CHECK(tg_now_unix() > 1700000000);
}

/* The count follows the affinity mask, as `taskset` or a cpuset narrows it. */
static void cpus_usable_follows_affinity(void)
{
	cpu_set_t all, one;
	int first = -1;

	TG_CHECK_INT(sched_getaffinity(0, sizeof(all), &all), 0);
	TG_CHECK_INT((int)tg_cpus_usable(), CPU_COUNT(&all));
	for (int i = 0; i < CPU_SETSIZE && first < 0; i++)
		if (CPU_ISSET(i, &all))
			first = i;
	TG_CHECK(first >= 0);
	CPU_ZERO(&one);
	CPU_SET(first, &one);
	TG_CHECK_INT(sched_setaffinity(0, sizeof(one), &one), 0);
	TG_CHECK_INT((int)tg_cpus_usable(), 1);
	TG_CHECK_INT(sched_setaffinity(0, sizeof(all), &all), 0);
	TG_CHECK_INT((int)tg_cpus_usable(), CPU_COUNT(&all));
}

static void u64_dec_matches_printf(void)
{
	static const uint64_t vals[] = {0, 7, 9, 10, 99, 100, 1000, 65535, 4294967296ULL,
					9999999999999999999ULL, UINT64_MAX};
	char got[21], want[32];

	for (size_t i = 0; i < TG_NCASES(vals); i++) {
		size_t n = tg_u64_dec(vals[i], got);

		snprintf(want, sizeof(want), "%" PRIu64, vals[i]);
		TG_CHECK_STR(got, want);
		TG_CHECK_INT(n, strlen(want));
	}
}

static void fixed_dec_matches_printf(void)
{
	static const struct {
		uint64_t v;
		unsigned scale, min;
		const char *want;
	} rows[] = {
	    {0, 3, 0, "0"},	       {1500, 3, 0, "1.5"},	 {60000, 3, 0, "60"},
	    {20, 3, 0, "0.02"},	       {2000, 3, 1, "2.0"},	 {2345, 3, 1, "2.345"},
	    {0, 9, 2, "0.00"},	       {10000000, 9, 2, "0.01"}, {1, 9, 2, "0.000000001"},
	    {1234500000, 9, 2, "1.2345"}, {1000000000, 9, 2, "1.00"}, {999, 3, 3, "0.999"},
	    {UINT64_MAX, 9, 2, "18446744073.709551615"},
	};
	char got[32], want[48], frac[16];

	for (size_t i = 0; i < TG_NCASES(rows); i++) {
		TG_CHECK_INT(tg_fixed_dec(rows[i].v, rows[i].scale, rows[i].min, got),
			     strlen(rows[i].want));
		TG_CHECK_STR(got, rows[i].want);
	}
	/* the cost amounts the headers and messages print: printf's %09 fraction, trimmed */
	for (uint64_t v = 0; v < 3000000000ULL; v += 7777777) {
		size_t n;

		snprintf(frac, sizeof(frac), "%09" PRIu64, v % 1000000000u);
		for (n = 9; n > 2 && frac[n - 1] == '0'; n--)
			;
		frac[n] = '\0';
		snprintf(want, sizeof(want), "%" PRIu64 ".%s", v / 1000000000u, frac);
		tg_fixed_dec(v, 9, 2, got);
		TG_CHECK_STR(got, want);
	}
}

static const char *const json_str_table[] = {
    "",
    "plain text",
    "quote \" and backslash \\ and slash /",
    "controls \b\f\n\r\t and \x01\x1f\x7f",
    "UTF-8 \xc3\xa9\xe2\x82\xac passes as is",
    "Rate limit exceeded for key k_abc: 20 requests per second (rate 10/s, burst 20)",
};

/* Whatever cJSON prints for the string: tg_json_str must give the same bytes. */
static void json_str_matches_cjson(void)
{
	char got[256];

	for (size_t i = 0; i < TG_NCASES(json_str_table); i++) {
		cJSON *j = cJSON_CreateString(json_str_table[i]);
		char *want = j ? cJSON_PrintUnformatted(j) : NULL;
		size_t n;

		TG_REQUIRE(want);
		n = tg_json_str(got, sizeof(got), 0, json_str_table[i]);
		TG_CHECK_STR(got, want);
		TG_CHECK_INT(n, strlen(want));
		cJSON_free(want);
		cJSON_Delete(j);
	}
}

/* Too small a buffer: the length needed comes back and nothing is written at or past cap. */
static void json_str_reports_what_does_not_fit(void)
{
	char buf[16];

	memset(buf, 'x', sizeof(buf));
	memcpy(buf, "ab", 2);
	TG_CHECK_INT(tg_json_str(buf, 8, 2, "hello\n"), 2 + 9);
	TG_CHECK_INT(buf[8], 'x'); /* nothing written at or past cap */
	TG_CHECK_INT(tg_json_str(buf, sizeof(buf), 2, "hi"), 6);
	TG_CHECK_STR(buf, "ab\"hi\"");
	TG_CHECK_INT(tg_json_str(buf, 6, 2, "hi"), 6); /* exactly cap: no room for the NUL */
}

static const struct tg_case cases[] = {
	{"RFC 3339 parse: offsets, fractions, calendar limits", rfc3339_parse_table},
	{"RFC 3339 format round-trips", rfc3339_format_round_trips},
	{"random characters come only from the alphabet, all of it", random_chars_stay_in_alphabet},
	{"constant-time compare is exact", ct_equal_is_exact},
	{"identifier validation", ident_validation},
	{"clocks", monotonic_clock_moves_forward},
	{"usable CPUs follow the affinity mask", cpus_usable_follows_affinity},
	{"decimal numbers match printf", u64_dec_matches_printf},
	{"fixed-point decimals: trimmed fractions, at least min_decimals", fixed_dec_matches_printf},
	{"JSON strings match cJSON's printer byte for byte", json_str_matches_cjson},
	{"JSON strings: a short buffer reports the length needed", json_str_reports_what_does_not_fit},
};

int main(void)
{
	return tg_run("util", cases, TG_NCASES(cases));
}
