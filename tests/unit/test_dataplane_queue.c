/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The data plane's queue (userspace/dataplane_queue.c). Its pure part (dpq_*): FIFOs per
 * key with a depth bound, removal from any place, deadlines; each row is a script of
 * operations on a fresh queue with the expected result of each, times being plain numbers
 * (the queue takes them as arguments, it reads no clock). Then the queue itself behind a
 * real HTTP listener on 127.0.0.1 (http.h), with a retry function whose "capacity" the test
 * hands out: a parked request proceeds when capacity comes, waiters of a key proceed in
 * arrival order, a waiter past its deadline gets a 429 saying it waited, the depth bound
 * refuses at once, a client that hangs up is dropped, and stopping answers 503. Waits are
 * bounded (reaching a bound fails the case); no duration is asserted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "dataplane_internal.h"
#include "log.h"
#include "tg_test.h"
#include "util.h"

#define NW 8 /* waiters a script uses */

enum op_kind {
	OP_END = 0,
	OP_PUSH,    /* key, waiter, deadline -> want (0 / -errno) */
	OP_REMOVE,  /* waiter */
	OP_ORDER,   /* key -> the FIFO from head to tail, as waiter indexes ("" = no FIFO) */
	OP_EXPIRED, /* now -> the waiter dpq_expired returns (-1: none) */
	OP_NEXT,    /* -> dpq_next_deadline */
	OP_COUNTS,  /* -> nfifos * 1000 + nwaiters */
};

struct op {
	enum op_kind kind;
	const char *key;
	int w;
	int64_t t;    /* deadline or now */
	int64_t want; /* push result, expired waiter, next deadline, counts */
	const char *order;
};

struct script {
	const char *name;
	unsigned depth;
	struct op ops[16];
};

