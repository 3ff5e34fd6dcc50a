"""Pairing the ops of two op-level captures whose op graphs differ.

Op names (``<module call>/<overload>#<k>``) only agree when both sides ran the same op sequence, and
they often do not: SDPA vs eager attention, a fused kernel vs decomposed torch ops, ``F.rms_norm`` vs
``pow/mean/rsqrt/mul``, an extra ``_to_copy`` in bf16. Pairing by name plus a call counter then pairs
unrelated tensors. Instead, inside each module call (present on both sides) the two op sequences are
aligned by an order-preserving weighted longest common subsequence (Needleman–Wunsch with zero gap
cost): two ops can pair only if they are the same aten overload with the same output shape (tensors of
different shape are never paired); a pair scores :data:`MATCH_SCORE`, plus :data:`DATAFLOW_SCORE`
when their inputs come from the same places (the same parameters, or producers of the same op type in
the same module call), which breaks ties between repeated ops (the q/k/v rotary ``mul``\\ s). Ops left
over are listed as unmatched, and each run of them between two paired ops is reported: one op on one
side against several on the other is a fusion ("fused on B: …/aten._scaled_dot_product_flash_attention…
↔ 6 ops on A"). There the module call's output (a module-level tensor, always paired by name) and the
next paired op are the comparison points: :mod:`precdiff.compare.op_localize` measures error across
the unmatched run as a whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from precdiff.store import format as fmt
from precdiff.store.reader import Capture, TensorInfo

MATCH_SCORE = 2
DATAFLOW_SCORE = 1


@dataclass(frozen=True)
class Fusion:
    """A run of ops between two paired ops (or a module call's ends) that differs between A and B."""

    scope: str  # the module call
    a_ops: tuple[str, ...]  # op names on A (output suffixes removed), forward order
    b_ops: tuple[str, ...]

    @property
    def message(self) -> str:
        def ops(names: tuple[str, ...], side: str) -> str:
            return names[0] if len(names) == 1 else f"{len(names)} ops on {side}"

        if len(self.b_ops) == 1 and len(self.a_ops) > 1:
            return f"fused on B: {self.b_ops[0]} ↔ {len(self.a_ops)} ops on A"
        if len(self.a_ops) == 1 and len(self.b_ops) > 1:
            return f"fused on A: {self.a_ops[0]} ↔ {len(self.b_ops)} ops on B"
        if not self.b_ops:
            return f"only on A in {self.scope}: {ops(self.a_ops, 'A')}"
        if not self.a_ops:
            return f"only on B in {self.scope}: {ops(self.b_ops, 'B')}"
        return f"differs in {self.scope}: {ops(self.a_ops, 'A')} ↔ {ops(self.b_ops, 'B')}"

    def to_dict(self) -> dict[str, object]:
        return {"scope": self.scope, "a": list(self.a_ops), "b": list(self.b_ops), "message": self.message}


@dataclass(frozen=True)
class OpAlignment:
    """Paired op outputs (A's forward order), what is left unmatched, and where the graphs differ."""

    pairs: tuple[tuple[TensorInfo, TensorInfo], ...]
    a_only: tuple[str, ...]
    b_only: tuple[str, ...]
    fusions: tuple[Fusion, ...]

    def partners(self) -> dict[str, TensorInfo]:
        """A's op tensor name -> the B tensor it is paired with."""
        return {a.name: b for a, b in self.pairs}


def op_name(tensor_name: str) -> str:
    """``scope/overload#k`` of an op output name (an output suffix ``[i]`` removed)."""
    head, sep, _ = tensor_name.rpartition("#")
    tail = tensor_name[len(head) + len(sep) :]
    return head + sep + tail.split("[", 1)[0] if sep else tensor_name


def overload(tensor_name: str) -> str:
    """The aten overload of an op output name: ``…/aten.mm.default#0`` -> ``aten.mm.default``."""
    return tensor_name.rpartition("/")[2].rpartition("#")[0]


def op_infos(cap: Capture) -> list[TensorInfo]:
    return [i for i in cap.tensor_infos() if i.kind == fmt.KIND_OP_OUTPUT]


def module_level(a: Capture, b: Capture, keep: Callable[[str], bool]) -> Callable[[str], bool]:
    """``keep`` restricted to module tensors: op outputs are paired by :func:`align_ops` instead."""
    ops = {i.name for i in op_infos(a)} | {i.name for i in op_infos(b)}
    return lambda name: name not in ops and keep(name)


def _source(ref: str, kinds: dict[str, TensorInfo]) -> str:
    producer = kinds.get(ref)
    if producer is None:  # a parameter, buffer or constant: the same string on both sides
        return ref
    return f"{producer.module}/{overload(producer.name)}"


def _signature(info: TensorInfo, infos: dict[str, TensorInfo]) -> tuple[str, ...]:
    return tuple(_source(ref, infos) for ref in info.inputs or ())


def _lcs(
    a: Sequence[TensorInfo],
    b: Sequence[TensorInfo],
    sig_a: Sequence[tuple[str, ...]],
    sig_b: Sequence[tuple[str, ...]],
) -> list[tuple[int, int]]:
    """Index pairs of the highest-scoring order-preserving pairing (gap cost 0, no mismatches)."""
    n, m = len(a), len(b)
    score = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = score[i], score[i + 1]
        for j in range(m - 1, -1, -1):
            best = max(below[j], row[j + 1])
            if a[i].shape == b[j].shape and overload(a[i].name) == overload(b[j].name):
                gain = MATCH_SCORE + (DATAFLOW_SCORE if sig_a[i] == sig_b[j] else 0)
                best = max(best, gain + below[j + 1])
            row[j] = best
    pairs: list[tuple[int, int]] = []
    i = j = 0
    while i < n and j < m:
        if a[i].shape == b[j].shape and overload(a[i].name) == overload(b[j].name):
            gain = MATCH_SCORE + (DATAFLOW_SCORE if sig_a[i] == sig_b[j] else 0)
            if score[i][j] == gain + score[i + 1][j + 1]:
                pairs.append((i, j))
                i, j = i + 1, j + 1
                continue
        if score[i][j] == score[i + 1][j]:
            i += 1
        else:
            j += 1
    return pairs


def _unique_ops(infos: Sequence[TensorInfo]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(op_name(i.name) for i in infos))


def align_ops(a: Capture, b: Capture) -> OpAlignment:
    """Pair the op outputs of two op-level captures, module call by module call (see the module doc)."""
    ops_a, ops_b = op_infos(a), op_infos(b)
    by_name_a, by_name_b = {i.name: i for i in ops_a}, {i.name: i for i in ops_b}
    scopes_a: dict[str, list[TensorInfo]] = {}
    scopes_b: dict[str, list[TensorInfo]] = {}
    for info in ops_a:
        scopes_a.setdefault(info.module, []).append(info)
    for info in ops_b:
        scopes_b.setdefault(info.module, []).append(info)
    paired: dict[str, TensorInfo] = {}
    paired_b: set[str] = set()
    fusions: list[Fusion] = []
    for scope, seq_a in scopes_a.items():
        seq_b = scopes_b.get(scope, [])
        sig_a = [_signature(i, by_name_a) for i in seq_a]
        sig_b = [_signature(i, by_name_b) for i in seq_b]
        pairs = _lcs(seq_a, seq_b, sig_a, sig_b)
        previous = (-1, -1)
        for i, j in [*pairs, (len(seq_a), len(seq_b))]:
            gap_a, gap_b = seq_a[previous[0] + 1 : i], seq_b[previous[1] + 1 : j]
            if gap_a or gap_b:
                fusions.append(Fusion(scope, _unique_ops(gap_a), _unique_ops(gap_b)))
            if i < len(seq_a):
                paired[seq_a[i].name] = seq_b[j]
                paired_b.add(seq_b[j].name)
            previous = (i, j)
    for scope, seq_b in scopes_b.items():
        if scope not in scopes_a:
            fusions.append(Fusion(scope, (), _unique_ops(seq_b)))
    return OpAlignment(
        pairs=tuple((info, paired[info.name]) for info in ops_a if info.name in paired),
        a_only=tuple(info.name for info in ops_a if info.name not in paired),
        b_only=tuple(info.name for info in ops_b if info.name not in paired_b),
        fusions=tuple(fusions),
    )
