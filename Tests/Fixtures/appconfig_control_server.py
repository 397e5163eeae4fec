#!/usr/bin/env python3
"""The AWS AppConfig control-plane API on loopback, as variantd-judge publishes through it: hosted configuration
versions of one profile, and deployments. Every request's SigV4 signature is checked with botocore.

Usage: appconfig_control_server.py DIR

Control files in DIR (read on every request):
  doc        the content of hosted version 1 (written by the test before start)
  conflict   when present: the next CreateHostedConfigurationVersion first creates a version of its own (a concurrent
             edit: the content of `conflict`), then answers 409 ConflictException, as AppConfig does when
             Latest-Version-Number is stale; the file is removed
The server writes:
  port           the port, once listening
  requests.log   one line per request: METHOD PATH STATUS signature=ok|bad|none latest=HEADER
  version-N      the content of each hosted version created
  deployments    one line per deployment: ENVIRONMENT PROFILE VERSION STRATEGY
"""
import json
import os
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler

from fixture_server import DIR, check_signature, log, read, run

lock = threading.Lock()
versions = {}  # number -> content


def load_versions():
    if not versions:
        versions[1] = read("doc", b"")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", headers=()):
        log(f"{self.command} {urllib.parse.urlsplit(self.path).path} {status} signature={self.signature} "
            f"latest={self.headers.get('Latest-Version-Number') or '-'}")
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def error(self, status, kind, message):
        self.answer(status, json.dumps({"Message": message}).encode(), [("x-amzn-ErrorType", kind)])

    def route(self, body):
        self.signature = check_signature(self, body)
        if self.signature != "ok":
            return self.error(403, "InvalidSignatureException", "The request signature we calculated does not match")
        parts = urllib.parse.urlsplit(self.path).path.strip("/").split("/")
        with lock:
            load_versions()
            if len(parts) == 5 and parts[0] == "applications" and parts[2] == "configurationprofiles" \
                    and parts[4] == "hostedconfigurationversions":
                if self.command == "GET":
                    latest = max(versions)
                    items = [{"ApplicationId": parts[1], "ConfigurationProfileId": parts[3], "VersionNumber": latest}]
                    return self.answer(200, json.dumps({"Items": items}).encode(), [("Content-Type", "application/json")])
                return self.create(body)
            if len(parts) == 6 and parts[4] == "hostedconfigurationversions" and self.command == "GET":
                number = int(parts[5])
                if number not in versions:
                    return self.error(404, "ResourceNotFoundException", f"version {number}")
                return self.answer(200, versions[number], [("Content-Type", "application/json"),
                                                           ("Version-Number", str(number))])
            if len(parts) == 5 and parts[2] == "environments" and parts[4] == "deployments" and self.command == "POST":
                request = json.loads(body)
                number = int(request["ConfigurationVersion"])
                if number not in versions or not request.get("DeploymentStrategyId"):
                    return self.error(400, "BadRequestException", "unknown version or no strategy")
                with open(os.path.join(DIR, "deployments"), "a") as f:
                    f.write(f"{parts[3]} {request['ConfigurationProfileId']} {number} {request['DeploymentStrategyId']}\n")
                return self.answer(201, json.dumps({"DeploymentNumber": 1, "State": "DEPLOYING"}).encode(),
                                   [("Content-Type", "application/json")])
        return self.error(404, "ResourceNotFoundException", "no such resource")

    def create(self, body):
        concurrent = read("conflict")
        if concurrent is not None:
            os.remove(os.path.join(DIR, "conflict"))
            self.store(max(versions) + 1, concurrent)
        latest = self.headers.get("Latest-Version-Number")
        if latest is not None and int(latest) != max(versions):
            return self.error(409, "ConflictException", f"latest version is {max(versions)}, not {latest}")
        try:
            json.loads(body)
        except ValueError:
            return self.error(400, "BadRequestException", "content is not JSON")
        number = max(versions) + 1
        self.store(number, body)
        return self.answer(201, b"", [("Version-Number", str(number))])

    def store(self, number, content):
        versions[number] = content
        with open(os.path.join(DIR, f"version-{number}"), "wb") as f:
            f.write(content)

    def do_GET(self):
        self.route(b"")

    def do_POST(self):
        self.route(self.rfile.read(int(self.headers.get("Content-Length") or 0)))


run(Handler)
