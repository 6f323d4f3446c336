/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The data plane's verification pool. A key the verification cache cannot answer for costs
 * keys_verify one argon2id hash (20-50 ms with the default parameters); run on a listener
 * thread, that would stall every other connection the thread serves, cached keys included.
 * So a miss defers the request (http_defer: the connection is suspended) and queues a job
 * here; a pool thread verifies the key and carries on with the request exactly as the
 * listener would have (dp_proceed: rate charge, checks, forwarding), answering through the
 * deferred-reply machinery. The job owns the request reference http_defer took until a
 * forwarded call adopts it (dp_call_new) or the job ends.
 *
 * The queue is bounded (DP_VERIFY_QUEUE_MAX): beyond it a miss is answered 503 with
 * Retry-After at once, rather than piling up suspended connections behind argon2.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dataplane_internal.h"
#include "log.h"

#define DP_VERIFY_QUEUE_MAX 4096

struct dp_verify_job {
	struct dp_verify_job *next;
	struct dp_req q; /* as the listener left it: route, arg, times; auth filled here */
	struct sockaddr_storage peer; /* the client, read on the listener thread: throttling */
	size_t klen;
	char key[TG_CRED_MAX]; /* a copy of the presented key, wiped when the job ends */
};

/* The rest of a job: verify, then proceed or refuse; drops the reference unless adopted. */
static void job_run(struct dp_verify_job *j)
{
	int rc = keys_verify(j->q.dp->d.k, j->key, j->klen, KEYS_API,
			     (const struct sockaddr *)&j->peer, &j->q.auth);

	explicit_bzero(j->key, sizeof(j->key));
	if (rc)
		dp_reply_auth_error(&j->q, rc);
	else
		dp_proceed(&j->q);
	if (j->q.deferred)
		http_req_release(j->q.req);
	explicit_bzero(&j->q.auth, sizeof(j->q.auth));
	free(j);
}

/* Stopping: the listener is gone, so the job is dropped unverified (no argon2 to wait for). */
static void job_drop(struct dp_verify_job *j)
{
	explicit_bzero(j->key, sizeof(j->key));
	http_reply_error(j->q.req, 503, "server_error", "shutting_down", NULL,
			 "the gateway is shutting down; retry");
	http_req_release(j->q.req);
	free(j);
}

static void *verify_main(void *arg)
{
	struct dp_verify *v = arg;

	pthread_mutex_lock(&v->mu);
	for (;;) {
		struct dp_verify_job *j;
		bool stopping;

		while (!v->head && !v->stopping)
			pthread_cond_wait(&v->cv, &v->mu);
		j = v->head;
		if (!j)
			break; /* stopping, and nothing left */
		v->head = j->next;
		if (!v->head)
			v->tail = NULL;
		v->queued--;
		stopping = v->stopping;
		pthread_mutex_unlock(&v->mu);
		if (stopping)
			job_drop(j);
		else
			job_run(j);
		pthread_mutex_lock(&v->mu);
	}
	pthread_mutex_unlock(&v->mu);
	return NULL;
}

/* Answers a request the pool cannot take (full, stopping, no memory): 503, retry soon. */
static void refuse_busy(struct http_req *req)
{
	http_add_header(req, "Retry-After", "1");
	http_reply_error(req, 503, "server_error", "server_busy", NULL,
			 "too many API keys waiting for their first verification; retry");
}

void dp_verify_later(struct dp_req *q, const char *key, size_t len)
{
	struct dp_verify *v = &q->dp->verify;
	struct dp_verify_job *j = NULL;
	bool queued = false;

	if (len > sizeof(((struct dp_verify_job *)0)->key)) {
		/* longer than any credential: no cache entry, no hash, just the refusal */
		dp_reply_auth_error(q, -EINVAL);
		return;
	}
	j = calloc(1, sizeof(*j));
	if (j)
		http_req_peer(q->req, &j->peer); /* none (family 0): the shared unknown source */
	if (!j || http_defer(q->req)) {
		free(j);
		refuse_busy(q->req);
		return;
	}
	j->q = *q;
	j->q.deferred = true;
	memcpy(j->key, key, len);
	j->klen = len;
	pthread_mutex_lock(&v->mu);
	if (!v->stopping && v->queued < DP_VERIFY_QUEUE_MAX) {
		if (v->tail)
			v->tail->next = j;
		else
			v->head = j;
		v->tail = j;
		v->queued++;
		queued = true;
	}
	pthread_mutex_unlock(&v->mu);
	if (queued) {
		pthread_cond_signal(&v->cv);
		return;
	}
	/* deferred already: the answer goes through the deferred path, then the reference */
	refuse_busy(q->req);
	http_req_release(q->req);
	explicit_bzero(j->key, sizeof(j->key));
	free(j);
}

int dp_verify_start(struct dataplane *dp, unsigned threads)
{
	struct dp_verify *v = &dp->verify;
	int rc;

	if (pthread_mutex_init(&v->mu, NULL))
		return -ENOMEM;
	if (pthread_cond_init(&v->cv, NULL)) {
		pthread_mutex_destroy(&v->mu);
		return -ENOMEM;
	}
	v->ready = true;
	v->threads = calloc(threads, sizeof(*v->threads));
	if (!v->threads) {
		dp_verify_stop(dp);
		return -ENOMEM;
	}
	for (v->n = 0; v->n < threads; v->n++) {
		rc = pthread_create(&v->threads[v->n], NULL, verify_main, v);
		if (rc) {
			dp_verify_stop(dp);
			return -rc;
		}
	}
	return 0;
}

void dp_verify_stop(struct dataplane *dp)
{
	struct dp_verify *v = &dp->verify;

	if (!v->ready)
		return;
	pthread_mutex_lock(&v->mu);
	v->stopping = true;
	pthread_cond_broadcast(&v->cv);
	pthread_mutex_unlock(&v->mu);
	/* the threads drop what is still queued (job_drop): the listener is stopped */
	for (unsigned i = 0; i < v->n; i++)
		pthread_join(v->threads[i], NULL);
	free(v->threads);
	v->threads = NULL;
	v->n = 0;
	v->ready = false;
	pthread_cond_destroy(&v->cv);
	pthread_mutex_destroy(&v->mu);
}
