# SPDX-License-Identifier: BSD-2-Clause
"""HTTP/1.1 client of the kernel-path integration tests (9x_kernel_*.sh), run on the client
side of the veth: what curl cannot do. Standard library only; every run is bounded in time.

  kclient.py escalate HOST PORT KEY SECONDS [SOURCE]
      One client that ignores Retry-After: requests back to back on a keep-alive connection,
      reconnecting whenever the server closes, until SECONDS pass or two connection attempts
      in a row time out (1 s each: SYNs dropped). Prints one JSON object of counts and the
      time (s from start) of the first daemon close, first kernel 429 and first timeout.
  kclient.py raw HOST PORT DELAY_MS PART...
      Sends the PARTs (Python string escapes allowed: \\r\\n, \\x16) as separate writes with
      TCP_NODELAY, DELAY_MS apart, then reads answers until the server closes or 3 s of
      silence; prints each answer as JSON: status, enforcer header, connection header.
  kclient.py flood HOST PORT KEY SECONDS CONNS MODE [PATH]
      CONNS threads for SECONDS; MODE keepalive, close (a connection per request) or mixed
      (odd threads close). Prints JSON counts by status and by who answered.
  kclient.py paced HOST PORT KEY SECONDS RATE [PATH]
      One request every 1/RATE s (a new connection each, as scripts do) for SECONDS; prints
      JSON counts by status.
"""
import codecs
import json
import socket
import sys
import threading
import time

BODY_MAX = 1 << 20


# The call a /v1/chat/completions request sends: 4 prompt tokens and 1 completion token by
# mock-llm's rule (as test 82's).
CALL = b'{"model":"gpt-4o-mini","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}'


def request_bytes(host, path, key, close=False):
    """GET PATH, or POST of CALL when PATH is /v1/chat/completions."""
    post = path == "/v1/chat/completions"
    lines = [f"{'POST' if post else 'GET'} {path} HTTP/1.1", f"Host: {host}",
             f"Authorization: Bearer {key}"]
    if post:
        lines += ["Content-Type: application/json", f"Content-Length: {len(CALL)}"]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (CALL if post else b"")


class Conn:
    """A connection and its read buffer; read_answer parses one HTTP answer."""

    def __init__(self, host, port, timeout=1.0, source=None):
        self.s = socket.create_connection((host, port), timeout=timeout,
                                          source_address=(source, 0) if source else None)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s.settimeout(5.0)
        self.buf = b""

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError
        self.buf += d

    def read_answer(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0"))
        if n > BODY_MAX:
            raise ValueError("body too large")
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, hdrs, body


def who(status, hdrs):
    if status == 429 and hdrs.get("x-tollgate-enforcer") == "kernel":
        return "kernel"
    return "daemon"


def escalate(host, port, key, seconds, source=None):
    out = {"200": 0, "daemon_429": 0, "kernel_429": 0, "daemon_close": 0, "connects": 0,
           "timeouts": 0, "resets": 0, "other": 0,
           "t_first_close": None, "t_first_kernel": None, "t_first_timeout": None}
    t0 = time.monotonic()
    req = request_bytes(host, "/v1/models", key)
    in_row = 0
    while time.monotonic() - t0 < seconds and in_row < 2:
        try:
            c = Conn(host, port, source=source)
        except (socket.timeout, TimeoutError):
            out["timeouts"] += 1
            in_row += 1
            if out["t_first_timeout"] is None:
                out["t_first_timeout"] = round(time.monotonic() - t0, 3)
            continue
        except OSError:
            out["resets"] += 1
            time.sleep(0.01)
            continue
        in_row = 0
        out["connects"] += 1
        try:
            while time.monotonic() - t0 < seconds:
                c.s.sendall(req)
                status, hdrs, _ = c.read_answer()
                t = round(time.monotonic() - t0, 3)
                if status == 200:
                    out["200"] += 1
                elif who(status, hdrs) == "kernel":
                    out["kernel_429"] += 1
                    if out["t_first_kernel"] is None:
                        out["t_first_kernel"] = t
                    break
                elif status == 429:
                    out["daemon_429"] += 1
                else:
                    out["other"] += 1
                if hdrs.get("connection", "").lower() == "close":
                    if status == 429:
                        out["daemon_close"] += 1
                        if out["t_first_close"] is None:
                            out["t_first_close"] = t
                    break
        except (OSError, EOFError, ValueError):
            out["resets"] += 1
        finally:
            c.close()
    out["seconds"] = round(time.monotonic() - t0, 3)
    print(json.dumps(out))


def raw(host, port, delay_ms, parts):
    c = Conn(host, port, timeout=3.0)
    for i, p in enumerate(parts):
        if i:
            time.sleep(delay_ms / 1000.0)
        c.s.sendall(codecs.decode(p, "unicode_escape").encode("latin-1"))
    c.s.settimeout(3.0)
    answers = []
    try:
        while True:
            status, hdrs, body = c.read_answer()
            answers.append({"status": status, "enforcer": hdrs.get("x-tollgate-enforcer"),
                            "connection": hdrs.get("connection"),
                            "body": body.decode("utf-8", "replace")[:300]})
    except (OSError, EOFError, ValueError, IndexError):
        pass
    c.close()
    print(json.dumps(answers))


def flood(host, port, key, seconds, conns, mode, path="/v1/models"):
    counts = {}
    lock = threading.Lock()
    t_end = time.monotonic() + seconds

    def note(k):
        with lock:
            counts[k] = counts.get(k, 0) + 1

    def worker(i):
        close = mode == "close" or (mode == "mixed" and i % 2 == 1)
        req = request_bytes(host, path, key, close)
        c = None
        while time.monotonic() < t_end:
            try:
                if c is None:
                    c = Conn(host, port, timeout=2.0)
                c.s.sendall(req)
                status, hdrs, _ = c.read_answer()
                note(f"{status}_{who(status, hdrs)}")
                if close or hdrs.get("connection", "").lower() == "close":
                    c.close()
                    c = None
            except (OSError, EOFError, ValueError, IndexError) as e:
                note("error_" + type(e).__name__)
                if c:
                    c.close()
                c = None
        if c:
            c.close()

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    counts["seconds"] = round(time.monotonic() - t0, 3)
    print(json.dumps(counts))


def paced(host, port, key, seconds, rate, path="/v1/models"):
    counts = {}
    t0 = time.monotonic()
    n = 0
    req = request_bytes(host, path, key, close=True)
    while n / rate < seconds:
        delay = t0 + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        n += 1
        try:
            c = Conn(host, port, timeout=2.0)
            c.s.sendall(req)
            status, hdrs, _ = c.read_answer()
            c.close()
            k = f"{status}_{who(status, hdrs)}"
        except (OSError, EOFError, ValueError, IndexError) as e:
            k = "error_" + type(e).__name__
        counts[k] = counts.get(k, 0) + 1
    print(json.dumps(counts))


def main(a):
    if a[0] == "escalate":
        escalate(a[1], int(a[2]), a[3], float(a[4]), a[5] if len(a) > 5 else None)
    elif a[0] == "raw":
        raw(a[1], int(a[2]), int(a[3]), a[4:])
    elif a[0] == "flood":
        flood(a[1], int(a[2]), a[3], float(a[4]), int(a[5]), a[6], *a[7:8])
    elif a[0] == "paced":
        paced(a[1], int(a[2]), a[3], float(a[4]), float(a[5]), *a[6:7])
    else:
        sys.exit(f"kclient.py: unknown command {a[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
