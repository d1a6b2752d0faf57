"""A tiny stand-in for the Kubernetes API, enough for the lmeval provider's LMEvalJob custom resources.

    python fake_kubernetes.py --port 16443 --kubeconfig OUT.yaml

Stores custom resources created with POST and answers GET with a finished job whose `status.results`
holds lm-evaluation-harness output, as the TrustyAI operator would once the job ran. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PATH = re.compile(
    r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)(?:/(?P<name>[^/?]+))?"
)
RESOURCES: dict[tuple[str, str, str], dict[str, Any]] = {}
LOCK = threading.Lock()


def results_for(cr: dict[str, Any]) -> str:
    tasks = cr.get("spec", {}).get("taskList", {}).get("taskNames", ["task"])
    return json.dumps({"results": {task: {"alias": task, "acc,none": 0.75, "acc_stderr,none": 0.05} for task in tasks}})


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

    def do_POST(self) -> None:
        match = PATH.match(self.path)
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if not match:
            self._send(404, {"kind": "Status", "status": "Failure", "code": 404})
            return
        name = body.setdefault("metadata", {}).get("name") or f"job-{len(RESOURCES) + 1}"
        body["metadata"].update(name=name, namespace=match["ns"], uid=f"uid-{name}")
        with LOCK:
            RESOURCES[(match["ns"], match["plural"], name)] = body
        self._send(201, body)

    def do_GET(self) -> None:
        match = PATH.match(self.path)
        with LOCK:
            cr = RESOURCES.get((match["ns"], match["plural"], match["name"] or "")) if match else None
        if cr is None:
            self._send(404, {"kind": "Status", "status": "Failure", "code": 404, "reason": "NotFound"})
            return
        self._send(
            200,
            {
                **cr,
                "status": {"state": "Complete", "reason": "Succeeded", "message": "done", "results": results_for(cr)},
            },
        )

    def do_DELETE(self) -> None:
        match = PATH.match(self.path)
        with LOCK:
            RESOURCES.pop((match["ns"], match["plural"], match["name"] or ""), None) if match else None
        self._send(200, {"kind": "Status", "status": "Success"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=16443)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    opts = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", opts.port), Handler)
    opts.kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
        f"clusters: [{{name: fake, cluster: {{server: 'http://127.0.0.1:{server.server_port}'}}}}]\n"
        "contexts: [{name: fake, context: {cluster: fake, user: fake, namespace: default}}]\n"
        "users: [{name: fake, user: {token: fake}}]\n"
    )
    print(f"fake Kubernetes API on http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
