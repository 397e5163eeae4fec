#!/usr/bin/env python3
"""A worked example: a service that asks variantd for its prompt, calls a (fake, local) model, and records
latency, errors and success.

    python3 clients/python/example_service.py --socket /tmp/variantd.sock --requests 20

It works with the daemon down too: every request is then served the fallback's control prompt.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from variantd_client import VariantClient, metadata  # noqa: E402

# What the service serves when variantd cannot answer: its own copy of each experiment's control.
FALLBACK = {
    "checkout-prompt": {
        "variant": "control",
        "prompt": "checkout",
        "prompt_version": 1,
        "template": "You are a friendly checkout assistant for {{store_name}}. Help {{customer_name}} finish their order.",
    }
}


class ModelError(Exception):
    pass


def fake_model(prompt: str, rng: random.Random) -> str:
    """Stands in for an LLM call: a little latency, an occasional failure."""
    time.sleep(rng.uniform(0.001, 0.004))
    if rng.random() < 0.1:
        raise ModelError("the model timed out")
    return f"({len(prompt)} characters of prompt) Your order is ready to check out."


def render(template: str, values: dict) -> str:
    for name, value in values.items():
        template = template.replace("{{" + name + "}}", value)
    return template


def handle(client: VariantClient, user: str, rng: random.Random) -> str:
    assignment = client.prompt("checkout-prompt", user)
    trace = metadata(assignment)  # attach to the request's trace (Langfuse metadata, or trace_attributes for OTel)
    prompt = render(assignment.template or FALLBACK["checkout-prompt"]["template"],
                    {"store_name": "Example Store", "customer_name": user, "tone": "warm"})
    started = time.perf_counter()
    try:
        reply = fake_model(prompt, rng)
    except ModelError:
        client.record(assignment, latency_ms=(time.perf_counter() - started) * 1000, error=True, success=False)
        return f"{user}: {trace['variant']} ({trace['reason']}) -> error"
    client.record(assignment, latency_ms=(time.perf_counter() - started) * 1000, error=False, success=rng.random() < 0.6)
    return f"{user}: {trace['variant']} ({trace['reason']}, prompt v{trace['prompt_version']}) -> {reply[:30]}..."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", help="the daemon's socket (default $VARIANTD_SOCKET, else /run/variantd/variantd.sock)")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=0.05, help="seconds per request to the daemon")
    args = parser.parse_args()
    rng = random.Random(7)
    with VariantClient(args.socket, fallback=FALLBACK, timeout=args.timeout) as client:
        for i in range(args.requests):
            print(handle(client, f"user-{i}", rng))
        client.flush(5)
        print(f"sent {client.sent} records, dropped {client.dropped}, rejected {client.rejected}, fallbacks {client.fallbacks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
