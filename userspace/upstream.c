/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The upstream client (see upstream.h), the only module that includes curl.h. One loop
 * thread (loop.h: its own, or a data-plane listener's) owns a libcurl multi handle:
 * submitters build the easy handle on their own thread, then queue it under a mutex and
 * wake the loop (not when they are the loop thread: its next turn takes the queue before
 * it waits); cancels are queued the same way, by handle id. The thread drives libcurl with
 * curl_multi_socket_action over the loop's epoll set (libcurl says which sockets to watch
 * and when its timer is due), so one
 * event costs work for its own transfer only: curl_multi_perform would walk every transfer
 * on each wakeup, quadratic with thousands of streams in flight. The thread alone touches the multi
 * handle, the table that maps ids to calls, and every call after it was queued, so nothing but the
 * two queues needs a lock. libcurl keeps idle connections per host for reuse (HTTP/1.1 keep-alive)
 * and queues transfers beyond the per-host connection bound itself.
 *
 * Flow control: callbacks must take every byte they are given (buffering in the caller if
 * the client is slower than the upstream). Pausing the transfer (CURL_WRITEFUNC_PAUSE and
 * curl_easy_pause from the upstream thread) is not implemented yet; a slow client therefore
 * costs the caller memory, bounded by the size of the answer.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "log.h"
#include "loop.h"
#include "upstream.h"
#include "util.h"

#define UP_POLL_MS	    100 /* the loop looks at its queues at least this often */
#define UP_SWEEP_MS	    50	/* how often deadlines are checked (see up_sweep) */
#define UP_TABLE_MIN	    64	/* initial buckets of the id table (a power of two) */
#define UP_CONTENT_TYPE_MAX 128
#define UP_RETRY_AFTER_MAX  64
#define UP_IDLE_PER_HOST    4 /* connection cache size, in multiples of max_host_conns */
#define UP_AUTH_PREFIX	    "Authorization: Bearer "
#define UP_RECV_BUFFER	    4096 /* libcurl's receive buffer per call (its default: 16 KiB) */
#define UP_RECV_STREAM	    1024 /* ... for a stream (libcurl's minimum) */
#define UP_H2_STREAMS	    1000L /* calls at once on one HTTP/2 connection, at most */
#define UP_EASY_POOL	    32	 /* finished easy handles kept for reuse, per kind */

struct up_call {
	uint64_t id;
	CURL *easy;
	bool stream;		    /* which pool the easy handle goes back to */
	bool http2;		    /* the easy handle is not pooled (up_easy_put) */
	struct curl_slist *headers; /* the Authorization line in it is wiped at free */
	char *url;
	const char *body; /* curl reads it in place (CURLOPT_POSTFIELDS) until the call ends */
	char *body_owned; /* body, when it is our copy (not upstream_call.body_kept) */
	size_t body_len;
	void (*on_status)(void *ctx, unsigned status, const char *content_type,
			  const char *retry_after);
	void (*on_data)(void *ctx, const char *buf, size_t len);
	void (*on_done)(void *ctx, enum upstream_err err, const char *detail);
	void *ctx;
	int64_t deadline_ns; /* CLOCK_MONOTONIC; 0 = none */
	bool added;	     /* in the multi handle */
	bool status_sent;    /* on_status ran */
	bool has_content_type, has_retry_after;
	char content_type[UP_CONTENT_TYPE_MAX];
	char retry_after[UP_RETRY_AFTER_MAX];
	char errbuf[CURL_ERROR_SIZE];
	struct up_call *next;  /* submit queue */
	struct up_call *hnext; /* id table chain */
};

/*
 * One of libcurl's sockets in the loop's epoll set. A connection that goes idle in
 * libcurl's cache stays registered for EPOLLIN ("parked"): its next call then costs no
 * epoll_ctl, where removing and adding it again cost two per call. If a parked socket
 * stirs (the server closed it, most likely), up_on_ready takes it out of the set, and
 * libcurl finds out when it next looks at the connection. A socket libcurl closes leaves
 * the set with its descriptor; the stale entry is cleared when libcurl opens a socket
 * with the same number (up_on_open), so a new socket never inherits it.
 */
struct up_sock {
	struct loop_watch *w; /* NULL: not in the set */
	uint32_t events;      /* what w is registered for */
	bool parked;	      /* libcurl stopped watching it (CURL_POLL_REMOVE) */
};

