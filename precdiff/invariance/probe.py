"""``check_invariance``: the probe alone vs the probe inside batches, module by module or op by op.

The probe runs alone first (batch 1, no padding, no mask): every hooked tensor is copied to the
host as the reference. Then, for each batch size, the probe runs in slot ``B // 2`` among ``B - 1``
seeded random companions, and each tensor's probe slice (:func:`~precdiff.invariance.align.probe_slice`)
is copied to the host and compared with the reference on the fly, so memory holds one reference
per name plus one tensor at a time. Last, prefill vs decode: the logits of the last few positions
from the full prefill against those from decode steps over a KV cache.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

import torch
from torch import nn

from precdiff import _progress
from precdiff.capture.hooks import attach
from precdiff.capture.kv_cache import cache_kwargs, returned_cache
from precdiff.capture.names import name_filter
from precdiff.capture.op_trace import CallTree, OpTracer
from precdiff.devices import device_limits
from precdiff.invariance.align import (
    WHOLE_TENSOR_DIFFERS,
    Layout,
    diverged,
    probe_slice,
    suspect_reason,
)
from precdiff.invariance.options import InvarianceOptions
from precdiff.invariance.results import (
    BatchCheck,
    DecodeCheck,
    InvarianceReport,
    OutputCheck,
    TensorInvariance,
)
from precdiff.invariance.session import Session, open_session
from precdiff.invariance.ulp import bitwise_diff


@dataclass(frozen=True)
class _Ref:
    tensor: torch.Tensor  # host copy from the probe-alone run
    scope: str
    op: str | None


class _Recorder:
    """Sink for one forward: stores references (first run) or compares with them (later runs)."""

    def __init__(self, reference: dict[str, _Ref] | None = None, layout: Layout | None = None) -> None:
        self.reference = reference
        self.layout = layout
        self.refs: dict[str, _Ref] = {}
        self.checks: dict[str, BatchCheck] = {}
        self.scopes: dict[str, str] = {}
        self.unmatched: list[str] = []

    def module(self, name: str, module: str, role: str, tensor: torch.Tensor) -> None:
        self.record(name, module, None, tensor)

    def op(
        self, name: str, scope: str, op: str, tensor: torch.Tensor, inputs: tuple[str, ...], call: object
    ) -> None:
        self.record(name, scope, op, tensor)

    def record(self, name: str, scope: str, op: str | None, tensor: torch.Tensor) -> None:
        if self.reference is None:
            # A copy, not a view: in-place ops (index_add_, copy_) mutate their output later on.
            self.refs[name] = _Ref(tensor.detach().to("cpu", copy=True), scope, op)
            return
        assert self.layout is not None
        self.scopes[name] = scope
        ref = self.reference.get(name)
        batch = self.layout.batch
        if ref is None:
            self.unmatched.append(name)
        elif tensor.dtype != ref.tensor.dtype:
            self.checks[name] = BatchCheck(
                batch, False, None, f"dtype {tensor.dtype} vs {ref.tensor.dtype} alone"
            )
        else:
            found = probe_slice(tensor.detach(), tuple(ref.tensor.shape), self.layout)
            if isinstance(found, str):
                self.checks[name] = BatchCheck(batch, False, None, found)
                return
            piece, whole = found
            diff = bitwise_diff(ref.tensor, piece.to("cpu"))
            if whole and not diff.bitwise_equal:
                self.checks[name] = BatchCheck(batch, False, None, WHOLE_TENSOR_DIFFERS)
            else:
                self.checks[name] = BatchCheck(batch, True, diff)


def _forward(
    session: Session,
    level: str,
    recorder: _Recorder,
    tree: CallTree,
    ids: torch.Tensor,
    mask: torch.Tensor | None,
    positions: torch.Tensor | None,
) -> torch.Tensor:
    """One hooked forward; returns the logits ``[B, L, V]``."""
    model = session.model
    with ExitStack() as stack:
        stack.enter_context(tree.hooked(model))
        if level == "module":
            stack.enter_context(attach(model, name_filter(None, None), recorder.module))
        else:
            # Op level also compares module outputs: where a module's internals cannot be aligned
            # (per-row Python loops, as in the batch-invariant attention), its output still can.
            tracer = OpTracer(tree, recorder.op)

            def module_sink(name: str, module: str, role: str, tensor: torch.Tensor) -> None:
                with tracer.paused():
                    recorder.module(name, module, role, tensor)

            stack.enter_context(attach(model, name_filter(None, None), module_sink))
            stack.enter_context(tracer)
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False)
    logits: torch.Tensor = out.logits
    return logits


def build_batch(
    session: Session, batch: int, padding: str, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, Layout]:
    """The probe in slot ``batch // 2`` among random companions: (ids, mask, position ids, layout).

    ``padding="none"``: companions as long as the probe, no mask. ``left``/``right``: companion lengths
    drawn from 1..1.5x the probe length, the first companion always the longest (so the probe is padded),
    with an attention mask and position ids counted from each row's first real token.
    """
    probe = torch.tensor(session.probe.ids, dtype=torch.long)
    t = len(probe)
    slot = batch // 2
    longest = t + max(1, t // 2)
    lengths = [t] * batch
    if padding != "none":
        draws = torch.randint(1, longest + 1, (batch,), generator=generator).tolist()
        lengths = [t if row == slot else int(n) for row, n in enumerate(draws)]
        lengths[1 if slot == 0 else 0] = longest
    length = max(lengths)
    ids = torch.full((batch, length), session.pad_id, dtype=torch.long)
    mask = torch.zeros((batch, length), dtype=torch.long)
    for row, n in enumerate(lengths):
        tokens = probe if row == slot else torch.randint(0, session.vocab_size, (n,), generator=generator)
        start = length - n if padding == "left" else 0
        ids[row, start : start + n] = tokens
        mask[row, start : start + n] = 1
    offset = length - t if padding == "left" else 0
    layout = Layout(batch=batch, length=length, slot=slot, offset=offset, probe_length=t)
    device = session.device
    if padding == "none":
        return ids.to(device), None, None, layout
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    return ids.to(device), mask.to(device), positions.to(device), layout


def _output_check(reference_logits: torch.Tensor, logits: torch.Tensor, layout: Layout) -> OutputCheck:
    found = probe_slice(logits, tuple(reference_logits.shape), layout)
    assert not isinstance(found, str), found  # logits are [B, L, V]: always alignable
    piece = found[0]
    ref_lp = torch.log_softmax(reference_logits.float(), dim=-1)
    got_lp = torch.log_softmax(piece.to("cpu").float(), dim=-1)
    changed = (ref_lp.argmax(-1) != got_lp.argmax(-1))[0].nonzero().flatten().tolist()
    return OutputCheck(
        batch_size=layout.batch,
        probe_slot=layout.slot,
        padded_length=layout.length,
        logprobs=bitwise_diff(ref_lp, got_lp),
        greedy_changed_positions=tuple(int(i) for i in changed),
    )


def prefill_vs_decode(model: nn.Module, ids: torch.Tensor, positions: int) -> tuple[DecodeCheck, ...]:
    """Logits of the last ``positions`` tokens of ``ids`` ([1, T]): full prefill vs decode steps.

    The cache is built by a prefill of ``ids[:, :T-positions]``, then each later token is fed alone
    with explicit position ids, as a serving engine's decode loop would.
    """
    length = ids.shape[1]
    positions = min(positions, length - 1)
    if positions <= 0:
        return ()
    full = model(input_ids=ids, use_cache=False).logits[0].detach().to("cpu")  # [T, V]
    start = length - positions
    out = model(input_ids=ids[:, :start], use_cache=True)
    cache = returned_cache(out)
    checks = []
    for t in range(start, length):
        position = torch.tensor([[t]], device=ids.device)
        out = model(
            input_ids=ids[:, t : t + 1], position_ids=position, use_cache=True, **cache_kwargs(model, cache)
        )
        cache = returned_cache(out)
        step = out.logits[0, -1].detach().to("cpu")
        checks.append(
            DecodeCheck(
                position=t,
                logits=bitwise_diff(full[t], step),
                argmax_equal=bool(full[t].argmax() == step.argmax()),
            )
        )
    return tuple(checks)


def check_invariance(
    model: str | nn.Module, options: InvarianceOptions | None = None, tokenizer: object = None
) -> InvarianceReport:
    """Run the probe alone and inside batches; report per tensor whether it is bitwise invariant.

    Args:
        model: a local Hugging Face model directory, ``tiny:<arch>``, or a loaded causal LM (then
            ``device``/``dtype`` are taken from its parameters and ``tokenizer`` may be passed).
        options: batch sizes, padding, level, kernels, probe; defaults in
            :mod:`precdiff.invariance.options`.
        tokenizer: only with a loaded model, to tokenize ``options.prompt``.

    Returns:
        An :class:`InvarianceReport`; ``bool(report)`` is the verdict.

    Raises:
        InputError, ModelLoadError, DeviceUnavailableError, KernelError.

    Example:
        >>> report = check_invariance("tiny:llama", InvarianceOptions(device="cpu", batch_sizes=(1, 2)))
        ... # doctest: +SKIP
    """
    options = options or InvarianceOptions()
    with open_session(model, options, tokenizer) as session:
        probe = torch.tensor([session.probe.ids], dtype=torch.long, device=session.device)
        reference = _Recorder()
        reference_tree = CallTree()
        reference_logits = _forward(session, options.level, reference, reference_tree, probe, None, None)
        reference_logits = reference_logits.detach().to("cpu", copy=True)
        per_batch: list[dict[str, BatchCheck]] = []
        outputs: list[OutputCheck] = []
        unmatched: set[str] = set()
        for batch in _progress.iterate(options.compared_sizes, "invariance: batch sizes"):
            generator = torch.Generator().manual_seed(options.seed * 1_000_003 + batch)
            ids, mask, positions, layout = build_batch(session, batch, options.padding, generator)
            recorder = _Recorder(reference.refs, layout)
            tree = CallTree()
            with device_limits(f"a batch of {batch} sequences", "lower --batch-sizes / batch_sizes="):
                logits = _forward(session, options.level, recorder, tree, ids, mask, positions)
            outputs.append(_output_check(reference_logits, logits, layout))
            del logits
            children_differ, ops_differ = diverged(reference_tree, tree)
            checks = {}
            for name, ref in reference.refs.items():
                check = recorder.checks.get(name)
                reason = suspect_reason(
                    name, recorder.scopes.get(name, ref.scope), children_differ, ops_differ
                )
                if check is None:
                    check = BatchCheck(batch, False, None, "absent in the batched run")
                elif reason is not None:
                    check = BatchCheck(batch, False, None, reason)
                checks[name] = check
            per_batch.append(checks)
            unmatched.update(recorder.unmatched)
        tensors = tuple(
            TensorInvariance(
                name=name,
                scope=ref.scope,
                op=ref.op,
                dtype=str(ref.tensor.dtype).removeprefix("torch."),
                shape=tuple(ref.tensor.shape),
                checks=tuple(checks[name] for checks in per_batch),
            )
            for name, ref in reference.refs.items()
        )
        decode = prefill_vs_decode(session.model, probe, options.decode_positions)
        return InvarianceReport(
            run=session.run_info(options.seed),
            probe=session.probe,
            level=options.level,
            padding=options.padding,
            batch_sizes=options.compared_sizes,
            tensors=tensors,
            outputs=tuple(outputs),
            decode=decode,
            unmatched=tuple(sorted(unmatched)),
        )
