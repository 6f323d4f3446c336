/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * One OpenAI API call as mock-llm understands it: the request body parsed and validated,
 * and the deterministic token counts every answer is built from (docs/mock-llm.md,
 * "Determinism"). The only file that parses /v1 request bodies, so the rule lives here once:
 *
 *   prompt tokens     = sum over the text inputs of ceil(bytes / 4), plus 3 per chat message
 *   completion tokens = max_completion_tokens or max_tokens if given (capped at 4096), else 16
 *   finish_reason     = "length" when a maximum was given, else "stop"
 *
 * No I/O: the server hands it a body, it hands back a call or an error to answer with.
 */
#ifndef MOCK_LLM_CALL_H
#define MOCK_LLM_CALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CALL_DEFAULT_COMPLETION_TOKENS 16
#define CALL_MAX_COMPLETION_TOKENS     4096
#define CALL_PROMPT_TOKENS_PER_MESSAGE 3
#define CALL_EMBEDDING_DIMS	       8
#define CALL_MAX_INPUTS		       2048

enum call_kind {
	CALL_CHAT = 1,	     /* POST /v1/chat/completions */
	CALL_COMPLETION = 2, /* POST /v1/completions */
	CALL_EMBEDDING = 3,  /* POST /v1/embeddings */
};

struct call {
	enum call_kind kind;
	int model;		    /* index in the model list (models.h) */
	unsigned prompt_tokens;	    /* by the rule above */
	unsigned completion_tokens; /* 0 for embeddings */
	bool length_limited;	    /* a maximum was given: finish_reason "length" */
	bool stream;		    /* "stream": true */
	bool include_usage;	    /* "stream_options": {"include_usage": true} */
	bool base64;		    /* embeddings: "encoding_format": "base64" */
	unsigned n_inputs;	    /* embeddings: how many inputs */
	uint64_t *input_hashes;	    /* embeddings: FNV-1a of each input; owned */
};

/* Why a body was refused: the HTTP status and the OpenAI error fields to answer with. */
struct call_error {
	unsigned status;
	const char *type;  /* static string */
	const char *code;  /* static string, or NULL for JSON null */
	const char *param; /* static string, or NULL for JSON null */
	char message[256];
};

/*
 * Parses BODY (LEN bytes, need not be NUL-terminated) as a call of KIND. Returns 0 with *C
 * filled (release it with call_free), or -EINVAL with *ERR filled (400 for malformed or
 * invalid bodies, 404 model_not_found for an unknown model), or -ENOMEM.
 */
int call_parse(enum call_kind kind, const char *body, size_t len, struct call *c,
	       struct call_error *err);

/* Releases what call_parse allocated; NULL-safe. */
void call_free(struct call *c);

/* ceil(LEN / 4): the prompt tokens one text input of LEN bytes counts for. */
unsigned call_text_tokens(size_t len);

/*
 * The embedding of one input: CALL_EMBEDDING_DIMS floats of unit length, derived only from
 * the input's FNV-1a hash, so the same input always gets the same vector.
 */
void call_embedding(uint64_t input_hash, float out[CALL_EMBEDDING_DIMS]);

#endif
