"""Run the PyPI providers of run.yaml side by side and call each end to end (loopback only)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from hostel import Host

HERE = Path(__file__).resolve().parent
EVIDENCE = HERE / "evidence"
CANDIDATE = {"eval_candidate": {"type": "model", "model": "any", "sampling_params": {}}}


async def csoai(host: Host) -> None:
    eval_api = host.provider("csoai")
    bundles = [str(EVIDENCE / "batch-ok"), str(EVIDENCE / "batch-tampered")]
    await eval_api.register_benchmark(
        task_def={"identifier": "evidence", "provider_id": "csoai", "dataset_id": "evidence",
                  "scoring_functions": ["csoai::state"], "metadata": {"bundles": bundles}}
    )  # fmt: skip
    job = await eval_api.run_eval(benchmark_id="evidence", benchmark_config=CANDIDATE)
    result = await eval_api.job_result(benchmark_id="evidence", job_id=job["job_id"])
    print("csoai:", result["scores"]["csoai::state"]["aggregated_results"])


def report(host: Host) -> None:
    """Each provider's own Python and Llama Stack, read from its env's metadata."""
    for provider_id in host.provider_ids:
        env = host.env(provider_id)
        assert env is not None
        if "llama-stack" not in " ".join(env.metadata["resolved"]):
            continue  # the fakes
        pins = dict(p.split("==", 1) for p in env.metadata["resolved"] if "==" in p)
        python = env.metadata["spec"]["python"]["version"]
        print(
            f"{provider_id}: python {python}, llama-stack {pins.get('llama-stack', '-')}, "
            f"llama-stack-api {pins.get('llama-stack-api', '-')}, env {env.path.name}"
        )


async def lmeval(host: Host) -> None:
    eval_api = host.provider("lmeval")
    await eval_api.register_benchmark(
        benchmark={"identifier": "arc", "provider_id": "lmeval", "dataset_id": "arc", "scoring_functions": ["acc"],
                   "provider_resource_id": "arc_easy", "metadata": {}}
    )  # fmt: skip
    job = await eval_api.run_eval(benchmark_id="arc", benchmark_config=CANDIDATE)
    status = await eval_api.job_status(benchmark_id="arc", job_id=job["job_id"])
    result = await eval_api.job_result(benchmark_id="arc", job_id=job["job_id"])
    print("lmeval:", status["status"], {name: s["aggregated_results"] for name, s in result["scores"].items()})


async def ragas(host: Host) -> None:
    eval_api = host.provider("ragas", timeout=300)
    await eval_api.register_benchmark(
        {"identifier": "similarity", "provider_id": "ragas", "dataset_id": "qa",
         "scoring_functions": ["answer_similarity"], "metadata": {}}
    )  # fmt: skip
    job = await eval_api.run_eval(benchmark_id="similarity", benchmark_config=CANDIDATE)
    while (await eval_api.job_status(benchmark_id="similarity", job_id=job["job_id"]))["status"] == "in_progress":
        await asyncio.sleep(0.2)
    result = await eval_api.job_result(benchmark_id="similarity", job_id=job["job_id"])
    scores = [round(row["score"], 2) for row in result["scores"]["answer_similarity"]["score_rows"]]
    print("ragas: answer_similarity per row", scores)


async def kft(host: Host) -> None:
    # Training itself would submit PyTorchJobs to a Kubeflow cluster; listing jobs shows it serving.
    print("kft: jobs", await host.provider("kft").get_training_jobs())


async def fms(host: Host) -> None:
    shield = host.provider("fms")
    clean = await shield.run_shield(shield_id="pii", messages=[{"role": "user", "content": "hello there"}])
    leak = await shield.run_shield(shield_id="pii", messages=[{"role": "user", "content": "mail ada@example.org"}])
    print("fms:", clean["violation"]["metadata"]["status"], "/", leak["violation"]["violation_level"], "-",
          leak["violation"]["user_message"])  # fmt: skip


async def redaction(host: Host) -> None:
    messages = [{"role": "user", "content": "my ssn is 123-45-6789"}]
    reply = await host.provider("redaction").run_shield(shield_id="redaction", messages=messages)
    print("redaction:", reply, "->", messages[0]["content"])


def fake_detector() -> subprocess.Popen[bytes]:
    """The stand-in FMS detector for trustyai-fms, on a free loopback port."""
    server = subprocess.Popen([sys.executable, str(HERE / "fake_detector.py"), "--port", "0"], stdout=subprocess.PIPE)
    assert server.stdout is not None
    line = server.stdout.readline().decode()
    os.environ["FMS_DETECTOR_URL"] = line.split(" on ", 1)[1].strip()
    return server


def fake_kubernetes() -> subprocess.Popen[bytes]:
    """The stand-in Kubernetes API for lmeval; the provider's Kubernetes client finds it through KUBECONFIG."""
    kubeconfig = EVIDENCE / "kubeconfig.yaml"
    server = subprocess.Popen(
        [sys.executable, str(HERE / "fake_kubernetes.py"), "--port", "0", "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.PIPE,
    )
    assert server.stdout is not None and b"fake Kubernetes API" in server.stdout.readline()
    os.environ["KUBECONFIG"] = str(kubeconfig)  # passed to lmeval's worker by its `env: [KUBECONFIG]`
    return server


async def main() -> None:
    os.environ.setdefault("CSOAI_DID_JSON", str(EVIDENCE / "did.json"))
    EVIDENCE.mkdir(exist_ok=True)
    kubernetes, detector = fake_kubernetes(), fake_detector()
    try:
        # `hostel build` first, for its progress: the first run downloads and installs every provider's env
        # (1.6 GB from PyPI) and would otherwise be silent for minutes. Later runs find them built.
        print("building the providers' envs (first run: minutes, 1.6 GB from PyPI)", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "hostel", "build", str(HERE / "run.yaml")], check=True, stdout=sys.stderr)
        host = Host.from_config(HERE / "run.yaml")
        await host.build()  # reuses them; the evidence is signed with the csoai env's own `cryptography`
        csoai_python = host.env("csoai").python  # type: ignore[union-attr]
        subprocess.run([str(csoai_python), str(HERE / "make_evidence.py"), str(EVIDENCE)], check=True)
        async with host:
            report(host)
            await csoai(host)
            await lmeval(host)
            await kft(host)
            await fms(host)
            await redaction(host)
            await ragas(host)
    finally:
        for server in (kubernetes, detector):
            server.terminate()
            server.wait()


if __name__ == "__main__":
    asyncio.run(main())
