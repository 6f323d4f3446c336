/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The HTTP side (server.h): one access handler driving each request through
 *
 *   RECEIVING --body done--> answered at once, or
 *                            WAITING (latency; the built answer is held) --timer--> sent, or
 *                            HUNG --timer, hang turned off, or shutdown--> closed unanswered
 *
 * and a content reader for streams that suspends its connection until the next token is
 * due. MHD calls the handler again after a resume (with no upload data), and the reader
 * again once a resumed stream's socket is writable, so all waiting lives in the timer.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "api.h"
#include "control.h"
#include "server.h"
#include "stats.h"
#include "timer.h"

/*
 * Per-connection memory for MHD: the request headers, then the buffer responses are written
 * from. MHD touches all of it, so this is most of the memory of an open stream (about 9 KiB
 * each in all); request headers up to about 7 KiB still fit, larger ones get 431.
 */
#define SERVER_POOL_BYTES (8 * 1024)

/* Advisory block size for stream responses (used as-is only by HTTP/1.0 clients). */
#define SERVER_STREAM_BLOCK 256

_Static_assert(TIMER_SLACK_NS <= STREAM_EARLY_NS,
	       "a stream woken early by the timer must be allowed to send");

enum req_phase {
	REQ_RECEIVING = 1, /* upload in progress */
	REQ_WAITING = 2,   /* answer built, held back by latency */
	REQ_HUNG = 3,	   /* hang fault: no answer, ever */
	REQ_ANSWERED = 4,  /* response queued */
};

/* One request, from its first byte to MHD's completion notice. */
struct req {
	enum api_route route;
	enum req_phase phase;
	struct buf body;
	bool body_too_large;
	struct MHD_Response *pending; /* REQ_WAITING: the answer to send when due */
	unsigned status;	      /* status of the answer */
	unsigned tokens;	      /* completion tokens of a non-streaming answer */
};

/* A stream response's state: what to send and the connection to suspend between tokens. */
struct live_stream {
	struct stream s;
	struct MHD_Connection *conn;
	bool completed; /* [DONE] went out */
};

static struct {
	struct MHD_Daemon *daemon;
	const char *api_key;
	bool verbose;
	atomic_bool stopping;
} srv;

static void on_due(void *item)
{
	MHD_resume_connection(item);
}

/*
 * Suspends CONN until DUE_NS. Call only from CONN's handler or reader. On failure (the
 * timer is stopping) CONN is resumed again at once and the error returned.
 */
static int suspend_until(struct MHD_Connection *conn, uint64_t due_ns, bool hung)
{
	int err;

	/* Suspend before the timer can see CONN: a resume must never precede its suspend. */
	MHD_suspend_connection(conn);
	err = timer_add(conn, due_ns, hung);
	if (err)
		MHD_resume_connection(conn);
	return err;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct live_stream *ls = cls;
	unsigned tokens;
	ssize_t n;

	(void)pos;
	if (atomic_load_explicit(&srv.stopping, memory_order_relaxed))
		return MHD_CONTENT_READER_END_WITH_ERROR;
	n = stream_fill(&ls->s, buf, max, timer_now_ns(), &tokens);
	if (tokens)
		stats_completion_tokens(tokens);
	switch (n) {
	case STREAM_FILL_WAIT:
		if (suspend_until(ls->conn, ls->s.next_due_ns, false) < 0)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		return 0;
	case STREAM_FILL_END:
		ls->completed = true;
		return MHD_CONTENT_READER_END_OF_STREAM;
	case STREAM_FILL_ABORT:
		stats_fault(STATS_FAULT_DISCONNECT);
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	return n;
}

static void stream_free(void *cls)
{
	struct live_stream *ls = cls;

	stats_stream_end(ls->completed);
	free(ls);
}

static struct MHD_Response *make_stream(struct MHD_Connection *conn, const struct answer *a)
{
	struct live_stream *ls = malloc(sizeof(*ls));
	struct MHD_Response *resp;

	if (!ls)
		return NULL;
	ls->s = a->stream;
	ls->conn = conn;
	ls->completed = false;
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, SERVER_STREAM_BLOCK,
						 stream_reader, ls, stream_free);
	if (!resp) {
		free(ls);
		return NULL;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	stats_stream_start();
	return resp;
}

/* The MHD response for A; NULL (errno set) when out of memory. */
static struct MHD_Response *make_response(struct MHD_Connection *conn, struct answer *a)
{
	struct MHD_Response *resp;
	char *data;
	size_t len;

	if (a->is_stream)
		return make_stream(conn, a);
	data = buf_steal(&a->body, &len);
	if (!data)
		return NULL;
	resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(data);
		return NULL;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (a->retry_after && (a->status == 429 || a->status == 503)) {
		char v[16];

		snprintf(v, sizeof(v), "%u", a->retry_after);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v);
	}
	return resp;
}

/* Queues RESP (consumed) as the answer of R. */
static enum MHD_Result req_send(struct MHD_Connection *conn, struct req *r,
				struct MHD_Response *resp)
{
	enum MHD_Result ret;

