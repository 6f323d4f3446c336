/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The HTTP layer: the only module that includes microhttpd.h. It runs a listener, collects
 * each request's body up to a limit (413 beyond it, before any handler runs), refuses bodies
 * that are not JSON when asked to (415), gives every request an id (x-request-id), and hands
 * complete requests to one handler function. Responses are built with the http_reply_*
 * calls; error bodies have the OpenAI shape {"error":{"message","type","param","code"}}.
 *
 * Handlers run on the listener's worker threads. Most answer synchronously. A handler that
 * must wait (for an upstream call) calls http_defer() and returns without answering: the
 * connection is suspended, costing no thread, and any thread later completes it with
 * http_reply* or streams it with http_stream_*. A deferred request is reference-counted:
 * it stays valid for the deferring party until http_req_release(), even after the client
 * went away, and http_req_on_close() says when that happened.
 */
#ifndef TG_HTTP_H
#define TG_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

struct cJSON;

struct http_opts {
	const char *listen;	   /* "127.0.0.1:8081", "[::1]:8081", "0.0.0.0:0" (any port) */
	const char *name;	   /* for logs: "admin", "data" */
	unsigned threads;	   /* worker threads, default 2 */
	size_t max_body;	   /* bytes; a larger body is answered 413 */
	bool require_json;	   /* bodies of POST/PUT/PATCH must be application/json (415) */
	unsigned timeout_sec;	   /* idle connection timeout, default 30 */
	unsigned max_conns;	   /* concurrent connections, default 1024 */
	size_t max_header;	   /* per-connection buffer for the request line and headers,
				      default 32768; longer headers are refused by the library
				      (431) before any handler runs, and so are (by us) headers
				      that would leave the answer no room in it: the limit on
				      a request's headers is max_header - HTTP_REPLY_ROOM */
	size_t stream_buffer_max;  /* bytes a stream may buffer for a slow client before it is
				      cut (http_stream_write), default 1 MiB */
	unsigned drain_ms;	   /* http_stop waits this long for deferred requests to finish
				      before cutting them, default 0 */
	unsigned defer_accept_sec; /* > 0: TCP_DEFER_ACCEPT on the listener, so a connection is
				      accepted only once its first data came (the kernel fast
				      path sees the first request while the connection is still
				      embryonic, and may refuse it there); 0 = off */
	/*
	 * With route_label set, every request is counted in http_requests_total and
	 * http_request_duration_seconds{listener,route} (metrics.h), route being what
	 * route_label returns for the method and path: a route template such as
	 * "/api/v1/quota/:serviceId", never the raw path (bounded label values). A request
	 * that ends without an answer (client gone, shutdown) is counted with code 499.
	 */
	const char *(*route_label)(const char *method, const char *path);
	enum metrics_listener listener;
	/*
	 * nloops > 0: no threads of the listener's own (threads is ignored); one daemon per
	 * loop (loop.h), all on one listen socket, each run from its loop's thread, where its
	 * handlers then run: a handler that submits an upstream call on an upstream of the same
	 * loop has the answer come back on its own thread. The loops outlive http_stop.
	 */
	struct loop *const *loops;
	unsigned nloops;
};

struct http_req;
struct loop;
struct sockaddr_storage;
typedef void (*http_handler_fn)(struct http_req *req, void *arg);

struct http_server;

/* Binds and starts serving; NULL and errno on failure (logged with the address). */
struct http_server *http_start(const struct http_opts *o, http_handler_fn fn, void *arg);
/* Stops accepting, finishes in-flight requests, frees. Accepts NULL. */
void http_stop(struct http_server *h);
/* The port actually bound (useful with port 0). */
uint16_t http_port(const struct http_server *h);

/*
 * Matches a path against a route pattern segment by segment; a ":" segment of the pattern
 * matches one non-empty path segment, copied (truncated to argsize - 1 bytes) into arg.
 */
bool http_path_match(const char *pattern, const char *path, char *arg, size_t argsize);
/*
 * Finds the credential of an Authorization value "Bearer <token>" (scheme in any case,
 * spaces or tabs around): *tok points into h, *len excludes trailing blanks. False if h is
 * NULL, another scheme, or empty.
 */
bool http_bearer_token(const char *h, const char **tok, size_t *len);

/*
 * Request accessors; returned strings are borrowed until the reply is sent. After
 * http_defer, only http_req_id and http_req_body may be used from other threads (their
 * strings live as long as the reference); headers and query parameters belong to the
 * connection and must be copied by the handler before it returns.
 */
const char *http_req_method(struct http_req *r);
const char *http_req_path(struct http_req *r);			   /* without the query string */
const char *http_req_header(struct http_req *r, const char *name); /* case-insensitive */
const char *http_req_query(struct http_req *r, const char *name);  /* decoded, or NULL */
/* Calls cb for each query parameter (decoded); stops at the first non-zero return. */
int http_req_query_each(struct http_req *r, int (*cb)(const char *k, const char *v, void *a),
			void *arg);
