"""Regenerate (or with --check, verify) the protobuf code committed under sdk/hostel_sdk/_proto.

Run with the pinned grpcio-tools from the `proto` tox env: `tox -e proto` (or `tox -e proto -- --check`).
Only message code (`*_pb2.py` and `.pyi` stubs) is generated: the gRPC service wiring is written by hand
in `hostel_sdk._wire` so that the generated code does not demand a minimum grpcio version.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
OUT = ROOT / "sdk" / "hostel_sdk" / "_proto"


def generate(into: Path) -> list[Path]:
    """Generate every proto under protos/ into `into`; return the generated files."""
    from grpc_tools import protoc  # the pinned grpcio-tools of the `proto` env, not needed for --help

    protos = sorted(PROTO_ROOT.rglob("*.proto"))
    args = ["protoc", f"-I{PROTO_ROOT}", f"--python_out={into}", f"--pyi_out={into}", *map(str, protos)]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted(p for p in into.rglob("*") if p.suffix in {".py", ".pyi"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the committed code is not current")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generated = generate(Path(tmp))
        stale = []
        for path in generated:
            target = OUT / path.name  # flat: the protos import nothing from each other
            if opts.check:
                if not target.exists() or not filecmp.cmp(path, target, shallow=False):
                    stale.append(target.relative_to(ROOT))
            else:
                shutil.copyfile(path, target)
    if stale:
        print("generated protobuf code is stale: " + ", ".join(map(str, stale)), file=sys.stderr)
        print("regenerate it with: tox -e proto", file=sys.stderr)
        return 1
    print("protobuf code is current" if opts.check else f"generated {len(generated)} files into {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
