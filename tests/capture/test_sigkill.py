"""A capture killed with SIGKILL half-way leaves a readable ``.partial`` with what it wrote."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from precdiff.store import open_capture

# Runs a real capture in a child process; after 12 tensors it announces itself and stalls inside the
# forward pass (file open, hooks live) so that the parent can kill it at a known point.
CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from precdiff.store import writer as writer_module
    from precdiff.capture import capture
    from precdiff.config import CaptureInput, CaptureOptions

    out, marker = sys.argv[1], Path(sys.argv[2])
    real_write = writer_module.CaptureWriter.write_tensor

    def write_then_stall(self, *args, **kwargs):
        real_write(self, *args, **kwargs)
        if self.tensor_count == 12:
            marker.write_text("ready")
            time.sleep(600)

    writer_module.CaptureWriter.write_tensor = write_then_stall
    capture("tiny:llama", out, CaptureInput(input_ids=(1, 2, 3, 4)), CaptureOptions(device="cpu"))
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_leaves_readable_partial(tmp_path: Path) -> None:
    out = tmp_path / "killed.h5"
    marker = tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(out), str(marker)])
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, "the capture child exited before reaching the kill point"
            assert time.monotonic() < deadline, "the capture child never reached the kill point"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert not out.exists()
    with open_capture(str(out) + ".partial") as cap:
        assert cap.complete is False
        assert len(cap.tensor_names()) == 12
        assert cap.input_ids == [1, 2, 3, 4]
        assert cap.manifest.model.source == "tiny:llama"
        assert cap.tensor("model.layers.0.self_attn.q_proj").shape == (1, 4, 64)
        assert cap.generation is None
