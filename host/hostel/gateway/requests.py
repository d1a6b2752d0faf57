"""What every gateway route does with a request and a reply: JSON bodies within the size limit, the call's
timeout and provider data from their headers, JSON or server-sent-event replies, errors in one shape."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from hostel.errors import HostelError
from hostel.gateway.auth import USER_KEY
from hostel.gateway.guard import SCOPE_USER
from hostel.gateway.http_errors import error_body, headers_for, internal_error_body, status_for
from hostel_sdk import codec
from hostel_sdk._blobs import Blob

logger = logging.getLogger(__name__)

# Per-request provider data: OGX 1.x's header, and Llama Stack's older name (read when the new one is absent).
PROVIDER_DATA_HEADER = "X-OGX-Provider-Data"
LEGACY_PROVIDER_DATA_HEADER = "X-LlamaStack-Provider-Data"
TIMEOUT_HEADER = "X-Hostel-Timeout"  # seconds; default: the config's call_timeout_s


class BadRequestError(Exception):
    def __init__(self, message: str, status: int = 400, type_name: str = "BadRequest") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type_name = type_name


def json_response(data: Any, status: int = 200) -> Response:
    return Response(codec.dumps(data), status_code=status, media_type="application/json")


def refused(body: dict[str, Any], status: int) -> Response:
    response = json_response(body, status)
    response.headers.update(refusal_headers(status))
    return response


def refusal_headers(status: int) -> dict[str, str]:
    """A body refused as too large (413), stalled (408) or past the host's budget (503): the rest of it is never
    read, so the connection ends rather than drain it; a 503 may be tried again in a second."""
    headers = {"Connection": "close"} if status in (408, 413, 503) else {}
    return {**headers, "Retry-After": "1"} if status == 503 else headers


def error_response(exc: BaseException) -> Response:
    response = json_response(error_body(exc), status_for(exc))
    response.headers.update(headers_for(exc))
    return response


def too_large(size: str, limit: int) -> BadRequestError:
    return BadRequestError(
        f"request body is {size}, over the {limit >> 20} MiB limit (hostel.max_message_mb); send less",
        413,
        "PayloadTooLargeError",
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) from its Content-Length before reading, or as soon as a chunked one passes ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequestError(f"Content-Length must be a number of bytes, got {declared!r}")
        if int(declared) > limit:
            raise too_large(f"{int(declared) / 2**20:.1f} MiB", limit)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large("more than that", limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request, limit: int) -> dict[str, Any]:
    raw = await read_body(request, limit)
    try:
        body = codec.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise BadRequestError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequestError(f"request body must be a JSON object of arguments, got {type(body).__name__}")
    return body


def call_timeout(request: Request) -> float | None:
    """The call's timeout from ``X-Hostel-Timeout`` (the host caps it at ``call_timeout_s``)."""
    header = request.headers.get(TIMEOUT_HEADER)
    if not header:
        return None
    try:
        value = float(header)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise BadRequestError(f"{TIMEOUT_HEADER} must be a finite, positive number of seconds, got {header!r}")
    return value


def read_provider_data(request: Request) -> Any:
    """The call's provider data: the header's (``X-OGX-Provider-Data``, else ``X-LlamaStack-Provider-Data``), with
    the authenticated user where Llama Stack keeps it (a client's own ``__authenticated_user`` key is dropped: nobody
    may claim to be someone)."""
    name = PROVIDER_DATA_HEADER if PROVIDER_DATA_HEADER in request.headers else LEGACY_PROVIDER_DATA_HEADER
    header = request.headers.get(name)
    data = None
    if header:
        try:
            data = codec.loads(header.encode())
        except ValueError as exc:
            raise BadRequestError(f"{name} header is not valid JSON: {exc}") from None
        if isinstance(data, dict):
            data.pop(USER_KEY, None)
    user = request.scope.get(SCOPE_USER)
    if user is not None:
        data = {**(data if isinstance(data, dict) else {}), USER_KEY: user.to_dict()}
    return data


async def events(stream: Any, *, openai: bool) -> AsyncIterator[bytes]:
    """Server-sent events; a client that goes away cancels this, which closes the provider's generator."""
    try:
        async for item in stream:
            yield b"data: " + codec.dumps(item) + b"\n\n"
        if openai:
            yield b"data: [DONE]\n\n"
    except HostelError as exc:
        yield b"event: error\ndata: " + codec.dumps(error_body(exc)) + b"\n\n"
    except Exception as exc:  # the status is sent already: end the stream with the error, logged once
        logger.exception("unexpected error while streaming a reply")
        yield b"event: error\ndata: " + codec.dumps(internal_error_body(exc)) + b"\n\n"
    finally:
        await stream.aclose()


def reply(result: Any, *, openai: bool = False) -> Response:
    if hasattr(result, "__aiter__"):
        return StreamingResponse(events(result, openai=openai), media_type="text/event-stream")
    if isinstance(result, Blob):  # bytes, a file's content, a Response: sent as the worker streams them
        media_type = result.media_type or result.content_type or "application/octet-stream"
        return StreamingResponse(
            result.views(), status_code=result.status_code, headers=dict(result.headers), media_type=media_type
        )
    return json_response(result)