	r->phase = REQ_ANSWERED;
	r->pending = NULL;
	if (!api_is_control(r->route))
		stats_response(r->status);
	if (r->tokens)
		stats_completion_tokens(r->tokens);
	ret = MHD_queue_response(conn, r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Sends A now, or holds it for LATENCY_MS. */
static enum MHD_Result req_reply(struct MHD_Connection *conn, struct req *r, struct answer *a,
				 unsigned latency_ms)
{
	struct MHD_Response *resp = make_response(conn, a);

	if (!resp)
		return MHD_NO;
	r->status = a->status;
	r->tokens = a->completion_tokens;
	if (a->status == 200)
		stats_prompt_tokens(a->prompt_tokens);
	if (!latency_ms)
		return req_send(conn, r, resp);
	r->pending = resp;
	r->phase = REQ_WAITING;
	/* On failure the connection was resumed already: the next call sends the answer. */
	suspend_until(conn, timer_now_ns() + (uint64_t)latency_ms * 1000000ULL, false);
	return MHD_YES;
}

static enum MHD_Result req_hang(struct MHD_Connection *conn, struct req *r)
{
	r->phase = REQ_HUNG;
	stats_fault(STATS_FAULT_HANG);
	stats_hung(1);
	suspend_until(conn, timer_now_ns() + TIMER_HANG_MAX_NS, true);
	return MHD_YES;
}

static const char *header(struct MHD_Connection *conn, const char *name)
{
	return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

static void fill_request(struct MHD_Connection *conn, struct req *r, const char *url,
			 const char *method, struct api_request *rq)
{
	memset(rq, 0, sizeof(*rq));
	rq->route = api_route(url, &rq->model_id);
	rq->method = method;
	rq->url = url;
	rq->body = r->body.len ? r->body.data : NULL;
	rq->body_len = r->body.len;
	rq->body_too_large = r->body_too_large;
	if (api_is_control(rq->route))
		return;
	rq->api_key = srv.api_key;
	rq->authorization = header(conn, MHD_HTTP_HEADER_AUTHORIZATION);
	for (int i = 0; i < MOCK_HEADERS; i++)
		rq->mock[i] = header(conn, api_mock_header_names[i]);
}

/* The whole request is in: decide the answer and send it, hold it, or hang. */
static enum MHD_Result req_process(struct MHD_Connection *conn, struct req *r, const char *url,
				   const char *method)
{
	struct fault f = {.disconnect_after = -1};
	struct fault_override o;
	struct api_request rq;
	struct answer a;
	enum MHD_Result ret;

	fill_request(conn, r, url, method, &rq);
	answer_init(&a);
	if (api_is_control(rq.route)) {
		control_answer(&rq, &a);
	} else if (!api_refuse(&rq, &o, &a)) {
		faults_take(&o, &f);
		if (f.hang) {
			buf_free(&r->body);
			return req_hang(conn, r);
		}
		api_answer(&rq, &f, &a);
	}
	if (srv.verbose)
		fprintf(stderr, "mock-llm: %s %s -> %u%s%s\n", method, url, a.status,
			a.is_stream ? " (stream)" : "", f.latency_ms ? " (delayed)" : "");
	ret = req_reply(conn, r, &a, f.latency_ms);
	answer_free(&a);
	buf_free(&r->body);
	return ret;
}

static enum MHD_Result req_begin(const char *url, void **con_cls)
{
	struct req *r = calloc(1, sizeof(*r));
	const char *model_id;

	if (!r)
		return MHD_NO;
	r->route = api_route(url, &model_id);
	r->phase = REQ_RECEIVING;
	buf_init(&r->body);
	if (!api_is_control(r->route))
		stats_request(api_endpoint(r->route));
	*con_cls = r;
	return MHD_YES;
}

static void req_upload(struct req *r, const char *data, size_t n)
{
	if (r->body_too_large)
		return;
	buf_append(&r->body, data, n);
	if (r->body.len > API_BODY_MAX || r->body.err) {
		r->body_too_large = true;
		buf_free(&r->body);
	}
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct req *r = *con_cls;

	(void)cls;
	(void)version;
	if (!r)
		return req_begin(url, con_cls);
	if (*upload_data_size) {
		req_upload(r, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	switch (r->phase) {
	case REQ_RECEIVING:
		return req_process(conn, r, url, method);
	case REQ_WAITING:
		return req_send(conn, r, r->pending);
	default:
		/* Hung and now released (or shutting down): close without an answer. */
		return MHD_NO;
	}
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct req *r = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (!r)
		return;
	if (r->pending)
		MHD_destroy_response(r->pending);
	if (r->phase == REQ_HUNG)
		stats_hung(-1);
	buf_free(&r->body);
	free(r);
	*con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	(void)cls;
	(void)conn;
	(void)socket_context;
	stats_connection(toe == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* MHD's own messages (for example about connections our faults cut) only when verbose. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	if (!srv.verbose)
		return;
	fputs("mock-llm: libmicrohttpd: ", stderr);
	vfprintf(stderr, fmt, ap);
}

int server_start(const struct server_options *o)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
			 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	int err;

	srv.api_key = o->api_key;
	srv.verbose = o->verbose;
	atomic_store(&srv.stopping, false);
	if (o->ipv6)
		flags |= MHD_USE_IPv6;
	err = timer_start(on_due);
	if (err)
		return err;
	/* The logger goes first so MHD routes every message through it. */
	srv.daemon = MHD_start_daemon(
	    flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
	    MHD_OPTION_LISTEN_SOCKET, o->listen_fd, MHD_OPTION_THREAD_POOL_SIZE, o->threads,
	    MHD_OPTION_CONNECTION_LIMIT, o->max_conns, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t)SERVER_POOL_BYTES, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
	    MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL, MHD_OPTION_END);
	if (!srv.daemon) {
		timer_stop();
		return -EIO;
	}
	return 0;
}

void server_stop(void)
{
	if (!srv.daemon)
		return;
	atomic_store(&srv.stopping, true);
	/* MHD refuses to stop with suspended connections: wake them all first. */
	timer_stop();
	MHD_stop_daemon(srv.daemon);
	srv.daemon = NULL;
}
