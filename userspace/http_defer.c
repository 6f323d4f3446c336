/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Deferred answers and streams of the HTTP layer (MHD_ALLOW_SUSPEND_RESUME). A deferred
 * request's connection is suspended when its handler returns; whichever thread has the
 * answer stores it in the request (r->pending) under the request's mutex and resumes the
 * connection, and the library calls the access handler again, which queues it: only
 * listener threads ever queue responses or suspend. A stream's content reader takes bytes
 * from the stream's buffer; finding it empty and the stream not ended, it suspends the
 * connection (never a busy loop of empty reads) and http_stream_write resumes it.
 * `suspended` is set and cleared under the request's mutex, together with the library
 * call, so a connection is resumed exactly once per suspension and never after it was
 * closed (a suspended connection is not closed by the library: it does not even see the
 * client leave; it notices at the next write).
 *
 * Stopping: the library refuses to stop with a connection suspended, so http_stop waits
 * up to drain_ms for the parked requests, then sets `stopping` and resumes them all; from
 * then on none is suspended again (an unanswered one is closed, a stream is cut).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "http_internal.h"
#include "log.h"
#include "util.h"

/* ---- deferred answers ---- */

int http_defer(struct http_req *r)
{
	struct http_server *h = r->srv;
	int rc = 0;

	pthread_mutex_lock(&h->mu);
	pthread_mutex_lock(&r->mu);
	if (h->draining)
		rc = -ESHUTDOWN;
	else if (r->deferred || r->replied)
		rc = -EALREADY;
	if (!rc) {
		r->deferred = true;
		r->parked = true;
		r->pnext = h->parked;
		r->pprev = NULL;
		if (h->parked)
			h->parked->pprev = r;
		h->parked = r;
		h->nparked++;
		atomic_fetch_add(&r->refs, 1);
	}
	pthread_mutex_unlock(&r->mu);
	pthread_mutex_unlock(&h->mu);
	return rc;
}

int http_req_on_close(struct http_req *r, void (*fn)(void *arg), void *arg)
{
	int rc = 0;

	pthread_mutex_lock(&r->mu);
	if (r->closed)
		rc = -ECONNRESET;
	else if (r->on_close)
		rc = -EBUSY;
	else {
		r->on_close = fn;
		r->on_close_arg = arg;
	}
	pthread_mutex_unlock(&r->mu);
	return rc;
}

bool http_req_client_gone(struct http_req *r)
{
	const union MHD_ConnectionInfo *ci;
	bool gone = false;
	ssize_t n;
	char b;

	pthread_mutex_lock(&r->mu);
	/* closed is set under r->mu before the library closes the socket: the fd is ours */
	if (r->closed) {
		gone = true;
	} else {
		ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		n = ci ? recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) : -1;
		gone = ci && (n == 0 ||
			      (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR));
	}
	pthread_mutex_unlock(&r->mu);
	return gone;
}

/* Out of the server's parked list (listener thread, at completion). */
void http_req_unpark(struct http_req *r)
{
	struct http_server *h = r->srv;

	pthread_mutex_lock(&h->mu);
	if (r->parked) {
		if (r->pprev)
			r->pprev->pnext = r->pnext;
		else
			h->parked = r->pnext;
		if (r->pnext)
			r->pnext->pprev = r->pprev;
		r->parked = false;
		h->nparked--;
		pthread_cond_broadcast(&h->parked_cv);
	}
	pthread_mutex_unlock(&h->mu);
}

/*
 * The access handler of a deferred request (after its handler returned, and after each
 * resume): queues the stored answer, or suspends until there is one. While the listener
 * stops, a request still without an answer is closed instead (MHD_NO).
 */
enum MHD_Result http_req_deferred(struct http_req *r)
{
	struct MHD_Response *resp;
	unsigned status;

	pthread_mutex_lock(&r->mu);
	resp = r->pending;
	status = r->pending_status;
	r->pending = NULL;
	if (!resp) {
		if (atomic_load(&r->srv->stopping)) {
			pthread_mutex_unlock(&r->mu);
			return MHD_NO;
		}
		r->suspended = true;
		MHD_suspend_connection(r->conn);
		pthread_mutex_unlock(&r->mu);
		return MHD_YES;
	}
	pthread_mutex_unlock(&r->mu);
	if (http_queue_now(r, status, resp) == 0)
		return MHD_YES;
	log_warnx("%s: cannot queue a deferred answer, id=%s", r->srv->name, r->id);
	return MHD_NO;
}

/* ---- streams ---- */

