// SPDX-License-Identifier: BSD-2-Clause
/*
 * tollctl utilities with no I/O: a growable buffer, URL escaping, request paths and query
 * strings, and small cJSON helpers.
 *
 * Buffers that may hold a key or a token are wiped before they are freed. The growable
 * buffer therefore never uses realloc, which could leave a stale copy in a block it frees
 * behind our back; it copies, wipes and frees instead.
 */
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollctl.h"

/*
 * Frees P after zeroing the whole block malloc gave it, not just the string in it. It is
 * also cJSON's free hook (see main), so every node and string of a response tree, a new
 * key included, is wiped when the tree is deleted. Accepts NULL.
 */
void wipe_free(void *p)
{
	if (!p)
		return;
	explicit_bzero(p, malloc_usable_size(p));
	free(p);
}

static int sbuf_grow(struct sbuf *sb, size_t need)
{
	size_t cap = sb->cap ? sb->cap : 256;
	char *nbuf;

	while (cap < need) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	nbuf = malloc(cap);
	if (!nbuf)
		return -ENOMEM;
	if (sb->buf)
		memcpy(nbuf, sb->buf, sb->len + 1);
	wipe_free(sb->buf);
	sb->buf = nbuf;
	sb->cap = cap;
	return 0;
}

/* Appends LEN bytes of DATA. Returns 0, -EFBIG when sb->max would be passed, or -ENOMEM. */
int sbuf_add(struct sbuf *sb, const void *data, size_t len)
{
	int err;

	if (sb->max && (len > sb->max || sb->len > sb->max - len))
		return -EFBIG;
	if (len >= SIZE_MAX - sb->len - 1)
		return -ENOMEM;
	if (sb->len + len + 1 > sb->cap) {
		err = sbuf_grow(sb, sb->len + len + 1);
		if (err)
			return err;
	}
	if (len)
		memcpy(sb->buf + sb->len, data, len);
	sb->len += len;
	sb->buf[sb->len] = '\0';
	return 0;
}

/* Appends printf-style text. Returns 0 or a negative errno. The scratch copy is wiped. */
int sbuf_addf(struct sbuf *sb, const char *fmt, ...)
{
	va_list ap;
	char *tmp;
	int n, err;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	tmp = malloc((size_t)n + 1);
	if (!tmp)
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(tmp, (size_t)n + 1, fmt, ap);
	va_end(ap);
	err = sbuf_add(sb, tmp, (size_t)n);
	wipe_free(tmp);
	return err;
}

/* Wipes and frees the buffer; the sbuf can be reused afterwards. Accepts an empty sbuf. */
void sbuf_wipe(struct sbuf *sb)
{
	wipe_free(sb->buf);
	sb->buf = NULL;
	sb->len = 0;
	sb->cap = 0;
}

/*
 * Percent-encodes everything but RFC 3986 unreserved characters, so an owner such as
 * "team:ml" or an odd id cannot change the shape of the path or query. Returns a string the
 * caller frees with free(), or NULL with errno set.
 */
char *url_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out, *p;

	if (n > SIZE_MAX / 3 - 1) {
		errno = ENOMEM;
		return NULL;
	}
	out = malloc(3 * n + 1);
	if (!out)
		return NULL;
	for (p = out; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			*p++ = (char)c;
		} else {
			*p++ = '%';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	*p = '\0';
	return out;
}

/* Returns PREFIX + escaped ID + SUFFIX (free with free()), or NULL with errno set. */
char *ctl_path(const char *prefix, const char *id, const char *suffix)
{
	struct sbuf sb = {0};
	char *esc = url_escape(id);

	if (!esc)
		return NULL;
	if (sbuf_addf(&sb, "%s%s%s", prefix, esc, suffix ? suffix : "") != 0) {
		free(esc);
		sbuf_wipe(&sb);
		errno = ENOMEM;
		return NULL;
	}
	free(esc);
	return sb.buf;
}

/* Appends "?NAME=VALUE" or "&NAME=VALUE" (VALUE escaped) to a path. Returns 0 or -errno. */
int query_add(struct sbuf *sb, const char *name, const char *value)
{
	char sep = (sb->buf && strchr(sb->buf, '?')) ? '&' : '?';
	char *esc = url_escape(value);
	int err;

	if (!esc)
		return -ENOMEM;
	err = sbuf_addf(sb, "%c%s=%s", sep, name, esc);
	free(esc);
	return err;
}

/*
 * Sets OBJ.NAME to ITEM, in place when the member exists so the field order the server
 * chose survives a merge. Takes ITEM over even on failure. Returns 0 or -ENOMEM.
 */
int json_replace(cJSON *obj, const char *name, cJSON *item)
{
	if (!item)
		return -ENOMEM;
	if (cJSON_GetObjectItemCaseSensitive(obj, name)) {
		if (cJSON_ReplaceItemInObjectCaseSensitive(obj, name, item))
			return 0;
	} else if (cJSON_AddItemToObject(obj, name, item)) {
		return 0;
	}
	cJSON_Delete(item);
	return -ENOMEM;
}

/* Returns OBJ.NAME when it is a string, else NULL. Borrowed: lives as long as OBJ. */
const char *json_str(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}
