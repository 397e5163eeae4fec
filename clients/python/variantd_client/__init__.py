"""A small, standard-library-only client for variantd, the prompt-experiment sidecar.

The contract a service relies on: **nothing here raises into the request path**. ``assign``, ``prompt`` and
``render`` always return an answer; when the daemon is unreachable, slow or answers an error, the answer is the
control from the caller's :class:`Fallback` with ``reason == "fallback"``. ``record`` never blocks: it appends to
a bounded buffer that a background sender sends as ``batch`` lines with ``"ack": false``; when the buffer is full
or the daemon is down the record is dropped and counted (``client.dropped``).

Typical use::

    client = VariantClient(fallback="/etc/myservice/prompts-fallback.json")
    a = client.prompt("checkout-prompt", user_id, {"country": "US"})
    text = a.template                    # the prompt text to use, from the daemon or the fallback
    span.set_attributes(trace_attributes(a))
    ...
    client.record(a, latency_ms=812.5, error=False, success=True)

:class:`AsyncVariantClient` is the same for asyncio (``await client.prompt(...)``), with one connection carrying
every task's requests at once.

The modules: ``answers`` (what calls return), ``fallback``, ``rendering`` (the daemon's template rules),
``local_assignment`` (the daemon's decision computed here), ``protocol`` (request lines and answers, no I/O),
``operations`` (each call, once for both clients), ``transport`` and ``client`` (blocking), ``async_client``,
``records`` (the buffer and its sender), ``logs``.

See ``clients/README.md`` for the exact fallback behaviour, and ``protocol/PROTOCOL.md`` for the wire protocol.
"""

from .answers import Assignment, PromptVersion, Rendering, VariantdError, metadata, trace_attributes
from .async_client import AsyncVariantClient
from .client import VariantClient
from .fallback import Fallback, FallbackVariant
from .local_assignment import BUCKETS as BUCKETS, assign_locally, basis_points as basis_points, bucket, variant_index as variant_index
from .operations import DEFAULT_SOCKET

# Also importable, as they were from the single module: BUCKETS, basis_points, variant_index, template_value_text.
from .rendering import TemplateError, render_locally, render_template, template_value_text as template_value_text

__all__ = [
    "DEFAULT_SOCKET",
    "Assignment",
    "AsyncVariantClient",
    "Fallback",
    "FallbackVariant",
    "PromptVersion",
    "Rendering",
    "TemplateError",
    "VariantClient",
    "VariantdError",
    "assign_locally",
    "bucket",
    "metadata",
    "render_locally",
    "render_template",
    "trace_attributes",
]

__version__ = "0.1.0"
