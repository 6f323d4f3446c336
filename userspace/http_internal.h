/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Private to the HTTP layer (http.c: listener, request cycle, replies; http_defer.c:
 * deferred answers and streams; http_conn.c: per-connection refusal counts). The request and server
 * state both files work on, and the few functions they share. With http.h, the only headers that
 * include microhttpd.h.
 *
 * Lifetimes: a request has a reference for the library (dropped when it reports the
 * request completed), one per http_defer (dropped by http_req_release) and one while a
 * stream response exists (dropped by the response's free callback); whoever drops the last
 * frees it. After completion nothing touches the connection or the server again: every
 * call on the request sees `closed` and fails with -ECONNRESET.
 *
 * Locking order: the server's mutex, then a request's mutex, then the library's own. No
 * library call that takes a response's mutex (queue, destroy) is made under a request's
 * mutex, since the library holds that mutex while it calls the content reader.
 */
#ifndef TG_HTTP_INTERNAL_H
#define TG_HTTP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "http.h"

#define HTTP_ID_MAX	    64	 /* longest x-request-id taken from a client */
#define HTTP_ID_RANDOM	    24	 /* random characters of a generated id, after "req_" */
#define HTTP_HDR_MAX	    16	 /* response headers a handler may add */
#define HTTP_HDR_BUF	    512	 /* their text kept in the request (beyond: one allocation each) */
#define HTTP_LOG_PATH_MAX   160	 /* path characters shown in the access log */
#define HTTP_ERR_MSG_MAX    512	 /* longest error message */
#define HTTP_ERR_BODY_BUF   1024 /* an error body's buffer on the stack (larger: on the heap) */
#define HTTP_BODY_MIN_CAP   1024 /* first allocation of a body buffer */
#define HTTP_SECRET_BUF	    2048 /* first try at serialising a secret-bearing body */
#define HTTP_SECRET_BUF_MAX (1u << 20)
#define HTTP_ID_ALPHABET    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
/*
 * The content-reader block, allocated (and zeroed) with each stream response. A chunked body
 * (HTTP/1.1) never uses it - the reader fills the connection's write buffer directly - so
 * it is kept small; only an HTTP/1.0 client, which cannot take chunks, gets the stream in
 * pieces of at most this size.
 */
#define HTTP_STREAM_BLOCK   256
#define HTTP_STREAM_MIN_CAP 512	       /* first allocation of a stream buffer (freed drained) */
#define HTTP_STREAM_MAX_DEF (1u << 20) /* default stream_buffer_max */
#define HTTP_STATUS_GONE    499	       /* metrics code of a request that ended unanswered */
/*
 * The library's per-connection pool (max_header bytes) holds the request line and headers,
 * a record of ~56 bytes per header, then the answer's header block (~550 bytes for a
 * stream's 15 headers) and at least 128 bytes of chunk buffer. A request that leaves the
 * answer less room than that cannot be answered at all: the library drops the connection
 * with no reply, after the handler ran (and forwarded the call). req_first refuses such a
 * request with a 431 while there is still room for one.
 */
#define HTTP_REPLY_ROOM	    1024
#define HTTP_REQ_HDR_RECORD 64 /* the library's record of one request header, rounded up */

struct http_loopd; /* http_loop.c */

struct http_server {
	struct MHD_Daemon *d;  /* the first daemon when there are loops (its listen socket) */
	struct http_loopd *ld; /* one daemon per loop (http_opts.loops), nld of them */
	unsigned nld;
	http_handler_fn fn;
	void *arg;
	size_t max_body;
	size_t max_header; /* MHD_OPTION_CONNECTION_MEMORY_LIMIT: the connection's pool */
	size_t stream_max;
	bool require_json;
	uint16_t port;
	char name[32];
	unsigned drain_ms;
	const char *(*route_label)(const char *method, const char *path);
	enum metrics_listener listener;
	pthread_mutex_t mu;	  /* parked, nparked, draining */
	pthread_cond_t parked_cv; /* nparked went down */
	struct http_req *parked;  /* deferred requests not yet completed (doubly linked) */
	unsigned nparked;
	bool draining;	      /* http_defer refuses: the listener is going away */
	atomic_bool stopping; /* no more suspensions: every parked one is being resumed */
};

struct http_stream {
	struct http_req *r;
	struct MHD_Response *resp; /* ours until the library frees it (stream_free) */
	bool headers_dropped;	   /* its header entries are freed (see stream_drop_headers) */
	char *buf; /* bytes not yet taken by the reader: buf[off, off + len); NULL when drained */
	size_t off, len, cap, max;
	bool ended;   /* http_stream_end: the reader ends the body once buf is empty */
	bool aborted; /* cut: the reader fails, the library closes the connection */
};

struct http_hdr {
	char *name;  /* "name\0value\0" in one piece: in the request's hbuf, or allocated */
	char *value; /* points into name's piece */
};

struct http_req {
	struct http_server *srv;
	struct http_loopd *ld; /* the loop whose daemon has the connection, or NULL */
	struct MHD_Connection *conn;
	char *method; /* method and path: in the request's own block, after it */
	char *path;
	char *body; /* NUL-terminated; NULL until the first byte */
	size_t len;
	size_t cap;
	size_t body_hint; /* the declared Content-Length + 1: the body's first allocation */
	bool too_large;	  /* the body passed max_body: 413, the rest is discarded */
	bool answered;	  /* a response was queued to the library (listener thread only) */
	unsigned status;
	atomic_uint refs;
	pthread_mutex_t mu; /* everything below, and hdr/nhdr once the request is deferred */
	bool deferred;	    /* http_defer was called */
	bool replied;	    /* an answer was given (queued, pending or a stream) */
	bool suspended;	    /* we suspended the connection and have not resumed it */
	bool closed;	    /* the library completed the request: conn is gone */
	bool parked;	    /* in the server's parked list (server mutex) */
	bool close_after;   /* http_close_after: the answer carries Connection: close */
	struct MHD_Response *pending; /* a deferred answer waiting for the resumed handler */
	unsigned pending_status;
	struct http_stream *stream;
	void (*on_close)(void *arg);
	void *on_close_arg;
	struct http_req *pnext, *pprev; /* parked list */
	int64_t start_ns;
	size_t nhdr;
	/* HTTP_HDR_MAX entries then HTTP_HDR_BUF bytes of their text (hbuf), one allocation at
	 * the first http_add_header; a stream frees it once its response holds copies */
	struct http_hdr *hdr;
	char *hbuf;   /* the handler's header names and values, while they fit; in hdr's block */
	size_t hused; /* bytes of hbuf in use */
	char id[HTTP_ID_MAX + 1];
};

/* Resumes the connection if we suspended it (exactly once per suspension). Holds r->mu. */
void http_req_wake(struct http_req *r);
/* Adds x-request-id, the content type and the handler's headers to a fresh response. */
int http_resp_headers(struct http_req *r, const char *ctype, struct MHD_Response *resp);
/* Frees the handler's headers (after a final response took its copies). Holds r->mu or sole. */
void http_req_headers_free(struct http_req *r);
/* Queues resp (taken) on the connection: listener thread, inside the access handler. */
int http_queue_now(struct http_req *r, unsigned status, struct MHD_Response *resp);
/* The access handler's part for a deferred request: queue its answer or suspend. */
enum MHD_Result http_req_deferred(struct http_req *r);
/* Takes a completed request out of the server's parked list. */
void http_req_unpark(struct http_req *r);
/* http_stop: wait for parked requests (drain_ms), then resume every one. Hold h->mu. */
void http_server_drain(struct http_server *h);
void http_server_wake_all(struct http_server *h);
/*
 * A daemon for the server: with nloops == 0 it runs its own thread pool (o->threads);
 * otherwise it is driven from a loop (http_loop.c), listening on listen_fd when >= 0 (else
 * binding ss). NULL and errno.
 */
struct sockaddr_storage;
struct MHD_Daemon *http_daemon_start(struct http_server *h, const struct http_opts *o,
				     const struct sockaddr_storage *ss, bool v6, int listen_fd,
				     unsigned nloops);
/* One daemon per loop of o->loops; the first, or NULL and errno (none left running). */
struct MHD_Daemon *http_loops_start(struct http_server *h, const struct http_opts *o,
				    const struct sockaddr_storage *ss, bool v6);
/* Stops accepting on every loop's daemon; the shared listen socket (for the caller to close). */
MHD_socket http_loops_quiesce(struct http_server *h);
/* The daemon of the loop running this thread (a handler's), or NULL. */
struct http_loopd *http_loops_here(struct http_server *h);
/*
 * After MHD_resume_connection: in external mode the library does not wake the loop (its
 * inter-thread channel is not in the epoll set we watch), so the daemon is marked to run
 * and, from another thread, its loop woken. Any thread.
 */
void http_loops_kick(struct http_loopd *ld);
/* Stops every loop's daemon on its own loop thread (completing their requests), frees them. */
void http_loops_stop(struct http_server *h);
/* MHD_OPTION_NOTIFY_CONNECTION: makes and frees the per-connection state (http_conn.c). */
void http_conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
		      enum MHD_ConnectionNotificationCode toe);

#endif /* TG_HTTP_INTERNAL_H */
