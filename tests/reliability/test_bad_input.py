"""Bad input of every kind, as a new user and a careless script would give it, through the CLI.

Every case asserts the exit code, that no traceback was printed, a phrase of the one-line message,
and the state of the files afterwards: inputs unchanged, an existing output untouched by a failed run,
no stray output. In-process (CliRunner); signals and resource limits are in test_interrupts.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from precdiff.cli._app import register_commands

from .conftest import World

app = register_commands()
runner = CliRunner()

OLD = "an existing report that a failed run must not clobber\n"


@dataclass(frozen=True)
class Case:
    args: Callable[[World, Path], list[str]]  # (world, this test's folder) -> command line
    code: int
    message: str  # a phrase of the one-line error (or of the output, for exit 0/1)
    absent: tuple[str, ...] = ()  # files under the test's folder that must not exist afterwards
    keep_old: tuple[str, ...] = field(default=())  # files under the test's folder holding OLD before


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def ids(*values: int) -> list[str]:
    return ["--input-ids", ",".join(map(str, values))]


CAP = ["--device", "cpu", "--max-new-tokens", "1", "--quiet"]

CASES: dict[str, Case] = {
    # --- capture: options --------------------------------------------------------------------
    "capture-no-input": Case(
        lambda w, t: ["capture", "tiny:llama", "--out", f"{t}/x.h5", *CAP],
        2,
        "give exactly one input",
        ("x.h5", "x.h5.partial"),
    ),
    "capture-two-inputs": Case(
        lambda w, t: ["capture", "tiny:llama", "--out", f"{t}/x.h5", "--prompt", "hi", *ids(1), *CAP],
        2,
        "give exactly one input",
        ("x.h5",),
    ),
    "capture-empty-prompt": Case(
        lambda w, t: ["capture", "tiny:llama", "--out", f"{t}/x.h5", "--prompt", "", *CAP],
        2,
        "is empty",
        ("x.h5",),
    ),
    "capture-ids-not-numbers": Case(
        lambda w, t: ["capture", "tiny:llama", "--out", f"{t}/x.h5", "--input-ids", "1,a", *CAP],
        2,
        "must be integers",
        ("x.h5",),
    ),
    "capture-negative-id": Case(
        lambda w, t: ["capture", "tiny:llama", "--out", f"{t}/x.h5", "--input-ids", "1,-2", *CAP],
        2,
        "non-negative",
        ("x.h5",),
    ),
    "capture-id-2pow32": Case(
        lambda w, t: ["capture", "tiny:llama", "--out", f"{t}/x.h5", *ids(1, 2**32), *CAP],
        2,
        "beyond any vocabulary",
        ("x.h5",),
    ),
    "capture-id-2pow64": Case(
        lambda w, t: ["capture", "tiny:llama", "--out", f"{t}/x.h5", *ids(1, 2**64 + 5), *CAP],
        2,
        "beyond any vocabulary",
        ("x.h5",),
    ),
    "capture-id-above-vocab": Case(
        lambda w, t: ["capture", "tiny:llama", "--out", f"{t}/x.h5", *ids(1, 100000), *CAP],
        2,
        "outside the model's vocabulary",
        ("x.h5", "x.h5.partial"),
    ),
    "capture-seed-huge": Case(
        lambda w, t: ["capture", "tiny:llama", "--out", f"{t}/x.h5", *ids(1), "--seed", str(10**30), *CAP],
        2,
        "--seed / seed= must be in",
        ("x.h5",),
    ),
    "capture-seed-negative": Case(
        lambda w, t: ["capture", "tiny:llama", "--out", f"{t}/x.h5", *ids(1), "--seed", "-1", *CAP],
        2,
        "--seed / seed= must be in",
        ("x.h5",),
    ),
    "capture-max-new-tokens-huge": Case(
        lambda w, t: [
            "capture",
            "tiny:llama",
            "--out",
            f"{t}/x.h5",
            *ids(1),
            "--device",
            "cpu",
            "--max-new-tokens",
            str(10**9),
        ],
        2,
        "must be in [0, 8192]",
        ("x.h5",),
    ),
    "capture-top-k-zero": Case(
        lambda w, t: ["capture", "tiny:llama", "--out", f"{t}/x.h5", *ids(1), "--top-k", "0", *CAP],
        2,
        "--top-k / top_k= must be",
        ("x.h5",),
    ),
    "capture-bad-dtype": Case(
        lambda w, t: ["capture", "tiny:llama", "--out", f"{t}/x.h5", *ids(1), "--dtype", "float8", *CAP],
        2,
        "unknown dtype",
        ("x.h5",),
    ),
    "capture-bad-device": Case(
        lambda w, t: ["capture", "tiny:llama", "--out", f"{t}/x.h5", *ids(1), "--device", "tpu", "--quiet"],
        2,
        "unknown device",
        ("x.h5",),
    ),
    "capture-bad-kernels": Case(
        lambda w, t: ["capture", "tiny:llama", "--out", f"{t}/x.h5", *ids(1), "--kernels", "fast", *CAP],
        2,
        "unknown --kernels",
        ("x.h5",),
    ),
    "capture-bad-regex": Case(
        lambda w, t: ["capture", "tiny:llama", "--out", f"{t}/x.h5", *ids(1), "--include", "(", *CAP],
        2,
        "invalid regular expression",
        ("x.h5",),
    ),
    "capture-include-nothing": Case(
        lambda w, t: ["capture", "tiny:llama", "--out", f"{t}/x.h5", *ids(1), "--include", "^nomatch$", *CAP],
        2,
        "selected no module",
        ("x.h5",),
    ),
    "capture-bad-compress": Case(
        lambda w, t: ["capture", "tiny:llama", "--out", f"{t}/x.h5", *ids(1), "--compress", "zstd", *CAP],
        2,
        "unknown compression",
        ("x.h5",),
    ),
    "capture-unknown-tiny": Case(
        lambda w, t: ["capture", "tiny:nope", "--out", f"{t}/x.h5", *ids(1), *CAP],
        2,
        "unknown tiny model",
        ("x.h5",),
    ),
    "capture-missing-model-dir": Case(
        lambda w, t: ["capture", f"{t}/nope", "--out", f"{t}/x.h5", *ids(1), *CAP],
        2,
        "neither a local directory",
        ("x.h5",),
    ),
    "capture-prompt-file-missing": Case(
        lambda w, t: ["capture", "tiny:llama", "--out", f"{t}/x.h5", "--prompt-file", f"{t}/none.txt", *CAP],
        2,
        "cannot read --prompt-file",
        ("x.h5",),
    ),
    "capture-tokens-from-text-file": Case(
        lambda w, t: ["capture", "tiny:llama", "--out", f"{t}/x.h5", "--tokens-from", str(w.file), *CAP],
        2,
        "not an HDF5 file",
        ("x.h5",),
    ),
    "capture-tokens-from-no-ids": Case(
        lambda w, t: [
            "capture",
            "tiny:llama",
            "--out",
            f"{t}/x.h5",
            "--tokens-from",
            str(w.damaged("no_input_ids")),
            *CAP,
        ],
        2,
        "no input token ids",
        ("x.h5",),
    ),
    # --- capture: output paths ----------------------------------------------------------------
    "capture-out-under-file": Case(
        lambda w, t: ["capture", "tiny:llama", "--out", f"{w.file}/x.h5", *ids(1), *CAP],
        2,
        "is a file, not a folder",
    ),
    "capture-out-missing-folder": Case(
        lambda w, t: ["capture", "tiny:llama", "--out", f"{t}/no/x.h5", *ids(1), *CAP],
        2,
        "does not exist",
        ("no",),
    ),
    "capture-out-is-directory": Case(
        lambda w, t: ["capture", "tiny:llama", "--out", str(t), *ids(1), *CAP], 2, "is a directory"
    ),
    "capture-out-is-tokens-from": Case(
        lambda w, t: ["capture", "tiny:llama", "--out", str(w.a), "--tokens-from", str(w.a), *CAP],
        2,
        "an input of this command",
    ),
    "capture-out-in-model-dir": Case(
        lambda w, t: ["capture", str(w.model), "--out", str(w.model / "config.json"), *ids(1), *CAP],
        2,
        "an input of this command",
    ),
    "capture-failure-keeps-old-output": Case(
        lambda w, t: ["capture", "tiny:llama", "--out", f"{t}/old.json", *ids(1, 100000), *CAP],
        2,
        "outside the model's vocabulary",
        ("old.json.partial",),
        ("old.json",),
    ),
    # --- capture: model directories -----------------------------------------------------------
    **{
        f"capture-model-{name}": Case(
            lambda w, t, name=name: [
                "capture",
                str(w.broken_model(name)),
                "--out",
                f"{t}/x.h5",
                *ids(1),
                *CAP,
            ],
            2,
            phrase,
            ("x.h5", "x.h5.partial"),
        )
        for name, phrase in (
            ("missing_weight", "1 missing weight(s): model.layers.0.mlp.down_proj.weight"),
            ("unexpected_weight", "1 unexpected weight(s): model.extra.weight"),
            ("wrong_shape", "do not have the shapes its config.json implies"),
            ("truncated", "not a readable safetensors file"),
            ("random_bytes", "not a readable safetensors file"),
            ("empty_weights", "not a readable safetensors file"),
            ("vocab_zero", "vocab_size must be a positive integer"),
            ("hidden_string", "hidden_size must be a positive integer"),
            ("auto_map", "--trust-remote-code / trust_remote_code=True"),
            ("bad_config_json", "is not valid JSON"),
            ("no_config", "has no config.json"),
            ("pickled_only", "does not unpickle"),
        )
    },
    # --- compare ------------------------------------------------------------------------------
    "compare-match": Case(
        lambda w, t: ["compare", str(w.a), str(w.b), "--json", f"{t}/r.json", "-q"], 0, "MATCH"
    ),
    "compare-json-over-input-a": Case(
        lambda w, t: ["compare", str(w.a), str(w.b), "--json", str(w.a)], 2, "an input of this command"
    ),
    "compare-json-over-input-b": Case(
        lambda w, t: ["compare", str(w.a), str(w.b), "--json", str(w.b)], 2, "an input of this command"
    ),
    "compare-json-under-file": Case(
        lambda w, t: ["compare", str(w.a), str(w.b), "--json", f"{w.file}/r.json"],
        2,
        "is a file, not a folder",
    ),
    "compare-json-missing-folder": Case(
        lambda w, t: ["compare", str(w.a), str(w.b), "--json", f"{t}/no/r.json"], 2, "does not exist", ("no",)
    ),
    "compare-json-is-directory": Case(
        lambda w, t: ["compare", str(w.a), str(w.b), "--json", str(t)], 2, "is a directory"
    ),
    "compare-include-nothing": Case(
        lambda w, t: ["compare", str(w.a), str(w.b), "--include", "^nomatch$", "--json", f"{t}/old.json"],
        2,
        "selected no tensor",
        (),
        ("old.json",),
    ),
    "compare-exclude-everything": Case(
        lambda w, t: ["compare", str(w.a), str(w.b), "--exclude", "."], 2, "selected no tensor"
    ),
    "compare-missing-file": Case(lambda w, t: ["compare", str(w.a), f"{t}/none.h5"], 2, "does not exist"),
    "compare-directory": Case(lambda w, t: ["compare", str(w.a), str(t)], 2, "is a directory"),
    "compare-text-file": Case(
        lambda w, t: ["compare", str(w.a), str(w.root / "damaged" / "text.h5")], 2, "not an HDF5 file"
    ),
    "compare-random-bytes": Case(
        lambda w, t: ["compare", str(w.a), str(w.root / "damaged" / "random.h5")], 2, "not an HDF5 file"
    ),
    "compare-truncated": Case(
        lambda w, t: ["compare", str(w.a), str(w.root / "damaged" / "truncated.h5")], 2, "CaptureFormatError"
    ),
    "compare-foreign-hdf5": Case(
        lambda w, t: ["compare", str(w.a), str(w.root / "damaged" / "foreign.h5")],
        2,
        "not a precdiff capture",
    ),
    "compare-no-input-ids": Case(
        lambda w, t: ["compare", str(w.a), str(w.damaged("no_input_ids"))], 2, "no input token ids"
    ),
    "compare-tensor-disagrees-with-index": Case(
        lambda w, t: ["compare", str(w.a), str(w.damaged("tensor_shape")), "--json", f"{t}/old.json"],
        2,
        "but its index says",
        (),
        ("old.json",),
    ),
    "compare-logprobs-disagree": Case(
        lambda w, t: ["compare", str(w.a), str(w.damaged("logprobs_shape"))], 2, "prompt logprobs of shape"
    ),
    "compare-generation-disagrees": Case(
        lambda w, t: ["compare", str(w.a), str(w.damaged("generation_shape"))], 2, "the generation's ids"
    ),
    "compare-bad-dtype-code": Case(
        lambda w, t: ["compare", str(w.a), str(w.damaged("bad_dtype_code"))],
        2,
        "which the format does not allow",
    ),
    "compare-summary-capture": Case(lambda w, t: ["compare", str(w.a), str(w.summary)], 0, "statistics only"),
    "compare-negative-noise-floor": Case(
        lambda w, t: ["compare", str(w.a), str(w.b), "--noise-floor", "-1"], 2, "noise"
    ),
    # --- inspect ------------------------------------------------------------------------------
    "inspect-ok-json": Case(lambda w, t: ["inspect", str(w.a), "--json", f"{t}/s.json"], 0, "wrote"),
    "inspect-json-over-input": Case(
        lambda w, t: ["inspect", str(w.a), "--json", str(w.a)], 2, "an input of this command"
    ),
    "inspect-json-under-file": Case(
        lambda w, t: ["inspect", str(w.a), "--json", f"{w.file}/s.json"], 2, "is a file, not a folder"
    ),
    "inspect-json-missing-folder": Case(
        lambda w, t: ["inspect", str(w.a), "--json", f"{t}/no/s.json"], 2, "does not exist"
    ),
    "inspect-random-bytes": Case(
        lambda w, t: ["inspect", str(w.root / "damaged" / "random.h5"), "--json", f"{t}/old.json"],
        2,
        "not an HDF5 file",
        (),
        ("old.json",),
    ),
    "inspect-missing": Case(lambda w, t: ["inspect", f"{t}/none.h5"], 2, "does not exist"),
    # --- tokens -------------------------------------------------------------------------------
    "tokens-json-over-messages": Case(
        lambda w, t: [
            "tokens",
            "--messages",
            str(w.messages),
            "--a",
            str(w.model),
            "--b",
            str(w.model),
            "--json",
            str(w.messages),
        ],
        2,
        "an input of this command",
    ),
    "tokens-json-missing-folder": Case(
        lambda w, t: [
            "tokens",
            "--messages",
            str(w.messages),
            "--a",
            str(w.model),
            "--b",
            str(w.model),
            "--json",
            f"{t}/no/t.json",
        ],
        2,
        "does not exist",
    ),
    "tokens-json-under-file": Case(
        lambda w, t: [
            "tokens",
            "--messages",
            str(w.messages),
            "--a",
            str(w.model),
            "--b",
            str(w.model),
            "--json",
            f"{w.file}/t.json",
        ],
        2,
        "is a file, not a folder",
    ),
    "tokens-ok-json": Case(
        lambda w, t: [
            "tokens",
            "--messages",
            str(w.messages),
            "--a",
            str(w.model),
            "--b",
            str(w.model),
            "--json",
            f"{t}/t.json",
        ],
        0,
        "wrote",
    ),
    # --- invariance / determinism -------------------------------------------------------------
    "invariance-batch-too-large": Case(
        lambda w, t: ["invariance", "tiny:llama", "--batch-sizes", "1,1000000", "--device", "cpu"],
        2,
        "above the limit of 4096",
    ),
    "invariance-batch-sizes-text": Case(
        lambda w, t: ["invariance", "tiny:llama", "--batch-sizes", "1,x"], 2, "positive integers"
    ),
    "invariance-seed-huge": Case(
        lambda w, t: ["invariance", "tiny:llama", "--seed", str(10**30), "--device", "cpu"],
        2,
        "--seed / seed= must be in",
    ),
    "invariance-json-under-file": Case(
        lambda w, t: ["invariance", "tiny:llama", "--json", f"{w.file}/i.json"], 2, "is a file, not a folder"
    ),
    "invariance-json-missing-folder": Case(
        lambda w, t: ["invariance", "tiny:llama", "--json", f"{t}/no/i.json"], 2, "does not exist", ("no",)
    ),
    "invariance-json-in-model-dir": Case(
        lambda w, t: ["invariance", str(w.model), "--json", str(w.model / "config.json")],
        2,
        "an input of this command",
    ),
    "invariance-broken-model": Case(
        lambda w, t: [
            "invariance",
            str(w.broken_model("missing_weight")),
            "--device",
            "cpu",
            "--json",
            f"{t}/old.json",
        ],
        2,
        "missing weight",
        (),
        ("old.json",),
    ),
    "determinism-max-new-tokens-huge": Case(
        lambda w, t: ["determinism", "tiny:llama", "--max-new-tokens", str(10**9)], 2, "must be in [1, 8192]"
    ),
    "determinism-runs-zero": Case(
        lambda w, t: ["determinism", "tiny:llama", "--runs", "0"], 2, "--runs / runs= must be"
    ),
    "determinism-json-under-file": Case(
        lambda w, t: ["determinism", "tiny:llama", "--json", f"{w.file}/d.json"], 2, "is a file, not a folder"
    ),
    "determinism-ids-2pow32": Case(
        lambda w, t: ["determinism", "tiny:llama", "--input-ids", f"1,{2**32}"], 2, "beyond any vocabulary"
    ),
    # --- tiny / demo --------------------------------------------------------------------------
    "tiny-save-set-not-int": Case(
        lambda w, t: ["tiny", "save", "llama", f"{t}/m", "--set", "hidden_size=abc"],
        2,
        "hidden_size must be a positive integer",
        ("m",),
    ),
    "tiny-save-vocab-zero": Case(
        lambda w, t: ["tiny", "save", "llama", f"{t}/m", "--set", "vocab_size=0"],
        2,
        "vocab_size must be a positive integer",
        ("m",),
    ),
    "tiny-save-set-no-equals": Case(
        lambda w, t: ["tiny", "save", "llama", f"{t}/m", "--set", "hidden_size"],
        2,
        "expects KEY=VALUE",
        ("m",),
    ),
    "tiny-save-seed-huge": Case(
        lambda w, t: ["tiny", "save", "llama", f"{t}/m", "--seed", str(10**30)],
        2,
        "--seed / seed= must be in",
        ("m",),
    ),
    "tiny-save-under-file": Case(
        lambda w, t: ["tiny", "save", "llama", f"{w.file}/m"], 2, "cannot create the model folder"
    ),
    "tiny-save-unknown-arch": Case(
        lambda w, t: ["tiny", "save", "nope", f"{t}/m"], 2, "unknown tiny model", ("m",)
    ),
    "demo-out-is-file": Case(lambda w, t: ["demo", "--out", str(w.file)], 2, "is a file"),
    "demo-out-under-file": Case(
        lambda w, t: ["demo", "--out", f"{w.file}/d"], 2, "cannot create the demo folder"
    ),
    "unknown-command": Case(lambda w, t: ["frobnicate"], 2, "No such command"),
    "version": Case(lambda w, t: ["--version"], 0, "precdiff "),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name: str, world: World, tmp_path: Path) -> None:
    case = CASES[name]
    for old in case.keep_old:
        (tmp_path / old).write_text(OLD)
    inputs_before = _tree_digest(world.root)
    result = runner.invoke(app, case.args(world, tmp_path), env={"COLUMNS": "400"})
    output = result.output
    assert result.exit_code == case.code, output
    assert "Traceback" not in output and "InternalError" not in output, output
    assert case.message in output, output
    if case.code == 2:
        error_lines = [line for line in output.splitlines() if "Error" in line]
        assert len(error_lines) == 1, output  # one line saying what went wrong
    for old in case.keep_old:
        assert (tmp_path / old).read_text() == OLD
    for path in case.absent:
        assert not (tmp_path / path).exists(), path
    assert not list(tmp_path.glob(".*.tmp")), "a temporary report file was left behind"
    assert _tree_digest(world.root) == inputs_before, "an input file changed"


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 60