static const struct script scripts[] = {
    {"one key keeps arrival order",
     3,
     {{OP_PUSH, "k1", 0, 100, 0, NULL},
      {OP_PUSH, "k1", 1, 90, 0, NULL},
      {OP_PUSH, "k1", 2, 80, 0, NULL},
      {OP_ORDER, "k1", 0, 0, 0, "012"},
      {OP_COUNTS, NULL, 0, 0, 1003, NULL}}},
    {"the depth bound is per key",
     2,
     {{OP_PUSH, "k1", 0, 100, 0, NULL},
      {OP_PUSH, "k1", 1, 100, 0, NULL},
      {OP_PUSH, "k1", 2, 100, -EBUSY, NULL},
      {OP_PUSH, "k2", 3, 100, 0, NULL},
      {OP_PUSH, "k2", 4, 100, 0, NULL},
      {OP_PUSH, "k2", 5, 100, -EBUSY, NULL},
      {OP_ORDER, "k1", 0, 0, 0, "01"},
      {OP_ORDER, "k2", 0, 0, 0, "34"},
      {OP_COUNTS, NULL, 0, 0, 2004, NULL}}},
    {"a removal frees a place below the bound",
     2,
     {{OP_PUSH, "k1", 0, 100, 0, NULL},
      {OP_PUSH, "k1", 1, 100, 0, NULL},
      {OP_REMOVE, NULL, 0, 0, 0, NULL},
      {OP_PUSH, "k1", 2, 100, 0, NULL},
      {OP_ORDER, "k1", 0, 0, 0, "12"}}},
    {"removal from the middle, head and tail keeps the order",
     8,
     {{OP_PUSH, "k", 0, 1, 0, NULL},
      {OP_PUSH, "k", 1, 1, 0, NULL},
      {OP_PUSH, "k", 2, 1, 0, NULL},
      {OP_PUSH, "k", 3, 1, 0, NULL},
      {OP_PUSH, "k", 4, 1, 0, NULL},
      {OP_REMOVE, NULL, 2, 0, 0, NULL},
      {OP_ORDER, "k", 0, 0, 0, "0134"},
      {OP_REMOVE, NULL, 0, 0, 0, NULL},
      {OP_REMOVE, NULL, 4, 0, 0, NULL},
      {OP_ORDER, "k", 0, 0, 0, "13"},
      {OP_REMOVE, NULL, 4, 0, 0, NULL}, /* removed already: a no-op */
      {OP_COUNTS, NULL, 0, 0, 1002, NULL}}},
    {"the last waiter takes its FIFO with it",
     4,
     {{OP_PUSH, "k1", 0, 100, 0, NULL},
      {OP_PUSH, "k2", 1, 100, 0, NULL},
      {OP_REMOVE, NULL, 0, 0, 0, NULL},
      {OP_ORDER, "k1", 0, 0, 0, ""},
      {OP_COUNTS, NULL, 0, 0, 1001, NULL},
      {OP_REMOVE, NULL, 1, 0, 0, NULL},
      {OP_COUNTS, NULL, 0, 0, 0, NULL},
      {OP_PUSH, "k1", 2, 100, 0, NULL},
      {OP_ORDER, "k1", 0, 0, 0, "2"}}},
    {"deadlines: nothing expires early, the due one is found",
     4,
     {{OP_PUSH, "k1", 0, 300, 0, NULL},
      {OP_PUSH, "k2", 1, 200, 0, NULL},
      {OP_PUSH, "k2", 2, 250, 0, NULL},
      {OP_NEXT, NULL, 0, 0, 200, NULL},
      {OP_EXPIRED, NULL, 0, 199, -1, NULL},
      {OP_EXPIRED, NULL, 0, 200, 1, NULL}, /* a deadline is due at its instant */
      {OP_REMOVE, NULL, 1, 0, 0, NULL},
      {OP_NEXT, NULL, 0, 0, 250, NULL},
      {OP_EXPIRED, NULL, 0, 260, 2, NULL},
      {OP_REMOVE, NULL, 2, 0, 0, NULL},
      {OP_EXPIRED, NULL, 0, 260, -1, NULL},
      {OP_NEXT, NULL, 0, 0, 300, NULL},
      {OP_REMOVE, NULL, 0, 0, 0, NULL},
      {OP_NEXT, NULL, 0, 0, 0, NULL}}},
    {"depth 0 queues nothing",
     0,
     {{OP_PUSH, "k1", 0, 100, -EBUSY, NULL}, {OP_COUNTS, NULL, 0, 0, 0, NULL}}},
    {"a key longer than a key id is refused",
     4,
     {{OP_PUSH, "0123456789abcdef0123456789abcdef0123456789", 0, 100, -EINVAL, NULL},
      {OP_COUNTS, NULL, 0, 0, 0, NULL}}},
};

/* The FIFO of key as waiter indexes, "" when there is none. */
static void order_of(struct dpq *q, const char *key, struct dpq_waiter *w, char *out)
{
	struct dpq_fifo *f = dpq_fifo(q, key);
	size_t n = 0;

	for (struct dpq_waiter *it = f ? f->head : NULL; it && n < NW; it = it->next)
		out[n++] = (char)('0' + (it - w));
	out[n] = '\0';
}

static int64_t run_op(struct dpq *q, struct dpq_waiter *w, const struct op *o, char *order)
{
	struct dpq_waiter *e;

	switch (o->kind) {
	case OP_PUSH:
		return dpq_push(q, o->key, &w[o->w], 0, o->t);
	case OP_REMOVE:
		dpq_remove(q, &w[o->w]);
		return 0;
	case OP_ORDER:
		order_of(q, o->key, w, order);
		return 0;
	case OP_EXPIRED:
		e = dpq_expired(q, o->t);
		return e ? e - w : -1;
	case OP_NEXT:
		return dpq_next_deadline(q);
	case OP_COUNTS:
		return (int64_t)q->nfifos * 1000 + (int64_t)q->nwaiters;
	default:
		return 0;
	}
}

