/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * mock-llm's HTTP server and the only file that includes microhttpd.h: an epoll thread pool
 * that never blocks or spins on a delay. A request that must wait (latency, the next token
 * of a stream, a hang) has its connection suspended and handed to the timer thread, which
 * resumes it when due; MHD then calls back into the handler or the stream reader.
 */
#ifndef MOCK_LLM_SERVER_H
#define MOCK_LLM_SERVER_H

#include <stdbool.h>

struct server_options {
	int listen_fd;	     /* bound and listening; owned by the server from server_start */
	bool ipv6;	     /* LISTEN_FD is an AF_INET6 socket */
	unsigned threads;    /* worker threads (MHD thread pool) */
	unsigned max_conns;  /* connections at once; more wait in the listen backlog */
	const char *api_key; /* required Bearer key, or NULL; borrowed until server_stop */
	bool verbose;	     /* one log line per request, and MHD's own messages */
};

/* Starts serving (and the timer thread). Returns 0 or a negative errno. */
int server_start(const struct server_options *o);

/*
 * Stops serving: wakes every waiting connection, then closes all connections and joins the
 * workers. Streams in progress are cut. Safe to call when not started.
 */
void server_stop(void);

#endif
