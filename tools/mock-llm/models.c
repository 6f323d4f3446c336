/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The served model list (models.h). Each name is also kept pre-escaped as JSON, because
 * every streamed chunk repeats it and escaping it once beats escaping it per token.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "models.h"

static char *model_names[MODELS_MAX];
static char *model_jsons[MODELS_MAX];
static size_t model_count;

void models_free(void)
{
	for (size_t i = 0; i < model_count; i++) {
		free(model_names[i]);
		free(model_jsons[i]);
		model_names[i] = model_jsons[i] = NULL;
	}
	model_count = 0;
}

/* Appends one name of LEN bytes; 0 or a negative errno. */
static int models_add(const char *name, size_t len)
{
	struct buf b;
	size_t n;

	if (len > MODELS_NAME_MAX_LEN || model_count == MODELS_MAX)
		return -EINVAL;
	model_names[model_count] = strndup(name, len);
	if (!model_names[model_count])
		return -ENOMEM;
	if (models_find(model_names[model_count]) >= 0) {
		free(model_names[model_count]);
		model_names[model_count] = NULL;
		return -EINVAL;
	}
	buf_init(&b);
	buf_json_string(&b, model_names[model_count]);
	model_jsons[model_count] = buf_steal(&b, &n);
	if (!model_jsons[model_count]) {
		free(model_names[model_count]);
		model_names[model_count] = NULL;
		return -ENOMEM;
	}
	model_count++;
	return 0;
}

int models_init(const char *csv)
{
	const char *p = csv;
	int err;

	models_free();
	while (*p) {
		size_t len = strcspn(p, ",");

		if (len > 0) {
			err = models_add(p, len);
			if (err < 0) {
				models_free();
				return err;
			}
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return model_count ? 0 : -EINVAL;
}

size_t models_count(void)
{
	return model_count;
}

int models_find(const char *name)
{
	for (size_t i = 0; i < model_count; i++)
		if (model_names[i] && strcmp(model_names[i], name) == 0)
			return (int)i;
	return -1;
}

const char *models_name(int i)
{
	return model_names[i];
}

const char *models_json(int i)
{
	return model_jsons[i];
}