/* The first header entry stream_drop_headers may free: a copy of its name and value. */
struct http_hdr_pick {
	char name[128];
	char value[512];
	bool found;
};

static enum MHD_Result pick_header(void *cls, enum MHD_ValueKind kind, const char *key,
				   const char *value)
{
	struct http_hdr_pick *p = cls;

	/* footers are still to be sent; Connection also steers the library's keep-alive */
	if (kind != MHD_HEADER_KIND || !value || !strcasecmp(key, MHD_HTTP_HEADER_CONNECTION))
		return MHD_YES;
	/* copies: MHD_del_response_header must not be handed the entry's own strings */
	if ((size_t)snprintf(p->name, sizeof(p->name), "%s", key) >= sizeof(p->name) ||
	    (size_t)snprintf(p->value, sizeof(p->value), "%s", value) >= sizeof(p->value))
		return MHD_NO; /* longer than any of ours: stop here, it stays */
	p->found = true;
	return MHD_NO;
}

/*
 * Frees a stream response's header entries once the header block is built. The library
 * keeps every header it was given (an entry and two strings, ~140 bytes each, ~2 KB for
 * the 15 a stream carries) until the response is destroyed, at the stream's end; it
 * serializes them into the connection's buffer when the reply starts (START_REPLY, in
 * 0.9.75 as in 1.0), before the content reader is ever called, and reads them later only
 * for footers (kind MHD_FOOTER_KIND, kept) and the Connection header (kept). So at the
 * reader's first call they are dead weight for the rest of a long stream. A library that
 * refuses the deletion (a frozen response) just keeps them.
 */
static void stream_drop_headers(struct MHD_Response *resp)
{
	for (;;) {
		struct http_hdr_pick p;

		p.found = false;
		MHD_get_response_headers(resp, pick_header, &p);
		if (!p.found || MHD_del_response_header(resp, p.name, p.value) != MHD_YES)
			return;
	}
}

/*
 * The content reader (listener thread, the library holding the response's mutex): hands
 * out buffered bytes; with none, ends the body, fails it, or suspends until a write.
 */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct http_stream *s = cls;
	struct http_req *r = s->r;
	ssize_t n;

	(void)pos;
	if (!s->headers_dropped) {
		s->headers_dropped = true;
		stream_drop_headers(s->resp);
	}
	pthread_mutex_lock(&r->mu);
	if (s->aborted) {
		n = MHD_CONTENT_READER_END_WITH_ERROR;
	} else if (s->len) {
		n = (ssize_t)(s->len < max ? s->len : max);
		memcpy(buf, s->buf + s->off, (size_t)n);
		s->off += (size_t)n;
		s->len -= (size_t)n;
		if (!s->len) {
			/*
			 * Drained: give the buffer back. A stream's bytes are usually taken
			 * as soon as they come, so most streams in flight hold none.
			 */
			free(s->buf);
			s->buf = NULL;
			s->off = s->cap = 0;
		}
	} else if (s->ended) {
		n = MHD_CONTENT_READER_END_OF_STREAM;
	} else if (atomic_load(&r->srv->stopping)) {
		n = MHD_CONTENT_READER_END_WITH_ERROR;
	} else {
		/* nothing to send yet: park the connection; http_stream_write resumes it */
		r->suspended = true;
		MHD_suspend_connection(r->conn);
		n = 0;
	}
	pthread_mutex_unlock(&r->mu);
	return n;
}

/* The stream response is gone (the library is done with it): its reference goes. */
static void stream_free(void *cls)
{
	struct http_stream *s = cls;

	http_req_release(s->r);
}

/* Reserves the answer slot for a stream; false (errno set) if the request cannot take one. */
static bool stream_reserve(struct http_req *r, struct http_stream *s)
{
	int err = 0;

	pthread_mutex_lock(&r->mu);
	if (r->closed)
		err = ECONNRESET;
	else if (r->replied)
		err = EALREADY;
	else if (!r->deferred)
		err = EINVAL;
	if (!err) {
		r->replied = true;
		r->stream = s; /* freed with r from now on */
	}
	pthread_mutex_unlock(&r->mu);
	errno = err;
	return err == 0;
}

struct http_stream *http_stream_start(struct http_req *r, unsigned status, const char *content_type)
{
	struct http_stream *s = calloc(1, sizeof(*s));
	struct MHD_Response *resp;

