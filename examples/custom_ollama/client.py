"""Query the running hostel with the unmodified openai client: chat, a streamed chat, embeddings, models."""

from __future__ import annotations

import os

import openai

client = openai.OpenAI(base_url=os.environ.get("HOSTEL_URL", "http://127.0.0.1:8321") + "/v1", api_key="unused")
print("models:", [m.id for m in client.models.list()])
reply = client.chat.completions.create(model="llama3", messages=[{"role": "user", "content": "Hello, hostel"}])
print("chat:", reply.choices[0].message.content)
stream = client.chat.completions.create(
    model="llama3", messages=[{"role": "user", "content": "one two three"}], stream=True
)
print("stream:", "".join(chunk.choices[0].delta.content or "" for chunk in stream))
vectors = client.embeddings.create(model="embed", input=["a cat", "a dog"])
print("embeddings:", [len(d.embedding) for d in vectors.data])
