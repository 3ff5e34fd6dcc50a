"""The public API is exactly ``precdiff.__all__`` (STYLE.md rule 11)."""

from __future__ import annotations

import precdiff


def test_all_is_sorted_and_complete() -> None:
    for name in precdiff.__all__:  # names resolve lazily (PEP 562): load them all first
        getattr(precdiff, name)
    public = {name for name in vars(precdiff) if not name.startswith("_")} - {"annotations"}
    # Stage packages are reachable as attributes only where no function of the same name shadows them.
    packages = {name for name in public if type(getattr(precdiff, name)).__name__ == "module"}
    assert precdiff.__all__ == sorted(set(precdiff.__all__))  # sorted, no duplicates
    assert public - packages == set(precdiff.__all__) - {"__version__"}


def test_stage_packages_are_not_shadowed_by_functions() -> None:
    import precdiff.capture.runner
    import precdiff.compare.metrics as metrics

    assert precdiff.capture.runner.capture is precdiff.run_capture
    assert precdiff.compare.compare.compare is precdiff.compare_captures
    assert metrics.rel_l2_of([1.0, 2.0], [1.0, 2.0]) == 0.0


def test_python_api_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    precdiff.run_capture(
        "tiny:llama",
        tmp_path / "a.h5",
        precdiff.CaptureInput(prompt="Hello"),
        precdiff.CaptureOptions(device="cpu", max_new_tokens=2),
    )
    precdiff.run_capture(
        "tiny:llama",
        tmp_path / "b.h5",
        precdiff.CaptureInput(tokens_from=str(tmp_path / "a.h5")),
        precdiff.CaptureOptions(device="cpu", max_new_tokens=2),
    )
    result = precdiff.compare_captures(tmp_path / "a.h5", tmp_path / "b.h5")
    assert result.verdict.status == "match" and bool(result)
    with precdiff.open_capture(tmp_path / "a.h5") as cap:
        assert cap.complete
