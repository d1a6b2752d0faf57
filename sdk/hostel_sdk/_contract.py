"""The hostel_sdk modules the host imports too: the internal contract between the two packages.

Not for provider authors, whose surface is ``hostel_sdk`` (``Api``, ``request_provider_data``),
``hostel_sdk.api``, ``hostel_sdk.codec`` and ``hostel_sdk.testing``. A change to one of these modules is a
change to both sides of the wire; tests/test_layers.py keeps the host to this list.
"""

from __future__ import annotations

SHARED_WITH_HOST = frozenset(
    {
        "hostel_sdk",  # __version__
        "hostel_sdk.api",  # API names
        "hostel_sdk.codec",  # JSON in and out, argument binding
        "hostel_sdk._messages",  # the wire messages
        "hostel_sdk._wire",  # stubs, handlers, channel options, tokens, TLS
        "hostel_sdk._client",  # reading replies and streams
        "hostel_sdk._health",  # the liveness probe's stub
        "hostel_sdk._handshake",  # the handshake line, protocol version, the stacks signal
        "hostel_sdk._start",  # the start request
        "hostel_sdk._service",  # error replies (the callback service answers as a worker does); a hub serves as one
        "hostel_sdk._context",  # a call's provider data and deadline (a hub relays them)
        "hostel_sdk._deps",  # the callback client (a hub calls its server processes' APIs as a worker would)
        "hostel_sdk._exposure",  # which method names a caller may name
        "hostel_sdk._llama_stack",  # API protocols (the Llama Stack bridge)
        "hostel_sdk._blobs",  # bytes, files and responses beside a call (SendBlob, ReadBlob, the Blob result)
        "hostel_sdk._received",  # the blobs a call's arguments bring (the callback service receives them too)
        "hostel_sdk._exceptions",  # a provider's exception as its own type (the Llama Stack bridge)
        "hostel_sdk._sandbox",  # its source starts a sandboxed provider's processes confined (hostel._confine)
    }
)
