// SPDX-License-Identifier: BSD-2-Clause
/*
 * tollctl's HTTP layer and the only file that includes curl.h: one blocking libcurl easy
 * request per call, the answer collected in a buffer capped at 16 MiB, server errors
 * reported, and HTTP statuses mapped to exit statuses (docs/tollctl.md, "Exit status").
 *
 * The admin token travels only in the Authorization header. The copies tollctl makes of it
 * (the header line and libcurl's list node) are wiped before they are freed; the copy
 * libcurl makes while formatting the request is out of our reach and is freed unwiped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "tollctl.h"

/* Everything one request owns, released by http_call_free. */
struct http_call {
	CURL *curl;
	struct curl_slist *headers;
	struct sbuf url;
	char *payload;	  /* request body from cJSON_PrintUnformatted, or NULL */
	struct sbuf body; /* response body */
	int body_err;	  /* why http_collect refused data, or 0 */
	char errbuf[CURL_ERROR_SIZE];
};

static size_t http_collect(char *data, size_t size, size_t nmemb, void *userp)
{
	struct http_call *call = userp;
	size_t n = size * nmemb;
	int err = sbuf_add(&call->body, data, n);

	if (err) {
		call->body_err = err;
		return 0; /* a short count makes libcurl stop with CURLE_WRITE_ERROR */
	}
	return n;
}

static int header_add(struct curl_slist **list, const char *line)
{
	struct curl_slist *n = curl_slist_append(*list, line);

	if (!n)
		return -ENOMEM;
	*list = n;
	return 0;
}

static void headers_free(struct curl_slist *list)
{
	struct curl_slist *p;

	for (p = list; p; p = p->next)
		explicit_bzero(p->data, strlen(p->data));
	curl_slist_free_all(list);
}

/*
 * "Content-Type:" with no value removes the form type libcurl would otherwise put on a POST
 * without a body (rotate); "Expect:" avoids a 100-continue round trip on larger bodies.
 */
static int http_headers(const struct ctl *ctl, struct http_call *call, bool auth)
{
	struct sbuf bearer = {0};
	int err;

	err = header_add(&call->headers, "Accept: application/json");
	if (!err)
		err = header_add(&call->headers, "Expect:");
	if (!err)
		err = header_add(&call->headers, call->payload ? "Content-Type: application/json"
							       : "Content-Type:");
	if (!err && auth) {
		err = sbuf_addf(&bearer, "Authorization: Bearer %s", ctl->token);
		if (!err)
			err = header_add(&call->headers, bearer.buf);
		sbuf_wipe(&bearer);
	}
	return err;
}

static int http_method(CURL *h, const char *method, const char *payload)
{
	int bad = 0;

	if (strcmp(method, "GET") == 0)
		return curl_easy_setopt(h, CURLOPT_HTTPGET, 1L) == CURLE_OK ? 0 : -EINVAL;
	if (payload || strcmp(method, "POST") == 0) {
		bad |= curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload ? payload : "") != CURLE_OK;
		bad |= curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE,
					payload ? (long)strlen(payload) : 0L) != CURLE_OK;
	}
	if (strcmp(method, "POST") != 0)
		bad |= curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK;
	return bad ? -EINVAL : 0;
}

/*
 * Only http and https: the URL comes from a flag or the environment, and a typo such as
 * file:// or a redirect elsewhere must not carry the token anywhere. Redirects are not
 * followed for the same reason (libcurl's default).
 */
static int http_options(const struct ctl *ctl, struct http_call *call)
{
	CURL *h = call->curl;
	int bad = 0;

	bad |= curl_easy_setopt(h, CURLOPT_URL, call->url.buf) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_HTTPHEADER, call->headers) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_USERAGENT, "tollctl/" TOLLCTL_VERSION) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ctl->timeout_ms) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ctl->timeout_ms) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, http_collect) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_WRITEDATA, call) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, call->errbuf) != CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500
	bad |= curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
#else
	bad |= curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) !=
	       CURLE_OK;
#endif
	return bad ? -EINVAL : 0;
}

static int http_prepare(const struct ctl *ctl, struct http_call *call, const char *method,
			const char *path, const cJSON *body, bool auth)
{
	if (sbuf_addf(&call->url, "%s%s", ctl->base_url, path) != 0)
		goto nomem;
	if (body && !(call->payload = cJSON_PrintUnformatted(body)))
		goto nomem;
	call->curl = curl_easy_init();
	if (!call->curl || http_headers(ctl, call, auth) != 0 || http_options(ctl, call) != 0 ||
	    http_method(call->curl, method, call->payload) != 0)
		goto nomem;
	return CTL_EXIT_OK;
nomem:
	fprintf(stderr, "tollctl: cannot prepare the request: out of memory\n");
	return CTL_EXIT_INTERNAL;
}

