"""What a user of the unmodified llama-stack-client 0.7.5 and openai clients does with guardrails served by hostel
(or by an OGX server that has hostel's Safety API): list and register shields, run them, moderate text.

    python client.py URL first       # shields, run_shield, moderations; registers shield "secrets"
    python client.py URL again       # after a server restart: "secrets" is still there; then unregisters it
    python client.py URL responses   # OGX only: a Responses call with guardrails, flagged and not
"""

from __future__ import annotations

import logging
import sys

from llama_stack_client import LlamaStackClient, NotFoundError
from openai import OpenAI

EMAIL = "write to ada@example.org"
SSN = "my ssn is 123-45-6789"


def shields(client: LlamaStackClient) -> list[tuple[str, str]]:
    return [(s.identifier, s.provider_id) for s in client.shields.list()]


def moderate(openai: OpenAI, text: str, model: str | None = None) -> str:
    result = openai.moderations.create(input=text, model=model) if model else openai.moderations.create(input=text)
    first = result.results[0]
    flagged = sorted(name for name, on in first.categories.model_dump().items() if on) or "-"
    return f"{result.model} flagged={first.flagged} {flagged}"


def first(client: LlamaStackClient, openai: OpenAI) -> None:
    client.shields.register(shield_id="secrets", provider_id="redaction")
    print("shields:", shields(client))
    print("secrets:", client.shields.retrieve("secrets").provider_resource_id)
    messages = [{"role": "user", "content": "hello there"}]
    print(
        "run_shield pii, clean:",
        client.safety.run_shield(shield_id="pii", messages=messages).violation.metadata["status"],
    )
    violation = client.safety.run_shield(shield_id="pii", messages=[{"role": "user", "content": EMAIL}]).violation
    print("run_shield pii, e-mail:", violation.violation_level, "-", violation.user_message.split(" (")[0])
    print("moderations redaction, ssn:", moderate(openai, SSN, "redaction"))
    print("moderations redaction, clean:", moderate(openai, "hello", "redaction"))
    print("moderations pii, e-mail:", moderate(openai, EMAIL, "pii"))
    print("moderations default, e-mail:", moderate(openai, EMAIL))
    try:
        client.safety.run_shield(shield_id="nope", messages=messages)
    except NotFoundError as exc:
        print("unknown shield:", exc.status_code)


def again(client: LlamaStackClient, openai: OpenAI) -> None:
    print("shields after a restart:", shields(client))
    print("moderations secrets, ssn:", moderate(openai, SSN, "secrets"))
    client.shields.delete("secrets")
    try:
        client.shields.retrieve("secrets")
    except NotFoundError as exc:
        print("unregistered secrets:", exc.status_code)


def responses(openai: OpenAI) -> None:
    for text in (SSN, "hello"):
        reply = openai.responses.create(model="echo/echo", input=text, extra_body={"guardrails": True})
        parts = [getattr(c, "refusal", None) or getattr(c, "text", "") for item in reply.output for c in item.content]
        print(f"responses {text!r}:", " ".join(parts))


def main(url: str, phase: str) -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    client = LlamaStackClient(base_url=url)
    openai = OpenAI(base_url=f"{url}/v1", api_key="none")
    {"first": lambda: first(client, openai), "again": lambda: again(client, openai),
     "responses": lambda: responses(openai)}[phase]()  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
