/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The HTTP layer over libmicrohttpd (with http_defer.c and http_internal.h the only files
 * that include microhttpd.h). A listener
 * runs a pool of worker threads; each request gets a small state on the first call of the
 * access handler, its body is gathered up to max_body (413 past it, without buffering the
 * rest), non-JSON bodies are refused when asked (415), and the complete request goes to
 * one handler function, which answers through http_reply*. Every answer carries
 * x-request-id, and one access-log line per request is written when it completes: method,
 * path, status, time and request id, never headers, bodies or query strings.
 *
 * Handlers may defer their answer and stream it from other threads: http_defer.c, over the
 * state declared in http_internal.h.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "http_internal.h"
#include "log.h"
#include "util.h"

/* ---- request state ---- */

/* True if p points into r's header arena (not to be freed). */
static bool hdr_in_arena(const struct http_req *r, const char *p)
{
	return r->hbuf && p >= r->hbuf && p < r->hbuf + HTTP_HDR_BUF;
}

void http_req_headers_free(struct http_req *r)
{
	for (size_t i = 0; i < r->nhdr; i++) {
		if (!hdr_in_arena(r, r->hdr[i].name))
			free(r->hdr[i].name);
	}
	free(r->hdr);
	r->hdr = NULL;
	r->hbuf = NULL;
	r->nhdr = 0;
	r->hused = 0;
}

static void req_free(struct http_req *r)
{
	if (!r)
		return;
	http_req_headers_free(r);
	if (r->stream) {
		free(r->stream->buf);
		free(r->stream);
	}
	pthread_mutex_destroy(&r->mu);
	free(r->body);
	free(r); /* method and path are in its block */
}

void http_req_release(struct http_req *r)
{
	if (r && atomic_fetch_sub(&r->refs, 1) == 1)
		req_free(r);
}

/* Resumes the connection if we suspended it. Caller holds r->mu. */
void http_req_wake(struct http_req *r)
{
	if (!r->suspended)
		return;
	r->suspended = false;
	MHD_resume_connection(r->conn);
	/* a daemon on a loop has no thread to notice the resume: its loop runs it */
	if (r->ld)
		http_loops_kick(r->ld);
}

/*
 * Random id characters from a per-thread pool refilled by one getrandom() per 4 KiB: a
 * request id needs to be unique and unguessable enough for logs, not secret, and one
 * system call per request was a measurable part of a forwarded call's cost. Bytes at or
 * above the largest multiple of the alphabet's size are skipped (no modulo bias).
 */
static int req_random_chars(char *out, size_t n)
{
	static __thread unsigned char pool[4096];
	static __thread size_t used = sizeof(pool);
	const size_t alen = sizeof(HTTP_ID_ALPHABET) - 1;
	const unsigned limit = 256 - 256 % (unsigned)alen;
	size_t filled = 0;

	while (filled < n) {
		if (used == sizeof(pool)) {
			int err = tg_getrandom(pool, sizeof(pool));

			if (err)
				return err;
			used = 0;
		}
		if (pool[used] < limit)
			out[filled++] = HTTP_ID_ALPHABET[pool[used] % alen];
		used++;
	}
	out[n] = '\0';
	return 0;
}

/* A client's id when it is sane (it ends up in our logs), else "req_" + 24 random chars. */
static void req_set_id(struct http_req *r)
{
	static atomic_ulong fallback;
	const char *c = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Request-Id");

	if (c && tg_ident_valid(c, HTTP_ID_MAX, "._-")) {
		snprintf(r->id, sizeof(r->id), "%s", c);
		return;
	}
	memcpy(r->id, "req_", 4);
	if (req_random_chars(r->id + 4, HTTP_ID_RANDOM) != 0)
		snprintf(r->id, sizeof(r->id), "req_%016lx%08lx", (unsigned long)tg_now_mono_ns(),
			 atomic_fetch_add(&fallback, 1));
}

