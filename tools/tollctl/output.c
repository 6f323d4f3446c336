// SPDX-License-Identifier: BSD-2-Clause
/*
 * tollctl output: the server's JSON pretty-printed for --json, tables padded to their widest
 * cell, and "field: value" views of one object. Everything goes to stdout.
 *
 * Strings from the server are printed with control characters replaced by '?', so a name
 * holding an escape sequence cannot repaint the operator's terminal. Widths count UTF-8 code
 * points: right for most text, not for wide (CJK) or combining characters.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollctl.h"

/* Prints a scalar, or an empty object or array, as cJSON writes it (strings escaped). */
static int json_compact(const cJSON *v)
{
	char *s = cJSON_PrintUnformatted(v);

	if (!s)
		return -ENOMEM;
	fputs(s, stdout);
	cJSON_free(s);
	return 0;
}

static int json_key(const char *key)
{
	cJSON *ref = cJSON_CreateStringReference(key);
	int err;

	if (!ref)
		return -ENOMEM;
	err = json_compact(ref);
	cJSON_Delete(ref); /* a reference: the key itself is not freed */
	fputs(": ", stdout);
	return err;
}

/*
 * Two spaces per level, one member per line, like jq. cJSON_Print would indent with tabs and
 * put a tab after each colon. Depth is bounded by cJSON's nesting limit.
 */
static int json_pretty(const cJSON *v, int depth)
{
	bool obj = cJSON_IsObject(v);
	const cJSON *c;
	int err = 0;

	if ((!obj && !cJSON_IsArray(v)) || !v->child)
		return json_compact(v);
	putchar(obj ? '{' : '[');
	cJSON_ArrayForEach(c, v)
	{
		printf("\n%*s", 2 * (depth + 1), "");
		if (obj)
			err = json_key(c->string ? c->string : "");
		if (!err)
			err = json_pretty(c, depth + 1);
		if (err)
			return err;
		if (c->next)
			putchar(',');
	}
	printf("\n%*s%c", 2 * depth, "", obj ? '}' : ']');
	return 0;
}

/* Prints JSON pretty, with a final newline. Returns 0, -ENOMEM or -EIO. */
int out_json(const cJSON *json)
{
	int err = json_pretty(json, 0);

	if (putchar('\n') == EOF || ferror(stdout))
		return -EIO;
	return err;
}

static bool is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* Writes S to F with control characters replaced by '?'. */
void out_clean(FILE *f, const char *s)
{
	for (; *s; s++)
		fputc(is_control((unsigned char)*s) ? '?' : *s, f);
}

/* Returns a copy of S with control characters replaced, or NULL. Free with free(). */
static char *clean_dup(const char *s)
{
	char *d = strdup(s), *p;

	if (!d)
		return NULL;
	for (p = d; *p; p++)
		if (is_control((unsigned char)*p))
			*p = '?';
	return d;
}

static size_t text_width(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			n++;
	return n;
}

static void pad(size_t n)
{
	while (n--)
		putchar(' ');
}

/* Integers print without a fraction or exponent; rates such as 0.5 print as given. */
static char *number_text(double d)
{
	char buf[64];

	if (d > -9e15 && d < 9e15 && d == (double)(long long)d)
		snprintf(buf, sizeof(buf), "%lld", (long long)d);
	else
		snprintf(buf, sizeof(buf), "%.15g", d);
	return strdup(buf);
}

/*
 * An object whose members are all strings (a tier's "actions": limit -> action) as
 * "name=value,name=value"; NULL with *other set when it is not one, or NULL (out of memory).
 */
static char *pairs_cell(const cJSON *v, bool *other)
{
	struct sbuf sb = {0};
	const cJSON *m;
	char *d;

	*other = false;
	cJSON_ArrayForEach(m, v)
	{
		if (!cJSON_IsString(m) || !m->string) {
			*other = true;
			sbuf_wipe(&sb);
			return NULL;
		}
		if (sbuf_addf(&sb, "%s%s=%s", m == v->child ? "" : ",", m->string,
			      m->valuestring)) {
			sbuf_wipe(&sb);
			return NULL;
		}
	}
	d = clean_dup(sb.buf ? sb.buf : "");
	sbuf_wipe(&sb);
	return d;
}

