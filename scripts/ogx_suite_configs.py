"""What each of OGX's suites runs against, both ways, for scripts/ogx_suites.py: the OGX run config with OGX's own
providers in process and the same providers bridged by their own type (``module: hostel``), the test setup that
picks the recorded models, and the differences between the two that are known, each with its reason."""

from __future__ import annotations

from pathlib import Path

# How each suite's tests pick their models: OGX's own setups, whose recordings the sdist ships. The responses suite
# is recorded with OGX's "gpt" setup (OpenAI's gpt-4o), whose default embedding model is a sentence-transformers
# one (torch, and a model from Hugging Face, which is not reachable); its file-search recordings hold OpenAI's
# text-embedding-3-small embeddings instead, and with no rerank model OGX's tests that need one skip themselves.
SETUPS = {
    "responses": ["--setup=gpt", "--embedding-model=openai/text-embedding-3-small", "--embedding-dimension=1536",
                  "--rerank-model="],
    "messages": ["--setup=gpt", "--embedding-model=", "--rerank-model="],  # recorded against gpt-4o too
    "interactions": ["--setup=gemini", "--embedding-model=", "--rerank-model="],  # OGX's default for it
}  # fmt: skip
# Tests that race their own server, each with the race: their outcome may differ between any two runs, in process
# or bridged, so a difference in them is reported but not held against the bridge.
RACES = {
    "responses": {
        "tests.integration.responses.test_openai_responses.TestOpenAIResponses::test_cancel_prevents_completion"
        "[txt=openai/gpt-4o]": "creates a background response and cancels it at once; the answer is replayed in "
        "microseconds, so on a busy machine the response can complete before the cancel arrives (bridged, the "
        "background work runs in another process, beside the server's answer to the create)",
    },
}
# Tests whose outcome differs bridged, each with the reason; a suite whose differences are exactly these passes.
# OGX's interactions provider sends a request for a Gemini model straight to Gemini's own /interactions endpoint,
# and finds out whether it can by reaching into the server's inference router (its routing_table, then the
# provider object behind the model, its base URL and API key). A worker reaches the server's APIs by their
# protocols' methods only, not its objects: bridged, the provider finds no routing table and takes its own path
# for that case, translating the request to a chat completion through the server's inference (as it does in
# process for any provider but Gemini). That works against a live Gemini; OGX recorded only the native requests.
_NATIVE = "the native /interactions passthrough needs the server's inference router objects; bridged it translates"
EXPECTED = {
    "interactions": {
        f"tests.integration.interactions.test_interactions::test_interactions_{name}[txt=gemini/gemini-2.5-flash-lite]":
            _NATIVE
        for name in ("no_tools_no_function_call", "non_streaming_basic", "non_streaming_generation_config",
                     "non_streaming_response_shape", "non_streaming_system_instruction")
    },
}  # fmt: skip
SQLITE3_STAND_IN = "pysqlite3-binary"  # for a Python whose sqlite3 cannot load extensions (the module docstring)
VECTOR_IO_FILES = ["test_openai_vector_stores.py", "test_vector_io.py", "test_vector_io_filters.py",
                   "test_vector_stores_access_control.py"]  # fmt: skip
STORAGE = {
    "backends": {
        "kv_default": {"type": "kv_sqlite", "db_path": "${env.STATE}/kvstore.db"},
        "sql_default": {"type": "sql_sqlite", "db_path": "${env.STATE}/sql_store.db"},
    },
    "stores": {
        "metadata": {"namespace": "registry", "backend": "kv_default"},
        "inference": {"table_name": "inference_store", "backend": "sql_default"},
        "conversations": {"table_name": "openai_conversations", "backend": "sql_default"},
        "prompts": {"table_name": "prompts", "backend": "sql_default"},
        "connectors": {"table_name": "connectors", "backend": "sql_default"},
    },
}


def _bridged(entry: dict[str, object], hostel: dict[str, object] | None = None) -> dict[str, object]:
    """The same provider entry, served through hostel's bridge: by its own type, hostel's keys under hostel:."""
    config = dict(entry.get("config") or {})  # type: ignore[call-overload]
    if hostel:
        config["hostel"] = hostel
    return {**entry, "module": "hostel", "config": config}


def _vector_io_worker(entry: dict[str, object], stand_in: Path | None) -> dict[str, object]:
    """hostel's settings for a bridged vector_io provider: faiss loads tiktoken's file at start (offline here);
    sqlite-vec imports numpy at its first insert or search, which OGX's registry does not list for it (in process
    the server's own install brings it: ``ogx[starter]``, or faiss-cpu here)."""
    env: dict[str, str | None] = {"TIKTOKEN_CACHE_DIR": None}
    packages = ["numpy"] if entry["provider_type"] == "inline::sqlite-vec" else []
    if stand_in is not None:
        env["PYTHONPATH"] = str(stand_in)
        packages.append(SQLITE3_STAND_IN)
    return {"env": env, **({"pip_packages": packages} if packages else {})}