static void scripts_run(void)
{
	for (size_t s = 0; s < TG_NCASES(scripts); s++) {
		struct dpq q;
		struct dpq_waiter w[NW];

		memset(w, 0, sizeof(w));
		TG_REQUIRE(dpq_init(&q, scripts[s].depth) == 0);
		for (const struct op *o = scripts[s].ops; o->kind != OP_END; o++) {
			char order[NW + 1] = "";
			int64_t got = run_op(&q, w, o, order);
			int bad =
			    o->kind == OP_ORDER ? strcmp(order, o->order) != 0 : got != o->want;

			TG_CHECK(!bad);
			if (bad)
				printf("#   %s: op %d: got %lld \"%s\", want %lld \"%s\"\n",
				       scripts[s].name, (int)(o - scripts[s].ops), (long long)got,
				       order, (long long)o->want, o->order ? o->order : "");
		}
		dpq_fini(&q);
	}
}

/* 2000 keys in 256 buckets: every chain is walked, every FIFO found and emptied. */
static void many_keys_share_buckets(void)
{
	enum { N = 2000 };
	static struct dpq_waiter w[N];
	struct dpq q;
	char key[32];
	int found = 0;

	TG_REQUIRE(dpq_init(&q, 1) == 0);
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "key%05d", i);
		TG_CHECK_INT(dpq_push(&q, key, &w[i], 0, 1000 + i), 0);
	}
	TG_CHECK_INT(q.nfifos, N);
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "key%05d", i);
		found += dpq_fifo(&q, key) && dpq_fifo(&q, key)->head == &w[i];
	}
	TG_CHECK_INT(found, N);
	TG_CHECK_INT(dpq_next_deadline(&q), 1000);
	for (int i = 0; i < N; i += 2)
		dpq_remove(&q, &w[i]);
	TG_CHECK_INT(q.nwaiters, N / 2);
	TG_CHECK(dpq_expired(&q, 1000) == NULL); /* w[0] went */
	TG_CHECK(dpq_expired(&q, 1001) == &w[1]);
	for (int i = 1; i < N; i += 2)
		dpq_remove(&q, &w[i]);
	TG_CHECK_INT(q.nfifos, 0);
	dpq_fini(&q);
}

/* ---- the queue behind a real listener ---- */

