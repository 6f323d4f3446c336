/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * mock-llm: an OpenAI-compatible upstream for tollgate's tests, benchmarks and demo
 * (docs/mock-llm.md). This file only wires things together: flags, the listening socket,
 * the ready file, signals. Exit status: 0 after SIGINT/SIGTERM, 1 when it cannot serve,
 * 2 for a bad command line.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "faults.h"
#include "models.h"
#include "server.h"

#define DEFAULT_LISTEN "127.0.0.1:9000"
#define DEFAULT_MODELS "gpt-4o-mini,gpt-4o,gpt-3.5-turbo,text-embedding-3-small"
#define LISTEN_BACKLOG 4096
/* Descriptors kept for everything but connections (listener, epoll, pipes, files). */
#define FD_RESERVE 64

struct options {
	const char *listen;
	const char *ready_file;
	const char *models;
	const char *api_key;
	unsigned threads;
	unsigned max_conns;
	int latency_ms;
	int token_ms;
	bool verbose;
};

static void usage(FILE *f)
{
	fputs("usage: mock-llm [--listen HOST:PORT] [--ready-file FILE] [--threads N]\n"
	      "                [--latency-ms N] [--token-ms N] [--models a,b,c] [--api-key KEY]\n"
	      "                [--max-conns N] [--verbose]\n"
	      "An OpenAI-compatible mock upstream; see docs/mock-llm.md.\n"
	      "  --listen HOST:PORT  address to serve on (default " DEFAULT_LISTEN
	      "; port 0: any)\n"
	      "  --ready-file FILE   write {\"pid\":N,\"listen\":\"host:port\"} once serving\n"
	      "  --threads N         worker threads (default 2)\n"
	      "  --latency-ms N      delay before the first byte of each answer (default 0)\n"
	      "  --token-ms N        delay between streamed tokens (default 0)\n"
	      "  --models LIST       served models (default " DEFAULT_MODELS ")\n"
	      "  --api-key KEY       require Authorization: Bearer KEY on /v1 requests\n"
	      "  --max-conns N       connections at once (default 20000)\n"
	      "  --verbose           log every request\n",
	      f);
}

/* A decimal integer from MIN to MAX for flag NAME; exits with status 2 otherwise. */
static long parse_num(const char *name, const char *v, long min, long max)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < min || n > max) {
		fprintf(stderr, "mock-llm: --%s: expected an integer from %ld to %ld, got '%s'\n",
			name, min, max, v);
		exit(2);
	}
	return n;
}

/* Applies flag C with argument ARG; exits with status 2 on a bad one. */
static void apply_flag(int c, const char *arg, struct options *o)
{
	switch (c) {
	case 'l':
		o->listen = arg;
		break;
	case 'r':
		o->ready_file = arg;
		break;
	case 't':
		o->threads = (unsigned)parse_num("threads", arg, 1, 256);
		break;
	case 'L':
		o->latency_ms = (int)parse_num("latency-ms", arg, 0, FAULTS_LATENCY_MAX_MS);
		break;
	case 'T':
		o->token_ms = (int)parse_num("token-ms", arg, 0, FAULTS_TOKEN_MAX_MS);
		break;
	case 'm':
		o->models = arg;
		break;
	case 'k':
		o->api_key = arg;
		break;
	case 'c':
		o->max_conns = (unsigned)parse_num("max-conns", arg, 1, 1000000);
		break;
	case 'v':
		o->verbose = true;
		break;
	case 'h':
		usage(stdout);
		exit(0);
	default:
		usage(stderr);
		exit(2);
	}
}

static void parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longs[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"ready-file", required_argument, NULL, 'r'},
	    {"threads", required_argument, NULL, 't'},
	    {"latency-ms", required_argument, NULL, 'L'},
	    {"token-ms", required_argument, NULL, 'T'},
	    {"models", required_argument, NULL, 'm'},
	    {"api-key", required_argument, NULL, 'k'},
	    {"max-conns", required_argument, NULL, 'c'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "hv", longs, NULL)) != -1)
		apply_flag(c, optarg, o);
	if (optind < argc) {
		fprintf(stderr, "mock-llm: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		exit(2);
	}
	if (o->api_key && !*o->api_key) {
		fprintf(stderr, "mock-llm: --api-key: empty key\n");
		exit(2);
	}
}