/* Human text for one value: "-" for null or missing. Returns a string to free(), or NULL. */
static char *out_cell(const cJSON *v)
{
	char *s, *d;
	bool other;

	if (!v || cJSON_IsNull(v) || (cJSON_IsObject(v) && !v->child))
		return strdup("-");
	if (cJSON_IsObject(v) && ((d = pairs_cell(v, &other)) || !other))
		return d;
	if (cJSON_IsString(v))
		return clean_dup(v->valuestring);
	if (cJSON_IsNumber(v))
		return number_text(v->valuedouble);
	if (cJSON_IsBool(v))
		return strdup(cJSON_IsTrue(v) ? "true" : "false");
	s = cJSON_PrintUnformatted(v);
	if (!s)
		return NULL;
	d = clean_dup(s);
	cJSON_free(s);
	return d;
}

/* Fills CELLS (row 0 = headers) and WIDTH. Returns 0 or -ENOMEM. */
static int table_fill(const struct out_col *cols, size_t ncols, const cJSON *items, char **cells,
		      size_t *width)
{
	const cJSON *item;
	size_t r = 0, c;

	for (c = 0; c < ncols; c++)
		cells[c] = strdup(cols[c].header);
	cJSON_ArrayForEach(item, items)
	{
		r++;
		for (c = 0; c < ncols; c++) {
			const cJSON *v = cJSON_IsObject(item)
					     ? cJSON_GetObjectItemCaseSensitive(item, cols[c].field)
					     : NULL;

			cells[r * ncols + c] = out_cell(v);
		}
	}
	for (c = 0; c < (r + 1) * ncols; c++) {
		if (!cells[c])
			return -ENOMEM;
		if (text_width(cells[c]) > width[c % ncols])
			width[c % ncols] = text_width(cells[c]);
	}
	return 0;
}

/*
 * Prints ITEMS (a JSON array of objects) as a table: one column per COLS entry, header
 * first, columns padded to their widest cell and two spaces apart. Returns 0 or -ENOMEM.
 */
int out_table(const struct out_col *cols, size_t ncols, const cJSON *items)
{
	size_t nrows = (size_t)cJSON_GetArraySize(items) + 1, i;
	char **cells = calloc(nrows * ncols, sizeof(*cells));
	size_t *width = calloc(ncols, sizeof(*width));
	int err = -ENOMEM;

	if (!cells || !width)
		goto out;
	err = table_fill(cols, ncols, items, cells, width);
	if (err)
		goto out;
	for (i = 0; i < nrows * ncols; i++) {
		fputs(cells[i], stdout);
		if (i % ncols == ncols - 1) {
			putchar('\n');
		} else {
			pad(width[i % ncols] - text_width(cells[i]) + 2);
		}
	}
out:
	for (i = 0; cells && i < nrows * ncols; i++)
		free(cells[i]);
	free(cells);
	free(width);
	return err;
}

/* Members not shown in a field view: the type tag, and secrets that are printed apart. */
static bool field_shown(const cJSON *f)
{
	return f->string && strcmp(f->string, "object") != 0 && strcmp(f->string, "key") != 0 &&
	       strcmp(f->string, "token") != 0;
}

static int field_line(const cJSON *f, int indent, size_t width)
{
	char *label = clean_dup(f->string), *cell = NULL;
	int err = -ENOMEM;

	if (!label)
		return -ENOMEM;
	printf("%*s%s:", indent, "", label);
	if (cJSON_IsObject(f) && f->child) {
		putchar('\n');
		err = out_fields(f, indent + 2);
	} else if ((cell = out_cell(f)) != NULL) {
		pad(width - text_width(label));
		puts(cell);
		err = 0;
	}
	free(cell);
	free(label);
	return err;
}

/*
 * Prints the members of OBJ in the server's order as "name: value" lines, values aligned,
 * nested objects (limits, effective_limits) as indented blocks. Skips "object", "key" and
 * "token". Returns 0 or -ENOMEM.
 */
int out_fields(const cJSON *obj, int indent)
{
	const cJSON *f;
	size_t width = 0;
	int err;

	cJSON_ArrayForEach(f, obj)
	{
		if (field_shown(f) && text_width(f->string) + 1 > width)
			width = text_width(f->string) + 1;
	}
	cJSON_ArrayForEach(f, obj)
	{
		if (!field_shown(f))
			continue;
		err = field_line(f, indent, width);
		if (err)
			return err;
	}
	return 0;
}
