"""Baseline for the gateway benchmark: a bare Starlette app on uvicorn returning the same JSON and SSE."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


async def echo(request: Request) -> Response:
    body = json.loads(await request.body())
    return Response(json.dumps(body["value"]), media_type="application/json")


async def count(request: Request) -> Response:
    n = json.loads(await request.body())["n"]

    async def events() -> AsyncIterator[str]:
        for i in range(n):
            yield f"data: {json.dumps(i)}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


app = Starlette(routes=[Route("/echo", echo, methods=["POST"]), Route("/count", count, methods=["POST"])])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