struct upstream {
	CURLM *multi;
	pthread_mutex_t lock;
	/* under lock */
	struct up_call *queue_head, *queue_tail;
	uint64_t *cancels;
	size_t ncancels, cancels_cap;
	uint64_t last_id;
	bool stopping;
	bool wake_pending; /* the eventfd was written since the thread last took the queues */
	void (*round_fn)(void *arg); /* upstream_on_round */
	void *round_arg;
	_Atomic unsigned inflight;
	struct loop *loop; /* the thread: its epoll set holds libcurl's sockets */
	bool own_loop;	   /* upstream_start made it (upstream_start_on: the caller's) */
	struct loop_hook hook;
	/* upstream thread only */
	struct up_call **table;
	size_t table_mask, table_n;
	int64_t next_sweep_ns;
	int64_t timer_due_ns;  /* libcurl's timer (CLOCK_MONOTONIC); 0 = none */
	struct up_sock *socks; /* by descriptor: libcurl's sockets in the loop's set */
	size_t nsocks;
	/*
	 * Easy handles of finished calls, reset, for the next ones: curl_easy_init and
	 * curl_easy_cleanup were ~3 % of a forwarded call's CPU. One pool per receive-buffer
	 * kind (plain, stream): a handle is only reused with the buffer size it was set up
	 * with, whatever libcurl does with its buffer across curl_easy_reset.
	 */
	pthread_mutex_t pool_lock;
	CURL *pool[2][UP_EASY_POOL];
	unsigned npool[2];
};

static pthread_once_t up_global_once = PTHREAD_ONCE_INIT;
static CURLcode up_global_rc;

