// SPDX-License-Identifier: BSD-2-Clause
/*
 * tollctl argument parsers: numbers, limit fields and expiry times. Pure functions with no
 * I/O, so they can be unit-tested alone.
 *
 * The checks are deliberately shallow: they catch what is plainly not a number or a time
 * before a round trip, and leave ranges (burst at most 1e9, expiry in the future) to the
 * server, which owns them and says so with a precise error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tollctl.h"

/* Longest relative expiry accepted; keeps the arithmetic far from time_t overflow. */
#define WHEN_MAX_REL_SEC (100LL * 366 * 86400)

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Parses a non-negative decimal integer made of digits only: no sign, no blanks, no hex.
 * Returns 0 or -EINVAL (also on overflow).
 */
int parse_count(const char *s, long long *out)
{
	char *end;
	long long v;

	if (!s || !is_digit(*s))
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

/*
 * Parses DIGITS[.DIGITS], the only shape a rate or an amount needs. strtod alone would also take
 * "inf", "0x1p3" and leading blanks, none of which should reach the server. Returns 0 or -EINVAL.
 */
int parse_decimal(const char *s, double *out)
{
	size_t len = strspn(s, "0123456789"), frac;
	char *end;
	double v;

	if (len == 0)
		return -EINVAL;
	if (s[len] == '.') {
		frac = strspn(s + len + 1, "0123456789");
		if (frac == 0)
			return -EINVAL;
		len += 1 + frac;
	}
	if (s[len] != '\0')
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

static int two_digits(const char *s)
{
	return (s[0] - '0') * 10 + (s[1] - '0');
}

/* Checks the date and time part "YYYY-MM-DDTHH:MM:SS", digits and rough ranges. */
static bool rfc3339_datetime(const char *s)
{
	static const char tmpl[] = "dddd-dd-ddTdd:dd:dd";
	size_t i;

	for (i = 0; tmpl[i]; i++) {
		bool ok;

		if (tmpl[i] == 'd')
			ok = is_digit(s[i]);
		else if (tmpl[i] == 'T')
			ok = s[i] == 'T' || s[i] == 't';
		else
			ok = s[i] == tmpl[i];
		if (!ok)
			return false; /* also stops at the NUL of a short string */
	}
	return two_digits(s + 5) >= 1 && two_digits(s + 5) <= 12 && two_digits(s + 8) >= 1 &&
	       two_digits(s + 8) <= 31 && two_digits(s + 11) <= 23 && two_digits(s + 14) <= 59 &&
	       two_digits(s + 17) <= 60;
}

/* Checks an RFC 3339 timestamp: date-time, optional fraction, then Z or +HH:MM/-HH:MM. */
static bool rfc3339_shape(const char *s)
{
	if (!rfc3339_datetime(s))
		return false;
	s += strlen("YYYY-MM-DDTHH:MM:SS");
	if (*s == '.') {
		if (!is_digit(*++s))
			return false;
		while (is_digit(*s))
			s++;
	}
	if (*s == 'Z' || *s == 'z')
		return s[1] == '\0';
	if (*s != '+' && *s != '-')
		return false;
	s++;
	return is_digit(s[0]) && is_digit(s[1]) && s[2] == ':' && is_digit(s[3]) &&
	       is_digit(s[4]) && s[5] == '\0' && two_digits(s) <= 23 && two_digits(s + 3) <= 59;
}

/* "+N" followed by d (days), h (hours) or m (minutes), counted from NOW. */
static int when_relative(const char *s, time_t now, char *out, size_t outlen)
{
	size_t len = strspn(s, "0123456789");
	long long n = 0, mult;
	struct tm tm;
	time_t t;
	size_t i;

	if (len == 0 || len > 12 || s[len + 1] != '\0')
		return -EINVAL;
	switch (s[len]) {
	case 'd':
		mult = 86400;
		break;
	case 'h':
		mult = 3600;
		break;
	case 'm':
		mult = 60;
		break;
	default:
		return -EINVAL;
	}
	for (i = 0; i < len; i++)
		n = n * 10 + (s[i] - '0');
	if (n == 0 || n > WHEN_MAX_REL_SEC / mult)
		return -ERANGE;
	t = now + (time_t)(n * mult);
	if (!gmtime_r(&t, &tm) || strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return -ERANGE;
	return 0;
}

/*
 * Parses WHEN for --expires: an RFC 3339 time, copied as given (the server accepts offsets
 * and fractions), or "+30d", "+12h", "+90m" relative to NOW, converted to RFC 3339 UTC.
 * Writes a NUL-terminated string to OUT. Returns 0, -EINVAL for a bad shape, -ERANGE for a
 * zero or absurdly long relative time.
 */
int parse_when(const char *s, time_t now, char *out, size_t outlen)
{
	if (s[0] == '+')
		return when_relative(s + 1, now, out, outlen);
	if (!rfc3339_shape(s) || strlen(s) >= outlen)
		return -EINVAL;
	strcpy(out, s);
	return 0;
}

/* Returns whether S is one of the NULL-terminated ALLOWED strings. */
bool parse_one_of(const char *s, const char *const *allowed)
{
	for (; *allowed; allowed++)
		if (strcmp(s, *allowed) == 0)
			return true;
	return false;
}

/*
 * ---- limit fields: the one table of the limit names the admin API takes, for keys
 * create/update --limit, tiers set --limit and limits set (docs/admin-api.md "Limits") ----
 */

enum subject_limit_kind {
	SLK_COUNT = 0, /* non-negative integer */
	SLK_DEC3,      /* decimal, up to 3 fraction digits */
	SLK_DEC9,      /* decimal, up to 9 fraction digits (USD) */
	SLK_RATIO,     /* decimal, up to 3 fraction digits, more than 0, at most 1 */
	SLK_ENUM,      /* one of the listed words */
};

static const char *const window_words[] = {"calendar", "rolling", NULL};
static const char *const mode_words[] = {"hard", "soft", NULL};
const char *const parse_action_words[] = {"block", "queue", "downgrade", "alert", NULL};

static const struct {
	const char *name;
	enum subject_limit_kind kind;
	const char *const *words;
} limit_fields[] = {
    {"requests_per_second", SLK_DEC3, NULL},  {"burst", SLK_COUNT, NULL},
    {"requests_per_minute", SLK_COUNT, NULL}, {"requests_per_hour", SLK_COUNT, NULL},
    {"requests_per_day", SLK_COUNT, NULL},    {"requests_per_month", SLK_COUNT, NULL},
    {"tokens_per_minute", SLK_COUNT, NULL},   {"tokens_per_hour", SLK_COUNT, NULL},
    {"tokens_per_day", SLK_COUNT, NULL},      {"tokens_per_month", SLK_COUNT, NULL},
    {"token_quota_days", SLK_COUNT, NULL},    {"max_concurrent", SLK_COUNT, NULL},
    {"cost_per_hour", SLK_DEC9, NULL},	      {"cost_per_day", SLK_DEC9, NULL},
    {"cost_per_month", SLK_DEC9, NULL},	      {"cost_window", SLK_ENUM, window_words},
    {"bytes_per_month", SLK_COUNT, NULL},     {"compute_seconds_per_month", SLK_DEC3, NULL},
    {"alert_threshold", SLK_RATIO, NULL},     {"mode", SLK_ENUM, mode_words},
    {"action", SLK_ENUM, parse_action_words},
};

#define NLIMIT_FIELDS (sizeof(limit_fields) / sizeof(limit_fields[0]))

/* Whether FIELD is an amount that can carry a per-limit action (not mode, action, ...). */
bool parse_is_amount_limit(const char *field)
{
	for (size_t i = 0; i < NLIMIT_FIELDS; i++)
		if (strcmp(limit_fields[i].name, field) == 0)
			return limit_fields[i].kind != SLK_ENUM &&
			       strcmp(field, "alert_threshold") != 0 &&
			       strcmp(field, "token_quota_days") != 0 &&
			       strcmp(field, "burst") != 0;
	return false;
}

/* A decimal with at most MAXFRAC fraction digits: sent raw, so no digit is lost. */
static int decimal_raw(const char *value, int maxfrac, bool ratio, cJSON **item)
{
	const char *dot = strchr(value, '.');
	double d;

	if (parse_decimal(value, &d) != 0 || (dot && (int)strlen(dot + 1) > maxfrac))
		return -EINVAL;
	if (ratio && (d <= 0 || d > 1))
		return -ERANGE;
	*item = cJSON_CreateRaw(value);
	return *item ? 0 : -ENOMEM;
}

int parse_limit(const char *field, const char *value, bool allow_null, cJSON **item,
		const char **hint)
{
	long long n;
	char raw[32];

	for (size_t i = 0; i < NLIMIT_FIELDS; i++) {
		if (strcmp(limit_fields[i].name, field) != 0)
			continue;
		if (strcmp(value, "null") == 0) {
			if (!allow_null)
				return -EPERM;
			*item = cJSON_CreateNull();
			return *item ? 0 : -ENOMEM;
		}
		switch (limit_fields[i].kind) {
		case SLK_COUNT:
			*hint = "a non-negative integer";
			if (parse_count(value, &n) != 0)
				return -EINVAL;
			snprintf(raw, sizeof(raw), "%lld", n);
			*item = cJSON_CreateRaw(raw);
			return *item ? 0 : -ENOMEM;
		case SLK_DEC3:
			*hint = "a number with up to 3 digits after the point";
			return decimal_raw(value, 3, false, item);
		case SLK_DEC9:
			*hint = "an amount in USD with up to 9 digits after the point";
			return decimal_raw(value, 9, false, item);
		case SLK_RATIO:
			*hint =
			    "a fraction more than 0 and at most 1 (up to 3 digits after the point)";
			return decimal_raw(value, 3, true, item);
		case SLK_ENUM:
			*hint = limit_fields[i].words == parse_action_words
				    ? "one of block, queue, downgrade, alert"
				: limit_fields[i].words == mode_words ? "one of hard, soft"
								      : "one of calendar, rolling";
			if (!parse_one_of(value, limit_fields[i].words))
				return -EINVAL;
			*item = cJSON_CreateString(value);
			return *item ? 0 : -ENOMEM;
		}
	}
	return -ENOENT;
}

/* The id after "kind:" is 1..64 of [A-Za-z0-9._:-] (tenants) or [A-Za-z0-9._-] (owners). */
static bool subject_id_ok(const char *id, bool colon)
{
	size_t n = strlen(id);

	if (n == 0 || n > 64)
		return false;
	for (; *id; id++)
		if (!((*id >= 'a' && *id <= 'z') || (*id >= 'A' && *id <= 'Z') || is_digit(*id) ||
		      *id == '.' || *id == '_' || *id == '-' || (colon && *id == ':')))
			return false;
	return true;
}

/* A key id: 12 of [a-z0-9]. */
static bool key_id_ok(const char *id)
{
	if (strlen(id) != 12)
		return false;
	for (; *id; id++)
		if (!((*id >= 'a' && *id <= 'z') || is_digit(*id)))
			return false;
	return true;
}

int parse_subject(const char *s, bool allow_key, char *out, size_t outlen)
{
	static const char *const owners[] = {"user:", "team:", "consumer:"};
	int n;

	if (key_id_ok(s) || (strncmp(s, "key:", 4) == 0 && key_id_ok(s + 4))) {
		if (!allow_key)
			return -EPERM;
		n = snprintf(out, outlen, "key:%s", key_id_ok(s) ? s : s + 4);
		return n > 0 && (size_t)n < outlen ? 0 : -EINVAL;
	}
	for (size_t i = 0; i < sizeof(owners) / sizeof(owners[0]); i++)
		if (strncmp(s, owners[i], strlen(owners[i])) == 0 &&
		    subject_id_ok(s + strlen(owners[i]), false))
			goto ok;
	if (strncmp(s, "tenant:", 7) == 0 && subject_id_ok(s + 7, true))
		goto ok;
	return -EINVAL;
ok:
	n = snprintf(out, outlen, "%s", s);
	return n > 0 && (size_t)n < outlen ? 0 : -EINVAL;
}
