/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The HTTP layer: the only module that includes microhttpd.h. It runs a listener, collects
 * each request's body up to a limit (413 beyond it, before any handler runs), refuses bodies
 * that are not JSON when asked to (415), gives every request an id (x-request-id), and hands
 * complete requests to one handler function. Responses are built with the http_reply_*
 * calls; error bodies have the OpenAI shape {"error":{"message","type","param","code"}}.
 *
 * Handlers run on the listener's worker threads and answer synchronously (the data plane
 * will add suspend/resume on top of this).
 */
#ifndef TG_HTTP_H
#define TG_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;

struct http_opts {
	const char *listen;	    /* "127.0.0.1:8081", "[::1]:8081", "0.0.0.0:0" (any port) */
	const char *name;	    /* for logs: "admin", "data" */
	unsigned threads;	    /* worker threads, default 2 */
	size_t max_body;	    /* bytes; a larger body is answered 413 */
	bool require_json;	    /* bodies of POST/PUT/PATCH must be application/json (415) */
	unsigned timeout_sec;	    /* idle connection timeout, default 30 */
	unsigned max_conns;	    /* concurrent connections, default 1024 */
	size_t max_header;	    /* per-connection buffer for the request line and headers,
				       default 32768; longer headers are refused by the library
				       (431) before any handler runs */
};

struct http_req;
typedef void (*http_handler_fn)(struct http_req *req, void *arg);

struct http_server;

/* Binds and starts serving; NULL and errno on failure (logged with the address). */
struct http_server *http_start(const struct http_opts *o, http_handler_fn fn, void *arg);
/* Stops accepting, finishes in-flight requests, frees. Accepts NULL. */
void http_stop(struct http_server *h);
/* The port actually bound (useful with port 0). */
uint16_t http_port(const struct http_server *h);

/* Request accessors; returned strings are borrowed until the reply is sent. */
const char *http_req_method(struct http_req *r);
const char *http_req_path(struct http_req *r);	       /* without the query string */
const char *http_req_header(struct http_req *r, const char *name); /* case-insensitive */
const char *http_req_query(struct http_req *r, const char *name);  /* decoded, or NULL */
/* Calls cb for each query parameter (decoded); stops at the first non-zero return. */
int http_req_query_each(struct http_req *r, int (*cb)(const char *k, const char *v, void *a),
			void *arg);
const char *http_req_body(struct http_req *r, size_t *len); /* NUL-terminated, may be "" */
const char *http_req_id(struct http_req *r);

/* Adds a response header; call before the reply. Values must not contain CR or LF. */
int http_add_header(struct http_req *r, const char *name, const char *value);
/* Sends the response (copies body). A request is answered exactly once. */
int http_reply(struct http_req *r, unsigned status, const char *content_type, const void *body,
	       size_t len);
/* Serialises json (not freed) and sends it as application/json. */
int http_reply_json(struct http_req *r, unsigned status, const struct cJSON *json);
/*
 * Like http_reply_json, for a body holding a secret (a key or token shown once): the
 * serialised text is not copied again, and is wiped with explicit_bzero when the library is
 * done sending it. The caller still wipes its own copies (json's strings).
 */
int http_reply_json_secret(struct http_req *r, unsigned status, const struct cJSON *json);
/*
 * Sends an OpenAI-style error: {"error":{"message": <formatted>, "type", "param" (NULL ->
 * null), "code"}}. The message must never contain a secret.
 */
int http_reply_error(struct http_req *r, unsigned status, const char *type, const char *code,
		     const char *param, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#endif /* TG_HTTP_H */