static int http_perform(struct http_call *call, long *status)
{
	CURLcode res = curl_easy_perform(call->curl);

	if (res == CURLE_OK) {
		curl_easy_getinfo(call->curl, CURLINFO_RESPONSE_CODE, status);
		return CTL_EXIT_OK;
	}
	if (call->body_err == -EFBIG) {
		fprintf(stderr, "tollctl: the answer from %s is larger than %u MiB\n",
			call->url.buf, CTL_MAX_BODY_BYTES >> 20);
		return CTL_EXIT_SERVER;
	}
	if (call->body_err) {
		fprintf(stderr, "tollctl: out of memory reading the answer from %s\n",
			call->url.buf);
		return CTL_EXIT_INTERNAL;
	}
	fprintf(stderr, "tollctl: request to %s failed: %s\n", call->url.buf,
		call->errbuf[0] ? call->errbuf : curl_easy_strerror(res));
	if (res == CURLE_UNSUPPORTED_PROTOCOL || res == CURLE_URL_MALFORMAT) {
		fprintf(stderr, "tollctl: check --url or TOLLGATE_ADMIN_URL\n");
		return CTL_EXIT_USAGE;
	}
	return CTL_EXIT_SERVER;
}

/* A success must carry a JSON object; an error body may be anything (a proxy's HTML). */
static int http_parse(struct http_call *call, long status, cJSON **json)
{
	if (call->body.len)
		*json = cJSON_ParseWithLength(call->body.buf, call->body.len);
	/* 204 No Content (DELETE /api/v1/limits/:subject) has no body by definition */
	if (status == 204 && !call->body.len)
		return CTL_EXIT_OK;
	if (status >= 200 && status < 300 && !cJSON_IsObject(*json)) {
		fprintf(stderr, "tollctl: %ld from %s without a JSON object in the body\n", status,
			call->url.buf);
		cJSON_Delete(*json);
		*json = NULL;
		return CTL_EXIT_SERVER;
	}
	return CTL_EXIT_OK;
}

static void http_call_free(struct http_call *call)
{
	curl_easy_cleanup(call->curl);
	headers_free(call->headers);
	cJSON_free(call->payload);
	sbuf_wipe(&call->url);
	sbuf_wipe(&call->body);
}

/*
 * Sends METHOD base_url+PATH with BODY (NULL for none), with the admin token when AUTH.
 * Returns 0 when the server answered, whatever the status: *STATUS is set and *JSON holds
 * the parsed body or NULL (a 2xx other than an empty 204 is guaranteed to carry an object);
 * the caller deletes it.
 * Otherwise returns an exit status after saying why on stderr (no token, unreachable,
 * timeout, oversized or malformed answer).
 */
int http_send(struct ctl *ctl, const char *method, const char *path, const cJSON *body, bool auth,
	      long *status, cJSON **json)
{
	struct http_call call = {.body = {.max = CTL_MAX_BODY_BYTES}};
	int rc;

	*json = NULL;
	*status = 0;
	if (auth) {
		rc = ctl_load_token(ctl);
		if (rc)
			return rc;
	}
	rc = http_prepare(ctl, &call, method, path, body, auth);
	if (!rc)
		rc = http_perform(&call, status);
	if (!rc)
		rc = http_parse(&call, *status, json);
	http_call_free(&call);
	return rc;
}

static int http_exit_status(long status)
{
	if (status == 404)
		return CTL_EXIT_NOT_FOUND;
	if (status == 401 || status == 403)
		return CTL_EXIT_AUTH;
	if (status >= 400 && status < 500)
		return CTL_EXIT_REJECTED;
	return CTL_EXIT_SERVER; /* 5xx, and 1xx/3xx which this API never sends */
}

/* "tollctl: 400: message (param p, code c)", leaving out the parts that are null. */
static void http_print_error(long status, const cJSON *json)
{
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(json, "error");
	const char *msg = json_str(err, "message");
	const char *param = json_str(err, "param");
	const char *code = json_str(err, "code");

	if (!msg && !err)
		msg = json_str(json, "status"); /* GET /ready answers 503 with a status */
	fprintf(stderr, "tollctl: %ld: ", status);
	out_clean(stderr, msg ? msg : "the server gave no error message");
	if (param || code)
		fputs(" (", stderr);
	if (param) {
		fputs("param ", stderr);
		out_clean(stderr, param);
	}
	if (param && code)
		fputs(", ", stderr);
	if (code) {
		fputs("code ", stderr);
		out_clean(stderr, code);
	}
	fputs(param || code ? ")\n" : "\n", stderr);
}

/*
 * Returns 0 for a 2xx. Otherwise reports the server's error on stderr (and, with --json, its
 * JSON body on stdout) and returns the exit status for STATUS.
 */
int http_check(const struct ctl *ctl, long status, const cJSON *json)
{
	if (status >= 200 && status < 300)
		return CTL_EXIT_OK;
	if (ctl->json && json)
		out_json(json);
	http_print_error(status, json);
	return http_exit_status(status);
}

/*
 * http_send plus http_check: returns 0 with *OUT set to the answer's JSON object (the caller
 * deletes it), or an exit status once the failure has been reported.
 */
int ctl_request(struct ctl *ctl, const char *method, const char *path, const cJSON *body, bool auth,
		cJSON **out)
{
	cJSON *json;
	long status;
	int rc = http_send(ctl, method, path, body, auth, &status, &json);

	if (rc)
		return rc;
	rc = http_check(ctl, status, json);
	if (rc) {
		cJSON_Delete(json);
		return rc;
	}
	*out = json;
	return CTL_EXIT_OK;
}