/* A request, with copies of its method and path in the same block (one allocation). */
static struct http_req *req_new(struct http_server *h, struct MHD_Connection *conn, const char *url,
				const char *method)
{
	size_t ml = strlen(method ? method : "") + 1, pl = strlen(url ? url : "") + 1;
	struct http_req *r = calloc(1, sizeof(*r) + ml + pl);

	if (!r)
		return NULL;
	if (pthread_mutex_init(&r->mu, NULL)) {
		free(r);
		return NULL;
	}
	r->method = memcpy((char *)(r + 1), method ? method : "", ml);
	r->path = memcpy(r->method + ml, url ? url : "", pl);
	atomic_init(&r->refs, 1); /* the library's, until on_completed */
	r->srv = h;
	r->ld = h->nld ? http_loops_here(h) : NULL;
	r->conn = conn;
	r->start_ns = tg_now_mono_ns();
	req_set_id(r);
	return r;
}

/* Appends upload data; past max_body the buffer is dropped and the rest discarded. */
static void req_append(struct http_req *r, const char *data, size_t n)
{
	size_t cap;
	char *p;

	if (r->too_large)
		return;
	if (n > r->srv->max_body - r->len)
		goto drop;
	if (r->len + n + 1 > r->cap) {
		/* first: the declared length (the buffer lives as long as the request: a
		 * streamed call's whole life), else HTTP_BODY_MIN_CAP doubling */
		cap = r->cap ? r->cap : r->body_hint ? r->body_hint : HTTP_BODY_MIN_CAP;
		while (cap < r->len + n + 1)
			cap *= 2;
		if (cap > r->srv->max_body + 1)
			cap = r->srv->max_body + 1;
		p = realloc(r->body, cap);
		if (!p) {
			/* out of memory: answered like an oversize body, which it is for us now */
			log_warnx("%s: no memory for a %zu-byte body, id=%s", r->srv->name,
				  r->len + n, r->id);
			goto drop;
		}
		r->body = p;
		r->cap = cap;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = '\0';
	return;
drop:
	r->too_large = true;
	free(r->body);
	r->body = NULL;
	r->len = r->cap = 0;
}

/* ---- request accessors ---- */

bool http_path_match(const char *pattern, const char *path, char *arg, size_t argsize)
{
	size_t n;

	while (*pattern && *path) {
		if (*pattern == ':') {
			n = strcspn(path, "/");
			if (n == 0)
				return false;
			snprintf(arg, argsize, "%.*s", (int)(n >= argsize ? argsize - 1 : n), path);
			pattern++;
			path += n;
		} else if (*pattern++ != *path++) {
			return false;
		}
	}
	return !*pattern && !*path;
}

bool http_bearer_token(const char *h, const char **tok, size_t *len)
{
	size_t n;

	if (!h)
		return false;
	h += strspn(h, " \t");
	if (strncasecmp(h, "bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
		return false;
	h += 6;
	h += strspn(h, " \t");
	n = strlen(h);
	while (n && (h[n - 1] == ' ' || h[n - 1] == '\t'))
		n--;
	*tok = h;
	*len = n;
	return n > 0;
}

const char *http_req_method(struct http_req *r)
{
	return r->method;
}

const char *http_req_path(struct http_req *r)
{
	return r->path;
}

const char *http_req_header(struct http_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_req_query(struct http_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

struct query_iter {
	int (*cb)(const char *k, const char *v, void *a);
	void *arg;
	int rc;
};

static enum MHD_Result query_one(void *cls, enum MHD_ValueKind kind, const char *key,
				 const char *value)
{
	struct query_iter *q = cls;

	(void)kind;
	q->rc = q->cb(key ? key : "", value ? value : "", q->arg);
	return q->rc ? MHD_NO : MHD_YES;
}

int http_req_query_each(struct http_req *r, int (*cb)(const char *k, const char *v, void *a),
			void *arg)
{
	struct query_iter q = {.cb = cb, .arg = arg};

	MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, query_one, &q);
	return q.rc;
}

const char *http_req_body(struct http_req *r, size_t *len)
{
	if (len)
		*len = r->len;
	return r->body ? r->body : "";
}

void http_req_body_drop(struct http_req *r)
{
	free(r->body);
	r->body = NULL;
	r->len = r->cap = 0;
}

const char *http_req_id(struct http_req *r)
{
	return r->id;
}

int http_req_peer(struct http_req *r, struct sockaddr_storage *out)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	socklen_t len;

	memset(out, 0, sizeof(*out));
	if (!ci || !ci->client_addr)
		return -ENOTCONN;
	len = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						     : sizeof(struct sockaddr_in);
	memcpy(out, ci->client_addr, len);
	return 0;
}

/* ---- replies ---- */

/*
 * Copies "name\0value\0" into r's header arena, or, past its end, into one allocation;
 * h->name owns the copy, h->value points into it. Caller holds r->mu.
 */
static int hdr_store(struct http_req *r, struct http_hdr *h, const char *name, const char *value)
{
	size_t nl = strlen(name) + 1, vl = strlen(value) + 1;
	char *p;

	if (nl + vl <= HTTP_HDR_BUF - r->hused) {
		p = r->hbuf + r->hused;
		r->hused += nl + vl;
	} else {
		p = malloc(nl + vl);
		if (!p)
			return -ENOMEM;
	}
	memcpy(p, name, nl);
	memcpy(p + nl, value, vl);
	h->name = p;
	h->value = p + nl;
	return 0;
}

int http_add_header(struct http_req *r, const char *name, const char *value)
{
	int rc;

	if (!name || !value || !*name || strpbrk(name, "\r\n: ") || strpbrk(value, "\r\n"))
		return -EINVAL;
	pthread_mutex_lock(&r->mu);
	if (!r->hdr) {
		/* the entries and their text in one block, until the request ends (or its
		 * stream's header block is built) */
		r->hdr = malloc(HTTP_HDR_MAX * sizeof(*r->hdr) + HTTP_HDR_BUF);
		if (!r->hdr) {
			pthread_mutex_unlock(&r->mu);
			return -ENOMEM;
		}
		r->hbuf = (char *)(r->hdr + HTTP_HDR_MAX);
	}
	rc = r->nhdr >= HTTP_HDR_MAX ? -ENOSPC : hdr_store(r, &r->hdr[r->nhdr], name, value);
	if (!rc)
		r->nhdr++;
	pthread_mutex_unlock(&r->mu);
	return rc;
}

/* Adds our headers to a response nobody else holds yet. Caller holds r->mu. */
int http_resp_headers(struct http_req *r, const char *ctype, struct MHD_Response *resp)
{
	if (r->close_after &&
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close") != MHD_YES)
		return -ENOMEM;
	if (MHD_add_response_header(resp, "x-request-id", r->id) != MHD_YES ||
	    (ctype &&
	     MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) != MHD_YES))
		return -ENOMEM;
	for (size_t i = 0; i < r->nhdr; i++) {
		if (MHD_add_response_header(resp, r->hdr[i].name, r->hdr[i].value) != MHD_YES)
			return -ENOMEM;
	}
	return 0;
}

/* Queues resp on the connection (listener thread, inside the access handler); takes it. */
int http_queue_now(struct http_req *r, unsigned status, struct MHD_Response *resp)
{
	int rc = MHD_queue_response(r->conn, status, resp) == MHD_YES ? 0 : -EIO;

	MHD_destroy_response(resp);
	if (!rc)
		r->answered = true;
	return rc;
}

/*
 * Gives the answer resp (taken, destroyed here on failure): queued at once by a handler
 * answering synchronously, else stored for the resumed handler of a deferred request.
 */
static int reply_submit(struct http_req *r, unsigned status, const char *ctype,
			struct MHD_Response *resp)
{
	int rc;

	if (!resp)
		return -ENOMEM;
	pthread_mutex_lock(&r->mu);
	rc = r->replied ? -EALREADY : r->closed ? -ECONNRESET : http_resp_headers(r, ctype, resp);
	if (rc) {
		pthread_mutex_unlock(&r->mu);
		MHD_destroy_response(resp);
		return rc;
	}
	r->replied = true;
	r->status = status;
	if (r->deferred) {
		r->pending = resp;
		r->pending_status = status;
		http_req_wake(r);
		pthread_mutex_unlock(&r->mu);
		return 0;
	}
	pthread_mutex_unlock(&r->mu);
	/* not deferred: only the handler's own thread knows r, so this is inside the handler */
	rc = http_queue_now(r, status, resp);
	if (rc) {
		pthread_mutex_lock(&r->mu);
		r->replied = false;
		pthread_mutex_unlock(&r->mu);
	}
	return rc;
}

int http_reply(struct http_req *r, unsigned status, const char *content_type, const void *body,
	       size_t len)
{
	struct MHD_Response *resp;

	resp =
	    MHD_create_response_from_buffer(len, (void *)(len ? body : ""), MHD_RESPMEM_MUST_COPY);
	return reply_submit(r, status, content_type, resp);
}

int http_reply_take(struct http_req *r, unsigned status, const char *content_type, char *body,
		    size_t len)
{
	struct MHD_Response *resp;

	if (!len) {
		free(body);
		return http_reply(r, status, content_type, "", 0);
	}
	/* the library frees body with the response: an answer's bytes are not copied again */
	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!resp)
		free(body);
	return reply_submit(r, status, content_type, resp);
}

int http_reply_json(struct http_req *r, unsigned status, const struct cJSON *json)
{
	char *s = cJSON_PrintUnformatted(json);
	int rc;

	if (!s)
		return -ENOMEM;
	rc = http_reply(r, status, "application/json", s, strlen(s));
	cJSON_free(s);
	return rc;
}

/* Free callback of a secret-bearing response: wipe, then free. */
static void secret_free(void *cls)
{
	char *s = cls;

	explicit_bzero(s, strlen(s));
	free(s);
}

/*
 * Serialises into a buffer of our own (cJSON's printer would realloc and leave unwiped
 * copies of the secret behind); a buffer too small is wiped and a larger one tried.
 */
static char *print_secret(const cJSON *json)
{
	size_t cap = HTTP_SECRET_BUF;
	char *buf;

	for (;;) {
		buf = malloc(cap);
		if (!buf)
			return NULL;
		if (cJSON_PrintPreallocated((cJSON *)json, buf, (int)cap, false))
			return buf;
		explicit_bzero(buf, cap);
		free(buf);
		if (cap >= HTTP_SECRET_BUF_MAX)
			return NULL;
		cap *= 2;
	}
}

int http_reply_json_secret(struct http_req *r, unsigned status, const struct cJSON *json)
{
	struct MHD_Response *resp;
	char *s;

	s = print_secret(json);
	if (!s)
		return -ENOMEM;
	resp = MHD_create_response_from_buffer_with_free_callback_cls(strlen(s), s, secret_free, s);
	if (!resp) {
		secret_free(s);
		return -ENOMEM;
	}
	return reply_submit(r, status, "application/json", resp);
}

/*
 * The OpenAI error shape, {"error":{"message","type","param","code"}}, written straight into
 * out (the bytes cJSON_PrintUnformatted gives for that object): a refused request is the
 * path a flood takes, and building and printing a cJSON tree was a fifth of its user time.
 * Returns the length the body needs; >= cap means out is incomplete.
 */
static size_t error_body(char *out, size_t cap, const char *msg, const char *type, const char *code,
			 const char *param)
{
	size_t n = 0;

	TG_PUT_LIT(out, cap, &n, "{\"error\":{\"message\":");
	n = tg_json_str(out, cap, n, msg);
	TG_PUT_LIT(out, cap, &n, ",\"type\":");
	n = tg_json_str(out, cap, n, type);
	TG_PUT_LIT(out, cap, &n, ",\"param\":");
	if (param)
		n = tg_json_str(out, cap, n, param);
	else
		TG_PUT_LIT(out, cap, &n, "null");
	TG_PUT_LIT(out, cap, &n, ",\"code\":");
	n = tg_json_str(out, cap, n, code);
	TG_PUT_LIT(out, cap, &n, "}}");
	if (n < cap)
		out[n] = '\0';
	return n;
}

int http_reply_error(struct http_req *r, unsigned status, const char *type, const char *code,
		     const char *param, const char *fmt, ...)
{
	char msg[HTTP_ERR_MSG_MAX], buf[HTTP_ERR_BODY_BUF], *body = buf;
	size_t n;
	va_list ap;
	int rc;

	if (!type || !code)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n = error_body(buf, sizeof(buf), msg, type, code, param);
	if (n >= sizeof(buf)) {
		/* a message full of characters JSON escapes: the exact size, on the heap */
		body = malloc(n + 1);
		if (!body)
			return -ENOMEM;
		error_body(body, n + 1, msg, type, code, param);
	}
	rc = http_reply(r, status, "application/json", body, n);
	if (body != buf)
		free(body);
	return rc;
}

/* ---- the request cycle ---- */

static bool content_type_is_json(const char *ct)
{
	static const char want[] = "application/json";

	if (!ct)
		return false;
	ct += strspn(ct, " \t");
	if (strncasecmp(ct, want, sizeof(want) - 1) != 0)
		return false;
	ct += sizeof(want) - 1;
	ct += strspn(ct, " \t");
	return *ct == '\0' || *ct == ';';
}

static bool method_has_body(const char *m)
{
	return !strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH");
}

static int reply_too_large(struct http_req *r)
{
	return http_reply_error(r, 413, "invalid_request_error", "body_too_large", NULL,
				"request body too large: the limit is %zu bytes", r->srv->max_body);
}

static enum MHD_Result add_header_bytes(void *cls, enum MHD_ValueKind kind, const char *key,
					size_t key_size, const char *value, size_t value_size)
{
	size_t *n = cls;

	(void)kind;
	(void)key;
	(void)value;
	*n += key_size + value_size + 4 + HTTP_REQ_HDR_RECORD; /* ": ", CRLF, the record */
	return MHD_YES;
}

/* The bytes the request line and headers take in the library's pool (an estimate). */
static size_t req_header_bytes(struct http_req *r)
{
	size_t n = strlen(r->method) + strlen(r->path) + sizeof(" HTTP/1.1\r\n\r\n");

	MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND, add_header_bytes, &n);
	return n;
}

/*
 * First call, headers read: headers too large to leave room for an answer (see
 * HTTP_REPLY_ROOM) get a 431, and a declared Content-Length over the limit a 413, at once,
 * which also tells the library not to read the body (the connection closes after it).
 */
static enum MHD_Result req_first(struct http_req *r)
{
	const char *cl = http_req_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
	size_t room = r->srv->max_header - HTTP_REPLY_ROOM;
	unsigned long long n;
	char *end;

	if (r->srv->max_header > HTTP_REPLY_ROOM && req_header_bytes(r) > room) {
		http_close_after(r);
		return http_reply_error(r, 431, "invalid_request_error", "headers_too_large", NULL,
					"request line and headers too large: the limit is about "
					"%zu bytes",
					room)
			   ? MHD_NO
			   : MHD_YES;
	}
	if (!cl)
		return MHD_YES;
	errno = 0;
	n = strtoull(cl, &end, 10);
	if (end == cl || errno == ERANGE || n > r->srv->max_body) {
		r->too_large = true;
		return reply_too_large(r) ? MHD_NO : MHD_YES;
	}
	if (*end == '\0' && n > 0)
		r->body_hint = (size_t)n + 1;
	return MHD_YES;
}

/* Whole request in: 413/415 from here, else the handler, which must have answered. */
static enum MHD_Result req_finish(struct http_req *r)
{
	struct http_server *h = r->srv;

	if (r->too_large)
		reply_too_large(r);
	else if (h->require_json && method_has_body(r->method) && r->len > 0 &&
		 !content_type_is_json(http_req_header(r, MHD_HTTP_HEADER_CONTENT_TYPE)))
		http_reply_error(r, 415, "invalid_request_error", "unsupported_media_type", NULL,
				 "request bodies must be sent as Content-Type: application/json");
	else
		h->fn(r, h->arg);
	if (r->deferred)
		return http_req_deferred(r);
	if (!r->answered) {
		log_warnx("%s: handler gave no answer, id=%s", h->name, r->id);
		http_reply_error(r, 500, "server_error", "internal_error", NULL,
				 "internal error (request id %s)", r->id);
	}
	return r->answered ? MHD_YES : MHD_NO;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct http_server *h = cls;
	struct http_req *r = *con_cls;

	(void)version;
	if (!r) {
		r = req_new(h, conn, url, method);
		if (!r) {
			log_warnx("%s: no memory for a request", h->name);
			return MHD_NO;
		}
		*con_cls = r;
		return req_first(r);
	}
	if (*upload_data_size) {
		req_append(r, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (r->answered)
		return MHD_YES;
	if (r->deferred)
		return http_req_deferred(r);
	return req_finish(r);
}

/* Copies s for a log line: at most max characters, anything not printable ASCII as '?'. */
static void log_clean(char *out, size_t size, const char *s, size_t max);

/*
 * A path segment that could hold a credential (a pasted "tg_<id>_<secret>", or anything
 * longer than our ids and names) is logged as "[redacted]": logs never carry secrets.
 */
static bool segment_secret_like(const char *seg, size_t len)
{
	size_t underscores = 0;

	for (size_t i = 0; i < len; i++)
		underscores += seg[i] == '_';
	return len > 32 || (len > 3 && !strncmp(seg, "tg", 2) && underscores >= 2);
}

/* Copies path into out (size bytes) with secret-like segments replaced. */
static void log_path(char *out, size_t size, const char *path)
{
	char clean[HTTP_LOG_PATH_MAX + 8];
	size_t n = 0;
	const char *seg = path;

	while (*seg && n + 1 < sizeof(clean)) {
		size_t len = strcspn(seg, "/");
		const char *piece = segment_secret_like(seg, len) ? "[redacted]" : seg;
		size_t plen = piece == seg ? len : strlen(piece);

		if (plen > sizeof(clean) - 1 - n)
			plen = sizeof(clean) - 1 - n;
		memcpy(clean + n, piece, plen);
		n += plen;
		seg += len;
		if (*seg == '/' && n + 1 < sizeof(clean))
			clean[n++] = *seg++;
	}
	clean[n] = '\0';
	log_clean(out, size, clean, HTTP_LOG_PATH_MAX);
}

static void log_clean(char *out, size_t size, const char *s, size_t max)
{
	size_t i;

	for (i = 0; s[i] && i < max && i + 1 < size; i++)
		out[i] = (s[i] > 0x20 && s[i] < 0x7f) ? s[i] : '?';
	out[i] = '\0';
	if (s[i] && i + 4 < size)
		strcpy(out + i, "...");
}

static const char *termination_name(enum MHD_RequestTerminationCode toe)
{
	switch (toe) {
	case MHD_REQUEST_TERMINATED_COMPLETED_OK:
		return NULL;
	case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
		return "timeout";
	case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN:
		return "shutdown";
	case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
		return "client gone";
	default:
		return "connection error";
	}
}

/* The access-log line and the request metrics of a finished request. */
static void req_account(struct http_server *h, struct http_req *r, const char *why)
{
	char method[17], path[HTTP_LOG_PATH_MAX + 4];
	int64_t ns = tg_now_mono_ns() - r->start_ns;
	unsigned status;

	pthread_mutex_lock(&r->mu);
	status = r->status;
	pthread_mutex_unlock(&r->mu);
	/* the line's pieces are cleaned only when it is written (a flood runs at warn) */
	if (log_get_level() >= LOG_LVL_INFO) {
		log_clean(method, sizeof(method), r->method, 16);
		log_path(path, sizeof(path), r->path);
		log_info("%s %s %s %u %lldms id=%s%s%s%s", h->name, method, path, status,
			 (long long)(ns / 1000000), r->id, why ? " (" : "", why ? why : "",
			 why ? ")" : "");
	}
	if (h->route_label)
		metrics_http(h->listener, h->route_label(r->method, r->path),
			     status ? status : HTTP_STATUS_GONE, ns > 0 ? (uint64_t)ns : 0);
}

/*
 * The request is over (answered, client gone, or shutdown): no library call on it from
 * now on. Drops an answer that never went out, tells the on_close callback, and drops the
 * library's reference; a deferring party may still hold one.
 */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http_server *h = cls;
	struct http_req *r = *con_cls;
	struct MHD_Response *pending;
	void (*fn)(void *arg);
	void *arg;

	(void)conn;
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->closed = true;
	r->suspended = false;
	pending = r->pending;
	r->pending = NULL;
	fn = r->on_close;
	arg = r->on_close_arg;
	r->on_close = NULL;
	pthread_mutex_unlock(&r->mu);
	http_req_unpark(r);
	req_account(h, r, termination_name(toe));
	if (pending)
		MHD_destroy_response(pending);
	if (fn)
		fn(arg);
	http_req_release(r);
	*con_cls = NULL;
}

__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct http_server *h = cls;
	char buf[512];
	size_t n;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	log_warnx("%s: %s", h->name, buf);
}

/* ---- listener ---- */

/* Splits "host:port" or "[v6]:port" into host and port (0..65535). */
static int listen_split(const char *s, char *host, size_t hsize, uint16_t *port, bool *v6)
{
	const char *colon, *p;
	unsigned long v;
	size_t n;
	char *end;

	*v6 = s[0] == '[';
	if (*v6) {
		colon = strchr(s, ']');
		if (!colon || colon[1] != ':')
			return -EINVAL;
		p = s + 1;
		n = (size_t)(colon - p);
		colon++;
	} else {
		colon = strrchr(s, ':');
		if (!colon || strchr(s, ':') != colon)
			return -EINVAL;
		p = s;
		n = (size_t)(colon - s);
	}
	if (n == 0 || n >= hsize || colon[1] < '0' || colon[1] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(colon + 1, &end, 10);
	if (*end || errno || v > 65535)
		return -EINVAL;
	memcpy(host, p, n);
	host[n] = '\0';
	*port = (uint16_t)v;
	return 0;
}

/* Resolves the listen address (numeric, or a name such as localhost) into ss. */
static int listen_parse(const char *s, struct sockaddr_storage *ss, bool *v6)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	struct addrinfo *res = NULL;
	char host[128];
	uint16_t port;
	int rc = listen_split(s, host, sizeof(host), &port, v6);

	if (rc)
		return rc;
	hints.ai_family = *v6 ? AF_INET6 : AF_UNSPEC;
	if (*v6)
		hints.ai_flags |= AI_NUMERICHOST;
	if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*v6 = res->ai_family == AF_INET6;
	if (*v6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	freeaddrinfo(res);
	return 0;
}

struct MHD_Daemon *http_daemon_start(struct http_server *h, const struct http_opts *o,
				     const struct sockaddr_storage *ss, bool v6, int listen_fd,
				     unsigned nloops)
{
	/* the address comes from MHD_OPTION_SOCK_ADDR; the port is passed for its messages */
	uint16_t port = ntohs(v6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
				 : ((const struct sockaddr_in *)ss)->sin_port);
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_USE_ITC |
			 MHD_ALLOW_SUSPEND_RESUME | (v6 ? MHD_USE_IPv6 : 0);
	unsigned conns = o->max_conns ? o->max_conns : 1024;
	/* on loops (http_loop.c): no thread of the library's, and one listen socket shared */
	struct MHD_OptionItem mode[] = {
	    {MHD_OPTION_SOCK_ADDR, 0, (void *)ss},
	    {MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)(o->threads ? o->threads : 2), NULL},
	    {MHD_OPTION_END, 0, NULL},
	};

	if (nloops) {
		if (listen_fd >= 0)
			mode[0] =
			    (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, listen_fd, NULL};
		mode[1] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
		/* as the library's thread pool does: the bound is shared among the loops */
		conns = conns / nloops ? conns / nloops : 1;
	} else {
		flags |= MHD_USE_INTERNAL_POLLING_THREAD;
	}
	/* the logger first, so that the library's messages about the options reach it too */
	return MHD_start_daemon(
	    flags, port, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
	    MHD_OPTION_ARRAY, mode, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned)(o->timeout_sec ? o->timeout_sec : 30), MHD_OPTION_CONNECTION_LIMIT, conns,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, h->max_header, MHD_OPTION_NOTIFY_COMPLETED,
	    on_completed, h, MHD_OPTION_NOTIFY_CONNECTION, http_conn_notify, h, MHD_OPTION_END);
}

