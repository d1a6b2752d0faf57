"""A tiny stand-in for an FMS guardrails detector (the "direct" detector API) for the trustyai-fms provider.

    python fake_detector.py --port 18090

POST /api/v1/text/contents {"contents": [...], "detector_params": {...}} answers one list of detections
per content: an e-mail address is detected as PII (score 0.97), anything else as nothing. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


def detect(text: str) -> list[dict[str, Any]]:
    return [
        {"start": m.start(), "end": m.end(), "text": m.group(), "detection": "EmailAddress",
         "detection_type": "pii", "score": 0.97}
        for m in EMAIL.finditer(text)
    ]  # fmt: skip


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path != "/api/v1/text/contents":
            status, reply = 404, {"error": "not found"}
        else:
            status, reply = 200, [detect(text) for text in body.get("contents", [])]
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=18090)
    opts = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", opts.port), Handler)
    print(f"fake FMS detector on http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