/* curl_global_init is not thread-safe in 7.88: run it once, before the first thread. */
static void up_global_init(void)
{
	up_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

const char *upstream_err_name(enum upstream_err e)
{
	static const char *const names[] = {
	    [UPSTREAM_OK] = "ok",
	    [UPSTREAM_CONNECT] = "connect",
	    [UPSTREAM_TIMEOUT] = "timeout",
	    [UPSTREAM_BROKEN] = "broken",
	    [UPSTREAM_CANCELLED] = "cancelled",
	    [UPSTREAM_INTERNAL] = "internal",
	};

	if ((unsigned)e >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[e];
}

/* --- the id table (upstream thread only) --- */

static size_t up_slot(const struct upstream *u, uint64_t id)
{
	return (size_t)((id * 0x9E3779B97F4A7C15ULL) >> 32) & u->table_mask;
}

/* Doubles the table; on allocation failure the chains just grow longer. */
static void up_table_grow(struct upstream *u)
{
	size_t old = u->table_mask + 1, i;
	struct up_call **t = calloc(old * 2, sizeof(*t)), **prev = u->table;

	if (!t)
		return;
	u->table = t;
	u->table_mask = old * 2 - 1;
	for (i = 0; i < old; i++) {
		while (prev[i]) {
			struct up_call *c = prev[i];
			size_t s = up_slot(u, c->id);

			prev[i] = c->hnext;
			c->hnext = t[s];
			t[s] = c;
		}
	}
	free(prev);
}

static void up_table_put(struct upstream *u, struct up_call *c)
{
	size_t s;

	if (u->table_n >= u->table_mask + 1)
		up_table_grow(u);
	s = up_slot(u, c->id);
	c->hnext = u->table[s];
	u->table[s] = c;
	u->table_n++;
}

static struct up_call *up_table_get(const struct upstream *u, uint64_t id)
{
	struct up_call *c = u->table[up_slot(u, id)];

	while (c && c->id != id)
		c = c->hnext;
	return c;
}

static void up_table_del(struct upstream *u, struct up_call *c)
{
	struct up_call **pp = &u->table[up_slot(u, c->id)];

	while (*pp && *pp != c)
		pp = &(*pp)->hnext;
	if (*pp) {
		*pp = c->hnext;
		u->table_n--;
	}
}

/* --- one call --- */

/* An easy handle for a call of this kind: a pooled one, else a new one (NULL: no memory). */
static CURL *up_easy_get(struct upstream *u, bool stream)
{
	CURL *e = NULL;

	pthread_mutex_lock(&u->pool_lock);
	if (u->npool[stream])
		e = u->pool[stream][--u->npool[stream]];
	pthread_mutex_unlock(&u->pool_lock);
	return e ? e : curl_easy_init();
}

/*
 * Gives an easy handle back: reset (its options and their pointers forgotten) and pooled.
 * Not one that ended on a connection other calls still use (HTTP/2): libcurl 7.88 then keeps
 * the handle's receive buffer, which a reset does not free, so the next CURLOPT_BUFFERSIZE
 * would be refused and the old buffer used at the new (reset) size.
 */
static void up_easy_put(struct upstream *u, CURL *e, bool stream, bool http2)
{
	if (!e)
		return;
	if (http2) {
		curl_easy_cleanup(e);
		return;
	}
	curl_easy_reset(e);
	pthread_mutex_lock(&u->pool_lock);
	if (u->npool[stream] < UP_EASY_POOL) {
		u->pool[stream][u->npool[stream]++] = e;
		e = NULL;
	}
	pthread_mutex_unlock(&u->pool_lock);
	if (e)
		curl_easy_cleanup(e);
}

/* Frees a call that is not (or no longer) in the multi handle. Accepts NULL. */
static void up_call_free(struct upstream *u, struct up_call *c)
{
	if (!c)
		return;
	up_easy_put(u, c->easy, c->stream, c->http2);
	/* libcurl copied the header lines; wipe its copies, the API key among them */
	for (struct curl_slist *l = c->headers; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(c->headers);
	free(c->url);
	free(c->body_owned);
	free(c);
}

/*
 * Calls on_status once the status is final: at the end of the response headers (min_code
 * 200, so a 1xx interim block is skipped), or failing that before the first body byte or
 * at a successful end.
 */
static void up_status(struct up_call *c, long min_code)
{
	long code = 0;

	if (c->status_sent)
		return;
	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &code);
	if (code < min_code || code <= 0)
		return;
	c->status_sent = true;
	if (c->on_status)
		c->on_status(c->ctx, (unsigned)code, c->has_content_type ? c->content_type : NULL,
			     c->has_retry_after ? c->retry_after : NULL);
}

/* Copies the trimmed value of header line buf into out if the line is header name. */
static void up_header_value(const char *buf, size_t len, const char *name, char *out, size_t cap,
			    bool *has)
{
	size_t nlen = strlen(name), s, e, n;

	if (len <= nlen || buf[nlen] != ':' || strncasecmp(buf, name, nlen) != 0)
		return;
	for (s = nlen + 1; s < len && (buf[s] == ' ' || buf[s] == '\t'); s++)
		;
	for (e = len; e > s && strchr(" \t\r\n", buf[e - 1]); e--)
		;
	n = e - s < cap - 1 ? e - s : cap - 1;
	memcpy(out, buf + s, n);
	out[n] = '\0';
	*has = true;
}

static size_t up_on_header(char *buf, size_t size, size_t nitems, void *arg)
{
	struct up_call *c = arg;
	size_t len = size * nitems;

	if (c->status_sent)
		return len; /* trailers of a chunked body */
	if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
		/* a new header block (after a 1xx): forget the last one's values */
		c->has_content_type = false;
		c->has_retry_after = false;
	} else if (len == 0 || buf[0] == '\r' || buf[0] == '\n') {
		up_status(c, 200);
	} else {
		up_header_value(buf, len, "content-type", c->content_type, sizeof(c->content_type),
				&c->has_content_type);
		up_header_value(buf, len, "retry-after", c->retry_after, sizeof(c->retry_after),
				&c->has_retry_after);
	}
	return len;
}

/* Body bytes go straight to on_data (see "Flow control" at the top). */
static size_t up_on_body(char *buf, size_t size, size_t nitems, void *arg)
{
	struct up_call *c = arg;
	size_t len = size * nitems;

	up_status(c, 1);
	if (c->on_data && len > 0)
		c->on_data(c->ctx, buf, len);
	return len;
}

static int up_header_add(struct curl_slist **list, const char *line)
{
	struct curl_slist *l = curl_slist_append(*list, line);

	if (!l)
		return -ENOMEM;
	*list = l;
	return 0;
}

/* Builds the request header lines. An empty or absent api_key sends no Authorization. */
static int up_call_headers(struct up_call *c, const char *api_key)
{
	size_t n;
	char *auth;
	int err;

	/* "Expect:" turns off 100-continue: no extra round trip before a large body */
	err = up_header_add(&c->headers, "Expect:");
	if (!err && c->body)
		err = up_header_add(&c->headers, "Content-Type: application/json");
	if (err || !api_key || !api_key[0])
		return err;
	n = sizeof(UP_AUTH_PREFIX) + strlen(api_key);
	auth = malloc(n);
	if (!auth)
		return -ENOMEM;
	snprintf(auth, n, "%s%s", UP_AUTH_PREFIX, api_key);
	err = up_header_add(&c->headers, auth);
	explicit_bzero(auth, n);
	free(auth);
	return err;
}

/*
 * The HTTP version of a call. HTTP/2 over http:// is cleartext with prior knowledge (there is
 * no negotiation without TLS); over https:// it is offered in the TLS handshake, and a server
 * that does not take it is spoken to in HTTP/1.1. PIPEWAIT: a call waits for a connection
 * that can carry it as one more stream rather than opening its own, so a burst of calls
 * shares the connections there are.
 */
static int up_call_version(CURL *e, const char *url, bool http2)
{
	long v = !http2				  ? CURL_HTTP_VERSION_1_1
		 : strncasecmp(url, "https:", 6) == 0 ? CURL_HTTP_VERSION_2TLS
						      : CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
	int bad = curl_easy_setopt(e, CURLOPT_HTTP_VERSION, v) != CURLE_OK;

	if (http2)
		bad |= curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L) != CURLE_OK;
	return bad;
}

bool upstream_h2c_ok(void)
{
	return curl_version_info(CURLVERSION_NOW)->version_num >= 0x080000;
}

