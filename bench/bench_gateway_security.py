"""What authentication and TLS cost the gateway: plain vs bearer auth vs TLS + bearer, in one run.

    python bench/bench_gateway_security.py [--json bench/results.json] [--requests 2000]

Three `hostel run` servers with the same provider, measured in turn with the same httpx client code as
bench/bench_gateway.py: the median latency of a small JSON call and requests/s with 16 in flight.
"""

from __future__ import annotations

import ssl
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import trustme

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _common import HostelRun, run_cli
from bench_gateway import _measure

from tests.conftest import make_config

TOKEN = "bench-token-of-enough-length"
BEARER = {"provider_config": {"type": "bearer", "tokens": [TOKEN]}}


async def bench(requests: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="hostel-bench-") as tmpdir:
        tmp = Path(tmpdir)
        ca = trustme.CA()
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(tmp / "server.pem"))
        ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
        trusting = ssl.create_default_context(cafile=str(tmp / "ca.pem"))
        setups = {
            "plain": {},
            "bearer auth": {"auth": BEARER},
            "TLS + bearer auth": {"auth": BEARER, "tls_certfile": str(tmp / "server.pem"),
                                  "tls_keyfile": str(tmp / "server.pem")},
        }  # fmt: skip
        results: dict[str, dict[str, float]] = {}
        for name, server in setups.items():
            scheme = "https" if "tls_certfile" in server else "http"
            config = make_config(tmp / name.replace(" ", "_"), server=server)
            run = HostelRun(config, env={"HOSTEL_LOG": "warning"}, scheme=scheme, verify=trusting)
            url = run.url
            headers = {"Authorization": f"Bearer {TOKEN}"} if "auth" in server else {}
            try:
                async with httpx.AsyncClient(timeout=60, verify=trusting, headers=headers) as client:
                    results[name] = await _measure(
                        client, f"{url}/v1/providers/t/echo", f"{url}/v1/providers/t/count", requests, 2000
                    )
            finally:
                run.stop()
    plain = results["plain"]
    return [
        {"setup": name, "median_ms": r["median_ms"], "requests_s": r["rps"],
         "throughput_vs_plain": r["rps"] / plain["rps"]}
        for name, r in results.items()
    ]  # fmt: skip


def main() -> None:
    run_cli(__doc__ or "", "gateway_security", "Gateway: plain vs auth vs TLS", bench, requests=2000)


if __name__ == "__main__":
    main()
