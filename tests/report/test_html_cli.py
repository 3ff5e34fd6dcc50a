"""``--html`` on compare, invariance, determinism and tokens, and ``precdiff report RESULT.json --html``,
on real runs of tiny models: the page written equals what the saved JSON renders to."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from typer.testing import CliRunner

from precdiff.cli._app import app, register_commands

register_commands()
runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
PHI3 = ROOT / "tests" / "fixtures" / "tokenizers" / "phi3"
CHAT = ROOT / "examples" / "03_chat_template_diff" / "chat.json"


def run(*args: object) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def same_page(left: Path, right: Path) -> bool:
    """Equal apart from the header's "from FILE" (the report command names its JSON source)."""

    def body(path: Path) -> str:
        return re.sub(r" · from [^<]*", "", path.read_text(encoding="utf-8"))

    return body(left) == body(right)


def test_compare_html_and_report_command(llama_capture: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.h5"
    shutil.copy(llama_capture, copy)
    code, out = run(
        "compare", llama_capture, copy, "--json", tmp_path / "c.json", "--html", tmp_path / "c.html"
    )
    assert code == 0, out
    page = (tmp_path / "c.html").read_text(encoding="utf-8")
    assert '<body data-kind="compare">' in page and "MATCH" in page and 'id="chart-layers"' in page
    code, out = run("report", tmp_path / "c.json", "--html", tmp_path / "again.html")
    assert code == 0 and out == f"wrote {tmp_path / 'again.html'}\n"
    assert same_page(tmp_path / "c.html", tmp_path / "again.html")
    # Never written over one of the command's inputs.
    before = copy.read_bytes()
    code, out = run("compare", llama_capture, copy, "--html", copy)
    assert code == 2 and f"--html {copy} would overwrite {copy}" in out and copy.read_bytes() == before


def test_tokens_html(tmp_path: Path) -> None:
    template = f"{PHI3}:{PHI3 / 'phi-3-mini-4k-instruct.jinja'}"
    code, out = run(
        "tokens",
        "--messages",
        CHAT,
        "--a",
        PHI3,
        "--b",
        template,
        "--json",
        tmp_path / "t.json",
        "--html",
        tmp_path / "t.html",
    )
    assert code == 1, out
    page = (tmp_path / "t.html").read_text(encoding="utf-8")
    assert "template_revision" in page and page.count('class="diffpoint"') == 2
    assert run("report", tmp_path / "t.json", "--html", tmp_path / "again.html")[0] == 0
    assert same_page(tmp_path / "t.html", tmp_path / "again.html")


def test_invariance_and_determinism_html(tmp_path: Path) -> None:
    code, out = run(
        "invariance",
        "tiny:llama",
        "--device",
        "cpu",
        "--batch-sizes",
        "2",
        "--decode-positions",
        "1",
        "--json",
        tmp_path / "i.json",
        "--html",
        tmp_path / "i.html",
    )
    assert code in (0, 1), out
    document = json.loads((tmp_path / "i.json").read_text())
    page = (tmp_path / "i.html").read_text(encoding="utf-8")
    assert '<body data-kind="invariance">' in page and page.count('class="series s') == 1
    assert page.count("<tr") >= document["summary"]["tensors"]
    code, out = run(
        "determinism",
        "tiny:llama",
        "--device",
        "cpu",
        "--runs",
        "2",
        "--max-new-tokens",
        "2",
        "--max-companions",
        "2",
        "--html",
        tmp_path / "d.html",
    )
    assert code in (0, 1), out
    assert 'id="chart-completions"' in (tmp_path / "d.html").read_text(encoding="utf-8")


def test_report_command_errors_are_one_line(tmp_path: Path) -> None:
    code, out = run("report", tmp_path / "missing.json", "--html", tmp_path / "x.html")
    assert code == 2
    assert (
        out.strip()
        == f"InputError: report {tmp_path / 'missing.json'} does not exist; pass a file written by --json"
    )
    (tmp_path / "notes.json").write_text("{not json")
    code, out = run("report", tmp_path / "notes.json", "--html", tmp_path / "x.html")
    assert code == 2 and out.startswith(f"InputError: cannot read report {tmp_path / 'notes.json'} as JSON")
    assert not (tmp_path / "x.html").exists()


def test_invariance_and_determinism_refuse_an_html_path_over_their_model(tmp_path: Path) -> None:
    """--html is checked against the model like --json, before the run: the model file itself, or an
    existing file inside the model directory, is refused and left as it was."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    config = model_dir / "config.json"
    config.write_text("{}")
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    for command in ("invariance", "determinism"):
        for model, target in ((model_dir, config), (gguf, gguf)):
            code, out = run(command, model, "--device", "cpu", "--html", target)
            assert (code, out.strip()) == (
                2,
                f"InputError: --html {target} would overwrite {model}, an input of this command; pick "
                "another path",
            )
    assert config.read_text() == "{}" and gguf.read_bytes() == b"GGUF"


def test_compare_refuses_an_html_path_before_comparing(tmp_path: Path) -> None:
    code, out = run("compare", tmp_path / "missing_a.h5", tmp_path / "missing_b.h5", "--html", tmp_path)
    assert code == 2 and f"--html {tmp_path} is a directory; give a file name such as" in out