const char *upstream_lib_version(void)
{
	return curl_version_info(CURLVERSION_NOW)->version;
}
static curl_socket_t up_on_open(void *clientp, curlsocktype purpose, struct curl_sockaddr *a);

/* Sets the easy handle's options; -EINVAL if libcurl refuses one. */
static int up_call_options(struct upstream *u, struct up_call *c, bool post,
			   const struct upstream_call *r)
{
	CURL *e = c->easy;
	int bad = 0;

	bad |= curl_easy_setopt(e, CURLOPT_URL, c->url) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, c) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= up_call_version(e, c->url, r->http2);
	if (r->ca_file && *r->ca_file) /* copied by libcurl */
		bad |= curl_easy_setopt(e, CURLOPT_CAINFO, r->ca_file) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L) != CURLE_OK;
	/*
	 * The receive buffer, allocated per call for its whole life: a stream's events are a
	 * few hundred bytes each, a bigger buffer would mostly sit idle while it waits.
	 */
	bad |= curl_easy_setopt(e, CURLOPT_BUFFERSIZE,
				(long)(r->stream ? UP_RECV_STREAM : UP_RECV_BUFFER)) != CURLE_OK;
	/* the whole call; 0 is libcurl's "no limit" */
	bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)r->timeout_ms) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_PROXY, "") != CURLE_OK; /* ignore *_proxy in env */
	bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "tollgate") != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, up_on_header) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_HEADERDATA, c) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, up_on_body) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, c) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, up_on_open) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, u) != CURLE_OK;
	if (post) {
		/* never NULL: with NULL fields libcurl would read the body from stdin */
		bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body ? c->body : "") != CURLE_OK;
		bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len) !=
		       CURLE_OK;
	} else {
		bad |= curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) != CURLE_OK;
	}
	return bad ? -EINVAL : 0;
}

/* Checks a request: "POST" (or NULL with a body), "GET" (or NULL without) and no CR/LF. */
static int up_call_check(const struct upstream_call *r, bool *post)
{
	if (!r || !r->url || !r->on_done || (r->body_len && !r->body))
		return -EINVAL;
	if (!r->method)
		*post = r->body_len > 0;
	else if (strcmp(r->method, "POST") == 0)
		*post = true;
	else if (strcmp(r->method, "GET") == 0 && r->body_len == 0)
		*post = false;
	else
		return -EINVAL;
	/* a CR or LF in the key would let it inject header lines */
	if (r->api_key && strpbrk(r->api_key, "\r\n"))
		return -EINVAL;
	return 0;
}

/* Copies the request and builds its easy handle; 0 and *out, or -errno. */
static int up_call_new(struct upstream *u, const struct upstream_call *r, struct up_call **out)
{
	struct up_call *c;
	bool post = false;
	int err = up_call_check(r, &post);

	if (err)
		return err;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	err = -ENOMEM;
	c->url = strdup(r->url);
	if (!c->url)
		goto fail;
	if (r->body_len && r->body_kept) {
		c->body = r->body;
	} else if (r->body_len) {
		c->body_owned = malloc(r->body_len);
		if (!c->body_owned)
			goto fail;
		memcpy(c->body_owned, r->body, r->body_len);
		c->body = c->body_owned;
	}
	c->body_len = r->body_len;
	c->stream = r->stream;
	c->http2 = r->http2;
	c->easy = up_easy_get(u, c->stream);
	if (!c->easy || up_call_headers(c, r->api_key))
		goto fail;
	err = up_call_options(u, c, post, r);
	if (err)
		goto fail;
	c->on_status = r->on_status;
	c->on_data = r->on_data;
	c->on_done = r->on_done;
	c->ctx = r->ctx;
	if (r->timeout_ms)
		c->deadline_ns = tg_now_mono_ns() + (int64_t)r->timeout_ms * 1000000;
	*out = c;
	return 0;
fail:
	up_call_free(u, c);
	return err;
}

/* --- the upstream thread --- */

static enum upstream_err up_classify(CURLcode rc)
{
	switch (rc) {
	case CURLE_OK:
		return UPSTREAM_OK;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
		return UPSTREAM_CONNECT;
	case CURLE_OPERATION_TIMEDOUT:
		return UPSTREAM_TIMEOUT;
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_WEIRD_SERVER_REPLY:
		return UPSTREAM_BROKEN;
	default:
		return UPSTREAM_INTERNAL;
	}
}

/* Ends a call: out of the table and the multi handle, on_done, freed. */
static void up_finish(struct upstream *u, struct up_call *c, enum upstream_err err,
		      const char *detail)
{
	up_table_del(u, c);
	if (c->added)
		curl_multi_remove_handle(u->multi, c->easy);
	c->added = false;
	if (err == UPSTREAM_OK)
		up_status(c, 1);
	c->on_done(c->ctx, err, detail);
	up_call_free(u, c);
	atomic_fetch_sub(&u->inflight, 1);
}

