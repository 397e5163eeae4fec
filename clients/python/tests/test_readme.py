"""The asyncio example in clients/python/README.md runs as shown, against the real daemon.

FastAPI is not a dependency: the example's two FastAPI names are given a stand-in (``FastAPI(lifespan=...)`` and
its ``post`` decorator) that registers the handler and leaves it as it is, which is what FastAPI does with it too;
the test then calls the handler as a server would, many requests at once.
"""

from __future__ import annotations

import asyncio
import re
import sys
import types
from typing import Dict, List

from conftest import HERE
from variantd_client import VariantClient

README = (HERE.parent / "README.md").read_text()


def fastapi_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    example = next(block for block in blocks if "from fastapi import FastAPI" in block)
    return example


class StandInFastAPI:
    def __init__(self, lifespan=None) -> None:
        self.lifespan = lifespan
        self.routes: Dict[str, object] = {}

    def post(self, path: str):
        def register(handler):
            self.routes[path] = handler
            return handler

        return register


async def call_model(prompt: object, **params: object) -> str:
    await asyncio.sleep(0)
    return f"a reply to {len(str(prompt))} characters of prompt"


def test_the_fastapi_example_serves_requests_and_records_them(start_daemon, monkeypatch) -> None:
    daemon = start_daemon()
    monkeypatch.setenv("VARIANTD_SOCKET", daemon.socket_path)
    monkeypatch.setitem(sys.modules, "fastapi", types.SimpleNamespace(FastAPI=StandInFastAPI))
    namespace: Dict[str, object] = {"call_model": call_model, "__name__": "readme_example"}
    exec(compile(fastapi_example(), "README.md", "exec"), namespace)  # noqa: S102 - the documented example, as written
    app = namespace["app"]
    # The example keeps the default deadline (5 ms); 200 requests at once on a loaded test machine may take longer,
    # and this test is about the example's wiring, not the deadline (test_async_client pins that).
    namespace["variantd"].timeout = 5.0
    handler = app.routes["/reply"]

    async def serve() -> List[dict]:
        async with app.lifespan(app):
            return await asyncio.gather(*(handler({"user_id": f"user-{i}", "name": "Ada"}) for i in range(200)))

    replies = asyncio.run(serve())
    assert all(r["text"].startswith("a reply") and r["variantd.reason"] == "assigned" for r in replies), replies[:3]
    assert {r["variantd.variant"] for r in replies} == {"control", "concise"}
    checker = VariantClient(daemon.socket_path, timeout=5)
    try:
        stats = checker.stats("checkout-prompt")
        assert sum(v["records"] for v in stats["variants"]) == 200  # close() in the lifespan sent every record
    finally:
        checker.close()
