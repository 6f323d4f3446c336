/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Limit alerts (userspace/alert.h) against a real webhook receiver this test runs on
 * 127.0.0.1 in its own thread (plain sockets, one request per connection, answers from a
 * script of statuses): the payload's shape, delivery on a 2xx, a retry after a 500 then
 * delivery, giving up after the configured retries (500s, and a closed port), a full queue
 * dropping and counting, bad webhook URLs refused at open, and the counters adding up at
 * close. Backoff is shortened (5 ms) so the retries are quick; no duration is asserted:
 * every wait is bounded and reaching the bound is a failure.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "alert.h"
#include "budget.h"
#include "log.h"
#include "metrics.h"
#include "tg_test.h"
#include "upstream.h"

#define WAIT_MS	   20000
#define SCRIPT_MAX 8

/* --- the receiver --- */

struct rcv {
	int lfd;
	unsigned short port;
	pthread_t thread;
	atomic_int stop;
	atomic_int requests;
	unsigned script[SCRIPT_MAX]; /* status of request i; the last one repeats; 0 = hang */
	int nscript;
	pthread_mutex_t lock;
	char last_body[2048];
	char last_head[2048];
};

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Reads one request (head, Content-Length body) from fd into buf; its length or -1. */
static int rcv_read(struct rcv *r, int fd, char *buf, size_t cap, size_t *head_len)
{
	size_t have = 0;
	long clen = -1;

	while (!atomic_load(&r->stop) && have < cap - 1) {
		struct pollfd p = {fd, POLLIN, 0};
		char *end;
		ssize_t n;

		if (poll(&p, 1, 50) <= 0)
			continue;
		n = recv(fd, buf + have, cap - 1 - have, 0);
		if (n <= 0)
			return -1;
		have += (size_t)n;
		buf[have] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (!end)
			continue;
		*head_len = (size_t)(end - buf) + 4;
		if (clen < 0) {
			const char *cl = strcasestr(buf, "\r\nContent-Length:");

			clen = cl ? strtol(cl + 17, NULL, 10) : 0;
		}
		if (have >= *head_len + (size_t)clen)
			return (int)have;
	}
	return -1;
}

static void rcv_answer(struct rcv *r, int fd, unsigned status)
{
	char out[160];
	int n;

	while (status == 0 && !atomic_load(&r->stop))
		sleep_ms(10); /* hang until the client gives up or the test ends */
	n = snprintf(out, sizeof(out),
		     "HTTP/1.1 %u X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", status);
	if (status)
		(void)!send(fd, out, (size_t)n, MSG_NOSIGNAL);
}

static void *rcv_main(void *arg)
{
	struct rcv *r = arg;
	static char buf[8192];

	while (!atomic_load(&r->stop)) {
		struct pollfd p = {r->lfd, POLLIN, 0};
		size_t head_len = 0;
		int fd, n, i;

		if (poll(&p, 1, 50) <= 0)
			continue;
		fd = accept(r->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		n = rcv_read(r, fd, buf, sizeof(buf), &head_len);
		if (n > 0) {
			i = atomic_fetch_add(&r->requests, 1);
			pthread_mutex_lock(&r->lock);
			snprintf(r->last_head, sizeof(r->last_head), "%.*s", (int)head_len, buf);
			snprintf(r->last_body, sizeof(r->last_body), "%s", buf + head_len);
			pthread_mutex_unlock(&r->lock);
			rcv_answer(r, fd, r->script[i < r->nscript ? i : r->nscript - 1]);
		}
		close(fd);
	}
	return NULL;
}

/* Starts a receiver answering with the statuses given (the last one repeats). */
static int rcv_start(struct rcv *r, int n, const unsigned *statuses)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);

	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	r->nscript = n;
	memcpy(r->script, statuses, sizeof(unsigned) * (size_t)n);
	r->lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (r->lfd < 0 || bind(r->lfd, (struct sockaddr *)&a, sizeof(a)) || listen(r->lfd, 64) ||
	    getsockname(r->lfd, (struct sockaddr *)&a, &len))
		return -1;
	r->port = ntohs(a.sin_port);
	return pthread_create(&r->thread, NULL, rcv_main, r) ? -1 : 0;
}

