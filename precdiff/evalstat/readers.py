"""Per-sample results of one eval run, read from each harness's documented output files.

- ``lm-eval``: ``lm_eval --log_samples`` writes ``samples_<task>_<timestamp>.jsonl``; each line has
  ``doc_id``, ``filter``, ``metrics`` (the metric names) and one key per metric with the sample's value.
- ``evalscope`` (1.x): ``reviews/<model>/<benchmark>_<subset>.jsonl``; each line is a ``ReviewResult``:
  ``index`` and ``sample_score`` = ``{score: {value: {metric: number}, main_score_name}, sample_id}``.
- ``opencompass``: ``results/<model>/<dataset>.json`` of an evaluator that returns ``details``: a list
  (or an object keyed by sample index) of ``{pred, answer, correct}``.

A path is a file, or a directory searched recursively for files of these shapes. Each (task,
metric) becomes a :class:`TaskScores`: sample id -> score.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from precdiff.errors import EvalResultsError

_LM_EVAL_NAME = re.compile(r"^samples_(?P<task>.+?)_\d{4}-\d{2}-\d{2}T[\d\-.:]+$")
FORMATS = ("lm-eval", "evalscope", "opencompass")


@dataclass(frozen=True)
class TaskScores:
    """One metric of one task: the score of every sample, by sample id."""

    task: str
    metric: str
    scores: dict[str, float]

    @property
    def binary(self) -> bool:
        """Every score is 0 or 1 (an accuracy-type metric: McNemar's test applies)."""
        return all(v in (0.0, 1.0) for v in self.scores.values())


@dataclass(frozen=True)
class EvalRun:
    """Everything read from one run: its format and its (task, metric) scores."""

    path: str
    format: str
    tasks: tuple[TaskScores, ...]


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _jsonl(path: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    text = path.read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalResultsError(
                f"{path} line {number} is not valid JSON ({exc.msg}; truncated?); re-run the eval or "
                "remove the incomplete line"
            ) from None
        if not isinstance(item, Mapping):
            raise EvalResultsError(
                f"{path} line {number} is a JSON {type(item).__name__}, not a sample object"
            )
        yield number, item


def _add(
    table: dict[tuple[str, str], dict[str, float]],
    path: Path,
    key: tuple[str, str],
    sample: str,
    value: float,
) -> None:
    scores = table.setdefault(key, {})
    if sample in scores:
        raise EvalResultsError(
            f"{path}: sample {sample!r} of {key[0]} ({key[1]}) appears twice; pass one run's files per side"
        )
    scores[sample] = value


def _lm_eval(path: Path, table: dict[tuple[str, str], dict[str, float]]) -> None:
    match = _LM_EVAL_NAME.match(path.stem)
    task = match.group("task") if match else path.stem
    for number, line in _jsonl(path):
        names = line.get("metrics")
        if "doc_id" not in line or not isinstance(names, list):
            raise EvalResultsError(
                f"{path} line {number}: an lm-eval sample needs doc_id and metrics (truncated?)"
            )
        suffix = "" if line.get("filter") in (None, "none") else f",{line['filter']}"
        for name in names:
            value = _number(line.get(name))
            if value is not None:  # corpus-level metrics (bleu, f1 tuples) have no per-sample number
                _add(table, path, (task, f"{name}{suffix}"), str(line["doc_id"]), value)


def _evalscope(path: Path, table: dict[tuple[str, str], dict[str, float]]) -> None:
    task = path.stem
    for number, line in _jsonl(path):
        sample_score = line.get("sample_score")
        score = sample_score.get("score") if isinstance(sample_score, Mapping) else None
        values = score.get("value") if isinstance(score, Mapping) else None
        if not isinstance(values, Mapping):
            raise EvalResultsError(
                f"{path} line {number}: an evalscope review needs sample_score.score.value (truncated?)"
            )
        sample = (
            sample_score.get("sample_id", line.get("index")) if isinstance(sample_score, Mapping) else None
        )
        if sample is None:
            raise EvalResultsError(
                f"{path} line {number}: an evalscope review needs sample_score.sample_id or index"
            )
        for name, raw in values.items():
            value = _number(raw)
            if value is not None:
                _add(table, path, (task, str(name)), str(sample), value)


def _opencompass(path: Path, details: Any, table: dict[tuple[str, str], dict[str, float]]) -> None:
    items = details.items() if isinstance(details, Mapping) else enumerate(details)
    for index, item in items:
        value = _number(item.get("correct")) if isinstance(item, Mapping) else None
        if value is None:
            raise EvalResultsError(
                f"{path}: details[{index!r}] has no boolean 'correct'; precdiff reads OpenCompass results of "
                "evaluators that report per-sample correctness"
            )
        _add(table, path, (path.stem, "accuracy"), str(index), value)


def _sniff(path: Path) -> tuple[str, Any] | None:
    """The format of one file (and its parsed JSON for OpenCompass), or ``None`` if not recognised."""
    if path.suffix == ".json":
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise EvalResultsError(f"{path} is not valid JSON ({exc.msg}; truncated?)") from None
        details = document.get("details") if isinstance(document, Mapping) else None
        return ("opencompass", details) if isinstance(details, (list, Mapping)) else None
    if path.suffix == ".jsonl":
        first = next(_jsonl(path), None)
        if first is None:
            return None
        line = first[1]
        if "sample_score" in line:
            return "evalscope", None
        if "doc_id" in line and "metrics" in line:
            return "lm-eval", None
    return None


def read_run(path: str | os.PathLike[str]) -> EvalRun:
    """Read one run's per-sample results (a file or a directory of them).

    Raises:
        EvalResultsError: missing path, malformed or truncated file, unknown format, or mixed formats.
    """
    root = Path(path)
    if not root.exists():
        raise EvalResultsError(f"eval results {root} do not exist; pass a per-sample file or its directory")
    files = sorted(p for p in root.rglob("*") if p.suffix in (".json", ".jsonl")) if root.is_dir() else [root]
    table: dict[tuple[str, str], dict[str, float]] = {}
    formats: set[str] = set()
    for file in files:
        try:
            sniffed = _sniff(file)
        except (OSError, UnicodeDecodeError) as exc:
            raise EvalResultsError(f"cannot read {file}: {exc}") from None
        if sniffed is None:
            if root.is_file():
                raise EvalResultsError(
                    f"{file}: unknown eval results format; precdiff reads lm-eval --log_samples JSONL, "
                    "evalscope review JSONL and OpenCompass results JSON with details (docs/evalstat.md)"
                )
            continue  # aggregate files and configs beside the per-sample ones
        name, details = sniffed
        formats.add(name)
        if name == "lm-eval":
            _lm_eval(file, table)
        elif name == "evalscope":
            _evalscope(file, table)
        else:
            _opencompass(file, details, table)
    if not table:
        raise EvalResultsError(
            f"{root} holds no per-sample results precdiff can read (lm-eval samples_*.jsonl, evalscope "
            "reviews/*.jsonl, OpenCompass results/*.json with details)"
        )
    if len(formats) > 1:
        raise EvalResultsError(f"{root} mixes {', '.join(sorted(formats))} results; pass one run per side")
    tasks = tuple(TaskScores(task, metric, scores) for (task, metric), scores in sorted(table.items()))
    return EvalRun(str(root), formats.pop(), tasks)
