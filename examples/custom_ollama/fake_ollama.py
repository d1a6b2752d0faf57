"""A small Ollama-API-compatible server for the example (no real model: answers are deterministic).

    python fake_ollama.py [--port 11434]

Serves /api/chat, /api/generate (both streaming NDJSON or not), /api/embed and /api/tags on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODELS = ["llama3.2:1b", "all-minilm"]
DIMENSION = 8


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def embed(text: str) -> list[float]:
    """A deterministic unit-length vector from the words of ``text`` (shared words -> similar vectors)."""
    vector = [0.0] * DIMENSION
    for raw in text.lower().split():
        word = raw.strip(".,!?")
        word = word[:-1] if len(word) > 3 and word.endswith("s") else word  # crude stemming: cats ~ cat
        digest = hashlib.sha256(word.encode()).digest()
        for i in range(DIMENSION):
            vector[i] += digest[i] / 255.0 - 0.5
    norm = sum(x * x for x in vector) ** 0.5 or 1.0
    return [x / norm for x in vector]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, parts: list[dict[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for part in parts:
            line = json.dumps(part).encode() + b"\n"
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def do_GET(self) -> None:
        if self.path == "/api/tags":
            models = [{"name": m, "model": m, "modified_at": _now(), "size": 0, "digest": "0" * 64} for m in MODELS]
            self._send(200, {"models": models})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        model = body.get("model", "")
        if model not in MODELS:
            self._send(404, {"error": f"model '{model}' not found, try pulling it first"})
            return
        if self.path == "/api/embed":
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            self._send(200, {"model": model, "embeddings": [embed(t) for t in texts]})
            return
        if self.path == "/api/chat":
            text = f"You said: {body['messages'][-1]['content']}"
        elif self.path == "/api/generate":
            text = f"Continuing: {body['prompt']}"
        else:
            self._send(404, {"error": "not found"})
            return
        key = "message" if self.path == "/api/chat" else "response"
        final = {"model": model, "created_at": _now(), "done": True, "done_reason": "stop", "prompt_eval_count": 3,
                 "eval_count": len(text.split())}  # fmt: skip
        if not body.get("stream", True):
            self._send(200, {**final, key: {"role": "assistant", "content": text} if key == "message" else text})
            return
        words = text.split(" ")
        parts = [
            {"model": model, "created_at": _now(), "done": False,
             key: {"role": "assistant", "content": w + (" " if i < len(words) - 1 else "")} if key == "message" else w}
            for i, w in enumerate(words)
        ]  # fmt: skip
        parts.append({**final, key: {"role": "assistant", "content": ""} if key == "message" else ""})
        self._stream(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=11434)
    opts = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", opts.port), Handler)
    print(f"fake Ollama listening on http://127.0.0.1:{opts.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