static void rcv_stop(struct rcv *r)
{
	atomic_store(&r->stop, 1);
	pthread_join(r->thread, NULL);
	close(r->lfd);
	pthread_mutex_destroy(&r->lock);
}

/* --- helpers --- */

static struct alert_event event(enum alert_kind k, const char *subject, const char *limit)
{
	struct alert_event e = {.kind = k,
				.value = 10.0,
				.used = 8.5,
				.ratio = 0.85,
				.window_reset_at = 1795478400,
				.time = 1795400000};

	snprintf(e.subject, sizeof(e.subject), "%s", subject);
	snprintf(e.limit, sizeof(e.limit), "%s", limit);
	return e;
}

/* Waits until the alerts ended want webhooks (sent + failed + dropped). */
static int wait_settled(struct alerts *a, uint64_t want)
{
	struct alert_stats st;

	for (int i = 0; i < WAIT_MS; i++) {
		alert_stats(a, &st);
		if (st.sent + st.failed + st.dropped >= want)
			return 1;
		sleep_ms(1);
	}
	return 0;
}

static struct alerts *open_for(struct upstream *up, const struct rcv *r, const char *path,
			       unsigned retries)
{
	char url[128];
	struct alert_opts o = {.up = up,
			       .url = url,
			       .retries = retries,
			       .timeout_ms = 2000,
			       .backoff_ms = 5,
			       .backoff_max_ms = 20};

	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", r->port, path);
	return alert_open(&o);
}

/* --- cases --- */

static void payload_has_the_contract_shape(void)
{
	struct alert_event e = event(ALERT_EXCEEDED, "key:k7dq2m9xa4bz", "cost_per_day");
	char *text = alert_payload(&e, 0);
	cJSON *o = text ? cJSON_Parse(text) : NULL;
	const cJSON *it;
	int n = 0;

	TG_REQUIRE(o);
	TG_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "event")), "limit_exceeded");
	TG_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "subject")), "key:k7dq2m9xa4bz");
	TG_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "limit")), "cost_per_day");
	TG_CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(o, "value")) == 10.0);
	TG_CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(o, "used")) == 8.5);
	TG_CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(o, "ratio")) == 0.85);
	TG_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "window_reset_at")),
		     "2026-11-24T00:00:00Z");
	TG_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "time")), "2026-11-23T02:13:20Z");
	cJSON_ArrayForEach(it, o) n++;
	TG_CHECK_INT(n, 8); /* nothing beyond the contract's fields */
	cJSON_Delete(o);
	free(text);
	/* a threshold event, no known reset, time taken from now */
	e = event(ALERT_THRESHOLD, "team:ml", "tokens_per_month");
	e.window_reset_at = 0;
	e.time = 0;
	text = alert_payload(&e, 1795400000);
	o = text ? cJSON_Parse(text) : NULL;
	TG_REQUIRE(o);
	TG_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "event")), "limit_threshold");
	TG_CHECK(cJSON_IsNull(cJSON_GetObjectItem(o, "window_reset_at")));
	TG_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "time")), "2026-11-23T02:13:20Z");
	cJSON_Delete(o);
	free(text);
}