/*
 * The text on_done gets: libcurl's error buffer, which names host and port but never a
 * header line, so no key can be in it; "" on success.
 */
static const char *up_detail(const struct up_call *c, CURLcode rc)
{
	if (rc == CURLE_OK)
		return "";
	return c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
}

/* Hands the transfers libcurl finished to up_finish. */
static void up_reap(struct upstream *u)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(u->multi, &left))) {
		char *priv = NULL;
		struct up_call *c;
		CURLcode rc;

		if (m->msg != CURLMSG_DONE)
			continue;
		rc = m->data.result; /* m dies with the handle's removal */
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
		c = (struct up_call *)priv;
		up_finish(u, c, up_classify(rc), up_detail(c, rc));
	}
}

/* Takes the queued calls and cancels; returns whether the upstream is stopping. */
static bool up_take(struct upstream *u, struct up_call **calls, uint64_t **ids, size_t *nids)
{
	bool stopping;

	pthread_mutex_lock(&u->lock);
	*calls = u->queue_head;
	u->queue_head = u->queue_tail = NULL;
	*ids = u->cancels;
	*nids = u->ncancels;
	u->cancels = NULL;
	u->ncancels = u->cancels_cap = 0;
	stopping = u->stopping;
	u->wake_pending = false; /* what is queued from now on needs a new wake-up */
	pthread_mutex_unlock(&u->lock);
	return stopping;
}

static void up_start_calls(struct upstream *u, struct up_call *list)
{
	while (list) {
		struct up_call *c = list;

		list = c->next;
		c->next = NULL;
		up_table_put(u, c);
		if (curl_multi_add_handle(u->multi, c->easy) != CURLM_OK) {
			up_finish(u, c, UPSTREAM_INTERNAL, "could not add the transfer");
			continue;
		}
		c->added = true;
	}
}

/* Cancels by id; an id no longer in the table belongs to a call that already ended. */
static void up_apply_cancels(struct upstream *u, const uint64_t *ids, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct up_call *c = up_table_get(u, ids[i]);

		if (c)
			up_finish(u, c, UPSTREAM_CANCELLED, "cancelled");
	}
}

/*
 * Ends the calls whose deadline passed. libcurl times out a transfer it is running, but
 * not one it holds back for a connection beyond max_host_conns (7.88 checks timeouts only
 * once a transfer leaves that queue): behind hung connections such a call would wait past
 * its timeout. This sweep, every UP_SWEEP_MS, bounds it to timeout_ms + UP_SWEEP_MS.
 */
static void up_sweep(struct upstream *u)
{
	int64_t now = tg_now_mono_ns();

	if (now < u->next_sweep_ns)
		return;
	u->next_sweep_ns = now + UP_SWEEP_MS * 1000000LL;
	for (size_t i = 0; i <= u->table_mask; i++) {
		struct up_call *c = u->table[i], *next;

		/* on_done cannot touch the table, so next stays valid */
		for (; c; c = next) {
			next = c->hnext;
			if (c->deadline_ns && now >= c->deadline_ns)
				up_finish(u, c, UPSTREAM_TIMEOUT,
					  "no answer within the call's timeout");
		}
	}
}

static void up_cancel_all(struct upstream *u)
{
	for (size_t i = 0; i <= u->table_mask; i++) {
		while (u->table[i])
			up_finish(u, u->table[i], UPSTREAM_CANCELLED, "upstream stopping");
	}
}

/* The entry of descriptor fd, the table grown to hold it; NULL if out of memory. */
static struct up_sock *up_sock_get(struct upstream *u, curl_socket_t fd)
{
	size_t n = u->nsocks ? u->nsocks : 64;
	struct up_sock *t;

	if (fd < 0)
		return NULL;
	if ((size_t)fd < u->nsocks)
		return &u->socks[fd];
	while (n <= (size_t)fd)
		n *= 2;
	t = realloc(u->socks, n * sizeof(*t));
	if (!t)
		return NULL;
	memset(t + u->nsocks, 0, (n - u->nsocks) * sizeof(*t));
	u->socks = t;
	u->nsocks = n;
	return &u->socks[fd];
}

/* Takes the socket out of the loop's set (if its descriptor is closed already: a no-op). */
static void up_sock_drop(struct upstream *u, struct up_sock *s)
{
	loop_watch_del(u->loop, s->w);
	*s = (struct up_sock){0};
}

static void up_on_ready(void *arg, int fd, uint32_t events)
{
	struct upstream *u = arg;
	int mask = 0, running;

	if ((size_t)fd < u->nsocks && u->socks[fd].parked) {
		/* an idle connection stirred: unwatched until libcurl wants it again */
		up_sock_drop(u, &u->socks[fd]);
		return;
	}
	if (events & (EPOLLIN | EPOLLHUP))
		mask |= CURL_CSELECT_IN;
	if (events & EPOLLOUT)
		mask |= CURL_CSELECT_OUT;
	if (events & EPOLLERR)
		mask |= CURL_CSELECT_ERR;
	curl_multi_socket_action(u->multi, fd, mask, &running);
}

