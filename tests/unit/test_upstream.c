/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Upstream client (userspace/upstream.c) against a small HTTP/1.1 server this test runs in
 * its own threads on 127.0.0.1 (plain sockets, one thread per connection, keep-alive): a
 * JSON answer, a chunked stream delivered piece by piece, a 429 with Retry-After, refused
 * and hanging and broken upstreams, cancel, 200 concurrent calls, connection reuse, the
 * request headers as they arrive, and stop with calls in flight. Every callback order and
 * count is checked: at most one on_status, on_data only after it, exactly one on_done.
 * Waits are bounded (a hang fails the case instead of the suite); no duration is asserted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tg_test.h"
#include "upstream.h"

#define WAIT_MS	 20000 /* the bound on any wait: reaching it is a failure, not a measure */
#define API_KEY	 "sk-test-4f9a2c0d1e"
#define STREAM_N 5

/* --- the test server --- */

struct srv {
	int lfd;
	unsigned short port;
	pthread_t thread;
	atomic_int stop;
	atomic_int accepts;	 /* TCP connections accepted */
	atomic_int requests;	 /* requests read */
	atomic_int active;	 /* connection threads alive */
	atomic_int progress;	 /* stream lines the client reported receiving */
	atomic_int stream_stall; /* the client never reported a streamed piece */
	pthread_mutex_t lock;
	char last_head[4096]; /* the last request's head and body, under lock */
	char last_body[1024];
};

struct conn {
	struct srv *s;
	int fd;
};

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Waits up to WAIT_MS for *v >= want. */
static int wait_atomic(atomic_int *v, int want)
{
	for (int i = 0; i < WAIT_MS; i++) {
		if (atomic_load(v) >= want)
			return 1;
		sleep_ms(1);
	}
	return atomic_load(v) >= want;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int send_str(int fd, const char *s)
{
	return send_all(fd, s, strlen(s));
}

/* Reads more bytes into buf; -1 on EOF, error or server stop. */
static int srv_read_more(struct conn *c, char *buf, size_t *have, size_t cap)
{
	for (;;) {
		struct pollfd pfd = {c->fd, POLLIN, 0};
		ssize_t r;

		if (atomic_load(&c->s->stop) || *have >= cap)
			return -1;
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		r = recv(c->fd, buf + *have, cap - *have, 0);
		if (r <= 0)
			return -1;
		*have += (size_t)r;
		return 0;
	}
}

/* Copies the value of header name from the request head into out ("" if absent). */
static void head_value(const char *head, const char *name, char *out, size_t cap)
{
	size_t nlen = strlen(name);
	const char *l = strstr(head, "\r\n");

	out[0] = '\0';
	for (; l && l[2] != '\r'; l = strstr(l + 2, "\r\n")) {
		const char *v = l + 2, *e;

		if (strncasecmp(v, name, nlen) != 0 || v[nlen] != ':')
			continue;
		for (v += nlen + 1; *v == ' '; v++)
			;
		e = strstr(v, "\r\n");
		snprintf(out, cap, "%.*s", (int)(e - v), v);
		return;
	}
}

static int reply(int fd, const char *status, const char *ctype, const char *extra, const char *body)
{
	char head[512];

	snprintf(head, sizeof(head),
		 "HTTP/1.1 %s\r\nContent-Type: %s\r\n%sContent-Length: %zu\r\n\r\n", status, ctype,
		 extra, strlen(body));
	return send_str(fd, head) || send_str(fd, body) ? 0 : 1;
}

/* Sends STREAM_N chunks, each only after the client reported the one before. */
static int reply_stream(struct srv *s, int fd)
{
	char piece[64];

	if (send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
			 "Transfer-Encoding: chunked\r\n\r\n"))
		return 0;
	for (int i = 0; i < STREAM_N; i++) {
		snprintf(piece, sizeof(piece), "8\r\npiece-%d\n\r\n", i);
		if (send_str(fd, piece))
			return 0;
		if (!wait_atomic(&s->progress, i + 1))
			atomic_store(&s->stream_stall, 1);
		sleep_ms(10);
	}
	return send_str(fd, "0\r\n\r\n") ? 0 : 1;
}

