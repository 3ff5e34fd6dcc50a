"""Interrupts, kills and resource limits against the real entry point, in child processes.

Each child runs ``precdiff.cli.main()`` with one library function patched to announce itself (a marker
file) and stall at a known point, so that the parent signals it there and never races the run.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from precdiff.cli._app import register_commands
from precdiff.store import open_capture

from .conftest import World

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and rlimits")

OLD = "an existing report that a failed run must not clobber\n"
ROOT = Path(__file__).parents[2]

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path

    marker, mode, argv = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]

    def announce_and_stall(*args, **kwargs):
        marker.write_text("ready")
        time.sleep(600)

    if mode == "capture":  # stall inside the forward pass, after 12 tensors were written
        from precdiff.store import writer as writer_module

        real_write = writer_module.CaptureWriter.write_tensor

        def write_then_stall(self, *args, **kwargs):
            real_write(self, *args, **kwargs)
            if self.tensor_count == 12:
                announce_and_stall()

        writer_module.CaptureWriter.write_tensor = write_then_stall
    elif mode == "compare":  # stall while comparing the first tensor pair
        from precdiff.compare import compare as compare_module

        compare_module._compare_pair = announce_and_stall
    elif mode == "startup":  # stall before any command runs
        from precdiff.cli import _app

        _app.register_commands = announce_and_stall
    sys.argv = ["precdiff", *argv]
    from precdiff.cli import main

    main()
    """
)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}


def run_and_signal(tmp: Path, mode: str, argv: list[str], signum: int) -> subprocess.CompletedProcess[str]:
    """Start the child, wait for its marker, send ``signum``; return the finished process."""
    marker = tmp / "ready"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(marker), mode, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=tmp,
    )
    try:
        deadline = time.monotonic() + 180
        while not marker.exists():
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the child never reached the signal point"
            time.sleep(0.05)
        child.send_signal(signum)
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def one_line(stderr: str, phrase: str) -> None:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and phrase in lines[0], stderr


def assert_readable_partial(out: Path) -> None:
    assert not out.exists()
    with open_capture(str(out) + ".partial") as cap:
        assert cap.complete is False
        assert len(cap.tensor_names()) == 12
        assert cap.input_ids == [1, 2, 3, 4]
        assert cap.tensor("model.layers.0.self_attn.q_proj").shape == (1, 4, 64)


CAPTURE = ["capture", "tiny:llama", "--out", "run.h5", "--input-ids", "1,2,3,4", "--device", "cpu"]


@pytest.mark.parametrize(
    "signum, code, phrase",
    [(signal.SIGINT, 130, "Interrupted"), (signal.SIGTERM, 143, "Terminated")],
    ids=["sigint", "sigterm"],
)
def test_signal_during_capture_leaves_readable_partial(
    tmp_path: Path, signum: int, code: int, phrase: str
) -> None:
    result = run_and_signal(tmp_path, "capture", CAPTURE, signum)
    assert result.returncode == code, result.stderr
    one_line(result.stderr, phrase)
    assert_readable_partial(tmp_path / "run.h5")


def test_sigkill_during_capture_leaves_readable_partial(tmp_path: Path) -> None:
    result = run_and_signal(tmp_path, "capture", CAPTURE, signal.SIGKILL)
    assert result.returncode == -signal.SIGKILL
    assert_readable_partial(tmp_path / "run.h5")


def test_signal_during_capture_keeps_the_previous_capture(tmp_path: Path, world: World) -> None:
    previous = (tmp_path / "run.h5").write_bytes(world.a.read_bytes())
    assert previous > 0
    result = run_and_signal(tmp_path, "capture", CAPTURE, signal.SIGTERM)
    assert result.returncode == 143, result.stderr
    assert (tmp_path / "run.h5").read_bytes() == world.a.read_bytes()


@pytest.mark.parametrize(
    "signum, code, phrase",
    [(signal.SIGINT, 130, "Interrupted"), (signal.SIGTERM, 143, "Terminated")],
    ids=["sigint", "sigterm"],
)
def test_signal_during_compare_keeps_existing_json(
    tmp_path: Path, world: World, signum: int, code: int, phrase: str
) -> None:
    (tmp_path / "report.json").write_text(OLD)
    argv = ["compare", str(world.a), str(world.b), "--json", "report.json"]
    result = run_and_signal(tmp_path, "compare", argv, signum)
    assert result.returncode == code, result.stderr
    one_line(result.stderr, phrase)
    assert (tmp_path / "report.json").read_text() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ready", "report.json"]


@pytest.mark.parametrize(
    "signum, code, phrase",
    [(signal.SIGINT, 130, "Interrupted"), (signal.SIGTERM, 143, "Terminated")],
    ids=["sigint", "sigterm"],
)
def test_signal_during_startup(tmp_path: Path, signum: int, code: int, phrase: str) -> None:
    result = run_and_signal(tmp_path, "startup", ["--help"], signum)
    assert result.returncode == code, result.stderr
    one_line(result.stderr, phrase)


def _limited(limit: int, argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    def set_limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "precdiff", *argv],
        preexec_fn=set_limit,
        capture_output=True,
        text=True,
        env=_env(),
        cwd=cwd,
        timeout=300,
    )


def test_full_disk_during_capture(tmp_path: Path) -> None:
    """A file-size limit (RLIMIT_FSIZE, the portable stand-in for a full disk): one line, exit 2, the
    .partial readable, an existing output untouched."""
    (tmp_path / "run.h5").write_text(OLD)
    result = _limited(120_000, [*CAPTURE, "--quiet"], tmp_path)
    assert result.returncode == 2, result.stderr
    one_line(result.stderr, "file-size limit")
    assert (tmp_path / "run.h5").read_text() == OLD
    with open_capture(tmp_path / "run.h5.partial") as cap:
        assert cap.complete is False and cap.input_ids == [1, 2, 3, 4]


def test_full_disk_during_compare_json(tmp_path: Path, world: World) -> None:
    (tmp_path / "report.json").write_text(OLD)
    argv = ["compare", str(world.a), str(world.b), "--json", "report.json", "--quiet"]
    result = _limited(2_000, argv, tmp_path)
    assert result.returncode == 2, result.stderr
    one_line(result.stderr, "File too large")
    assert (tmp_path / "report.json").read_text() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_unwritable_folder(world: World) -> None:
    """Permission bits do not stop root (these tests may run as root), so the unwritable folder is
    /proc, where no one can create a file."""
    result = CliRunner().invoke(
        register_commands(), ["compare", str(world.a), str(world.b), "--json", "/proc/precdiff.json", "-q"]
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "cannot write --json /proc/precdiff.json" in result.output
    assert not Path("/proc/precdiff.json").exists()


def test_help_imports_neither_torch_nor_transformers() -> None:
    """``precdiff --help`` and ``precdiff <cmd> --help`` answer without importing the heavy stack."""
    probe = textwrap.dedent(
        """
        import sys, runpy
        sys.argv = ["precdiff", *sys.argv[1:]]
        try:
            runpy.run_module("precdiff", run_name="__main__")
        except SystemExit as exit:
            assert exit.code in (0, None), exit.code
        heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "transformers", "h5py", "numpy"})
        print("HEAVY", heavy)
        """
    )
    for argv in (
        ["--help"],
        ["capture", "--help"],
        ["compare", "--help"],
        ["tokens", "--help"],
        ["--version"],
    ):
        result = subprocess.run(
            [sys.executable, "-c", probe, *argv], capture_output=True, text=True, env=_env(), timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert "HEAVY []" in result.stdout, (argv, result.stdout[-300:])
