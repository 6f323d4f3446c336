/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The models mock-llm serves (--models): requests naming any other model get 404
 * model_not_found. The list is set once before the server starts and read-only after, so
 * the workers read it without locks.
 */
#ifndef MOCK_LLM_MODELS_H
#define MOCK_LLM_MODELS_H

#include <stddef.h>

#define MODELS_MAX	    64
#define MODELS_NAME_MAX_LEN 128

/*
 * Parses a comma-separated list ("a,b,c"); empty items are skipped. Returns 0, or -EINVAL
 * (no model, more than MODELS_MAX, a name longer than MODELS_NAME_MAX_LEN bytes, or a
 * duplicate), or -ENOMEM. Replaces any earlier list; call before serving.
 */
int models_init(const char *csv);

/* Releases the list (safe to call twice). */
void models_free(void);

size_t models_count(void);

/* The index of the model named NAME, or -1. */
int models_find(const char *name);

/* Model I's name, and its name as a quoted, escaped JSON string; valid until models_free. */
const char *models_name(int i);
const char *models_json(int i);

#endif
