#!/usr/bin/env python3
"""A fake Langfuse on loopback for variantd's prompt-source tests: the public API's prompt endpoint, and its failures.

Usage: langfuse_server.py DIR

Controlled through files in DIR, read on every request:
  prompts.json  a JSON array of prompt versions as Langfuse stores them: {"name", "version", "type": "text"|"chat",
                "prompt": STRING | [MESSAGE, ...], "config", "labels", "tags", "commitMessage"?}
  mode          ok (default) | 500 | hang | garbage | refuse
  keys          PUBLIC:SECRET accepted for basic auth (default pk-lf-test:sk-lf-test)
The server writes:
  port          the port, once listening
  requests.log  one line per request: GET NAME version=N|label=L|- STATUS

GET /api/public/v2/prompts/{name}?version=N or ?label=L (neither: label production) answers the prompt version in
the API's shape (the object above plus "resolutionGraph": null), 404 {"message": ...} when there is none, 401 on a
missing or wrong Authorization header, as Langfuse does.
"""
import base64
import json
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

from fixture_server import DIR, log, mode, read, run


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, what):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        # Logged before the answer is sent: a client that has its answer finds the request counted.
        log(f"GET {what} {status}")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def do_GET(self):
        parsed = urllib.parse.urlsplit(self.path)
        prefix = "/api/public/v2/prompts/"
        query = urllib.parse.parse_qs(parsed.query)
        name = urllib.parse.unquote(parsed.path[len(prefix):]) if parsed.path.startswith(prefix) else None
        version = (query.get("version") or [None])[0]
        label = (query.get("label") or [None])[0]
        what = f"{name} " + (f"version={version}" if version else f"label={label}" if label else "-")
        current = mode()
        if current == "hang":
            log(f"GET {what} hang")
            time.sleep(30)
            self.close_connection = True
            return
        if current == "500":
            return self.answer(500, {"message": "Internal Server Error"}, what)
        if current == "garbage":
            return self.answer(200, b"<html>maintenance</html>", what)
        keys = (read("keys", b"pk-lf-test:sk-lf-test") or b"").decode().strip()
        expected = "Basic " + base64.b64encode(keys.encode()).decode()
        if self.headers.get("Authorization") != expected:
            return self.answer(401, {"error": "UnauthorizedError", "message": "Invalid credentials"}, what)
        if name is None:
            return self.answer(404, {"message": "Not found"}, what)
        prompts = json.loads(read("prompts.json", b"[]") or b"[]")
        candidates = [p for p in prompts if p["name"] == name]
        if version is not None:
            found = [p for p in candidates if str(p["version"]) == version]
        else:
            wanted = label or "production"
            found = [p for p in candidates if wanted in p.get("labels", [])]
        if not found:
            return self.answer(404, {"error": "LangfuseNotFoundError", "message": "Prompt not found"}, what)
        prompt = dict(found[0])
        prompt.setdefault("config", {})
        prompt.setdefault("labels", [])
        prompt.setdefault("tags", [])
        prompt["resolutionGraph"] = None
        self.answer(200, prompt, what)


run(Handler)
