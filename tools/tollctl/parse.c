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

/* The limit fields of docs/admin-api.md, in the order the API documents them. */
const char *const parse_limit_names[PARSE_NLIMITS] = {
    "requests_per_second", "burst",
    "requests_per_minute", "requests_per_hour",
    "requests_per_day",	   "tokens_per_minute",
    "tokens_per_month",	   "max_concurrent",
};

/* Only requests_per_second may be fractional (up to 3 decimals); all others are integers. */
#define LIMIT_FRACTIONAL 0

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
 * Parses DIGITS[.DIGITS], the only shape a rate needs. strtod alone would also take "inf",
 * "0x1p3" and leading blanks, none of which should reach the server. Returns 0 or -EINVAL.
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

static int limit_index(const char *field)
{
	int i;

	for (i = 0; i < PARSE_NLIMITS; i++)
		if (strcmp(parse_limit_names[i], field) == 0)
			return i;
	return -1;
}

/*
 * Turns FIELD=VALUE into a JSON value for a "limits" object. Integers go out as raw digits,
 * not through cJSON's double, so large token budgets keep every digit. "null" clears an
 * override and is accepted only when ALLOW_NULL. On 0, *ITEM is a new item the caller owns.
 * Returns -ENOENT for an unknown field, -EINVAL for a bad number, -EPERM for a refused
 * null, -ENOMEM.
 */
int parse_limit(const char *field, const char *value, bool allow_null, cJSON **item)
{
	int i = limit_index(field);
	char raw[32];
	long long n;
	double d;

	if (i < 0)
		return -ENOENT;
	if (strcmp(value, "null") == 0) {
		if (!allow_null)
			return -EPERM;
		*item = cJSON_CreateNull();
	} else if (i == LIMIT_FRACTIONAL) {
		if (parse_decimal(value, &d) != 0)
			return -EINVAL;
		*item = cJSON_CreateNumber(d);
	} else {
		if (parse_count(value, &n) != 0)
			return -EINVAL;
		snprintf(raw, sizeof(raw), "%lld", n);
		*item = cJSON_CreateRaw(raw);
	}
	return *item ? 0 : -ENOMEM;
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
