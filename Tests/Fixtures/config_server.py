#!/usr/bin/env python3
"""A config endpoint on loopback that misbehaves on command, for variantd's hosted-config tests.

Usage: config_server.py DIR [--tls CERT KEY]

Everything is controlled through files in DIR, read on every request:
  doc          the document served (bytes as is); its ETag is a hash of the bytes
  mode         ok (default) | 500 | 404 | hang | stall | truncated | nonjson | oversized | redirect | refuse | noetag
  poll_interval  AppConfig's Next-Poll-Interval-In-Seconds (default 1)
  version_label  AppConfig's Version-Label (default none)
The server writes:
  port          the port, once listening
  requests.log  one line per request: METHOD PATH STATUS BODY_BYTES if-none-match=... signature=ok|bad|none

Paths: any GET serves the document (a static endpoint or the AppConfig Agent's); POST /configurationsessions
and GET /configuration?configuration_token=T emulate the AWS AppConfig Data API, with single-use tokens, and
check each request's SigV4 signature with botocore (the secret key is SECRET in fixture_server.py).
"""
import hashlib
import json
import os
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

from fixture_server import DIR, check_signature, log, mode, read, run

TLS = sys.argv[3:5] if len(sys.argv) >= 5 and sys.argv[2] == "--tls" else None
lock = threading.Lock()
tokens = {}  # token -> hash of the document last given to that session ("" for none yet)
counter = [0]





class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", headers=()):
        # Logged before the answer is sent: a client that has its answer finds the request counted.
        signature = getattr(self, "signature", "none")
        log(f"{self.command} {self.path.split('?')[0]} {status} {len(body)} "
            f"if-none-match={self.headers.get('If-None-Match') or '-'} signature={signature}")
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.signature = check_signature(self, body)
        if self.misbehave():
            return
        if self.path != "/configurationsessions":
            return self.answer(404, b'{"Message":"no such resource"}')
        if self.signature != "ok":
            return self.answer(403, b'{"Message":"The request signature we calculated does not match"}',
                               [("x-amzn-ErrorType", "SignatureDoesNotMatch")])
        request = json.loads(body)
        for key in ("ApplicationIdentifier", "EnvironmentIdentifier", "ConfigurationProfileIdentifier"):
            if not request.get(key):
                return self.answer(400, b'{"Message":"missing ' + key.encode() + b'"}',
                                   [("x-amzn-ErrorType", "BadRequestException")])
        token = self.new_token("")
        self.answer(201, json.dumps({"InitialConfigurationToken": token}).encode(),
                    [("Content-Type", "application/json")])

    def new_token(self, served):
        with lock:
            counter[0] += 1
            # Characters that must be percent-encoded in a query, as real tokens have them.
            token = f"AYADe+{counter[0]}/tok=="
            tokens[token] = served
            return token

    def do_GET(self):
        self.signature = check_signature(self, b"")
        if self.misbehave():
            return
        doc = read("doc", b"")
        parsed = urllib.parse.urlsplit(self.path)
        if parsed.path == "/configuration":
            if self.signature != "ok":
                return self.answer(403, b'{"Message":"signature"}', [("x-amzn-ErrorType", "SignatureDoesNotMatch")])
            query = urllib.parse.parse_qs(parsed.query)
            token = (query.get("configuration_token") or [""])[0]
            with lock:
                served = tokens.pop(token, None)
            if served is None:
                return self.answer(400, b'{"Message":"Token is not valid"}',
                                   [("x-amzn-ErrorType", "BadRequestException")])
            digest = hashlib.sha256(doc).hexdigest()
            body = b"" if served == digest else doc
            headers = [("Next-Poll-Configuration-Token", self.new_token(digest)),
                       ("Next-Poll-Interval-In-Seconds", (read("poll_interval", b"1") or b"1").decode().strip()),
                       ("Content-Type", "application/json")]
            label = read("version_label")
            if label:
                headers.append(("Version-Label", label.decode().strip()))
            return self.answer(200, body, headers)
        etag = '"' + hashlib.sha256(doc).hexdigest()[:16] + '"'
        if mode() != "noetag" and self.headers.get("If-None-Match") == etag:
            return self.answer(304, b"", [("ETag", etag)])
        headers = [("Content-Type", "application/json")]
        if mode() != "noetag":
            headers.append(("ETag", etag))
        self.answer(200, doc, headers)

    def misbehave(self):
        current = mode()
        if current in ("ok", "noetag"):
            return False
        if current == "refuse":
            # A connection kept alive from before: drop it, so that the client must connect (and be refused).
            log(f"{self.command} {self.path.split('?')[0]} dropped 0")
            self.close_connection = True
            return True
        if current == "500":
            self.answer(500, b"internal error")
        elif current == "404":
            self.answer(404, b"not found")
        elif current == "nonjson":
            self.answer(200, b"<html>not json</html>", [("ETag", '"html"')])
        elif current == "oversized":
            self.answer(200, b"{" + b" " * (4 << 20) + b"}", [("ETag", '"big"')])
        elif current == "redirect":
            self.answer(302, b"", [("Location", self.path)])
        elif current == "hang":
            log(f"{self.command} {self.path.split('?')[0]} hang 0")
            time.sleep(30)
            self.close_connection = True
        elif current in ("stall", "truncated"):
            doc = read("doc", b"")
            self.send_response(200)
            self.send_header("Content-Length", str(len(doc)))
            self.end_headers()
            self.wfile.write(doc[: len(doc) // 2])
            self.wfile.flush()
            log(f"{self.command} {self.path.split('?')[0]} {current} {len(doc) // 2}")
            if current == "stall":
                time.sleep(30)
            self.close_connection = True
        else:
            return False
        return True


if TLS:
    def wrap(listening):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(TLS[0], TLS[1])
        return context.wrap_socket(listening, server_side=True)

    run(Handler, wrap)
else:
    run(Handler)