/* libcurl opens every socket here: the descriptor's entry starts clean (see up_sock). */
static curl_socket_t up_on_open(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct upstream *u = clientp;
	curl_socket_t fd;

	(void)purpose;
	fd = socket(a->family, a->socktype, a->protocol);
	if (fd >= 0 && (size_t)fd < u->nsocks && u->socks[fd].w)
		up_sock_drop(u, &u->socks[fd]); /* the old socket's: gone with its close */
	return fd < 0 ? CURL_SOCKET_BAD : fd;
}

/* libcurl's socket callback: keeps the loop's set in line with what it wants to watch. */
static int up_on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct upstream *u = userp;
	struct up_sock *s = up_sock_get(u, fd);
	uint32_t ev;
	int err = 0;

	(void)e;
	(void)socketp;
	if (!s) {
		err = -ENOMEM;
	} else if (what == CURL_POLL_REMOVE) {
		/* idle (or closing): parked if it waits for input only, else out of the set */
		if (s->w && s->events == EPOLLIN)
			s->parked = true;
		else
			up_sock_drop(u, s);
	} else {
		ev = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
		s->parked = false;
		if (!s->w)
			err = loop_watch_add(u->loop, fd, ev, up_on_ready, u, &s->w);
		else if (s->events != ev)
			err = loop_watch_mod(u->loop, s->w, ev);
		if (!err)
			s->events = ev;
	}
	if (err)
		log_warnx("upstream: cannot watch a connection: %s", strerror(-err));
	return 0;
}

/* libcurl's timer callback: -1 removes the timer, else it is due in timeout_ms. */
static int up_on_timer(CURLM *m, long timeout_ms, void *userp)
{
	struct upstream *u = userp;

	(void)m;
	u->timer_due_ns = timeout_ms < 0 ? 0 : tg_now_mono_ns() + (int64_t)timeout_ms * 1000000;
	return 0;
}

/* How long the thread may sleep: until libcurl's timer, the next sweep, UP_POLL_MS. */
static int up_wait_ms(const struct upstream *u)
{
	int64_t now = tg_now_mono_ns(), until = now + UP_POLL_MS * 1000000LL;

	if (u->timer_due_ns && u->timer_due_ns < until)
		until = u->timer_due_ns;
	if (u->table_n && u->next_sweep_ns < until)
		until = u->next_sweep_ns;
	if (until <= now)
		return 0;
	return (int)((until - now + 999999) / 1000000);
}