/* Splits "HOST:PORT", "[V6]:PORT" or ":PORT" (host 127.0.0.1); 0 or -EINVAL. */
static int split_listen(const char *spec, char *host, size_t host_len, char *port, size_t port_len)
{
	const char *colon = strrchr(spec, ':');
	const char *h = spec;
	size_t hl;

	if (!colon || !colon[1] || strlen(colon + 1) >= port_len)
		return -EINVAL;
	hl = (size_t)(colon - spec);
	if (hl >= 2 && spec[0] == '[' && spec[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl == 0) {
		h = "127.0.0.1";
		hl = strlen(h);
	}
	if (hl >= host_len)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	strcpy(port, colon + 1);
	return 0;
}

/* Binds and listens on the first address SPEC resolves to; the fd, or a negative errno. */
static int open_listener(const char *spec, bool *ipv6)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	char host[256], port[16];
	int fd, one = 1, err;

	if (split_listen(spec, host, sizeof(host), port, sizeof(port)) < 0)
		return -EINVAL;
	if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai)
		return -EADDRNOTAVAIL;
	*ipv6 = ai->ai_family == AF_INET6;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = -errno;
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
		err = -errno;
		close(fd);
		goto out;
	}
	err = fd;
out:
	freeaddrinfo(ai);
	return err;
}

/* "host:port" (or "[v6]:port") of the socket as bound, into OUT. */
static int describe_listener(int fd, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN + 1], port[8];

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
			NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		return -EINVAL;
	snprintf(out, len, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
	return 0;
}

/* Writes the ready file through a temporary name and rename(), so readers never see half. */
static int write_ready_file(const char *path, const char *listen)
{
	char tmp[PATH_MAX];
	FILE *f;
	int err = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "{\"pid\":%ld,\"listen\":\"%s\"}\n", (long)getpid(), listen);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		err = -errno;
	if (fclose(f) != 0 && !err)
		err = -errno;
	if (!err && rename(tmp, path) != 0)
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

/*
 * Each connection is a descriptor: takes the hard limit, and returns how many connections
 * fit under it with room for the listener, epoll and inter-thread descriptors.
 */
static unsigned raise_fd_limit(unsigned max_conns)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return max_conns;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)max_conns + FD_RESERVE)
		return rl.rlim_cur > FD_RESERVE ? (unsigned)(rl.rlim_cur - FD_RESERVE) : 1;
	return max_conns;
}

/* Sets up everything before serving; 0, or the exit status after printing why. */
static int prepare(const struct options *o, struct server_options *so, char *where, size_t len)
{
	struct fault_config defaults = {
	    .latency_ms = o->latency_ms,
	    .token_ms = o->token_ms,
	    .disconnect_after_tokens = -1,
	};
	int err;

	err = models_init(o->models);
	if (err) {
		fprintf(stderr, "mock-llm: --models '%s': %s\n", o->models,
			err == -EINVAL ? "expected 1 to 64 distinct names of up to 128 bytes"
				       : strerror(-err));
		return err == -EINVAL ? 2 : 1;
	}
	faults_init(&defaults);
	so->listen_fd = open_listener(o->listen, &so->ipv6);
	if (so->listen_fd < 0) {
		fprintf(stderr, "mock-llm: cannot listen on %s: %s\n", o->listen,
			so->listen_fd == -EINVAL ? "expected HOST:PORT" : strerror(-so->listen_fd));
		return so->listen_fd == -EINVAL ? 2 : 1;
	}
	if (describe_listener(so->listen_fd, where, len) < 0)
		snprintf(where, len, "%s", o->listen);
	so->threads = o->threads;
	so->max_conns = raise_fd_limit(o->max_conns);
	so->api_key = o->api_key;
	so->verbose = o->verbose;
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = {
	    .listen = DEFAULT_LISTEN, .models = DEFAULT_MODELS, .threads = 2, .max_conns = 20000};
	struct server_options so = {0};
	char where[300];
	sigset_t stop;
	int err, sig = 0;

	parse_args(argc, argv, &o);
	err = prepare(&o, &so, where, sizeof(where));
	if (err)
		return err;
	/* Every thread started from here on inherits the mask: only sigwait sees these. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);
	err = server_start(&so);
	if (err) {
		fprintf(stderr, "mock-llm: cannot start the server on %s: %s\n", where,
			strerror(-err));
		close(so.listen_fd);
		return 1;
	}
	fprintf(stderr,
		"mock-llm: serving on %s (pid %ld, %u threads, %zu models, latency %d ms, token %d "
		"ms, api key %s, max %u connections)\n",
		where, (long)getpid(), o.threads, models_count(), o.latency_ms, o.token_ms,
		o.api_key ? "required" : "not required", so.max_conns);
	if (o.ready_file && (err = write_ready_file(o.ready_file, where)) < 0) {
		fprintf(stderr, "mock-llm: cannot write %s: %s\n", o.ready_file, strerror(-err));
		server_stop();
		return 1;
	}
	sigwait(&stop, &sig);
	fprintf(stderr, "mock-llm: stopping (%s)\n", strsignal(sig));
	server_stop();
	if (o.ready_file)
		unlink(o.ready_file);
	models_free();
	return 0;
}