/* Holds the connection open, answering nothing, until the client or the test gives up. */
static int reply_hang(struct conn *c)
{
	char sink[256];

	while (!atomic_load(&c->s->stop)) {
		struct pollfd pfd = {c->fd, POLLIN, 0};

		if (poll(&pfd, 1, 50) > 0 && recv(c->fd, sink, sizeof(sink), 0) <= 0)
			break;
	}
	return 0;
}

/* Answers one request by its path; returns 1 to keep the connection, 0 to close it. */
static int route(struct conn *c, const char *path, const char *auth)
{
	int fd = c->fd;

	if (!strcmp(path, "/json"))
		return reply(fd, "200 OK", "application/json", "", "{\"ok\":true}");
	if (!strcmp(path, "/slow")) {
		sleep_ms(20);
		return reply(fd, "200 OK", "application/json", "", "{\"slow\":true}");
	}
	if (!strcmp(path, "/echo-auth"))
		return reply(fd, "200 OK", "text/plain", "", auth[0] ? auth : "none");
	if (!strcmp(path, "/429"))
		return reply(fd, "429 Too Many Requests", "application/json", "Retry-After: 7\r\n",
			     "{\"error\":{\"message\":\"slow down\"}}");
	if (!strcmp(path, "/json-then-close")) {
		/* a keep-alive answer, then the server drops the idle connection */
		reply(fd, "200 OK", "application/json", "", "{\"ok\":true}");
		sleep_ms(20);
		return 0;
	}
	if (!strcmp(path, "/stream"))
		return reply_stream(c->s, fd);
	if (!strcmp(path, "/hang"))
		return reply_hang(c);
	if (!strcmp(path, "/broken"))
		send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
	if (!strcmp(path, "/broken-chunked"))
		send_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			     "a\r\n0123456789\r\n");
	return 0; /* "/nothing" and the broken ones: close now */
}

/* Reads one request (head and Content-Length body) and answers it; 0 to go on. */
static int serve_one(struct conn *c, char *buf, size_t *have, size_t cap)
{
	char method[16], path[128], clen[32], auth[256], *end;
	size_t head_len, body_len;
	int keep;

	while (!(end = memmem(buf, *have, "\r\n\r\n", 4)))
		if (srv_read_more(c, buf, have, cap))
			return -1;
	head_len = (size_t)(end - buf) + 4;
	buf[head_len - 2] = '\0'; /* the head as a string, ending with its last "\r\n" */
	head_value(buf, "content-length", clen, sizeof(clen));
	head_value(buf, "authorization", auth, sizeof(auth));
	body_len = (size_t)strtoul(clen, NULL, 10);
	while (*have < head_len + body_len)
		if (srv_read_more(c, buf, have, cap))
			return -1;
	if (sscanf(buf, "%15s %127s", method, path) != 2)
		return -1;
	pthread_mutex_lock(&c->s->lock);
	snprintf(c->s->last_head, sizeof(c->s->last_head), "%s", buf);
	snprintf(c->s->last_body, sizeof(c->s->last_body), "%.*s", (int)body_len, buf + head_len);
	pthread_mutex_unlock(&c->s->lock);
	atomic_fetch_add(&c->s->requests, 1);
	keep = route(c, path, auth);
	memmove(buf, buf + head_len + body_len, *have - head_len - body_len);
	*have -= head_len + body_len;
	return keep ? 0 : -1;
}

static void *srv_conn(void *arg)
{
	struct conn *c = arg;
	size_t have = 0, cap = 65536;
	char *buf = malloc(cap);

	while (buf && serve_one(c, buf, &have, cap) == 0)
		;
	free(buf);
	close(c->fd);
	atomic_fetch_sub(&c->s->active, 1);
	free(c);
	return NULL;
}

