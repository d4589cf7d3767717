#!/usr/bin/env python3
"""A request-counting HTTP proxy for measurements: forwards every request to an S3 server
unchanged (the Host header included, so signatures still match) and appends one line per
request, `METHOD PATH STATUS`, to a log file. What cairn sends is counted on the wire, not
by cairn's own word.

    count_requests.py LISTEN_PORT UPSTREAM_URL LOG_FILE

Binds 127.0.0.1 only. Standard library only; one thread per client connection, keep-alive
kept. Stop it with SIGTERM.
"""

import http.client
import http.server
import sys
import threading
import urllib.parse

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
}


def main():
    port, upstream, log_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    up = urllib.parse.urlsplit(upstream)
    log = open(log_path, "a", buffering=1)
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def read_body(self):
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def forward(self):
            body = self.read_body()
            conn = getattr(self, "upstream", None)
            if conn is None:
                conn = http.client.HTTPConnection(up.hostname, up.port or 80, timeout=60)
                self.upstream = conn
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"
            }
            if body or self.command in ("PUT", "POST"):
                headers["Content-Length"] = str(len(body))
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self.upstream = None
                raise
            with lock:
                log.write(f"{self.command} {self.path.split('?')[0]} {resp.status}\n")
            self.send_response_only(resp.status, resp.reason)
            no_body = self.command == "HEAD" or resp.status in (204, 304)
            for k, v in resp.getheaders():
                if k.lower() in HOP_BY_HOP or (k.lower() == "content-length" and not no_body):
                    continue
                self.send_header(k, v)
            if not no_body:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not no_body:
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
