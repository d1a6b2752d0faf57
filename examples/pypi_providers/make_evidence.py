"""Make a signed CSOAI evidence batch and the pinned DID document that verifies it (for the csoai provider).

    python make_evidence.py OUT_DIR      # run with an interpreter that has `cryptography` (the csoai env has)

Writes OUT_DIR/did.json and OUT_DIR/batch-ok/ (valid), OUT_DIR/batch-tampered/ (events edited after signing).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

KEY_ID = "did:web:example.org#key-1"


def canon(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    jwk_x = base64.urlsafe_b64encode(public).rstrip(b"=").decode()
    did = {
        "id": "did:web:example.org",
        "verificationMethod": [{"id": KEY_ID, "publicKeyJwk": {"kty": "OKP", "crv": "Ed25519", "x": jwk_x}}],
    }
    (out / "did.json").write_text(json.dumps(did))

    events = [
        {"event_id": "e1", "state": "OBSERVED", "subject": {"locator": "model:llama3"}, "method": {"id": "m-redteam"}},
        {"event_id": "e2", "state": "NOT_OBSERVED", "subject": {"locator": "model:llama3"}, "method": {"id": "m-bias"}},
    ]
    raw_events = "".join(json.dumps(e) + "\n" for e in events).encode()
    batch = {"events_file": {"sha256": hashlib.sha256(raw_events).hexdigest()}}
    raw_batch = json.dumps(batch).encode()
    payload = {"artifact": {"sha256": hashlib.sha256(raw_batch).hexdigest()}, "issuer": "did:web:example.org"}
    signature = {
        "payload_sha256": hashlib.sha256(canon(payload)).hexdigest(),
        "did": KEY_ID,
        "sig_ed25519": key.sign(canon(payload)).hex(),
        "signed_at": "2026-11-25T00:00:00Z",
    }
    ok = out / "batch-ok"
    ok.mkdir(exist_ok=True)
    (ok / "batch.json").write_bytes(raw_batch)
    (ok / "batch.signed.json").write_text(json.dumps({"payload": payload, "signature": signature}))
    (ok / "events.jsonl").write_bytes(raw_events)
    tampered = out / "batch-tampered"
    shutil.copytree(ok, tampered, dirs_exist_ok=True)
    (tampered / "events.jsonl").write_bytes(raw_events.replace(b"NOT_OBSERVED", b"OBSERVED"))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