const char *http_req_body(struct http_req *r, size_t *len); /* NUL-terminated, may be "" */
/*
 * Frees the body once the handler has what it needs from it (http_req_body gives "" after):
 * a deferred request lives as long as its answer, a stream's whole life. Only by whoever
 * handles the request, while nobody else reads the body.
 */
void http_req_body_drop(struct http_req *r);
const char *http_req_id(struct http_req *r);
/*
 * Copies the client's address (AF_INET or AF_INET6) to *out. 0, or -ENOTCONN when the
 * library has no address for the connection (it is gone). Listener thread only, or before
 * http_defer: a deferred request's connection may close under another thread.
 */
int http_req_peer(struct http_req *r, struct sockaddr_storage *out);

/*
 * Adds a response header; call before the reply. Values must not contain CR or LF. Any
 * thread may call it for a deferred request.
 */
int http_add_header(struct http_req *r, const char *name, const char *value);
/*
 * Sends the response (copies body). A request is answered exactly once: -EALREADY for a
 * second answer. For a deferred request this may be called from any thread; the answer is
 * stored and the connection resumed to send it. -ECONNRESET when the client is gone.
 */
int http_reply(struct http_req *r, unsigned status, const char *content_type, const void *body,
	       size_t len);
/*
 * As http_reply, but takes body (malloc'd, len bytes) instead of copying it: it is freed
 * when the library is done with the answer, or at once on failure. NULL with len 0 is an
 * empty body.
 */
int http_reply_take(struct http_req *r, unsigned status, const char *content_type, char *body,
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

/* ---- keep-alive connections that ignore their refusals (escalation rung 1) ---- */

/*
 * Notes the outcome of the rate-limit decision of r on its connection: a refusal adds one
 * to the connection's consecutive refusals, an allowed request resets them. Returns the
 * count after this request (0 when allowed, or when the connection has no state).
 */
unsigned http_conn_note_refusal(struct http_req *r, bool refused);
/*
 * The answer to r carries "Connection: close" and the library closes the connection once
 * it is sent. Call before answering.
 */
void http_close_after(struct http_req *r);

/* ---- deferred answers and streams ---- */

/*
 * Called by a handler that will answer later, from any thread: when it returns, the
 * connection is suspended until the answer comes. Takes a reference on the request for the
 * caller, who drops it with http_req_release once it will touch the request no more (after
 * answering, or after learning the client is gone). -ESHUTDOWN while the listener is
 * stopping (answer synchronously then), -EALREADY if already deferred or answered.
 */
int http_defer(struct http_req *r);
/* Drops a reference taken by http_defer; the request is freed with the last one. */
void http_req_release(struct http_req *r);
/*
 * Registers fn(arg), called exactly once, on a listener thread, when the request is over:
 * the answer was sent, the client went away, or the listener stopped. fn must not block;
 * it may call the http_* functions of this request (they then fail with -ECONNRESET).
 * One callback per request; -ECONNRESET if the request is already over (fn not called).
 */
int http_req_on_close(struct http_req *r, void (*fn)(void *arg), void *arg);

/*
 * Whether the client of a deferred request went away: the request is over, or its
 * connection reads end-of-file or an error (a peek, nothing consumed). A suspended
 * connection is not watched by the library, so a party holding a request parked for long
 * (the data plane's queue) asks this now and then. Any thread.
 */
bool http_req_client_gone(struct http_req *r);

struct http_stream;

/*
 * Starts a streamed answer of a deferred request, from any thread: the status, the headers
 * added so far and content_type go out, then a chunked body of what http_stream_write
 * supplies. The stream is owned by the request (valid while the caller holds its
 * reference). NULL and errno: ECONNRESET (client gone), EALREADY (answered), EINVAL (not
 * deferred), ENOMEM.
 */
struct http_stream *http_stream_start(struct http_req *r, unsigned status,
				      const char *content_type);
/*
 * Appends bytes to the stream, from any thread, and wakes the connection to send them.
 * Bytes wait in a per-stream buffer while the client is slower than the writer; past
 * stream_buffer_max the stream is cut (the client sees a broken response) and -ENOBUFS
 * returned. -ECONNRESET when the client is gone, -EPIPE after the end or a cut.
 */
int http_stream_write(struct http_stream *s, const void *buf, size_t len);
/* Ends the stream cleanly once the buffered bytes are sent. Any thread. */
int http_stream_end(struct http_stream *s);
/* Cuts the stream at once, without its last chunk: the client sees an incomplete answer. */
int http_stream_abort(struct http_stream *s);

#endif /* TG_HTTP_H */
