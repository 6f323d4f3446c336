/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Control API handlers (control.h). Turning hang off, by PUT or by reset, also releases
 * the requests already hung: their connections are closed without an answer, so a test's
 * clients see the hang end when the fault does rather than at their own timeouts.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "control.h"
#include "faults.h"
#include "stats.h"
#include "timer.h"

/* Answers with the configuration now in force; RELEASE: let hung requests go if hang is off. */
static void answer_config(struct answer *a, bool release)
{
	struct fault_config c;

	faults_get(&c);
	if (release && !c.hang)
		timer_release_hung();
	a->status = 200;
	faults_json(&a->body, &c);
}

static void control_config(const struct api_request *rq, struct answer *a)
{
	char why[200];
	bool put = strcmp(rq->method, "PUT") == 0;

	if (put) {
		if (faults_update(rq->body ? rq->body : "", rq->body_len, why, sizeof(why)) < 0) {
			answer_error(a, 400, "invalid_request_error", "invalid_config", NULL, why);
			return;
		}
	} else if (strcmp(rq->method, "GET") != 0) {
		answer_error(a, 405, "invalid_request_error", "method_not_allowed", NULL,
			     "Use GET or PUT on /_mock/config.");
		return;
	}
	answer_config(a, put);
}

void control_answer(const struct api_request *rq, struct answer *a)
{
	if (rq->body_too_large) {
		answer_error(a, 413, "invalid_request_error", "request_too_large", NULL,
			     "Request body too large.");
		return;
	}
	switch (rq->route) {
	case ROUTE_MOCK_CONFIG:
		control_config(rq, a);
		return;
	case ROUTE_MOCK_STATS:
		if (strcmp(rq->method, "GET") != 0)
			break;
		a->status = 200;
		stats_json(&a->body);
		return;
	case ROUTE_MOCK_RESET:
		if (strcmp(rq->method, "POST") != 0)
			break;
		faults_reset();
		stats_reset();
		answer_config(a, true);
		return;
	default:
		answer_error(a, 404, "invalid_request_error", "unknown_url", NULL,
			     "Unknown control path: use /_mock/config, /_mock/stats or "
			     "/_mock/reset.");
		return;
	}
	answer_error(a, 405, "invalid_request_error", "method_not_allowed", NULL,
		     "Method not allowed on this control path.");
}