static void *srv_accept(void *arg)
{
	struct srv *s = arg;

	while (!atomic_load(&s->stop)) {
		struct pollfd pfd = {s->lfd, POLLIN, 0};
		struct conn *c;
		pthread_t th;
		int fd, one = 1;

		if (poll(&pfd, 1, 50) <= 0)
			continue;
		fd = accept(s->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		atomic_fetch_add(&s->accepts, 1);
		c = malloc(sizeof(*c));
		c->s = s;
		c->fd = fd;
		atomic_fetch_add(&s->active, 1);
		if (pthread_create(&th, NULL, srv_conn, c) != 0) {
			close(fd);
			free(c);
			atomic_fetch_sub(&s->active, 1);
			continue;
		}
		pthread_detach(th);
	}
	return NULL;
}

/* Binds a listening socket on 127.0.0.1 with a port the kernel picks. */
static int listen_any(unsigned short *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 512) ||
	    getsockname(fd, (struct sockaddr *)&a, &alen)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

static struct srv *srv_start(void)
{
	struct srv *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	pthread_mutex_init(&s->lock, NULL);
	s->lfd = listen_any(&s->port);
	if (s->lfd < 0 || pthread_create(&s->thread, NULL, srv_accept, s) != 0) {
		if (s->lfd >= 0)
			close(s->lfd);
		free(s);
		return NULL;
	}
	return s;
}

/* Stops accepting, waits for every connection thread to end, frees. */
static void srv_stop(struct srv *s)
{
	if (!s)
		return;
	atomic_store(&s->stop, 1);
	pthread_join(s->thread, NULL);
	for (int i = 0; i < WAIT_MS && atomic_load(&s->active) > 0; i++)
		sleep_ms(1);
	close(s->lfd);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* --- one call's observations --- */

struct rec {
	atomic_int done;       /* on_done calls */
	atomic_int statuses;   /* on_status calls */
	atomic_int misordered; /* on_data before on_status, or anything after on_done */
	enum upstream_err err;
	unsigned status;
	char ctype[128], retry[64], detail[256];
	int has_ctype, has_retry;
	char body[4096];
	size_t body_len;
	int pieces;	      /* on_data calls */
	atomic_int *progress; /* if set, counts received lines for the streaming server */
};

static void on_status(void *ctx, unsigned status, const char *ct, const char *ra)
{
	struct rec *r = ctx;

	if (atomic_load(&r->done))
		atomic_fetch_add(&r->misordered, 1);
	r->status = status;
	r->has_ctype = ct != NULL;
	r->has_retry = ra != NULL;
	snprintf(r->ctype, sizeof(r->ctype), "%s", ct ? ct : "");
	snprintf(r->retry, sizeof(r->retry), "%s", ra ? ra : "");
	atomic_fetch_add(&r->statuses, 1);
}

static void on_data(void *ctx, const char *buf, size_t len)
{
	struct rec *r = ctx;
	int lines = 0;

	if (atomic_load(&r->statuses) != 1 || atomic_load(&r->done))
		atomic_fetch_add(&r->misordered, 1);
	if (r->body_len + len < sizeof(r->body)) {
		memcpy(r->body + r->body_len, buf, len);
		r->body_len += len;
		r->body[r->body_len] = '\0';
	}
	r->pieces++;
	for (size_t i = 0; i < len; i++)
		lines += buf[i] == '\n';
	if (r->progress)
		atomic_fetch_add(r->progress, lines);
}

static void on_done(void *ctx, enum upstream_err err, const char *detail)
{
	struct rec *r = ctx;

	r->err = err;
	snprintf(r->detail, sizeof(r->detail), "%s", detail ? detail : "(null)");
	atomic_fetch_add(&r->done, 1); /* last: publishes the fields above */
}

/* Submits method path (with body if given) to the test server at port. */
static int submit(struct upstream *u, unsigned short port, const char *method, const char *path,
		  const char *body, const char *key, uint32_t timeout_ms, struct rec *r,
		  uint64_t *handle)
{
	char url[128];
	struct upstream_call c = {
	    .url = url,
	    .api_key = key,
	    .method = method,
	    .body = body,
	    .body_len = body ? strlen(body) : 0,
	    .timeout_ms = timeout_ms,
	    .on_status = on_status,
	    .on_data = on_data,
	    .on_done = on_done,
	    .ctx = r,
	};

	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
	return upstream_submit(u, &c, handle);
}

/* Waits until nothing is in flight (on_done returned for every call). */
static int wait_idle(struct upstream *u)
{
	for (int i = 0; i < WAIT_MS; i++) {
		if (upstream_inflight(u) == 0)
			return 1;
		sleep_ms(1);
	}
	return 0;
}

/* --- cases --- */

static void json_answer_with_content_length(void)
{
	struct srv *s = srv_start();
	struct upstream *u = upstream_start(8);
	struct rec r = {0};

	TG_REQUIRE(s && u);
	TG_CHECK_INT(
	    submit(u, s->port, "POST", "/json", "{\"model\":\"m\"}", API_KEY, 5000, &r, NULL), 0);
	TG_CHECK(wait_atomic(&r.done, 1) && wait_idle(u));
	TG_CHECK_INT(r.err, UPSTREAM_OK);
	TG_CHECK_STR(r.detail, "");
	TG_CHECK_INT(r.status, 200);
	TG_CHECK_INT(atomic_load(&r.statuses), 1);
	TG_CHECK(r.has_ctype && !r.has_retry);
	TG_CHECK_STR(r.ctype, "application/json");
	TG_CHECK_STR(r.body, "{\"ok\":true}");
	upstream_stop(u);
	TG_CHECK_INT(atomic_load(&r.done), 1);
	TG_CHECK_INT(atomic_load(&r.misordered), 0);
	srv_stop(s);
}

static void chunked_stream_arrives_in_order_piece_by_piece(void)
{
	struct srv *s = srv_start();
	struct upstream *u = upstream_start(8);
	struct rec r = {0};
	char want[256] = "";

	TG_REQUIRE(s && u);
	r.progress = &s->progress;
	TG_CHECK_INT(
	    submit(u, s->port, "POST", "/stream", "{\"stream\":true}", API_KEY, 20000, &r, NULL),
	    0);
	TG_CHECK(wait_atomic(&r.done, 1));
	upstream_stop(u);
	for (int i = 0; i < STREAM_N; i++)
		snprintf(want + strlen(want), sizeof(want) - strlen(want), "piece-%d\n", i);
	TG_CHECK_INT(r.err, UPSTREAM_OK);
	TG_CHECK_INT(r.status, 200);
	TG_CHECK_STR(r.ctype, "text/event-stream");
	TG_CHECK_STR(r.body, want);
	/* the server sent each piece only after the client had the one before */
	TG_CHECK_INT(atomic_load(&s->stream_stall), 0);
	TG_CHECK(r.pieces >= STREAM_N);
	TG_CHECK_INT(atomic_load(&r.done), 1);
	TG_CHECK_INT(atomic_load(&r.misordered), 0);
	srv_stop(s);
}

static void status_429_with_retry_after(void)
{
	struct srv *s = srv_start();
	struct upstream *u = upstream_start(8);
	struct rec r = {0};

	TG_REQUIRE(s && u);
	TG_CHECK_INT(submit(u, s->port, "POST", "/429", "{}", API_KEY, 5000, &r, NULL), 0);
	TG_CHECK(wait_atomic(&r.done, 1));
	upstream_stop(u);
	TG_CHECK_INT(r.err, UPSTREAM_OK); /* an HTTP error status is an answer, not a failure */
	TG_CHECK_INT(r.status, 429);
	TG_CHECK(r.has_retry);
	TG_CHECK_STR(r.retry, "7");
	TG_CHECK_STR(r.ctype, "application/json");
	TG_CHECK_STR(r.body, "{\"error\":{\"message\":\"slow down\"}}");
	TG_CHECK_INT(atomic_load(&r.statuses), 1);
	TG_CHECK_INT(atomic_load(&r.misordered), 0);
	srv_stop(s);
}

static void connection_refused_is_connect(void)
{
	struct upstream *u = upstream_start(8);
	unsigned short port = 0;
	int fd = listen_any(&port);
	struct rec r = {0};

	TG_REQUIRE(u && fd >= 0);
	close(fd); /* nothing listens there now */
	TG_CHECK_INT(submit(u, port, "POST", "/json", "{}", API_KEY, 5000, &r, NULL), 0);
	TG_CHECK(wait_atomic(&r.done, 1));
	upstream_stop(u);
	TG_CHECK_INT(r.err, UPSTREAM_CONNECT);
	TG_CHECK(r.detail[0] != '\0');
	TG_CHECK(!strstr(r.detail, API_KEY) && !strstr(r.detail, "sk-"));
	TG_CHECK_INT(atomic_load(&r.statuses), 0);
	TG_CHECK_INT(atomic_load(&r.done), 1);
}

static void hanging_server_is_timeout(void)
{
	struct srv *s = srv_start();
	struct upstream *u = upstream_start(8);
	struct rec r = {0};

	TG_REQUIRE(s && u);
	TG_CHECK_INT(submit(u, s->port, "POST", "/hang", "{}", API_KEY, 200, &r, NULL), 0);
	TG_CHECK(wait_atomic(&r.done, 1));
	upstream_stop(u);
	TG_CHECK_INT(r.err, UPSTREAM_TIMEOUT);
	TG_CHECK(!strstr(r.detail, API_KEY));
	TG_CHECK_INT(atomic_load(&r.statuses), 0);
	TG_CHECK_INT(atomic_load(&r.done), 1);
	srv_stop(s);
}

static void queued_call_times_out_behind_a_hung_connection(void)
{
	struct srv *s = srv_start();
	struct upstream *u = upstream_start(1); /* one connection, held by the hung call */
	struct rec hung = {0}, queued = {0};
	uint64_t h = 0;

	TG_REQUIRE(s && u);
	TG_CHECK_INT(submit(u, s->port, "POST", "/hang", "{}", NULL, 60000, &hung, &h), 0);
	TG_CHECK(wait_atomic(&s->requests, 1));
	TG_CHECK_INT(submit(u, s->port, "POST", "/json", "{}", NULL, 200, &queued, NULL), 0);
	TG_CHECK(wait_atomic(&queued.done, 1));
	TG_CHECK_INT(queued.err, UPSTREAM_TIMEOUT);
	TG_CHECK_INT(atomic_load(&hung.done), 0); /* it did not wait for the connection */
	TG_CHECK_INT(atomic_load(&queued.statuses), 0);
	upstream_cancel(u, h);
	TG_CHECK(wait_atomic(&hung.done, 1));
	TG_CHECK_INT(hung.err, UPSTREAM_CANCELLED);
	upstream_stop(u);
	TG_CHECK_INT(atomic_load(&s->requests), 1);
	srv_stop(s);
}

static void broken_answers_are_broken(void)
{
	static const struct {
		const char *path;
		int statuses; /* whether the headers made it before the break */
	} rows[] = {
	    {"/broken", 1},	    /* Content-Length 100, 10 bytes, close */
	    {"/broken-chunked", 1}, /* a stream that dies mid-body */
	    {"/nothing", 0},	    /* closed without a byte */
	};
	struct srv *s = srv_start();
	struct upstream *u = upstream_start(8);

	TG_REQUIRE(s && u);
	for (size_t i = 0; i < TG_NCASES(rows); i++) {
		struct rec r = {0};

		TG_CHECK_INT(submit(u, s->port, "POST", rows[i].path, "{}", NULL, 5000, &r, NULL),
			     0);
		TG_CHECK(wait_atomic(&r.done, 1) && wait_idle(u));
		if (r.err != UPSTREAM_BROKEN || atomic_load(&r.statuses) != rows[i].statuses) {
			TG_CHECK(!rows[i].path);
			printf("#   %s: %s (%s), %d statuses\n", rows[i].path,
			       upstream_err_name(r.err), r.detail, atomic_load(&r.statuses));
		}
		TG_CHECK_INT(atomic_load(&r.misordered), 0);
	}
	upstream_stop(u);
	srv_stop(s);
}

static void cancel_in_flight_ends_the_call_once(void)
{
	struct srv *s = srv_start();
	struct upstream *u = upstream_start(8);
	struct rec r = {0};
	uint64_t h = 0;

	TG_REQUIRE(s && u);
	TG_CHECK_INT(submit(u, s->port, "POST", "/hang", "{}", API_KEY, 60000, &r, &h), 0);
	TG_CHECK(h != 0);
	TG_CHECK(wait_atomic(&s->requests, 1)); /* the request is at the server */
	TG_CHECK_INT(upstream_inflight(u), 1);
	upstream_cancel(u, h);
	TG_CHECK(wait_atomic(&r.done, 1) && wait_idle(u));
	upstream_cancel(u, h);	      /* again: already over */
	upstream_cancel(u, h + 1000); /* never was */
	upstream_stop(u);
	TG_CHECK_INT(r.err, UPSTREAM_CANCELLED);
	TG_CHECK_INT(atomic_load(&r.done), 1);
	TG_CHECK_INT(atomic_load(&r.statuses), 0);
	srv_stop(s);
}

struct burst {
	struct upstream *u;
	unsigned short port;
	struct rec *recs;
	int n;
	int failed_submits;
};

static void *burst_submit(void *arg)
{
	struct burst *b = arg;

	for (int i = 0; i < b->n; i++)
		if (submit(b->u, b->port, "POST", "/slow", "{}", API_KEY, 20000, &b->recs[i], NULL))
			b->failed_submits++;
	return NULL;
}

static void concurrent_calls_each_end_once(void)
{
	enum { THREADS = 4, PER = 50 };
	struct srv *s = srv_start();
	struct upstream *u = upstream_start(32); /* fewer than the calls: libcurl queues */
	static struct rec recs[THREADS * PER];
	struct burst b[THREADS];
	pthread_t th[THREADS];
	int ok = 0, once = 0;

	TG_REQUIRE(s && u);
	memset(recs, 0, sizeof(recs));
	for (int t = 0; t < THREADS; t++) {
		b[t] = (struct burst){u, s->port, recs + t * PER, PER, 0};
		pthread_create(&th[t], NULL, burst_submit, &b[t]);
	}
	for (int t = 0; t < THREADS; t++) {
		pthread_join(th[t], NULL);
		TG_CHECK_INT(b[t].failed_submits, 0);
	}
	TG_CHECK(wait_idle(u));
	upstream_stop(u);
	for (int i = 0; i < THREADS * PER; i++) {
		once += atomic_load(&recs[i].done) == 1;
		ok += recs[i].err == UPSTREAM_OK && recs[i].status == 200 &&
		      !strcmp(recs[i].body, "{\"slow\":true}") && !atomic_load(&recs[i].misordered);
	}
	TG_CHECK_INT(once, THREADS * PER);
	TG_CHECK_INT(ok, THREADS * PER);
	TG_CHECK(atomic_load(&s->accepts) <= 32);
	srv_stop(s);
}

static void sequential_calls_reuse_connections(void)
{
	struct srv *s = srv_start();
	struct upstream *u = upstream_start(8);
	int ok = 0;

	TG_REQUIRE(s && u);
	for (int i = 0; i < 50; i++) {
		struct rec r = {0};

		TG_CHECK_INT(submit(u, s->port, "POST", "/json", "{}", API_KEY, 5000, &r, NULL), 0);
		TG_CHECK(wait_atomic(&r.done, 1) && wait_idle(u));
		ok += r.err == UPSTREAM_OK && r.status == 200;
	}
	upstream_stop(u);
	TG_CHECK_INT(ok, 50);
	TG_CHECK_INT(atomic_load(&s->requests), 50);
	TG_CHECK(atomic_load(&s->accepts) <= 3);
	printf("#   50 calls over %d connection(s)\n", atomic_load(&s->accepts));
	srv_stop(s);
}

/*
 * An idle connection stays in the loop's set (parked); when the server closes it, the
 * next call must still succeed, on a new connection, with no stale watch in the way.
 */
static void connection_closed_while_idle_is_replaced(void)
{
	struct srv *s = srv_start();
	struct upstream *u = upstream_start(8);
	int ok = 0;

	TG_REQUIRE(s && u);
	for (int i = 0; i < 10; i++) {
		struct rec r = {0};

		TG_CHECK_INT(
		    submit(u, s->port, "POST", "/json-then-close", "{}", API_KEY, 5000, &r, NULL),
		    0);
		TG_CHECK(wait_atomic(&r.done, 1) && wait_idle(u));
		ok += r.err == UPSTREAM_OK && r.status == 200;
		if (i % 2 == 0)
			sleep_ms(60); /* closed while parked; else closed at about the next call */
	}
	for (int i = 0; i < 10; i++) { /* and a connection kept open is reused after that */
		struct rec r = {0};

		TG_CHECK_INT(submit(u, s->port, "POST", "/json", "{}", API_KEY, 5000, &r, NULL), 0);
		TG_CHECK(wait_atomic(&r.done, 1) && wait_idle(u));
		ok += r.err == UPSTREAM_OK && r.status == 200;
	}
	upstream_stop(u);
	TG_CHECK_INT(ok, 20);
	TG_CHECK_INT(atomic_load(&s->requests), 20);
	TG_CHECK(atomic_load(&s->accepts) >= 10 && atomic_load(&s->accepts) <= 13);
	srv_stop(s);
}

static void request_headers_arrive_as_sent(void)
{
	struct srv *s = srv_start();
	struct upstream *u = upstream_start(8);
	struct rec r = {0}, anon = {0};
	const char *body = "{\"model\":\"gpt-x\",\"messages\":[]}";

	TG_REQUIRE(s && u);
	TG_CHECK_INT(submit(u, s->port, "POST", "/echo-auth", body, API_KEY, 5000, &r, NULL), 0);
	TG_CHECK(wait_atomic(&r.done, 1));
	TG_CHECK_STR(r.body, "Bearer " API_KEY);
	pthread_mutex_lock(&s->lock);
	TG_CHECK(strstr(s->last_head, "POST /echo-auth HTTP/1.1\r\n") == s->last_head);
	TG_CHECK(strcasestr(s->last_head, "\r\nContent-Type: application/json\r\n") != NULL);
	TG_CHECK(strcasestr(s->last_head, "\r\nExpect:") == NULL);
	TG_CHECK(strcasestr(s->last_head, "\r\nAccept-Encoding:") == NULL);
	TG_CHECK_STR(s->last_body, body);
	pthread_mutex_unlock(&s->lock);
	/*
	 * no key: no Authorization header at all. Once the first call is over its easy handle
	 * is back in the pool, so this call runs on it: nothing of the last call (key, method,
	 * body, content type) may survive the reset.
	 */
	TG_CHECK(wait_idle(u));
	TG_CHECK_INT(submit(u, s->port, "GET", "/echo-auth", NULL, NULL, 5000, &anon, NULL), 0);
	TG_CHECK(wait_atomic(&anon.done, 1));
	TG_CHECK_STR(anon.body, "none");
	pthread_mutex_lock(&s->lock);
	TG_CHECK(strstr(s->last_head, "GET /echo-auth HTTP/1.1\r\n") == s->last_head);
	TG_CHECK(strcasestr(s->last_head, "Content-Type:") == NULL);
	pthread_mutex_unlock(&s->lock);
	upstream_stop(u);
	srv_stop(s);
}

/* POSTs body to /json with body_kept as given; 0 or -errno from upstream_submit. */
static int submit_body(struct upstream *u, unsigned short port, const char *body, bool kept,
		       struct rec *r)
{
	char url[128];
	struct upstream_call c = {.url = url,
				  .method = "POST",
				  .body = body,
				  .body_len = strlen(body),
				  .body_kept = kept,
				  .timeout_ms = 5000,
				  .on_status = on_status,
				  .on_data = on_data,
				  .on_done = on_done,
				  .ctx = r};

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/json", port);
	return upstream_submit(u, &c, NULL);
}

static void kept_body_is_sent_in_place_copied_one_is_not(void)
{
	static const char body[] = "{\"model\":\"gpt-x\",\"stream\":true}";
	struct srv *s = srv_start();
	struct upstream *u = upstream_start(8);
	struct rec kept = {0}, copied = {0};
	char *mine = strdup(body);

	TG_REQUIRE(s && u && mine);
	/* body_kept: sent from the caller's buffer, which lives until on_done */
	TG_CHECK_INT(submit_body(u, s->port, mine, true, &kept), 0);
	TG_CHECK(wait_atomic(&kept.done, 1));
	TG_CHECK_INT(kept.err, UPSTREAM_OK);
	pthread_mutex_lock(&s->lock);
	TG_CHECK_STR(s->last_body, body);
	pthread_mutex_unlock(&s->lock);
	/* not kept: copied at submit, so the caller may overwrite its buffer at once */
	TG_CHECK_INT(submit_body(u, s->port, mine, false, &copied), 0);
	memset(mine, 'x', strlen(mine));
	TG_CHECK(wait_atomic(&copied.done, 1));
	TG_CHECK_INT(copied.err, UPSTREAM_OK);
	pthread_mutex_lock(&s->lock);
	TG_CHECK_STR(s->last_body, body);
	pthread_mutex_unlock(&s->lock);
	upstream_stop(u);
	srv_stop(s);
	free(mine);
}

static void stop_cancels_every_call_in_flight(void)
{
	enum { N = 10 };
	struct srv *s = srv_start();
	struct upstream *u = upstream_start(4); /* 4 at the server, 6 queued in libcurl */
	static struct rec recs[N];
	int cancelled = 0, once = 0;

	TG_REQUIRE(s && u);
	memset(recs, 0, sizeof(recs));
	for (int i = 0; i < N; i++)
		TG_CHECK_INT(
		    submit(u, s->port, "POST", "/hang", "{}", API_KEY, 60000, &recs[i], NULL), 0);
	TG_CHECK(wait_atomic(&s->requests, 4));
	TG_CHECK_INT(upstream_inflight(u), N);
	upstream_stop(u);
	for (int i = 0; i < N; i++) {
		once += atomic_load(&recs[i].done) == 1;
		cancelled += recs[i].err == UPSTREAM_CANCELLED;
	}
	TG_CHECK_INT(once, N);
	TG_CHECK_INT(cancelled, N);
	TG_CHECK_INT(atomic_load(&s->requests), 4);
	srv_stop(s);
}

static void bad_requests_are_refused_at_submit(void)
{
	struct upstream *u = upstream_start(8);
	struct rec r = {0};
	struct upstream_call c = {.url = NULL, .method = "POST", .on_done = on_done, .ctx = &r};

	TG_REQUIRE(u);
	TG_CHECK_INT(upstream_submit(u, &c, NULL), -EINVAL); /* no URL */
	c.url = "http://127.0.0.1:1/x";
	c.method = "PUT";
	TG_CHECK_INT(upstream_submit(u, &c, NULL), -EINVAL);
	c.method = "GET";
	c.body = "{}";
	c.body_len = 2;
	TG_CHECK_INT(upstream_submit(u, &c, NULL), -EINVAL); /* GET with a body */
	c.method = "POST";
	c.api_key = "sk-abc\r\nX-Injected: 1";
	TG_CHECK_INT(upstream_submit(u, &c, NULL), -EINVAL);
	c.api_key = NULL;
	c.on_done = NULL;
	TG_CHECK_INT(upstream_submit(u, &c, NULL), -EINVAL);
	TG_CHECK_INT(upstream_submit(NULL, &c, NULL), -EINVAL);
	TG_CHECK_INT(upstream_inflight(u), 0);
	upstream_stop(u);
	upstream_stop(NULL);
	TG_CHECK_INT(atomic_load(&r.done), 0);
	TG_CHECK_STR(upstream_err_name(UPSTREAM_OK), "ok");
	TG_CHECK_STR(upstream_err_name(UPSTREAM_CONNECT), "connect");
	TG_CHECK_STR(upstream_err_name(UPSTREAM_TIMEOUT), "timeout");
	TG_CHECK_STR(upstream_err_name(UPSTREAM_BROKEN), "broken");
	TG_CHECK_STR(upstream_err_name(UPSTREAM_CANCELLED), "cancelled");
	TG_CHECK_STR(upstream_err_name(UPSTREAM_INTERNAL), "internal");
}

static const struct tg_case cases[] = {
    {"200 JSON with Content-Length: status, type, body, one on_done",
     json_answer_with_content_length},
    {"chunked stream arrives piece by piece, in order, concatenated",
     chunked_stream_arrives_in_order_piece_by_piece},
    {"429 reports its Retry-After and body", status_429_with_retry_after},
    {"connection refused is UPSTREAM_CONNECT, detail without the key",
     connection_refused_is_connect},
    {"a server that never answers is UPSTREAM_TIMEOUT (timeout_ms 200)", hanging_server_is_timeout},
    {"a call queued behind a hung connection still times out",
     queued_call_times_out_behind_a_hung_connection},
    {"close mid-body, mid-stream or before any byte is UPSTREAM_BROKEN", broken_answers_are_broken},
    {"cancel in flight: UPSTREAM_CANCELLED exactly once", cancel_in_flight_ends_the_call_once},
    {"200 concurrent calls from 4 threads each end exactly once", concurrent_calls_each_end_once},
    {"50 sequential calls reuse keep-alive connections", sequential_calls_reuse_connections},
    {"a connection the server closes while idle is replaced; kept ones are reused",
     connection_closed_while_idle_is_replaced},
    {"Authorization, Content-Type and body arrive as sent; a reused handle keeps none of them",
     request_headers_arrive_as_sent},
    {"a kept body is sent in place; a copied one survives the caller overwriting it",
     kept_body_is_sent_in_place_copied_one_is_not},
    {"stop with calls in flight cancels each exactly once", stop_cancels_every_call_in_flight},
    {"bad requests are refused at submit; error names", bad_requests_are_refused_at_submit},
};

int main(void)
{
	return tg_run("upstream", cases, TG_NCASES(cases));
}
