/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The JSON bodies of non-streaming answers, in OpenAI's shapes: chat completions, text
 * completions, embeddings, the model list, and errors. Pure: each appends to a buf and
 * leaves the HTTP side to the server.
 */
#ifndef MOCK_LLM_REPLY_H
#define MOCK_LLM_REPLY_H

#include <stdint.h>

#include "buf.h"
#include "call.h"

/* "created" of every model in GET /v1/models: fixed, so answers are reproducible. */
#define REPLY_MODEL_CREATED 1700000000

/* The answer to C (not streaming), with id number ID and Unix time CREATED. */
void reply_call(struct buf *b, const struct call *c, uint64_t id, long long created);

/* GET /v1/models, and GET /v1/models/{id} for model index MODEL. */
void reply_models(struct buf *b);
void reply_model(struct buf *b, int model);

/* {"error":{"message","type","param","code"}}; CODE and PARAM may be NULL (JSON null). */
void reply_error(struct buf *b, const char *message, const char *type, const char *code,
		 const char *param);

/*
 * Appends " tok1 tok2 ... tokN" minus the first space: the completion text of N tokens,
 * one word per token.
 */
void reply_words(struct buf *b, unsigned n);

#endif
