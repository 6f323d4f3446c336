/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Reading a kernel 429 back, for tests/bpf/test_tc.c: the reply as the format documented in
 * bpf/lib/reply.h lays it out (built here, apart from the program's own code), and a
 * client's reading of it: status line, every header, the JSON body through cJSON. cJSON is
 * loaded at run time because the tests/bpf link line carries libbpf only.
 * Include after tg_bpf_test.h.
 */
#ifndef TG_TC_REPLY_H
#define TG_TC_REPLY_H

#include <dlfcn.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "tg_bpf_test.h"

#define REPLY_LEN 804 /* TG_REPLY_LEN: the 429's constant length */
#define BODY_LEN  386

static struct {
	void *lib;
	__typeof__(cJSON_Parse) *parse;
	__typeof__(cJSON_Delete) *del;
	__typeof__(cJSON_GetObjectItemCaseSensitive) *get;
	__typeof__(cJSON_GetStringValue) *str;
	__typeof__(cJSON_IsNull) *is_null;
} cj;

static int cjson_load(void)
{
	if (cj.lib)
		return 0;
	cj.lib = dlopen("libcjson.so.1", RTLD_NOW);
	if (!cj.lib)
		return -1;
	cj.parse = (__typeof__(cj.parse))dlsym(cj.lib, "cJSON_Parse");
	cj.del = (__typeof__(cj.del))dlsym(cj.lib, "cJSON_Delete");
	cj.get = (__typeof__(cj.get))dlsym(cj.lib, "cJSON_GetObjectItemCaseSensitive");
	cj.str = (__typeof__(cj.str))dlsym(cj.lib, "cJSON_GetStringValue");
	cj.is_null = (__typeof__(cj.is_null))dlsym(cj.lib, "cJSON_IsNull");
	return cj.parse && cj.del && cj.get && cj.str && cj.is_null ? 0 : -1;
}

/* What a refusal must say, in the daemon's words. */
struct want {
	const char *retry_after; /* Retry-After */
	const char *limit;	 /* x-ratelimit-limit-requests, X-RateLimit-Limit */
	const char *reset;	 /* x-ratelimit-reset-requests */
	const char *reset_s;	 /* X-RateLimit-Reset */
	const char *window;	 /* second, minute, hour */
	const char *message;
};

/* The 429 as the format documented in bpf/lib/reply.h lays it out, built here apart. */
static void expected_reply(const struct want *w, char *out)
{
	static const char start[] = "{\"error\":{\"type\":\"request_rate_limit_exceeded\","
				    "\"param\":null,";
	char tail[512];
	int h, t;

	h = snprintf(out, REPLY_LEN + 1,
		     "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
		     "Content-Length: %d\r\nConnection: close\r\nRetry-After: %20s\r\n"
		     "x-ratelimit-limit-requests: %20s\r\nx-ratelimit-remaining-requests: 0\r\n"
		     "x-ratelimit-reset-requests: %25s\r\nX-RateLimit-Limit: %20s\r\n"
		     "X-RateLimit-Remaining: 0\r\nX-RateLimit-Reset: %20s\r\n"
		     "x-tollgate-enforcer: kernel\r\n\r\n%s",
		     BODY_LEN, w->retry_after, w->limit, w->reset, w->limit, w->reset_s, start);
	t = snprintf(tail, sizeof(tail), "\"code\":\"requests_per_%s\",\"message\":\"%s\"}}\n",
		     w->window, w->message);
	memset(out + h, ' ', (size_t)(REPLY_LEN - h - t));
	memcpy(out + REPLY_LEN - t, tail, (size_t)t);
	out[REPLY_LEN] = '\0';
}

/* The header value of name in the HTTP head (blanks around it dropped), or "". */
static const char *header(const char *head, const char *name, char *buf, size_t size)
{
	size_t n = strlen(name);
	const char *p = head;

	buf[0] = '\0';
	while ((p = strstr(p, "\r\n")) != NULL) {
		p += 2;
		if (strncmp(p, name, n) == 0 && p[n] == ':') {
			const char *v = p + n + 1, *e = strstr(v, "\r\n");

			while (*v == ' ')
				v++;
			while (e > v && e[-1] == ' ')
				e--;
			snprintf(buf, size, "%.*s", (int)(e - v), v);
			break;
		}
	}
	return buf;
}

/* The reply text read as a client would: status, every header, the JSON body. */
static void check_http(const char *text, const struct want *w)
{
	char v[64], code[64];
	const char *body = strstr(text, "\r\n\r\n");
	cJSON *root, *err;

	TG_REQUIRE(body && strncmp(text, "HTTP/1.1 429 Too Many Requests\r\n", 32) == 0);
	body += 4;
	TG_CHECK_INT(strtol(header(text, "Content-Length", v, sizeof(v)), NULL, 10),
		     (long)strlen(body));
	TG_CHECK_STR(header(text, "Content-Type", v, sizeof(v)), "application/json");
	TG_CHECK_STR(header(text, "Connection", v, sizeof(v)), "close");
	TG_CHECK_STR(header(text, "Retry-After", v, sizeof(v)), w->retry_after);
	TG_CHECK_STR(header(text, "x-ratelimit-limit-requests", v, sizeof(v)), w->limit);
	TG_CHECK_STR(header(text, "x-ratelimit-remaining-requests", v, sizeof(v)), "0");
	TG_CHECK_STR(header(text, "x-ratelimit-reset-requests", v, sizeof(v)), w->reset);
	TG_CHECK_STR(header(text, "X-RateLimit-Limit", v, sizeof(v)), w->limit);
	TG_CHECK_STR(header(text, "X-RateLimit-Remaining", v, sizeof(v)), "0");
	TG_CHECK_STR(header(text, "X-RateLimit-Reset", v, sizeof(v)), w->reset_s);
	TG_CHECK_STR(header(text, "x-tollgate-enforcer", v, sizeof(v)), "kernel");
	TG_REQUIRE(cjson_load() == 0);
	root = cj.parse(body);
	TG_REQUIRE(root != NULL);
	err = cj.get(root, "error");
	snprintf(code, sizeof(code), "requests_per_%s", w->window);
	TG_CHECK(err && cj.is_null(cj.get(err, "param")));
	TG_CHECK_STR(err ? cj.str(cj.get(err, "type")) : NULL, "request_rate_limit_exceeded");
	TG_CHECK_STR(err ? cj.str(cj.get(err, "code")) : NULL, code);
	TG_CHECK_STR(err ? cj.str(cj.get(err, "message")) : NULL, w->message);
	cj.del(root);
}

#endif /* TG_TC_REPLY_H */
