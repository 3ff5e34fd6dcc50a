"""evalstat on constructed per-sample files whose answer is known, in each harness's documented format.

Formats (field names as the harnesses write them):
- lm-eval ``--log_samples``: ``samples_<task>_<timestamp>.jsonl``, one line per doc with ``doc_id``,
  ``filter``, ``metrics`` and the metric values (lm-evaluation-harness ``EvaluationTracker``).
- evalscope 1.x: ``reviews/<model>/<benchmark>_<subset>.jsonl`` of ``ReviewResult``
  (``index``, ``input``, ``target``, ``sample_score.{score.{value, main_score_name}, sample_id}``).
- OpenCompass: ``results/<model>/<dataset>.json`` with ``details`` of ``{pred, answer, correct}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from precdiff.cli._app import register_commands
from precdiff.errors import EvalResultsError, InputError
from precdiff.evalstat import EvalstatOptions, evalstat


def correctness(n: int, seed: int = 0, accuracy: float = 0.7) -> list[bool]:
    return (np.random.default_rng(seed).random(n) < accuracy).tolist()


def drop(right: list[bool], count: int) -> list[bool]:
    """The first ``count`` correct answers turned wrong: a planted drop of ``count / n``."""
    out, left = list(right), count
    for i, value in enumerate(out):
        if value and left:
            out[i], left = False, left - 1
    return out


def lm_eval(folder: Path, right: list[bool]) -> Path:
    folder.mkdir(parents=True)
    lines = [
        {
            "doc_id": i, "doc": {"question": f"q{i}"}, "target": "A", "arguments": [["q", " A"]],
            "resps": [[["-1.0", "False"]]], "filtered_resps": [["-1.0", "False"]], "filter": "none",
            "metrics": ["acc", "acc_norm"], "doc_hash": "h", "prompt_hash": "p", "target_hash": "t",
            "acc": float(r), "acc_norm": float(r),
        }
        for i, r in enumerate(right)
    ]  # fmt: skip
    (folder / "samples_arc_easy_2026-12-01T08-00-00.123456.jsonl").write_text(
        "\n".join(map(json.dumps, lines)) + "\n"
    )
    (folder / "results_2026-12-01T08-00-00.123456.json").write_text(json.dumps({"results": {}}))
    return folder


def evalscope(folder: Path, right: list[bool]) -> Path:
    reviews = folder / "reviews" / "model"
    reviews.mkdir(parents=True)
    lines = [
        {
            "index": i, "input": f"q{i}", "target": "A",
            "sample_score": {
                "score": {"value": {"acc": float(r)}, "extracted_prediction": "A", "prediction": "A",
                          "explanation": None, "metadata": {}, "main_score_name": "acc"},
                "sample_id": i, "group_id": i, "sample_metadata": {},
            },
        }
        for i, r in enumerate(right)
    ]  # fmt: skip
    (reviews / "arc_easy.jsonl").write_text("\n".join(map(json.dumps, lines)) + "\n")
    return folder


def opencompass(folder: Path, right: list[bool]) -> Path:
    results = folder / "results" / "model"
    results.mkdir(parents=True)
    details = [{"pred": "A", "answer": "A" if r else "B", "correct": r} for r in right]
    (results / "arc_easy.json").write_text(json.dumps({"accuracy": 100 * np.mean(right), "details": details}))
    return folder


WRITERS: dict[str, Callable[[Path, list[bool]], Path]] = {
    "lm-eval": lm_eval,
    "evalscope": evalscope,
    "opencompass": opencompass,
}


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_known_answers(fmt: str, tmp_path: Path) -> None:
    write = WRITERS[fmt]
    base = correctness(2000)
    same = evalstat(write(tmp_path / "a", base), write(tmp_path / "b", base))
    assert same and all(t.verdict == "no significant difference" and t.difference == 0.0 for t in same.tasks)
    assert all(t.p_value == 1.0 and (t.ci_low, t.ci_high) == (0.0, 0.0) for t in same.tasks)

    planted = evalstat(tmp_path / "a", write(tmp_path / "b5", drop(base, 100)))  # 5 % of 2,000
    task = planted.tasks[0]
    assert task.verdict == "A better" and task.significant and task.beyond_tolerance and not planted
    assert task.difference == pytest.approx(-0.05) and (task.a_only_right, task.b_only_right) == (100, 0)
    assert task.p_value is not None and task.p_value < 1e-20 and task.ci_high < 0.0

    small = correctness(200, seed=1)
    one = evalstat(write(tmp_path / "s_a", small), write(tmp_path / "s_b", drop(small, 2)))  # 1 % of 200
    task = one.tasks[0]
    assert task.verdict == "no significant difference" and not task.significant and one
    assert task.p_value == pytest.approx(0.5) and task.ci_low < 0.0 <= task.ci_high
    metrics = {t.metric for t in planted.tasks}
    assert metrics == (
        {"acc", "acc_norm"} if fmt == "lm-eval" else {"acc"} if fmt == "evalscope" else {"accuracy"}
    )


def test_continuous_metric_uses_the_bootstrap_interval(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    scores = rng.random(500)

    def write(folder: Path, values: np.ndarray) -> Path:
        folder.mkdir()
        lines = [
            {"index": i, "sample_score": {"score": {"value": {"f1": float(v)}}, "sample_id": i}}
            for i, v in enumerate(values)
        ]
        (folder / "squad.jsonl").write_text("\n".join(map(json.dumps, lines)))
        return folder

    shifted = evalstat(write(tmp_path / "a", scores), write(tmp_path / "b", np.clip(scores + 0.05, 0, 1)))
    task = shifted.tasks[0]
    assert not task.binary and task.p_value is None and task.ci_low > 0.0 and task.verdict == "B better"
    first = evalstat(tmp_path / "a", tmp_path / "b", options=EvalstatOptions(seed=7)).tasks[0]
    again = evalstat(tmp_path / "a", tmp_path / "b", options=EvalstatOptions(seed=7)).tasks[0]
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)


def test_cli_exit_codes_and_one_line_errors(tmp_path: Path) -> None:
    base = correctness(2000)
    a, b = lm_eval(tmp_path / "a", base), lm_eval(tmp_path / "b", drop(base, 100))
    runner = CliRunner()
    app = register_commands()
    found = runner.invoke(app, ["evalstat", str(a), str(b), "--json", str(tmp_path / "r.json")])
    assert found.exit_code == 1, found.output
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["beyond_tolerance"] is True and document["tasks"][0]["verdict"] == "A better"
    lenient = runner.invoke(app, ["evalstat", str(a), str(b), "--tolerance", "0.1"])
    assert lenient.exit_code == 0, lenient.output
    truncated = tmp_path / "t" / "samples_arc_easy_2026-12-01T08-00-00.jsonl"
    truncated.parent.mkdir()
    text = (a / "samples_arc_easy_2026-12-01T08-00-00.123456.jsonl").read_text()
    truncated.write_text(text[: len(text) // 2])
    broken = runner.invoke(app, ["evalstat", str(a), str(truncated)])
    assert broken.exit_code == 2 and broken.output.count("\n") == 1
    assert broken.output.startswith(f"EvalResultsError: {truncated} line ")
    unknown = tmp_path / "x.json"
    unknown.write_text(json.dumps({"score": 1}))
    result = runner.invoke(app, ["evalstat", str(a), str(unknown)])
    assert result.exit_code == 2 and result.output.startswith(
        f"EvalResultsError: {unknown}: unknown eval results format"
    )


def test_input_errors(tmp_path: Path) -> None:
    base = correctness(50)
    a = lm_eval(tmp_path / "a", base)
    other = evalscope(tmp_path / "b", base)
    with pytest.raises(EvalResultsError, match="have no task and metric in common"):
        evalstat(a, opencompass(tmp_path / "c", base))
    with pytest.raises(EvalResultsError, match="do not exist"):
        evalstat(a, tmp_path / "missing")
    with pytest.raises(
        InputError, match=r"--tolerance / tolerance must be ≥ 0 \(a fraction, 0.03 = 3 %\), got -1"
    ):
        EvalstatOptions(tolerance=-1)
    assert evalstat(other, other)