/* A due libcurl timer. */
static void up_timer_check(struct upstream *u)
{
	int running;

	if (u->timer_due_ns && tg_now_mono_ns() >= u->timer_due_ns) {
		u->timer_due_ns = 0; /* the action below sets the next one */
		curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
}

/* The end of a round: upstream_on_round's function, read under the lock. */
static void up_round_end(struct upstream *u)
{
	void (*fn)(void *arg);
	void *arg;

	pthread_mutex_lock(&u->lock);
	fn = u->round_fn;
	arg = u->round_arg;
	pthread_mutex_unlock(&u->lock);
	if (fn)
		fn(arg);
}

static __thread struct upstream *up_self; /* the upstream whose loop this thread runs */

/* Starts what was queued, applies cancels, ends the round; how long the loop may wait. */
static int up_before(void *arg)
{
	struct upstream *u = arg;
	struct up_call *calls;
	uint64_t *ids;
	size_t nids;
	bool more, stopping = up_take(u, &calls, &ids, &nids);

	/* new calls first, so that a cancel queued after its submit finds its call */
	up_start_calls(u, calls);
	up_apply_cancels(u, ids, nids);
	free(ids);
	if (stopping)
		return -1; /* up_detach, queued by upstream_stop, ends the calls */
	/* every call that ended since the last wait (events, sweep, cancels) is done */
	up_round_end(u);
	/* the round's end may have submitted (on this thread, without a wake-up) */
	pthread_mutex_lock(&u->lock);
	more = u->queue_head || u->ncancels;
	pthread_mutex_unlock(&u->lock);
	return more ? 0 : up_wait_ms(u);
}

static void up_after(void *arg)
{
	struct upstream *u = arg;

	up_timer_check(u);
	up_reap(u);
	up_sweep(u);
}

static void up_attach(void *arg)
{
	struct upstream *u = arg;

	up_self = u;
	loop_hook_add(u->loop, &u->hook);
}

/* On the loop thread: the last calls are cancelled, the hook and the sockets go. */
static void up_detach(void *arg)
{
	struct upstream *u = arg;
	struct up_call *calls;
	uint64_t *ids;
	size_t nids;

	up_take(u, &calls, &ids, &nids);
	up_start_calls(u, calls);
	up_apply_cancels(u, ids, nids);
	free(ids);
	up_cancel_all(u);
	up_round_end(u);
	loop_hook_del(u->loop, &u->hook);
	curl_multi_cleanup(u->multi); /* calls up_on_socket: the loop is still there */
	u->multi = NULL;
	/* parked sockets are closed now; their watches go (and other stale entries') */
	for (size_t fd = 0; fd < u->nsocks; fd++) {
		if (u->socks[fd].w)
			up_sock_drop(u, &u->socks[fd]);
	}
	if (up_self == u)
		up_self = NULL;
}

/* --- the API --- */

/*
 * Wakes the upstream thread (its epoll set holds the eventfd); caller holds u->lock. Once
 * per batch: until the thread takes the queues (up_take), what is queued meanwhile is
 * taken with them, so a second write would only cost a system call and a wake-up.
 */
static void up_wake(struct upstream *u)
{
	/* on the loop thread, up_before takes the queues before the next wait */
	if (u->wake_pending || loop_on_thread(u->loop))
		return;
	u->wake_pending = true;
	loop_wake(u->loop);
}

static int up_multi_setup(struct upstream *u, unsigned max_host_conns)
{
	/* 0 means no bound, for libcurl as for us */
	long cache = max_host_conns ? (long)max_host_conns * UP_IDLE_PER_HOST : 1024;
	int bad = 0;

	u->multi = curl_multi_init();
	if (!u->multi)
		return -ENOMEM;
	bad |= curl_multi_setopt(u->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)max_host_conns) !=
	       CURLM_OK;
	/* idle connections stay in this cache for reuse; the default would shrink with the
	 * number of easy handles, which here come and go with each call */
	bad |= curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, cache) != CURLM_OK;
	/* HTTP/2 calls share connections; HTTP/1.1 ones never pipeline either way */
	bad |= curl_multi_setopt(u->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX) !=
	       CURLM_OK;
	/*
	 * Calls per HTTP/2 connection (the server's own limit applies when lower). libcurl 7.88
	 * gives a call that finds every connection full a connection of its own, even while
	 * another one is still being set up, so a burst past this bound opens a connection per
	 * call (up to max_host_conns): at libcurl's default of 100 a burst of 2,000 streams
	 * opened ~1,900 connections.
	 */
	bad |= curl_multi_setopt(u->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, UP_H2_STREAMS) !=
	       CURLM_OK;
	bad |= curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, up_on_socket) != CURLM_OK;
	bad |= curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u) != CURLM_OK;
	bad |= curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, up_on_timer) != CURLM_OK;
	bad |= curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u) != CURLM_OK;
	return bad ? -EINVAL : 0;
}