/* The server's mutex, and its condition variable on the monotonic clock. 0 or -1. */
static int server_sync_init(struct http_server *h)
{
	pthread_condattr_t ca;
	int rc;

	if (pthread_mutex_init(&h->mu, NULL))
		return -1;
	rc = pthread_condattr_init(&ca);
	if (!rc) {
		rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		if (!rc)
			rc = pthread_cond_init(&h->parked_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (rc) {
		pthread_mutex_destroy(&h->mu);
		return -1;
	}
	return 0;
}

/* Not fatal: without it the kernel fast path sees established connections and passes them. */
static void listen_defer_accept(struct http_server *h, int sec)
{
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_LISTEN_FD);

	if (!info || setsockopt(info->listen_fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &sec, sizeof(sec)))
		log_warn("%s: cannot set TCP_DEFER_ACCEPT on the listener", h->name);
}

struct http_server *http_start(const struct http_opts *o, http_handler_fn fn, void *arg)
{
	struct sockaddr_storage ss;
	struct http_server *h = NULL;
	const union MHD_DaemonInfo *info;
	bool v6 = false;
	int err = EINVAL;

	if (!o || !o->listen || !fn)
		goto fail;
	if (listen_parse(o->listen, &ss, &v6)) {
		log_warnx("%s: bad listen address '%s': expected host:port or [v6]:port",
			  o->name ? o->name : "http", o->listen);
		goto fail;
	}
	err = ENOMEM;
	h = calloc(1, sizeof(*h));
	if (!h)
		goto fail;
	h->fn = fn;
	h->arg = arg;
	h->max_body = o->max_body;
	h->max_header = o->max_header ? o->max_header : 32768;
	h->stream_max = o->stream_buffer_max ? o->stream_buffer_max : HTTP_STREAM_MAX_DEF;
	h->require_json = o->require_json;
	h->drain_ms = o->drain_ms;
	h->route_label = o->route_label;
	h->listener = o->listener;
	atomic_init(&h->stopping, false);
	snprintf(h->name, sizeof(h->name), "%s", o->name ? o->name : "http");
	if (server_sync_init(h)) {
		err = ENOMEM;
		goto fail;
	}
	errno = 0;
	if (o->nloops)
		h->d = http_loops_start(h, o, &ss, v6);
	else
		h->d = http_daemon_start(h, o, &ss, v6, -1, 0);
	if (!h->d) {
		err = errno ? errno : EADDRNOTAVAIL;
		log_warnx("%s: cannot listen on %s: %s", h->name, o->listen, strerror(err));
		pthread_cond_destroy(&h->parked_cv);
		pthread_mutex_destroy(&h->mu);
		goto fail;
	}
	info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = info ? info->port : 0;
	if (o->defer_accept_sec)
		listen_defer_accept(h, (int)o->defer_accept_sec);
	return h;
fail:
	free(h);
	errno = err;
	return NULL;
}

void http_stop(struct http_server *h)
{
	MHD_socket fd;

	if (!h)
		return;
	/* stop accepting first; requests already in a handler finish before the join */
	fd = h->nld ? http_loops_quiesce(h) : MHD_quiesce_daemon(h->d);
	pthread_mutex_lock(&h->mu);
	h->draining = true;
	http_server_drain(h);
	http_server_wake_all(h);
	pthread_mutex_unlock(&h->mu);
	/* every request completes here (on_completed): none touches h or its connection after */
	if (h->nld)
		http_loops_stop(h);
	else
		MHD_stop_daemon(h->d);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
	pthread_cond_destroy(&h->parked_cv);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

uint16_t http_port(const struct http_server *h)
{
	return h ? h->port : 0;
}
