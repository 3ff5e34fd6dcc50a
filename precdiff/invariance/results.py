"""Result objects of the invariance and determinism checks: frozen values with ``to_dict()``.

``bool(report)`` is the verdict (invariant / exactly one completion). Renderers read these and never
recompute a number. The JSON layout is specified in ``docs/invariance-json.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from precdiff.invariance.ulp import TensorDiff

INVARIANCE_SCHEMA = "precdiff.invariance"
DETERMINISM_SCHEMA = "precdiff.determinism"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class RunInfo:
    """How the check ran: model, device, numerics and software versions."""

    model: str
    device: str
    dtype: str
    kernels: str
    kernel_settings: dict[str, Any] | None
    seed: int
    versions: dict[str, str | None]
    runtime_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "device": self.device,
            "dtype": self.dtype,
            "kernels": self.kernels,
            "kernel_settings": self.kernel_settings,
            "seed": self.seed,
            "versions": dict(self.versions),
            "runtime_s": self.runtime_s,
        }


@dataclass(frozen=True)
class Probe:
    """The probe sequence: its token ids and the text they decode to (None without a tokenizer)."""

    ids: tuple[int, ...]
    text: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"ids": list(self.ids), "text": self.text, "length": len(self.ids)}


@dataclass(frozen=True)
class BatchCheck:
    """One tensor at one batch size: the probe's slice against the probe run alone.

    ``aligned`` is False when the probe's part of the tensor cannot be located (``note`` says why);
    then ``diff`` is None and the tensor does not count toward the verdict.
    """

    batch_size: int
    aligned: bool
    diff: TensorDiff | None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "aligned": self.aligned,
            "note": self.note,
            **(self.diff.to_dict() if self.diff is not None else {}),
        }


@dataclass(frozen=True)
class TensorInvariance:
    """One module output (or one op output) of the probe across the compared batch sizes."""

    name: str
    scope: str  # the module that produced it (module level: itself; op level: the enclosing module)
    op: str | None  # aten overload at op level, e.g. ``aten.mm.default``; None at module level
    dtype: str
    shape: tuple[int, ...]  # shape in the probe-alone run
    checks: tuple[BatchCheck, ...]

    @property
    def aligned(self) -> bool:
        return any(c.aligned for c in self.checks)

    @property
    def counted(self) -> bool:
        """Whether it decides the verdict: float tensors only. Integer and bool tensors (indices, masks,
        routing choices) are compared and listed, but their values can encode the batch layout
        (``arange`` over the batch, token offsets), and a real change in them comes from a float
        tensor upstream, which is counted."""
        return self.dtype.startswith(("float", "bfloat", "complex"))

    @property
    def invariant(self) -> bool:
        return all(c.diff.bitwise_equal for c in self.checks if c.diff is not None)

    @property
    def max_ulp(self) -> int:
        return max((c.diff.max_ulp for c in self.checks if c.diff is not None), default=0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scope": self.scope,
            "op": self.op,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "counted": self.counted,
            "aligned": self.aligned,
            "invariant": self.invariant,
            "max_ulp": self.max_ulp,
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclass(frozen=True)
class OutputCheck:
    """The probe's final outputs at one batch size: log-probabilities and greedy (argmax) tokens."""

    batch_size: int
    probe_slot: int
    padded_length: int
    logprobs: TensorDiff  # float32 log_softmax of the logits at every probe position
    greedy_changed_positions: tuple[int, ...]  # positions whose argmax token differs from alone

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "probe_slot": self.probe_slot,
            "padded_length": self.padded_length,
            "logprobs": self.logprobs.to_dict(),
            "greedy_changed_positions": list(self.greedy_changed_positions),
        }


@dataclass(frozen=True)
class DecodeCheck:
    """Logits at ``position``: computed by the full prefill vs by a decode step with a KV cache."""

    position: int
    logits: TensorDiff
    argmax_equal: bool

    def to_dict(self) -> dict[str, Any]:
        return {"position": self.position, "argmax_equal": self.argmax_equal, **self.logits.to_dict()}