static void delivered_on_2xx(void)
{
	struct upstream *up = upstream_start(4);
	struct rcv r;
	struct alerts *a;
	struct alert_event e = event(ALERT_THRESHOLD, "key:abc123", "cost_per_day");
	struct alert_stats st;

	TG_REQUIRE(up && rcv_start(&r, 1, (unsigned[]){204}) == 0);
	a = open_for(up, &r, "/hook/T0KEN", 3);
	TG_REQUIRE(a);
	alert_raise(a, &e);
	TG_CHECK(wait_settled(a, 1));
	alert_stats(a, &st);
	TG_CHECK_INT(st.sent, 1);
	TG_CHECK_INT(st.attempts, 1);
	TG_CHECK_INT(st.failed, 0);
	TG_CHECK_INT(atomic_load(&r.requests), 1);
	pthread_mutex_lock(&r.lock);
	TG_CHECK(strncmp(r.last_head, "POST /hook/T0KEN HTTP/1.1\r\n", 27) == 0);
	TG_CHECK(strcasestr(r.last_head, "\r\nContent-Type: application/json\r\n") != NULL);
	TG_CHECK(strcasestr(r.last_head, "Authorization") == NULL);
	TG_CHECK(strstr(r.last_body, "\"event\":\"limit_threshold\"") != NULL);
	TG_CHECK(strstr(r.last_body, "\"subject\":\"key:abc123\"") != NULL);
	pthread_mutex_unlock(&r.lock);
	alert_close(a);
	upstream_stop(up);
	rcv_stop(&r);
}

static void retried_after_500_then_delivered(void)
{
	struct upstream *up = upstream_start(4);
	struct rcv r;
	struct alerts *a;
	struct alert_event e = event(ALERT_EXCEEDED, "tenant:acme", "tokens_per_day");
	struct alert_stats st;

	TG_REQUIRE(up && rcv_start(&r, 3, (unsigned[]){500, 503, 200}) == 0);
	a = open_for(up, &r, "/", 3);
	TG_REQUIRE(a);
	alert_raise(a, &e);
	TG_CHECK(wait_settled(a, 1));
	alert_stats(a, &st);
	TG_CHECK_INT(st.sent, 1);
	TG_CHECK_INT(st.failed, 0);
	TG_CHECK_INT(st.attempts, 3);
	TG_CHECK_INT(atomic_load(&r.requests), 3);
	alert_close(a);
	upstream_stop(up);
	rcv_stop(&r);
}

static void given_up_after_the_retries(void)
{
	struct upstream *up = upstream_start(4);
	struct rcv r;
	struct alerts *a;
	struct alert_event e = event(ALERT_EXCEEDED, "user:ann", "requests_per_month");
	struct alert_stats st;

	TG_REQUIRE(up && rcv_start(&r, 1, (unsigned[]){500}) == 0);
	a = open_for(up, &r, "/", 2);
	TG_REQUIRE(a);
	alert_raise(a, &e);
	TG_CHECK(wait_settled(a, 1));
	alert_stats(a, &st);
	TG_CHECK_INT(st.sent, 0);
	TG_CHECK_INT(st.failed, 1);
	TG_CHECK_INT(st.attempts, 3); /* the first and 2 retries */
	TG_CHECK_INT(atomic_load(&r.requests), 3);
	alert_close(a);
	upstream_stop(up);
	rcv_stop(&r);
}

static void refused_connection_fails_after_retries(void)
{
	struct upstream *up = upstream_start(4);
	struct rcv r;
	struct alerts *a;
	struct alert_event e = event(ALERT_THRESHOLD, "key:abc", "cost_per_hour");
	struct alert_stats st;

	/* a port that was just free: nothing listens on it once the receiver is gone */
	TG_REQUIRE(up && rcv_start(&r, 1, (unsigned[]){200}) == 0);
	rcv_stop(&r);
	a = open_for(up, &r, "/", 1);
	TG_REQUIRE(a);
	alert_raise(a, &e);
	TG_CHECK(wait_settled(a, 1));
	alert_stats(a, &st);
	TG_CHECK_INT(st.failed, 1);
	TG_CHECK_INT(st.attempts, 2);
	alert_close(a);
	upstream_stop(up);
}