def configs(
    suite: str, *, sqlite_vec: bool, stand_in: Path | None = None
) -> tuple[dict[str, object], dict[str, object]]:
    """The suite's OGX run config, in process and bridged (``stand_in``: sqlite3's, for the bridged workers too)."""
    files = {"provider_id": "builtin-files", "provider_type": "inline::localfs",
             "config": {"storage_dir": "${env.STATE}/files",
                        "metadata_store": {"table_name": "files_metadata", "backend": "sql_default"}}}  # fmt: skip
    base: dict[str, object] = {"version": 2, "storage": STORAGE, "server": {"host": "127.0.0.1"}}
    inference = [{"provider_id": "ollama", "provider_type": "remote::ollama",
                  "config": {"base_url": "${env.OLLAMA_URL:=http://127.0.0.1:11434/v1}"}}]  # fmt: skip
    if suite == "files":
        providers = {"files": [files]}
        bridged = {"files": [_bridged(files)]}
        apis = ["files"]
    elif suite == "inference":
        providers = {"inference": inference, "files": [files]}
        # OGX's test recorder, on in the worker as in the server (the bridge passes OGX_TEST_* on), imports these.
        recorder = {"pip_packages": ["aiohttp", "chardet", "pypdf"]}
        bridged = {"inference": [_bridged(inference[0], recorder)], "files": [files]}
        apis = ["inference", "files"]
    elif suite == "responses":
        # OGX's agent loop: the server's inference (OpenAI, replayed), vector stores, files, tool runtimes (web
        # search replayed too), conversations and prompts, all through its deps when bridged.
        responses = {
            "provider_id": "builtin",
            "provider_type": "inline::builtin",
            "config": {"persistence": {"responses": {"table_name": "responses", "backend": "sql_default"}}},
        }
        common = {
            "inference": [{"provider_id": "openai", "provider_type": "remote::openai",
                           "config": {"api_key": "replayed"}}],
            "vector_io": [{"provider_id": "faiss", "provider_type": "inline::faiss",
                           "config": {"persistence": {"namespace": "vector_io::faiss", "backend": "kv_default"}}}],
            "files": [files],
            "file_processors": [{"provider_id": "auto", "provider_type": "inline::auto"}],
            "tool_runtime": [
                {"provider_id": "tavily-search", "provider_type": "remote::tavily-search",
                 "config": {"api_key": "replayed", "max_results": 3}},
                {"provider_id": "file-search", "provider_type": "inline::file-search"},
                {"provider_id": "model-context-protocol", "provider_type": "remote::model-context-protocol"},
            ],
        }  # fmt: skip
        providers = {**common, "responses": [responses]}
        # The agent loop bridged, and the web search and MCP tool runtimes it calls through the server: a tool
        # call goes from its worker to the server and on to theirs. It counts tokens with tiktoken, whose files it
        # fetches unless told where a copy is (offline here); Tavily's answers are replayed in its worker.
        recorder = {"pip_packages": ["aiohttp", "chardet", "pypdf"]}
        tavily, file_search, mcp = common["tool_runtime"]
        bridged = {
            **common,
            "tool_runtime": [_bridged(tavily, recorder), file_search, _bridged(mcp, recorder)],
            "responses": [_bridged(responses, {"env": {"TIKTOKEN_CACHE_DIR": None}})],
        }
        apis = ["inference", "vector_io", "files", "file_processors", "tool_runtime", "responses"]
    elif suite in ("messages", "interactions"):
        # OGX's Anthropic Messages and Google Interactions APIs, each translating to (or passing through) the
        # server's inference; their recordings are of OpenAI's gpt-4o and Google's Gemini.
        stores = {
            "messages": {"kvstore": {"namespace": "message_batches", "backend": "kv_default"}},
            "interactions": {"store": {"table_name": "interactions", "backend": "sql_default"}},
        }
        own = {"provider_id": "builtin", "provider_type": "inline::builtin", "config": stores[suite]}
        model = (
            {"provider_id": "openai", "provider_type": "remote::openai", "config": {"api_key": "replayed"}}
            if suite == "messages"
            else {"provider_id": "gemini", "provider_type": "remote::gemini", "config": {"api_key": "replayed"}}
        )
        providers = {"inference": [model], "files": [files], suite: [own]}
        bridged = {"inference": [model], "files": [files], suite: [_bridged(own)]}
        apis = ["inference", "files", suite]
    elif suite == "file_processors":
        # OGX's file processor: a PDF uploaded to the server, its bytes carried to the worker beside the call.
        auto = {"provider_id": "auto", "provider_type": "inline::auto"}
        providers = {"files": [files], "file_processors": [auto]}
        # It splits text into chunks by tiktoken's counts (offline here: a copy of its file).
        bridged = {"files": [files], "file_processors": [_bridged(auto, {"env": {"TIKTOKEN_CACHE_DIR": None}})]}
        apis = ["files", "file_processors"]
    elif suite == "batches":
        batches = {"provider_id": "reference", "provider_type": "inline::reference",
                   "config": {"sqlstore": {"table_name": "batches", "backend": "sql_default"}}}  # fmt: skip
        providers = {"inference": inference, "files": [files], "batches": [batches]}
        bridged = {"inference": inference, "files": [files], "batches": [_bridged(batches)]}
        apis = ["inference", "files", "batches"]
    else:
        stores = [{"provider_id": "faiss", "provider_type": "inline::faiss",
                   "config": {"persistence": {"namespace": "vector_io::faiss", "backend": "kv_default"}}}]  # fmt: skip
        if sqlite_vec:
            persistence = {"namespace": "vector_io::sqlite_vec", "backend": "kv_default"}
            stores.append(
                {
                    "provider_id": "sqlite-vec",
                    "provider_type": "inline::sqlite-vec",
                    "config": {"db_path": "${env.STATE}/sqlite_vec.db", "persistence": persistence},
                }
            )
        common = {
            "inference": inference,
            "files": [files],
            "file_processors": [{"provider_id": "auto", "provider_type": "inline::auto"}],
        }  # fmt: skip
        providers = {**common, "vector_io": stores}
        bridged = {**common, "vector_io": [_bridged(s, _vector_io_worker(s, stand_in)) for s in stores]}
        apis = ["inference", "vector_io", "files", "file_processors"]
    return (
        {**base, "distro_name": f"{suite}-in-process", "apis": apis, "providers": providers},
        {**base, "distro_name": f"{suite}-bridged", "apis": apis, "providers": bridged},
    )
