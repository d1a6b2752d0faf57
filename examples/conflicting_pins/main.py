"""Two providers that pin different versions of idna, answering from one host."""

from __future__ import annotations

import asyncio
import os
import sys
from importlib import metadata
from pathlib import Path

from hostel import Host

HERE = Path(__file__).resolve().parent


async def main() -> None:
    async with Host.from_config(HERE / "run.yaml") as host:
        try:
            host_idna = metadata.version("idna")
        except metadata.PackageNotFoundError:
            host_idna = "none"
        print(f"host    pid {os.getpid():>7}  idna {host_idna:<6}  {sys.prefix}")
        for provider_id in ("old", "new"):
            seen = await host.provider(provider_id).versions()
            print(f"{provider_id:<7} pid {seen['pid']:>7}  idna {seen['idna']:<6}  {seen['prefix']}")
        print("encode via old:", await host.provider("old").encode(domain="bücher.example"))
        letters = [x async for x in await host.provider("new").spell(word="hostel")]
        print("stream via new:", letters)


if __name__ == "__main__":
    asyncio.run(main())
