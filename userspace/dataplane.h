/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The data plane (docs/data-plane.md): the listener applications call with their API key.
 * OpenAI-compatible endpoints forwarded to the upstream providers, plain and streamed, and
 * the marketplace endpoints. Each request is authenticated (keys_verify), charged against
 * its key's request-rate windows (ratelimit_charge), checked, routed, forwarded, metered
 * (one usage record per forwarded call, committed before the answer is released) and
 * counted in the metrics. It owns a small pool of threads that verify keys missing from
 * the verification cache (argon2 never runs on a listener thread); answers are released by
 * the usage writer's commit hook, which it sets on the usage it borrows; everything it
 * uses is borrowed from the daemon and must outlive it.
 */
#ifndef TG_DATAPLANE_H
#define TG_DATAPLANE_H

#include <stddef.h>
#include <stdint.h>

struct keys;
struct slots;
struct upstream;
struct usage;
struct providers;
struct router;
struct budget;

/*
 * The automatic listener thread count stops here: past it, more loops mostly add upstream
 * connections and memory, as one loop carries a core's worth of calls.
 */
#define DP_THREADS_AUTO_MAX 64

struct dataplane_opts {
	const char *listen;	   /* default "127.0.0.1:8080" */
	unsigned threads;	   /* listener threads, each an event loop running its own
				      listener and upstream client (loop.h); 0: one per CPU
				      the process may run on (tg_cpus_usable), at most
				      DP_THREADS_AUTO_MAX */
	unsigned upstream_conns;   /* connections per upstream host, shared among the
				      loops' upstream clients (default 256) */
	size_t max_body;	   /* request bodies, default 1 MiB (413 beyond) */
	unsigned timeout_sec;	   /* idle client connections, default 60 */
	unsigned max_conns;	   /* default 20000 */
	const char *default_model; /* of /api/v1/consume, default "gpt-4o-mini" */
	unsigned drain_ms;	   /* dataplane_stop lets calls in flight finish this long,
				      default 2000 */
	unsigned defer_accept_sec; /* TCP_DEFER_ACCEPT on the listener (the kernel fast path
				      is on); 0 = off */
	unsigned close_after_refusals; /* a keep-alive connection whose requests were refused
					  (429, request rate) this many times in a row gets
					  Connection: close; 0 = never */
	unsigned verify_threads;   /* threads verifying keys the cache does not know (argon2),
				      default 2 */
	size_t max_header;	   /* per-connection buffer of the HTTP library (request line
				      and headers; longer ones get 431), default 8192 */
	unsigned queue_depth;	   /* limits.queue_depth: requests a key may have waiting in
				      the queue (action queue), default 64 */
	unsigned queue_timeout_ms; /* limits.queue_timeout_ms: how long one waits, default 5000 */
	const char *downgrade;	   /* limits.downgrade: "from=to,..." (NULL: none) */
};

/* Borrowed for the life of the data plane. */
struct dataplane_deps {
	struct keys *k;
	struct slots *slots;
	struct upstream *up;
	struct usage *usage;
	const struct providers *prov;
	struct router *router; /* chooses each attempt's provider (router.h) */
	struct budget *budget; /* the limits engine; NULL: no limit but request rates */
};

struct dataplane;

/*
 * Hooks into the usage writer, starts the verification pool and the listener; NULL and
 * errno on failure (logged).
 */
struct dataplane *dataplane_start(const struct dataplane_opts *o, const struct dataplane_deps *d);
/* The port actually bound. */
uint16_t dataplane_port(const struct dataplane *dp);
/* The listener threads (event loops) running: data.threads, or the count 0 chose. */
unsigned dataplane_threads(const struct dataplane *dp);
/*
 * Stops the listener: no new requests; calls in flight get drain_ms to finish, then their
 * clients are cut (and their upstream calls cancelled); then the verification pool. Must
 * come before upstream_stop. Accepts NULL.
 */
void dataplane_stop(struct dataplane *dp);
/*
 * After dataplane_stop and upstream_stop (so every call has had its last callback):
 * waits (up to 10 s) for the last usage records to commit, unhooks from the usage writer,
 * frees. Accepts NULL.
 */
void dataplane_close(struct dataplane *dp);

#endif /* TG_DATAPLANE_H */
