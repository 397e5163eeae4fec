"""What the fixture servers share: control files in their directory (argv[1]), the request log, and a loop that
serves on a loopback port, writes the port to `port`, closes the listener while `mode` is `refuse` (connection
refused) and opens it again on the same port, and exits when the test that started it is gone."""

import os
import sys
import threading
import time
from http.server import ThreadingHTTPServer

DIR = sys.argv[1]
_lock = threading.Lock()


def read(name, default=None):
    try:
        with open(os.path.join(DIR, name), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return default


def mode():
    return (read("mode", b"ok") or b"ok").decode().strip() or "ok"


def log(line):
    with _lock:
        with open(os.path.join(DIR, "requests.log"), "a") as f:
            f.write(line + "\n")


class Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True


def run(handler, wrap_socket=None):
    """Serves `handler` until the parent process is gone; `wrap_socket` (for TLS) wraps each listening socket."""

    def serve(port):
        server = Server(("127.0.0.1", port), handler)
        if wrap_socket is not None:
            server.socket = wrap_socket(server.socket)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        thread.start()
        return server

    server = serve(0)
    port = server.server_address[1]
    with open(os.path.join(DIR, "port.tmp"), "w") as f:
        f.write(str(port))
    os.rename(os.path.join(DIR, "port.tmp"), os.path.join(DIR, "port"))
    while True:
        time.sleep(0.02)
        if os.getppid() == 1:  # the test that started us is gone
            break
        refusing = mode() == "refuse"
        if refusing and server is not None:
            server.shutdown()
            server.server_close()
            server = None
        elif not refusing and server is None:
            for _ in range(100):
                try:
                    server = serve(port)
                    break
                except OSError:
                    time.sleep(0.05)
