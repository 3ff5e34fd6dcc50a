"""Regenerate the sample HTML reports and their screenshots in docs/img/ from real runs on tiny models.

Usage (from the repository root, Chromium installed; ~1 minute on 2 cores):

    PYTHONPATH=$PWD python docs/img/make_screenshots.py [KIND ...]   (default: all four kinds)

- compare: examples/02_find_a_planted_fault (float32 reference vs a bfloat16 run with one weight
  perturbed in layer 2);
- invariance: tiny:llama on CPU whose ``model.layers.1.mlp.act_fn`` rounds by the batch's row count (a
  batch-dependent kernel planted by construction, as in tests/planted.py), batch sizes 2 and 8;
- determinism: ``lm_head`` shifted along a fixed random direction by 0.05 per bit of the row count, so
  that batches of different sizes part greedy completions (scaling the act_fn by 1e-3…0.2 per bit
  flipped no token of the tiny model), 24 random batches;
- tokens: examples/03_chat_template_diff, the Phi-3.5 template against the older Phi-3-mini one.

Writes docs/img/<kind>.json, <kind>.html and <kind>.png, and for compare docs/img/compare_outputs.png
(its logprobs and generation sections).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "img"
PRECDIFF = [sys.executable, "-m", "precdiff"]


class RowDependent(nn.Module):
    """A stand-in for a kernel whose result depends on the batch: with ``k`` the bit length of the row
    count (tokens × batch), the wrapped output is scaled by ``1 + scale·k``, or, given a fixed
    ``direction``, shifted by ``scale·k·direction``."""

    def __init__(self, inner: nn.Module, scale: float, direction: torch.Tensor | None = None) -> None:
        super().__init__()
        self.inner, self.scale, self.direction = inner, scale, direction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.inner(x)
        k = (y.numel() // max(y.shape[-1], 1)).bit_length()
        if self.direction is None:
            return y * (1.0 + self.scale * k)
        return y + self.scale * k * self.direction.to(y.dtype)


def planted_llama(module: str, scale: float, shift: bool = False) -> tuple[nn.Module, object]:
    from precdiff.capture import tiny

    model = tiny.build_model("llama")
    parent_name, _, attr = module.rpartition(".")
    parent = model.get_submodule(parent_name)  # "" (lm_head): the model itself
    inner = getattr(parent, attr)
    direction = None
    if shift:
        width = int(inner.weight.shape[0])  # the output width of a Linear (lm_head: the vocabulary)
        direction = torch.randn(width, generator=torch.Generator().manual_seed(0))
    setattr(parent, attr, RowDependent(inner, scale, direction))
    return model, tiny.build_tokenizer("llama")


def run(args: list[str], cwd: Path) -> None:
    command = [*PRECDIFF, *args] if args[0] != "python" else [sys.executable, *args[1:]]
    done = subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL)
    if done.returncode not in (0, 1):  # 1: the sample diverges, which is the point
        raise SystemExit(f"{' '.join(args)} exited {done.returncode}")


def compare_json(work: Path) -> dict[str, object]:
    plant = ROOT / "examples" / "02_find_a_planted_fault" / "plant_fault.py"
    run(["tiny", "save", "llama", "model"], work)
    run(["python", str(plant), "model", "faulty", "model.layers.2.mlp.up_proj.weight"], work)
    prompt = "Where does the error start?"
    run(
        ["capture", "model", "--out", "ref.h5", "--device", "cpu", "--dtype", "float32", "--prompt", prompt],
        work,
    )
    run(
        [
            "capture",
            "faulty",
            "--out",
            "faulty.h5",
            "--device",
            "cpu",
            "--dtype",
            "bfloat16",
            "--tokens-from",
            "ref.h5",
        ],
        work,
    )
    run(["compare", "ref.h5", "faulty.h5", "--force", "--json", "compare.json"], work)
    return dict(json.loads((work / "compare.json").read_text()))


def tokens_json(work: Path) -> dict[str, object]:
    phi3 = ROOT / "tests" / "fixtures" / "tokenizers" / "phi3"
    chat = ROOT / "examples" / "03_chat_template_diff" / "chat.json"
    old = f"{phi3}:{phi3 / 'phi-3-mini-4k-instruct.jinja'}"
    run(["tokens", "--messages", str(chat), "--a", str(phi3), "--b", old, "--json", "tokens.json"], work)
    return dict(json.loads((work / "tokens.json").read_text()))


def main() -> None:
    from precdiff.invariance import DeterminismOptions, InvarianceOptions, check_determinism, check_invariance
    from precdiff.report.html import write_html

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs Chromium: apt-get install chromium")
    kinds = sys.argv[1:] or ["compare", "invariance", "determinism", "tokens"]
    documents: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "compare" in kinds:
            documents["compare"] = compare_json(work)
        if "invariance" in kinds:
            eps = torch.finfo(torch.float32).eps
            model, tokenizer = planted_llama("model.layers.1.mlp.act_fn", eps)
            options = InvarianceOptions(device="cpu", batch_sizes=(2, 8))
            documents["invariance"] = check_invariance(model, options, tokenizer).to_dict()
        if "determinism" in kinds:
            model, tokenizer = planted_llama("lm_head", 0.05, shift=True)
            options = DeterminismOptions(device="cpu", runs=24, max_new_tokens=16, max_companions=7)
            documents["determinism"] = check_determinism(model, options, tokenizer).to_dict()
        if "tokens" in kinds:
            documents["tokens"] = tokens_json(work)
    for kind, document in documents.items():
        # Paths of the temporary run directory would only be noise in a committed sample.
        text = json.dumps(document, indent=1, ensure_ascii=False).replace(str(ROOT) + "/", "")
        (OUT / f"{kind}.json").write_text(text + "\n", encoding="utf-8")
        page = write_html(json.loads(text), OUT / f"{kind}.html", source=f"{kind}.json")
        screenshot(chromium, page, OUT / f"{kind}.png")
        if kind == "compare":
            # The outputs sections lie below the fold: a second picture of them alone (the page with
            # every other section hidden by one added style rule).
            outputs = Path(tempfile.mkdtemp()) / "compare_outputs.html"
            hide = "<style>main > section:not(#logprobs):not(#generation), main > details { display: none; }</style>"
            outputs.write_text(page.read_text(encoding="utf-8").replace("</head>", hide + "</head>", 1))
            screenshot(chromium, outputs, OUT / "compare_outputs.png", height=1100)
            shutil.rmtree(outputs.parent)
        print(f"wrote docs/img/{kind}.json, .html, .png")


def screenshot(chromium: str, page: Path, png: Path, height: int = 1500) -> None:
    """A headless Chromium screenshot of ``page``, 1280 px wide, with every network access refused."""
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--window-size=1280,{height}",
            f"--screenshot={png}",
            page.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
    )


if __name__ == "__main__":
    main()
