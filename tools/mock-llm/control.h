/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The control API on the same listener (docs/mock-llm.md, "Control API"): GET and PUT
 * /_mock/config, GET /_mock/stats, POST /_mock/reset. Control requests skip the API key,
 * faults, latency and stats, so a test can always steer and observe the mock.
 */
#ifndef MOCK_LLM_CONTROL_H
#define MOCK_LLM_CONTROL_H

#include "api.h"

/* Answers RQ, whose route is one of the ROUTE_MOCK_* values. */
void control_answer(const struct api_request *rq, struct answer *a);

#endif
