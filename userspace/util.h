/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Small pure helpers every module needs: clocks, randomness, constant-time comparison,
 * RFC 3339 times, identifier validation, and the two formatters the per-request paths use
 * instead of snprintf (decimal numbers, JSON strings). No state, no allocation.
 */
#ifndef TG_UTIL_H
#define TG_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>

#define TG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* CLOCK_MONOTONIC in nanoseconds: the only clock used for rates and timeouts. */
int64_t tg_now_mono_ns(void);
/* Wall-clock Unix seconds: for timestamps shown to people (created, expires), never rates. */
int64_t tg_now_unix(void);

/*
 * CPUs this process may run on (its affinity mask: a `taskset` or a cgroup cpuset narrows
 * it), at least 1: what "one per CPU" defaults size themselves by.
 */
unsigned tg_cpus_usable(void);

/* Fills buf with len bytes from getrandom(2); returns 0 or -errno. */
int tg_getrandom(void *buf, size_t len);
/*
 * Writes n characters drawn uniformly (rejection sampling) from alphabet, then a NUL, into
 * out (n + 1 bytes). Returns 0 or -errno.
 */
int tg_random_chars(char *out, size_t n, const char *alphabet);

/* Compares n bytes in time independent of their contents; true when equal. */
bool tg_ct_equal(const void *a, const void *b, size_t n);

/* Formats Unix seconds as "YYYY-MM-DDTHH:MM:SSZ" into buf (>= 21 bytes). */
void tg_rfc3339_format(int64_t unix_s, char buf[32]);
/*
 * Parses "YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)" (also lowercase t/z); fractional
 * seconds are dropped. Returns 0 and *out, or -EINVAL.
 */
int tg_rfc3339_parse(const char *s, int64_t *out);

/* True if s is 1..max characters, each a letter, digit, or one of the bytes in extra. */
bool tg_ident_valid(const char *s, size_t max, const char *extra);

/*
 * Initialises a condition variable whose timed waits run on CLOCK_MONOTONIC, so deadlines
 * taken from tg_now_mono_ns() are not stretched by wall-clock steps. 0 or a negative errno.
 */
int tg_cond_init_mono(pthread_cond_t *c);

/*
 * Writes v in decimal and a NUL into out; returns the number of digits. snprintf("%llu")
 * costs ~10x this, and a refused request formats half a dozen numbers.
 */
size_t tg_u64_dec(uint64_t v, char out[21]);
/*
 * Writes v / 10^scale (scale 1..9) as a decimal with a NUL: the whole part, then the
 * fraction's digits with trailing zeros dropped but at least min_decimals kept (no '.' when
 * none remain): (1500, 3, 0) "1.5", (60000, 3, 0) "60", (10000000, 9, 2) "0.01". Returns
 * the length. For amounts kept in fixed point (ms, nano-USD) on per-request paths.
 */
size_t tg_fixed_dec(uint64_t v, unsigned scale, unsigned min_decimals, char out[32]);

/*
 * Appends len bytes of p at out[*n], as many as fit below out[cap - 1] (room kept for the
 * caller's NUL); *n counts them all, as snprintf's return does, so *n >= cap means the text
 * was cut. For hot paths that build a line from pieces without printf.
 */
void tg_put(char *out, size_t cap, size_t *n, const char *p, size_t len);
/* tg_put of a string literal. */
#define TG_PUT_LIT(out, cap, n, lit) tg_put((out), (cap), (n), (lit), sizeof(lit) - 1)

/*
 * Writes s as a quoted JSON string (the escapes cJSON's printer uses: \" \\ \b \f \n \r
 * \t, \u00XX for other control bytes, everything else as is) at out[at..cap), NUL-terminated
 * when it fits. Returns the length the whole text needs from out (at + quoted length); a
 * result >= cap means it did not fit: out is then incomplete (and may lack the NUL), but
 * nothing is written at or past out[cap].
 */
size_t tg_json_str(char *out, size_t cap, size_t at, const char *s);

#endif /* TG_UTIL_H */
