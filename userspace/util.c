/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Small pure helpers: clocks, randomness, constant-time comparison, RFC 3339 times and
 * identifier checks. See util.h.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

int64_t tg_now_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

unsigned tg_cpus_usable(void)
{
	cpu_set_t set;
	long n;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

int64_t tg_now_unix(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec;
}

int tg_getrandom(void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int tg_random_chars(char *out, size_t n, const char *alphabet)
{
	size_t alen = strlen(alphabet), filled = 0;
	/* Reject bytes at or above the largest multiple of alen so every character is equally
	 * likely (a plain modulo would favour the first 256 % alen characters). */
	unsigned limit;
	unsigned char pool[64];

	if (alen == 0 || alen > 256)
		return -EINVAL;
	limit = 256 - 256 % (unsigned)alen;
	while (filled < n) {
		int err = tg_getrandom(pool, sizeof(pool));

		if (err)
			return err;
		for (size_t i = 0; i < sizeof(pool) && filled < n; i++) {
			if (pool[i] < limit)
				out[filled++] = alphabet[pool[i] % alen];
		}
	}
	out[n] = '\0';
	explicit_bzero(pool, sizeof(pool));
	return 0;
}

bool tg_ct_equal(const void *a, const void *b, size_t n)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned char diff = 0;

	for (size_t i = 0; i < n; i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}

void tg_rfc3339_format(int64_t unix_s, char buf[32])
{
	time_t t = (time_t)unix_s;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Reads exactly n decimal digits; returns -1 if any is not a digit. */
static int parse_digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
	static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : dim[m - 1];
}

/* Parses the zone designator at s ("Z" or "+hh:mm"); returns its offset in seconds. */
static int parse_zone(const char *s, int64_t *offset)
{
	int sign, hh, mm;

	if ((s[0] == 'Z' || s[0] == 'z') && s[1] == '\0') {
		*offset = 0;
		return 0;
	}
	if ((s[0] != '+' && s[0] != '-') || strlen(s) != 6)
		return -EINVAL;
	sign = s[0] == '-' ? -1 : 1;
	hh = parse_digits(s + 1, 2);
	mm = parse_digits(s + 4, 2);
	if (hh < 0 || s[3] != ':' || mm < 0 || s[6] != '\0' || hh > 23 || mm > 59)
		return -EINVAL;
	*offset = sign * (hh * 3600 + mm * 60);
	return 0;
}

int tg_rfc3339_parse(const char *s, int64_t *out)
{
	int y, mo, d, h, mi, sec;
	int64_t offset;
	const char *p;

	if (strlen(s) < 20)
		return -EINVAL;
	y = parse_digits(s, 4);
	mo = parse_digits(s + 5, 2);
	d = parse_digits(s + 8, 2);
	h = parse_digits(s + 11, 2);
	mi = parse_digits(s + 14, 2);
	sec = parse_digits(s + 17, 2);
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
	    sec < 0 || sec > 60 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
	    s[13] != ':' || s[16] != ':' || d > days_in_month(y, mo))
		return -EINVAL;
	p = s + 19;
	if (*p == '.') {
		if (p[1] < '0' || p[1] > '9')
			return -EINVAL;
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	}
	if (parse_zone(p, &offset))
		return -EINVAL;
	if (sec == 60) /* a leap second is the last second of its minute, as POSIX counts */
		sec = 59;
	*out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset;
	return 0;
}

bool tg_ident_valid(const char *s, size_t max, const char *extra)
{
	size_t n = 0;

	for (; s[n]; n++) {
		char c = s[n];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  (extra && strchr(extra, c));

		if (!ok || n >= max)
			return false;
	}
	return n > 0;
}

int tg_cond_init_mono(pthread_cond_t *c)
{
	pthread_condattr_t ca;
	int rc = pthread_condattr_init(&ca);

	if (rc)
		return -rc;
	rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (!rc)
		rc = pthread_cond_init(c, &ca);
	pthread_condattr_destroy(&ca);
	return -rc;
}

size_t tg_u64_dec(uint64_t v, char out[21])
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	out[n] = '\0';
	return n;
}

size_t tg_fixed_dec(uint64_t v, unsigned scale, unsigned min_decimals, char out[32])
{
	uint64_t div = 1;
	uint64_t frac;
	unsigned digits = scale;
	size_t n;

	for (unsigned i = 0; i < scale; i++)
		div *= 10;
	frac = v % div;
	n = tg_u64_dec(v / div, out);
	while (digits > min_decimals && frac % 10 == 0) {
		frac /= 10;
		digits--;
	}
	if (!digits)
		return n;
	out[n++] = '.';
	for (unsigned i = digits; i > 0; i--, frac /= 10)
		out[n + i - 1] = (char)('0' + frac % 10);
	n += digits;
	out[n] = '\0';
	return n;
}

/* The two-character escape of c, or 0 when c is written as \u00XX or as is. */
static char json_short_escape(unsigned char c)
{
	switch (c) {
	case '"':
		return '"';
	case '\\':
		return '\\';
	case '\b':
		return 'b';
	case '\f':
		return 'f';
	case '\n':
		return 'n';
	case '\r':
		return 'r';
	case '\t':
		return 't';
	default:
		return 0;
	}
}

void tg_put(char *out, size_t cap, size_t *n, const char *p, size_t len)
{
	if (*n + 1 < cap)
		memcpy(out + *n, p, len < cap - 1 - *n ? len : cap - 1 - *n);
	*n += len;
}

size_t tg_json_str(char *out, size_t cap, size_t at, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = at;
	char piece[6] = {'\\'};

	tg_put(out, cap, &n, "\"", 1);
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		char e = json_short_escape(*c);

		if (e) {
			piece[1] = e;
			tg_put(out, cap, &n, piece, 2);
		} else if (*c < 0x20) {
			memcpy(piece + 1, "u00", 3);
			piece[4] = hex[*c >> 4];
			piece[5] = hex[*c & 15];
			tg_put(out, cap, &n, piece, 6);
		} else {
			/* the run of bytes that need no escape, copied at once */
			const unsigned char *run = c + 1;

			while (*run >= 0x20 && *run != '"' && *run != '\\')
				run++;
			tg_put(out, cap, &n, (const char *)c, (size_t)(run - c));
			c = run - 1;
		}
	}
	tg_put(out, cap, &n, "\"", 1);
	if (n < cap)
		out[n] = '\0';
	return n;
}
