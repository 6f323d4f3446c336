#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# An HTTP/2 front (TLS, negotiated by ALPN) for an HTTP/1.1 upstream such as mock-llm: nginx
# with "ssl http2" on LISTEN, proxying every request to UPSTREAM unbuffered (server-sent
# events pass as they come), with a self-signed certificate for 127.0.0.1 made on the spot.
# Tests and benchmarks put it between tollgated (a provider with "http": "2" and that
# certificate as its "ca_file") and mock-llm, which speaks HTTP/1.1 only. TLS because the
# libcurl of Debian 12 (7.88) breaks cleartext HTTP/2 connections when it reuses them.
#
# usage: tools/h2-front.sh LISTEN(host:port) UPSTREAM(host:port) DIR
# Writes DIR/cert.pem (the certificate, also the CA file to trust) and DIR/nginx.conf, then
# runs nginx in the foreground (the caller backgrounds it and stops it by PID). DIR/access.log
# has one line per request: "<protocol> <connection serial> <status>", so a caller can see
# which calls shared a connection.
set -euo pipefail
[ $# -eq 3 ] || {
	echo "usage: $0 LISTEN UPSTREAM DIR" >&2
	exit 2
}
listen=$1 upstream=$2 dir=$3
nginx=$(command -v nginx || echo /usr/sbin/nginx)
for t in "$nginx" openssl; do
	command -v "$t" >/dev/null || {
		echo "h2-front: $t is not installed" >&2
		exit 1
	}
done
mkdir -p "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=CA:TRUE \
	-keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
worker_rlimit_nofile 20000;
error_log $dir/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 20000; }
http {
    log_format front '\$server_protocol \$connection \$status';
    access_log $dir/access.log front;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    http2_max_concurrent_streams 1000;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    upstream up {
        server $upstream;
        keepalive 1024;
    }
    server {
        listen $listen ssl http2;
        ssl_certificate $dir/cert.pem;
        ssl_certificate_key $dir/key.pem;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 300s;
        }
    }
}
CONF
exec "$nginx" -p "$dir" -c "$dir/nginx.conf" -g "daemon off;"
