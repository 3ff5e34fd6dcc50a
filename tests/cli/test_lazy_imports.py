"""Commands that read files never import torch or transformers (seconds of start-up on a CPU machine).

Each command runs in a fresh interpreter, as a user runs it; an ``atexit`` hook then lists the heavy
packages left in ``sys.modules``. A behaviour test, not a timing: ``benchmarks/startup.py`` times them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from stored import write_stored

from precdiff.store import CaptureWriter
from precdiff.store.manifest import Manifest

HEAVY = ("torch", "transformers")
_PROBE = (
    "import atexit, runpy, sys\n"
    f"atexit.register(lambda: print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules)))\n"
    "sys.argv = ['precdiff', *sys.argv[1:]]\n"
    "runpy.run_module('precdiff', run_name='__main__')\n"
)


def _capture(path: Path, scale: float) -> Path:
    writer = CaptureWriter(path)
    writer.write_manifest(
        Manifest.from_dict(
            {
                "dtype": "float32",
                "model": {
                    "layers_path": "model.layers",
                    "num_layers": 2,
                    "weights_sha256": "w",
                    "config": {},
                },
            }
        )
    )
    writer.write_input([1, 2, 3, 4], "Hello, world")
    generator = torch.Generator().manual_seed(0)
    for name in ("model.layers.0", "model.layers.1", "lm_head"):
        tensor = torch.randn(1, 4, 16, generator=generator) * scale
        write_stored(writer, name, tensor)
    return writer.finish()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("lazy_imports")
    messages = folder / "messages.json"
    messages.write_text(json.dumps([{"role": "user", "content": "Hello, world"}]), encoding="utf-8")
    text = folder / "rendered.txt"
    text.write_text("<|user|>\nHello, world<|end|>\n", encoding="utf-8")
    ids = folder / "ids.json"
    ids.write_text("[1, 2, 3, 5]", encoding="utf-8")
    return {
        "a": _capture(folder / "A.h5", 1.0),
        "b": _capture(folder / "B.h5", 1.0 + 1e-3),
        "messages": messages,
        "text": text,
        "ids": ids,
    }


def _run(args: list[str], preamble: str = "") -> tuple[int, list[str]]:
    run = subprocess.run(
        [sys.executable, "-c", preamble + _PROBE, *args], capture_output=True, text=True, check=False
    )
    marker = [line for line in run.stdout.splitlines() if line.startswith("HEAVY=")]
    assert marker, run.stdout + run.stderr
    return run.returncode, [m for m in marker[-1].removeprefix("HEAVY=").split(",") if m]


@pytest.mark.parametrize(
    ("command", "codes"),
    [
        (["--help"], {0}),
        (["compare", "{a}", "{b}", "--json", "{out}/c.json", "--html", "{out}/c.html"], {0, 1}),
        (["inspect", "{a}", "--json", "{out}/i.json"], {0}),
        (["tokens", "--messages", "{messages}", "--a", "{text}", "--b", "{text}"], {0}),
        (["tokens", "--messages", "{messages}", "--a", "{ids}", "--b", "{a}"], {1}),
    ],
    ids=["help", "compare", "inspect", "tokens-text", "tokens-ids-vs-capture"],
)
def test_file_commands_import_neither_torch_nor_transformers(
    files: dict[str, Path], tmp_path: Path, command: list[str], codes: set[int]
) -> None:
    args = [part.format(out=tmp_path, **files) for part in command]
    code, heavy = _run(args)
    assert code in codes
    assert heavy == []


def test_the_probe_sees_torch_when_it_is_imported() -> None:
    # The probe must be able to fail: the same run with torch imported first reports it.
    code, heavy = _run(["--help"], preamble="import torch\n")
    assert code == 0
    assert heavy == ["torch"]