static void full_queue_drops_and_counts(void)
{
	struct upstream *up = upstream_start(4);
	struct rcv r;
	struct alert_opts o = {
	    .up = up, .retries = 0, .timeout_ms = 60000, .queue_max = 2, .inflight_max = 1};
	struct alerts *a;
	struct alert_event e = event(ALERT_THRESHOLD, "key:abc", "tokens_per_minute");
	struct alert_stats st;
	char url[64];

	TG_REQUIRE(up && rcv_start(&r, 1, (unsigned[]){0}) == 0); /* never answers */
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", r.port);
	o.url = url;
	a = alert_open(&o);
	TG_REQUIRE(a);
	for (int i = 0; i < 10; i++)
		alert_raise(a, &e);
	alert_stats(a, &st);
	/* at most one in flight and two queued can be taken */
	TG_CHECK(st.dropped >= 7);
	TG_CHECK_INT(st.raised, 10);
	alert_close(a); /* the hanging attempt is cancelled, the queued ones dropped */
	upstream_stop(up);
	rcv_stop(&r);
}

/* The value of a rendered metrics sample, 0 if absent. */
static double sample(const char *series)
{
	size_t len, n = strlen(series);
	char *text = metrics_render(&len), *line;
	double v = 0;

	for (line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		if (strncmp(line, series, n) == 0 && line[n] == ' ') {
			v = strtod(line + n + 1, NULL);
			break;
		}
	free(text);
	return v;
}

static double webhooks_ended(void)
{
	return sample("tollgate_alert_webhooks_total{result=\"sent\"}") +
	       sample("tollgate_alert_webhooks_total{result=\"failed\"}") +
	       sample("tollgate_alert_webhooks_total{result=\"dropped\"}");
}

static void counters_add_up_at_close(void)
{
	struct upstream *up = upstream_start(4);
	struct rcv r;
	struct alerts *a;
	struct alert_event e = event(ALERT_EXCEEDED, "team:ml", "cost_per_month");
	double before = webhooks_ended();

	TG_REQUIRE(up && rcv_start(&r, 2, (unsigned[]){500, 200}) == 0);
	a = open_for(up, &r, "/", 5);
	TG_REQUIRE(a);
	for (int i = 0; i < 20; i++)
		alert_raise(a, &e);
	alert_close(a); /* some delivered, the rest failed or dropped: every one counted once */
	TG_CHECK(webhooks_ended() - before == 20);
	upstream_stop(up);
	rcv_stop(&r);
}

static void bad_urls_are_refused(void)
{
	static const struct {
		const char *url;
		int ok;
	} rows[] = {
	    {"http://127.0.0.1:9/hook", 1},
	    {"https://hooks.example.com/services/T/B/X", 1},
	    {"ftp://example.com/x", 0},
	    {"example.com/hook", 0},
	    {"http://", 0},
	    {"http://exa mple.com/", 0},
	    {"not a url", 0},
	    {"file:///etc/passwd", 0},
	};
	struct upstream *up = upstream_start(1);
	char why[96];

	TG_REQUIRE(up);
	for (size_t i = 0; i < TG_NCASES(rows); i++) {
		struct alert_opts o = {.up = up, .url = rows[i].url};
		struct alerts *a;
		int rc = upstream_url_check(rows[i].url, why, sizeof(why));

		TG_CHECK_INT(rc == 0, rows[i].ok);
		if ((rc == 0) != rows[i].ok)
			printf("#   %s: %s\n", rows[i].url, rc ? why : "accepted");
		errno = 0;
		a = alert_open(&o);
		TG_CHECK_INT(a != NULL, rows[i].ok);
		if (!rows[i].ok)
			TG_CHECK_INT(errno, EINVAL);
		alert_close(a);
	}
	upstream_stop(up);
}

static void no_webhook_logs_and_counts_only(void)
{
	struct alert_opts o = {0};
	struct alerts *a = alert_open(&o);
	struct alert_event e = event(ALERT_EXCEEDED, "key:abc", "max_concurrent");
	struct alert_stats st;

	TG_REQUIRE(a);
	alert_raise(a, &e);
	alert_raise(NULL, &e); /* accepted: the log line only */
	alert_stats(a, &st);
	TG_CHECK_INT(st.raised, 1);
	TG_CHECK_INT(st.sent + st.failed + st.dropped + st.attempts, 0);
	alert_close(a);
}

/* The engine's threshold hook: units converted (nano-USD to USD, ms to s), gauge fed. */
static void budget_hook_converts_units(void)
{
	static const struct {
		enum budget_kind kind;
		enum limit_field limit;
		uint64_t value, used, reserved;
		const char *want_value, *want_used;
	} rows[] = {
	    {BUDGET_KIND_COST, LIMIT_COST_DAY, 10000000000ULL, 8000000000ULL, 1500000000ULL,
	     "\"value\":10,", "\"used\":9.5,"},
	    {BUDGET_KIND_COMPUTE, LIMIT_COMPUTE_MONTH, 60000, 45000, 0, "\"value\":60,",
	     "\"used\":45,"},
	    {BUDGET_KIND_TOKENS, LIMIT_TPD, 1000, 900, 50, "\"value\":1000,", "\"used\":950,"},
	};
	struct upstream *up = upstream_start(4);
	struct rcv r;
	struct alerts *a;

	TG_REQUIRE(up && rcv_start(&r, 1, (unsigned[]){200}) == 0);
	a = open_for(up, &r, "/", 0);
	TG_REQUIRE(a);
	for (size_t i = 0; i < TG_NCASES(rows); i++) {
		struct budget_event ev = {.exceeded = i == 0, .ratio = 0.95, .time = 1795400000};

		snprintf(ev.hit.subject, sizeof(ev.hit.subject), "team:hook%zu", i);
		ev.hit.kind = rows[i].kind;
		ev.hit.limit = rows[i].limit;
		ev.hit.value = rows[i].value;
		ev.hit.used = rows[i].used;
		ev.hit.reserved = rows[i].reserved;
		ev.hit.reset_at = 1795478400;
		alert_budget_hook(&ev, a);
		TG_CHECK(wait_settled(a, i + 1));
		pthread_mutex_lock(&r.lock);
		TG_CHECK(strstr(r.last_body, rows[i].want_value) != NULL);
		TG_CHECK(strstr(r.last_body, rows[i].want_used) != NULL);
		TG_CHECK(strstr(r.last_body, limit_descs[rows[i].limit].name) != NULL);
		if (!strstr(r.last_body, rows[i].want_used))
			printf("#   row %zu: %s\n", i, r.last_body);
		pthread_mutex_unlock(&r.lock);
	}
	TG_CHECK(sample("tollgate_budget_usage_ratio{limit=\"cost_per_day\"}") == 0.95);
	alert_close(a);
	upstream_stop(up);
	rcv_stop(&r);
}

static const struct tg_case cases[] = {
    {"the payload has the contract's fields and no others", payload_has_the_contract_shape},
    {"a 2xx answer delivers (one POST, JSON, no credentials)", delivered_on_2xx},
    {"500 then 503 then 200: retried, then delivered", retried_after_500_then_delivered},
    {"always 500: given up after 1 + retries attempts", given_up_after_the_retries},
    {"a refused connection fails after the retries", refused_connection_fails_after_retries},
    {"a full queue drops and counts, never blocks", full_queue_drops_and_counts},
    {"close with deliveries pending and in flight", counters_add_up_at_close},
    {"bad webhook URLs are refused at open", bad_urls_are_refused},
    {"without a webhook: log line and count only", no_webhook_logs_and_counts_only},
    {"the engine's threshold hook converts units and feeds the ratio gauge",
     budget_hook_converts_units},
};

int main(void)
{
	log_init("test_alert", LOG_LVL_ERROR);
	return tg_run("alert", cases, TG_NCASES(cases));
}