@dataclass(frozen=True)
class InvarianceReport:
    """Everything ``check_invariance`` found. ``bool(report)``: batch invariant and prefill == decode."""

    run: RunInfo
    probe: Probe
    level: str
    padding: str
    batch_sizes: tuple[int, ...]  # compared with the probe alone (batch size 1)
    tensors: tuple[TensorInvariance, ...]  # forward order of the probe-alone run
    outputs: tuple[OutputCheck, ...]
    decode: tuple[DecodeCheck, ...]
    unmatched: tuple[str, ...]  # names seen in a batched run but never in the probe-alone run

    @property
    def first_non_invariant(self) -> TensorInvariance | None:
        """The first aligned tensor in forward order that differs at some batch size: the headline."""
        return next((t for t in self.tensors if t.counted and not t.invariant), None)

    def first_non_invariant_at(self, batch_size: int) -> str | None:
        for tensor in self.tensors:
            if not tensor.counted:
                continue
            for check in tensor.checks:
                if check.batch_size == batch_size and check.diff is not None and not check.diff.bitwise_equal:
                    return tensor.name
        return None

    @property
    def batch_invariant(self) -> bool:
        return all(t.invariant for t in self.tensors if t.counted) and all(
            o.logprobs.bitwise_equal and not o.greedy_changed_positions for o in self.outputs
        )

    @property
    def prefill_decode_consistent(self) -> bool:
        return all(d.logits.bitwise_equal for d in self.decode)

    @property
    def not_aligned(self) -> tuple[TensorInvariance, ...]:
        """Tensors whose probe slice could not be located at one batch size or more."""
        return tuple(t for t in self.tensors if not all(c.aligned for c in t.checks))

    def __bool__(self) -> bool:
        return self.batch_invariant and self.prefill_decode_consistent

    def to_dict(self) -> dict[str, Any]:
        first = self.first_non_invariant
        return {
            "schema": INVARIANCE_SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "invariant": bool(self),
            "batch_invariant": self.batch_invariant,
            "prefill_decode_consistent": self.prefill_decode_consistent,
            "first_non_invariant": first.name if first is not None else None,
            "first_non_invariant_by_batch_size": {
                str(b): self.first_non_invariant_at(b) for b in self.batch_sizes
            },
            "level": self.level,
            "padding": self.padding,
            "batch_sizes": list(self.batch_sizes),
            "run": self.run.to_dict(),
            "probe": self.probe.to_dict(),
            "summary": {
                "tensors": len(self.tensors),
                "non_invariant": sum(1 for t in self.tensors if t.counted and not t.invariant),
                "not_aligned": len(self.not_aligned),
                "unmatched": len(self.unmatched),
                "max_ulp": max((t.max_ulp for t in self.tensors if t.counted), default=0),
            },
            "outputs": [o.to_dict() for o in self.outputs],
            "prefill_vs_decode": [d.to_dict() for d in self.decode],
            "tensors": [t.to_dict() for t in self.tensors],
            "unmatched": list(self.unmatched),
        }


@dataclass(frozen=True)
class Completion:
    """One distinct greedy completion of the probe and the runs that produced it."""

    ids: tuple[int, ...]
    text: str | None
    count: int
    runs: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"ids": list(self.ids), "text": self.text, "count": self.count, "runs": list(self.runs)}


@dataclass(frozen=True)
class RunRecord:
    """One determinism run: how big the batch was, where the probe sat, which completion it got."""

    run: int
    batch_size: int
    probe_slot: int
    completion: int  # index into DeterminismReport.completions

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "batch_size": self.batch_size,
            "probe_slot": self.probe_slot,
            "completion": self.completion,
        }


@dataclass(frozen=True)
class DeterminismReport:
    """Everything ``check_determinism`` found. ``bool(report)``: exactly one distinct completion."""

    run: RunInfo
    probe: Probe
    runs: int
    max_new_tokens: int
    max_companions: int
    completions: tuple[Completion, ...]  # most frequent first
    first_divergence_step: int | None  # first generated step where any two completions differ
    records: tuple[RunRecord, ...]

    @property
    def unique_completions(self) -> int:
        return len(self.completions)

    def __bool__(self) -> bool:
        return self.unique_completions == 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": DETERMINISM_SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "deterministic": bool(self),
            "unique_completions": self.unique_completions,
            "first_divergence_step": self.first_divergence_step,
            "runs": self.runs,
            "max_new_tokens": self.max_new_tokens,
            "max_companions": self.max_companions,
            "run": self.run.to_dict(),
            "probe": self.probe.to_dict(),
            "completions": [c.to_dict() for c in self.completions],
            "records": [r.to_dict() for r in self.records],
        }
