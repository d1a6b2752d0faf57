"""Talk to the bridged providers through an unmodified llama-stack-client.

python client.py http://127.0.0.1:8321            # chat and stream with both providers
python client.py http://127.0.0.1:8321 --crash    # then crash echo-old mid-request and watch it come back
"""

from __future__ import annotations

import sys
import time

from llama_stack_client import APIStatusError, LlamaStackClient


def chat(client: LlamaStackClient, model: str, text: str) -> str:
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])
    return str(reply.choices[0].message.content)


def main() -> None:
    client = LlamaStackClient(base_url=sys.argv[1])
    print("health:", client.inspect.health().status)
    print("models:", sorted(m.id for m in client.models.list() if m.id.startswith("echo-")))
    for model in ("echo-old/old", "echo-new/new"):
        print(f"{model}:", chat(client, model, "hello"))
        chunks = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "one two three"}], stream=True
        )
        print(f"{model} stream:", "".join(c.choices[0].delta.content or "" for c in chunks).strip())
    if "--crash" not in sys.argv:
        return
    try:
        chat(client, "echo-old/old", "crash")
    except APIStatusError as exc:
        print(f"crash: HTTP {exc.status_code}:", str(exc.message).splitlines()[0])
    print("meanwhile echo-new/new:", chat(client, "echo-new/new", "still here?"))
    for _ in range(100):  # the worker restarts in the background
        try:
            print("after the restart echo-old/old:", chat(client, "echo-old/old", "back?"))
            break
        except APIStatusError:
            time.sleep(0.1)


if __name__ == "__main__":
    main()
