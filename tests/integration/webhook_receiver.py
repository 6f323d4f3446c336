#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""A webhook receiver for the integration tests (alerts, tests/integration/99_*).

Listens on 127.0.0.1 (an ephemeral port, written to --port-file once it listens), answers
every POST with the next status of --statuses (comma-separated; the last one repeats) and
appends one JSON line per request to --log: {"n", "path", "status", "content_type",
"authorization", "body"} (body parsed as JSON when it is, else the text). Runs until killed;
the test stops it by PID.
"""
import argparse
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--statuses", default="200")
    args = ap.parse_args()
    statuses = [int(s) for s in args.statuses.split(",") if s]
    lock = threading.Lock()
    count = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n).decode("utf-8", "replace")
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
            with lock:
                i = count[0]
                count[0] += 1
                status = statuses[min(i, len(statuses) - 1)]
                rec = {"n": i, "path": self.path, "status": status,
                       "content_type": self.headers.get("Content-Type"),
                       "authorization": self.headers.get("Authorization"), "body": body}
                with open(args.log, "a") as f:
                    f.write(json.dumps(rec) + "\n")
            out = b"ok"
            self.send_response(status)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, fmt, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, args.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
