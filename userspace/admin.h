/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The admin REST API (docs/admin-api.md): keys, tiers, admin tokens, health and readiness,
 * on its own listener. Translates HTTP + JSON into calls on the key registry and back;
 * holds no state of its own beyond the listener.
 */
#ifndef TG_ADMIN_H
#define TG_ADMIN_H

#include <stddef.h>

struct keys;
struct kernel;
struct router;
struct store;

struct admin_opts {
	const char *listen;	/* default "127.0.0.1:8081" */
	unsigned threads;	/* default 2 */
	size_t max_body;	/* default 65536 */
	unsigned timeout_sec;	/* default 30 */
	struct kernel *kernel;	/* GET /api/v1/kernel reads it; NULL: the kernel path is off */
	struct router *router;	/* GET /api/v1/providers reads it; NULL: no providers listed */
	struct budget *budget;	/* /api/v1/limits; NULL: those answer 503 */
	const char *downgrade;	/* limits.downgrade ("from=to,..."), read at start; NULL or
				 * "": none, so a downgrade action is refused (400) */
};

struct admin;
struct budget;

/* Starts the admin listener; NULL and errno on failure. */
struct admin *admin_start(const struct admin_opts *o, struct keys *k, struct store *s);
/* Stops it. Accepts NULL. */
void admin_stop(struct admin *a);
/* The port actually bound. */
unsigned admin_port(const struct admin *a);

#endif /* TG_ADMIN_H */
