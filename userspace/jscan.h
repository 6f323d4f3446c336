/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Reading one member of a JSON object in place, without building a tree: cJSON allocates
 * a node and a key copy per value, ~40 allocations for a small chat completion, to get at
 * the two numbers of its "usage". Pure: no I/O, no allocation.
 *
 * The scanner accepts a strict subset of what cJSON accepts (RFC 8259 text, with the
 * limits below), so a caller that falls back to cJSON whenever it says anything but 0
 * gets cJSON's answer in every case: for text both accept, the first member of a name
 * and its number are the ones cJSON would give.
 */
#ifndef TG_JSCAN_H
#define TG_JSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSCAN_DEPTH_MAX	 128 /* deeper nesting is refused (cJSON: 1000) */
#define JSCAN_NUMBER_MAX 63  /* longer numbers are refused (cJSON reads at most 63 chars) */

/*
 * Finds the first member called name (plain ASCII) of the object that buf[0, len) holds.
 * 0 with *val and *vlen set to the member's value text; -ENOENT if the text is valid but
 * has no such member; -EINVAL if it is not one strictly valid JSON object (optionally
 * surrounded by space, tab, CR, LF), nests deeper than JSCAN_DEPTH_MAX, has a string with
 * a control character, a bad escape or an unpaired \u surrogate, a number longer than
 * JSCAN_NUMBER_MAX, or a member name with an escape at the object's level.
 */
int jscan_member(const char *buf, size_t len, const char *name, const char **val, size_t *vlen);

/*
 * A token count: val[0, vlen) is a JSON number (as jscan_member returns one) whose value
 * is in [0, 2^53]; *out gets it truncated to an integer, as cJSON's valuedouble would give.
 * False, and *out untouched, for anything else.
 */
bool jscan_count(const char *val, size_t vlen, uint64_t *out);

#endif /* TG_JSCAN_H */
