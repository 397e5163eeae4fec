"""What the fixture servers share: control files in their directory (argv[1]), the request log, and a loop that
serves on a loopback port, writes the port to `port`, closes the listener while `mode` is `refuse` (connection
refused) and opens it again on the same port, and exits when the test that started it is gone."""

import os
import sys
import threading
import time
from http.server import ThreadingHTTPServer

DIR = sys.argv[1]
# The secret key of the AWS credentials the tests give the daemon and the judge; every SigV4 signature is checked with it.
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
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


def check_signature(handler, body):
    auth = handler.headers.get("Authorization")
    if not auth:
        return "none"
    try:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(","))
        access_key, day, region, service, _ = fields["Credential"].split("/")
        signed = fields["SignedHeaders"].split(";")
        headers = {name: handler.headers.get(name) for name in signed}
        request = AWSRequest(method=handler.command, url="http://" + headers["host"] + handler.path,
                             headers=headers, data=body)
        request.context["timestamp"] = headers["x-amz-date"]
        signer = SigV4Auth(Credentials(access_key, SECRET, headers.get("x-amz-security-token")), service, region)
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        return "ok" if expected == fields["Signature"] else "bad"
    except Exception as error:  # a malformed header is a bad signature
        return "bad:" + type(error).__name__
