/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The upstream client: the only module that includes curl.h. Each client drives a libcurl
 * multi handle on one event loop (loop.h; its own, or a data-plane listener's), with
 * HTTP/1.1 keep-alive connection reuse per upstream host and no thread per call, so
 * thousands of slow or streaming calls in flight cost memory, not threads. Calls are
 * submitted from any thread; their callbacks run on the loop's thread (called "the upstream
 * thread" below) and must not block.
 */
#ifndef TG_UPSTREAM_H
#define TG_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum upstream_err {
	UPSTREAM_OK = 0,
	UPSTREAM_CONNECT,   /* could not connect (refused, unreachable, DNS) */
	UPSTREAM_TIMEOUT,   /* no complete answer within the call's timeout */
	UPSTREAM_BROKEN,    /* the connection broke mid-answer */
	UPSTREAM_CANCELLED, /* upstream_cancel() was called */
	UPSTREAM_INTERNAL,  /* allocation or libcurl failure */
};

struct upstream_call {
	/* request (copied at submit, body unless body_kept) */
	const char *url;	  /* full URL, e.g. base_url + "/chat/completions" */
	const char *api_key;	  /* sent as "Authorization: Bearer"; NULL = none; never logged */
	const char *method;	  /* "POST" or "GET" */
	const void *body;
	size_t body_len;
	uint32_t timeout_ms;	  /* whole call */
	bool stream;		  /* the answer is expected as a stream of small events: the
				   * call gets a 1 KiB receive buffer instead of 4 KiB */
	bool http2;		  /* HTTP/2 (prior knowledge over http://, negotiated over
				   * https://): the call shares a connection with others */
	const char *ca_file;	  /* PEM CAs for https://; NULL = the system's */
	bool body_kept;		  /* the caller keeps body alive and unchanged until on_done
				   * has returned (or submit failed): it is sent from there, not
				   * copied (a call in flight then holds its body once, not twice) */
	/* callbacks (upstream thread) */
	void (*on_status)(void *ctx, unsigned status, const char *content_type,
			  const char *retry_after); /* once, when the headers are complete */
	void (*on_data)(void *ctx, const char *buf, size_t len); /* body bytes as they come */
	void (*on_done)(void *ctx, enum upstream_err err, const char *detail); /* last call */
	void *ctx;
};

struct upstream;
struct loop;

/*
 * Whether this libcurl can keep cleartext HTTP/2 (prior knowledge) connections across calls:
 * 7.88 cannot (every reused call fails with "Error in the HTTP2 framing layer"; fixed in 8.0).
 */
bool upstream_h2c_ok(void);
/* libcurl's version text ("7.88.1"), for messages. */
const char *upstream_lib_version(void);

/* Starts a client on a loop of its own. max_host_conns bounds connections per upstream host. */
struct upstream *upstream_start(unsigned max_host_conns);
/*
 * An upstream on an existing loop (loop.h): its callbacks run on the loop's thread, and a
 * call submitted from that thread is started there with no wake-up. upstream_stop leaves
 * the loop running.
 */
struct upstream *upstream_start_on(struct loop *l, unsigned max_host_conns);
/* The upstream whose loop runs on this thread, or NULL. */
struct upstream *upstream_here(void);
/* Cancels every call in flight (on_done with UPSTREAM_CANCELLED), stops. Accepts NULL. */
void upstream_stop(struct upstream *u);
/*
 * Queues a call; returns 0 and a handle for upstream_cancel, or -errno. After 0 exactly
 * one on_done follows.
 */
int upstream_submit(struct upstream *u, const struct upstream_call *c, uint64_t *handle);
/* Cancels a call (e.g. the client went away); on_done follows unless it already ran. */
void upstream_cancel(struct upstream *u, uint64_t handle);
/* Calls in flight right now. */
unsigned upstream_inflight(struct upstream *u);
/*
 * Sets fn(arg) to run on the upstream thread after each round of events (every on_done of
 * the round has returned) and once more after upstream_stop's cancels: where work the
 * callbacks queued is done for the whole round at once. NULL removes it; arg must stay
 * valid until then or until upstream_stop returns.
 */
void upstream_on_round(struct upstream *u, void (*fn)(void *arg), void *arg);
/* True on the upstream thread (inside its callbacks). */
bool upstream_on_thread(const struct upstream *u);
/* Human text for an error class ("connect", "timeout", ...), also the metrics label. */
const char *upstream_err_name(enum upstream_err e);

/*
 * A small POST for notifications (alert webhooks): sends json (copied) to url with
 * Content-Type application/json and no credentials, discards the answer's body, and calls
 * done(ctx, status, err) once on the upstream thread: status is the HTTP status (0 when
 * none came), err UPSTREAM_OK when the answer was complete. 0 and *handle (for
 * upstream_cancel; may be NULL), or -errno (done is then not called).
 */
int upstream_post_json(struct upstream *u, const char *url, const char *json, size_t len,
		       uint32_t timeout_ms,
		       void (*done)(void *ctx, unsigned status, enum upstream_err err), void *ctx,
		       uint64_t *handle);
/*
 * Checks that url is an http:// or https:// URL with a host, as libcurl parses it. 0, or
 * -EINVAL with a reason in err (never the URL itself, which may hold a token).
 */
int upstream_url_check(const char *url, char *err, size_t errlen);

#endif /* TG_UPSTREAM_H */
