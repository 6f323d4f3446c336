/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Per-connection state of the HTTP layer: how many rate-limit refusals in a row a
 * keep-alive connection has had (rung 1 of the escalation ladder: a client that keeps
 * sending on the same connection after its 429s, ignoring Retry-After, is eventually told
 * Connection: close and disconnected). The state lives in the library's socket context,
 * made when the connection starts and freed when it closes. Requests on one connection are
 * handled one after the other, so the counter needs no lock; it is atomic anyway because a
 * deferred answer may be finished on another thread.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "http_internal.h"

struct http_conn {
	atomic_uint refusals; /* consecutive rate-limit refusals on this connection */
};

void http_conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
		      enum MHD_ConnectionNotificationCode toe)
{
	(void)cls, (void)conn;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		struct http_conn *c = calloc(1, sizeof(*c)); /* NULL: the connection goes
								uncounted, never refused */

		if (c)
			atomic_init(&c->refusals, 0);
		*socket_context = c;
	} else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		free(*socket_context);
		*socket_context = NULL;
	}
}

static struct http_conn *conn_of(struct http_req *r)
{
	const union MHD_ConnectionInfo *ci;

	if (!r->conn)
		return NULL;
	ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

unsigned http_conn_note_refusal(struct http_req *r, bool refused)
{
	struct http_conn *c = conn_of(r);

	if (!c)
		return 0;
	if (!refused) {
		atomic_store_explicit(&c->refusals, 0, memory_order_relaxed);
		return 0;
	}
	return atomic_fetch_add_explicit(&c->refusals, 1, memory_order_relaxed) + 1;
}

void http_close_after(struct http_req *r)
{
	pthread_mutex_lock(&r->mu);
	r->close_after = true;
	pthread_mutex_unlock(&r->mu);
}