static void up_free(struct upstream *u)
{
	if (u->multi)
		curl_multi_cleanup(u->multi);
	for (int k = 0; k < 2; k++) {
		while (u->npool[k])
			curl_easy_cleanup(u->pool[k][--u->npool[k]]);
	}
	free(u->cancels);
	free(u->table);
	free(u->socks);
	pthread_mutex_destroy(&u->pool_lock);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

struct upstream *upstream_start_on(struct loop *l, unsigned max_host_conns)
{
	struct upstream *u;
	int err;

	pthread_once(&up_global_once, up_global_init);
	if (up_global_rc != CURLE_OK) {
		log_warnx("upstream: libcurl initialisation failed: %s",
			  curl_easy_strerror(up_global_rc));
		errno = EIO;
		return NULL;
	}
	if (!l) {
		errno = EINVAL;
		return NULL;
	}
	u = calloc(1, sizeof(*u));
	if (!u) {
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&u->lock, NULL);
	pthread_mutex_init(&u->pool_lock, NULL);
	u->loop = l;
	u->hook = (struct loop_hook){.before = up_before, .after = up_after, .arg = u};
	u->table_mask = UP_TABLE_MIN - 1;
	u->table = calloc(UP_TABLE_MIN, sizeof(*u->table));
	err = u->table ? up_multi_setup(u, max_host_conns) : -ENOMEM;
	if (err) {
		up_free(u);
		errno = -err;
		return NULL;
	}
	loop_call(l, up_attach, u);
	return u;
}

struct upstream *upstream_start(unsigned max_host_conns)
{
	struct loop *l = loop_start("upstream");
	struct upstream *u = l ? upstream_start_on(l, max_host_conns) : NULL;
	int err = errno;

	if (!u) {
		loop_stop(l);
		errno = err;
		return NULL;
	}
	u->own_loop = true;
	return u;
}

/* Must not be called from a callback: it waits for the upstream's loop. */
void upstream_stop(struct upstream *u)
{
	if (!u)
		return;
	pthread_mutex_lock(&u->lock);
	u->stopping = true;
	pthread_mutex_unlock(&u->lock);
	loop_call(u->loop, up_detach, u);
	if (u->own_loop)
		loop_stop(u->loop);
	up_free(u);
}
/* -ESHUTDOWN once upstream_stop has begun. Safe from callbacks. */
int upstream_submit(struct upstream *u, const struct upstream_call *c, uint64_t *handle)
{
	struct up_call *call;
	uint64_t id;
	int err;

	if (!u)
		return -EINVAL;
	err = up_call_new(u, c, &call);
	if (err)
		return err;
	pthread_mutex_lock(&u->lock);
	if (u->stopping) {
		pthread_mutex_unlock(&u->lock);
		up_call_free(u, call);
		return -ESHUTDOWN;
	}
	id = call->id = ++u->last_id;
	if (u->queue_tail)
		u->queue_tail->next = call;
	else
		u->queue_head = call;
	u->queue_tail = call;
	atomic_fetch_add(&u->inflight, 1);
	/* under the lock, so that upstream_stop cannot close the eventfd meanwhile */
	up_wake(u);
	pthread_mutex_unlock(&u->lock);
	if (handle)
		*handle = id; /* not call->id: the call may be over and freed already */
	return 0;
}

/* Safe from any thread, callbacks included; unknown or finished handles are ignored. */
void upstream_cancel(struct upstream *u, uint64_t handle)
{
	if (!u || handle == 0)
		return;
	pthread_mutex_lock(&u->lock);
	if (u->ncancels == u->cancels_cap) {
		size_t cap = u->cancels_cap ? u->cancels_cap * 2 : 16;
		uint64_t *n = realloc(u->cancels, cap * sizeof(*n));

		if (!n) {
			pthread_mutex_unlock(&u->lock);
			/* the call still ends, at the latest when its timeout fires */
			log_warnx("upstream: out of memory, cancel of call %llu dropped",
				  (unsigned long long)handle);
			return;
		}
		u->cancels = n;
		u->cancels_cap = cap;
	}
	u->cancels[u->ncancels++] = handle;
	up_wake(u);
	pthread_mutex_unlock(&u->lock);
}

unsigned upstream_inflight(struct upstream *u)
{
	return u ? atomic_load(&u->inflight) : 0;
}

void upstream_on_round(struct upstream *u, void (*fn)(void *arg), void *arg)
{
	if (!u)
		return;
	pthread_mutex_lock(&u->lock);
	u->round_fn = fn;
	u->round_arg = arg;
	pthread_mutex_unlock(&u->lock);
}

bool upstream_on_thread(const struct upstream *u)
{
	return u && loop_on_thread(u->loop);
}

struct upstream *upstream_here(void)
{
	return up_self;
}

/* --- small JSON POSTs (notifications) --- */

struct up_post {
	void (*done)(void *ctx, unsigned status, enum upstream_err err);
	void *ctx;
	unsigned status;
};

static void up_post_status(void *ctx, unsigned status, const char *content_type,
			   const char *retry_after)
{
	struct up_post *p = ctx;

	(void)content_type;
	(void)retry_after;
	p->status = status;
}

/* The answer's body is not wanted: a receiver says all it has to say in its status. */
static void up_post_data(void *ctx, const char *buf, size_t len)
{
	(void)ctx;
	(void)buf;
	(void)len;
}

static void up_post_done(void *ctx, enum upstream_err err, const char *detail)
{
	struct up_post *p = ctx;

	(void)detail;
	p->done(p->ctx, p->status, err);
	free(p);
}

int upstream_post_json(struct upstream *u, const char *url, const char *json, size_t len,
		       uint32_t timeout_ms,
		       void (*done)(void *ctx, unsigned status, enum upstream_err err), void *ctx,
		       uint64_t *handle)
{
	struct up_post *p;
	struct upstream_call c = {.url = url,
				  .method = "POST",
				  .body = json,
				  .body_len = len,
				  .timeout_ms = timeout_ms,
				  .on_status = up_post_status,
				  .on_data = up_post_data,
				  .on_done = up_post_done};
	int err;

	if (!done || !json || !len)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->done = done;
	p->ctx = ctx;
	c.ctx = p;
	err = upstream_submit(u, &c, handle);
	if (err)
		free(p);
	return err;
}

int upstream_url_check(const char *url, char *err, size_t errlen)
{
	CURLU *h = curl_url();
	char *scheme = NULL, *host = NULL;
	int rc = -EINVAL;

	if (!h) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (!url || strpbrk(url, " \t\r\n") || curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK)
		snprintf(err, errlen, "not a URL (expected http://host[:port]/path)");
	else if (curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
		 (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
		snprintf(err, errlen, "the scheme must be http or https");
	else if (curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0])
		snprintf(err, errlen, "the URL has no host");
	else
		rc = 0;
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(h);
	return rc;
}
