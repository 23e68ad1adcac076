"""Test helpers for downloads: a local HTTP server, a closed port, and a guard that fails a test
whose code connects anywhere but this machine (a module that imports `loopback_only` is guarded
in every test)."""
import http.server
import socket
import threading

import pytest


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
  """Fails a test whose code connects a socket anywhere but this machine."""
  connect = socket.socket.connect

  def guarded(sock, address):
    host = address if isinstance(address, str) else address[0]  # A str: a Unix socket's path.
    assert isinstance(address, str) or host in ("localhost", "::1") or host.startswith("127."), (
        f"a test connected to {address}; expected loopback only")
    return connect(sock, address)

  monkeypatch.setattr(socket.socket, "connect", guarded)


class _Handler(http.server.BaseHTTPRequestHandler):
  """Serves `files` ({"/name": bytes}); a body in `short` is cut to half after a full
  Content-Length, as a dropped connection leaves it. Counts requests in `requests`."""
  files: dict = {}
  short: set = set()
  requests: list = []

  def do_GET(self):  # pylint: disable=invalid-name
    self.requests.append(self.path)
    if self.path not in self.files:
      self.send_error(404)
      return
    body = self.files[self.path]
    self.send_response(200)
    self.send_header("Content-Length", str(len(body)))
    self.end_headers()
    self.wfile.write(body[:len(body) // 2] if self.path in self.short else body)

  def log_message(self, *unused_args):
    pass


@pytest.fixture
def server():
  """A local HTTP server in a thread: (base URL, its handler class to fill)."""
  handler = type("Handler", (_Handler,), {"files": {}, "short": set(), "requests": []})
  httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
  thread.start()
  yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
  httpd.shutdown()
  httpd.server_close()


def closed_port() -> int:
  with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1]