static void sleep_ms_q(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

#define WAIT_MS	  20000
#define ORDER_MAX 16

static struct dataplane qdp;
static struct http_server *qsrv;
static atomic_int capacity;	       /* retries that may proceed */
static atomic_uint timeout_ms = 60000; /* of the next parks */
static pthread_mutex_t order_mu = PTHREAD_MUTEX_INITIALIZER;
static char order[ORDER_MAX + 1]; /* the n of each request that proceeded, in order */

static bool take_capacity(void)
{
	int c = atomic_load(&capacity);

	while (c > 0 && !atomic_compare_exchange_weak(&capacity, &c, c - 1))
		;
	return c > 0;
}

/* Path "/KEY/N": the key, and N (a digit) recorded when the request proceeds. */
static void proceed(struct dp_req *q, const char *how)
{
	const char *path = http_req_path(q->req), *slash = strrchr(path, '/');
	char ms[24];

	pthread_mutex_lock(&order_mu);
	if (strlen(order) < ORDER_MAX && slash)
		strncat(order, slash + 1, 1);
	pthread_mutex_unlock(&order_mu);
	snprintf(ms, sizeof(ms), "%lld", (long long)dp_queue_waited_ms(q));
	if (q->queued_ns)
		http_add_header(q->req, "X-Tollgate-Queued-Ms", ms);
	http_reply(q->req, 200, "text/plain", how, strlen(how));
}

static enum dp_queue_verdict test_retry(struct dp_req *q, bool last)
{
	if (take_capacity()) {
		proceed(q, "after-queue");
		return DP_QUEUE_PROCEEDED;
	}
	if (!last)
		return DP_QUEUE_WAIT;
	http_reply_error(q->req, 429, "rate_limit_exceeded", "max_concurrent", NULL,
			 "over the limit; waited %lld ms in the queue",
			 (long long)dp_queue_waited_ms(q));
	return DP_QUEUE_ANSWERED;
}

static void test_handler(struct http_req *req, void *arg)
{
	struct dp_req q = {.dp = arg, .req = req};
	const char *path = http_req_path(req);
	int rc;

	snprintf(q.auth.id, sizeof(q.auth.id), "%.*s", (int)strcspn(path + 1, "/"), path + 1);
	if (take_capacity()) {
		proceed(&q, "direct");
		return;
	}
	rc = dp_queue_park(&q, atomic_load(&timeout_ms), test_retry);
	if (rc == -EBUSY)
		http_reply_error(req, 429, "rate_limit_exceeded", "max_concurrent", NULL,
				 "over the limit; the queue of key %s is full", q.auth.id);
	else if (rc)
		http_reply_error(req, 503, "server_error", "queue", NULL, "cannot queue: %d", rc);
}

static int queue_up(unsigned depth)
{
	struct http_opts o = {.listen = "127.0.0.1:0",
			      .name = "qtest",
			      .threads = 2,
			      .max_body = 4096,
			      .timeout_sec = 30};

	memset(&qdp, 0, sizeof(qdp));
	if (dp_queue_start(&qdp, depth))
		return -1;
	qsrv = http_start(&o, test_handler, &qdp);
	return qsrv ? 0 : -1;
}

static void queue_down(void)
{
	dp_queue_stop(&qdp);
	http_stop(qsrv);
	dp_queue_close(&qdp);
	qsrv = NULL;
	atomic_store(&capacity, 0);
	atomic_store(&timeout_ms, 60000);
	order[0] = '\0';
}

/* Sends GET path on a new connection; the socket, or -1. */
static int client_send(const char *path)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(http_port(qsrv)),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	char req[128];
	int fd = socket(AF_INET, SOCK_STREAM, 0), n;

	n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
		     path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Reads the whole answer (until the server closes) into buf; its status, or 0. */
static int client_read(int fd, char *buf, size_t cap)
{
	size_t have = 0;
	int status = 0;

	for (int waited = 0; waited < WAIT_MS && have < cap - 1;) {
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t r;

		if (poll(&p, 1, 50) <= 0) {
			waited += 50;
			continue;
		}
		r = recv(fd, buf + have, cap - 1 - have, 0);
		if (r <= 0)
			break;
		have += (size_t)r;
	}
	buf[have] = '\0';
	close(fd);
	sscanf(buf, "HTTP/1.1 %d", &status);
	return status;
}

/* Waits until n requests wait in the queue. */
static int wait_parked(unsigned n)
{
	for (int i = 0; i < WAIT_MS; i++) {
		if (atomic_load(&qdp.queue.nwaiters) == n)
			return 1;
		sleep_ms_q(1);
	}
	return 0;
}

static void parked_request_proceeds_when_capacity_comes(void)
{
	char buf[2048];
	int fd;

	TG_REQUIRE(queue_up(4) == 0);
	fd = client_send("/keyA/1");
	TG_CHECK(wait_parked(1));
	atomic_store(&capacity, 1);
	dp_queue_kick(&qdp, "keyA");
	TG_CHECK_INT(client_read(fd, buf, sizeof(buf)), 200);
	TG_CHECK(strstr(buf, "after-queue") != NULL);
	TG_CHECK(strcasestr(buf, "\r\nX-Tollgate-Queued-Ms: ") != NULL);
	TG_CHECK(wait_parked(0));
	queue_down();
}

static void waiters_of_a_key_proceed_in_arrival_order(void)
{
	static const char *const paths[] = {"/keyB/1", "/keyB/2", "/keyB/3", "/keyB/4"};
	char buf[2048];
	int fd[4];

	TG_REQUIRE(queue_up(8) == 0);
	for (int i = 0; i < 4; i++) {
		fd[i] = client_send(paths[i]);
		TG_CHECK(wait_parked((unsigned)i + 1)); /* each parked before the next comes */
	}
	atomic_store(&capacity, 4);
	dp_queue_kick(&qdp, NULL);
	for (int i = 0; i < 4; i++)
		TG_CHECK_INT(client_read(fd[i], buf, sizeof(buf)), 200);
	pthread_mutex_lock(&order_mu);
	TG_CHECK_STR(order, "1234");
	pthread_mutex_unlock(&order_mu);
	queue_down();
}

static void deadline_gives_a_429_that_says_it_waited(void)
{
	char buf[2048];
	int fd;

	TG_REQUIRE(queue_up(4) == 0);
	atomic_store(&timeout_ms, 100);
	fd = client_send("/keyC/1");
	TG_CHECK_INT(client_read(fd, buf, sizeof(buf)), 429);
	TG_CHECK(strstr(buf, "waited ") != NULL && strstr(buf, " ms in the queue") != NULL);
	TG_CHECK(wait_parked(0));
	queue_down();
}

static void depth_bound_refuses_at_once(void)
{
	char buf[2048];
	int fd[3], other;

	TG_REQUIRE(queue_up(2) == 0);
	fd[0] = client_send("/keyD/1");
	fd[1] = client_send("/keyD/2");
	TG_CHECK(wait_parked(2));
	fd[2] = client_send("/keyD/3");
	TG_CHECK_INT(client_read(fd[2], buf, sizeof(buf)), 429); /* answered while 2 wait */
	TG_CHECK(strstr(buf, "queue of key keyD is full") != NULL);
	other = client_send("/keyE/1"); /* another key has its own bound */
	TG_CHECK(wait_parked(3));
	atomic_store(&capacity, 3);
	dp_queue_kick(&qdp, NULL);
	TG_CHECK_INT(client_read(fd[0], buf, sizeof(buf)), 200);
	TG_CHECK_INT(client_read(fd[1], buf, sizeof(buf)), 200);
	TG_CHECK_INT(client_read(other, buf, sizeof(buf)), 200);
	queue_down();
}

static void client_gone_is_dropped(void)
{
	int fd;

	TG_REQUIRE(queue_up(4) == 0);
	fd = client_send("/keyF/1");
	TG_CHECK(wait_parked(1));
	close(fd);
	TG_CHECK(wait_parked(0)); /* noticed by the queue's thread, the waiter removed */
	pthread_mutex_lock(&order_mu);
	TG_CHECK_STR(order, ""); /* it never proceeded */
	pthread_mutex_unlock(&order_mu);
	queue_down();
}

static void stopping_answers_503(void)
{
	char buf[2048];
	int fd;

	TG_REQUIRE(queue_up(4) == 0);
	fd = client_send("/keyG/1");
	TG_CHECK(wait_parked(1));
	dp_queue_stop(&qdp);
	TG_CHECK_INT(client_read(fd, buf, sizeof(buf)), 503);
	TG_CHECK(strstr(buf, "shutting_down") != NULL);
	fd = client_send("/keyG/2"); /* parks are refused once stopped */
	TG_CHECK_INT(client_read(fd, buf, sizeof(buf)), 503);
	queue_down();
}

static const struct tg_case cases[] = {
    {"scripted FIFO, depth and deadline rows", scripts_run},
    {"2000 keys sharing buckets", many_keys_share_buckets},
    {"a parked request proceeds when capacity comes", parked_request_proceeds_when_capacity_comes},
    {"waiters of one key proceed in arrival order", waiters_of_a_key_proceed_in_arrival_order},
    {"past its deadline a waiter gets a 429 saying it waited",
     deadline_gives_a_429_that_says_it_waited},
    {"beyond the depth bound a request is refused at once", depth_bound_refuses_at_once},
    {"a client that hangs up is dropped from the queue", client_gone_is_dropped},
    {"stopping answers every waiter 503", stopping_answers_503},
};

int main(void)
{
	log_init("test_dataplane_queue", LOG_LVL_ERROR);
	return tg_run("dataplane_queue", cases, TG_NCASES(cases));
}