	if (!s)
		return NULL;
	s->r = r;
	s->max = r->srv->stream_max;
	if (!stream_reserve(r, s)) {
		free(s);
		return NULL;
	}
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, HTTP_STREAM_BLOCK, stream_read,
						 s, stream_free);
	pthread_mutex_lock(&r->mu);
	if (!resp) {
		/* nobody saw s: give the answer slot back, the caller may still answer */
		r->replied = false;
		r->stream = NULL;
		pthread_mutex_unlock(&r->mu);
		free(s);
		errno = ENOMEM;
		return NULL;
	}
	s->resp = resp;
	atomic_fetch_add(&r->refs, 1); /* the response's, until stream_free */
	if (r->closed) {
		s->aborted = true;
		pthread_mutex_unlock(&r->mu);
		MHD_destroy_response(resp); /* never queued: stream_free runs here */
		errno = ECONNRESET;
		return NULL;
	}
	if (http_resp_headers(r, content_type, resp))
		log_warnx("%s: headers of a stream dropped (no memory), id=%s", r->srv->name,
			  r->id);
	/* the response holds copies and no other answer can follow: ours go now, not with r */
	http_req_headers_free(r);
	r->status = status;
	r->pending = resp;
	r->pending_status = status;
	http_req_wake(r);
	pthread_mutex_unlock(&r->mu);
	return s;
}

/* Room for len more bytes in the stream buffer (compacting or growing), or false. */
static bool stream_room(struct http_stream *s, size_t len)
{
	size_t cap;
	char *p;

	if (s->off && s->off + s->len + len > s->cap) {
		memmove(s->buf, s->buf + s->off, s->len);
		s->off = 0;
	}
	if (s->len + len <= s->cap)
		return true;
	cap = s->cap ? s->cap : HTTP_STREAM_MIN_CAP;
	while (cap < s->len + len)
		cap *= 2;
	p = realloc(s->buf, cap);
	if (!p)
		return false;
	s->buf = p;
	s->cap = cap;
	return true;
}

int http_stream_write(struct http_stream *s, const void *buf, size_t len)
{
	struct http_req *r = s->r;
	int rc = 0;

	pthread_mutex_lock(&r->mu);
	if (r->closed)
		rc = -ECONNRESET;
	else if (s->ended || s->aborted)
		rc = -EPIPE;
	else if (len > s->max - s->len || !stream_room(s, len)) {
		/* a client this far behind (or no memory) is cut rather than buffered forever */
		s->aborted = true;
		rc = -ENOBUFS;
	} else {
		memcpy(s->buf + s->off + s->len, buf, len);
		s->len += len;
	}
	if (!r->closed)
		http_req_wake(r);
	pthread_mutex_unlock(&r->mu);
	return rc;
}

/* Ends (abort false) or cuts (true) the stream. */
static int stream_finish(struct http_stream *s, bool abort)
{
	struct http_req *r = s->r;
	int rc = 0;

	pthread_mutex_lock(&r->mu);
	if (r->closed)
		rc = -ECONNRESET;
	else if (s->ended || s->aborted)
		rc = -EPIPE;
	else if (abort)
		s->aborted = true;
	else
		s->ended = true;
	if (!r->closed)
		http_req_wake(r);
	pthread_mutex_unlock(&r->mu);
	return rc;
}

int http_stream_end(struct http_stream *s)
{
	return stream_finish(s, false);
}

int http_stream_abort(struct http_stream *s)
{
	return stream_finish(s, true);
}

/* ---- stopping ---- */

/* Waits up to drain_ms for the deferred requests to finish. Caller holds h->mu. */
void http_server_drain(struct http_server *h)
{
	struct timespec ts;
	int64_t due = tg_now_mono_ns() + (int64_t)h->drain_ms * 1000000;

	ts.tv_sec = (time_t)(due / 1000000000);
	ts.tv_nsec = (long)(due % 1000000000);
	while (h->nparked && tg_now_mono_ns() < due)
		if (pthread_cond_timedwait(&h->parked_cv, &h->mu, &ts) == ETIMEDOUT)
			break;
	if (h->nparked)
		log_info("%s: stopping with %u requests still waiting for an answer: cut", h->name,
			 h->nparked);
}

/*
 * The library refuses to stop with a connection suspended: resume every parked one; with
 * `stopping` set none is suspended again (the handler or reader closes it instead).
 */
void http_server_wake_all(struct http_server *h)
{
	atomic_store(&h->stopping, true);
	for (struct http_req *r = h->parked; r; r = r->pnext) {
		pthread_mutex_lock(&r->mu);
		http_req_wake(r);
		pthread_mutex_unlock(&r->mu);
	}
}
