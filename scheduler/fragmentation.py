"""GPU fragmentation (Weng et al., "Beware of Fragmentation", USENIX ATC'23) and placement by it.

Units: CPU in milli-cores, memory in MiB, GPU in milli-GPUs (1000 = one GPU). A node has at most
`MAX_GPUS` GPUs; `left[i, g]` is what GPU g of node i has unallocated (0 for a GPU it lacks).

The fragmentation of a node for one request shape k is the GPU capacity that k cannot use there:
all of the node's unallocated GPU when k cannot run on the node at all (too few CPUs or too little
memory, another GPU model, or too few GPUs with room for it), else the GPUs whose room is less than
k's per-GPU demand. A CPU-only shape uses no GPU, so for it every unallocated GPU counts. The
fragmentation for a workload is the expectation over its typical shapes, weighted by their share
of arrivals (`Mix`). FGD places each request where this grows least.

Everything is vectorised over nodes: `FragCache` keeps, per node and shape, the room left on GPUs
too small for the shape and the number of GPUs big enough, so the growth of every candidate
(node, GPU) of a request costs a few array operations (`FragCache.growth`).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

MILLI = 1000
MAX_GPUS = 8
STEP = 100.0
"""Growths of the fragmentation within one step (milli-GPU) count as equal, so the tie-breaks
(consolidation) decide between them: on the FGD experiment (default pod list, seeds 42-45) exact
growths left 5.8 % of the GPUs unallocated, steps of 20, 40, 80, 100 and 160 milli 4.6, 4.4-4.5,
4.4-4.5, 4.5 and 4.6 %."""

ShapeKey = tuple[int, int, int, int, int]
"""(cpu milli, memory MiB, GPUs, milli-GPU per GPU, GPU-model mask): a request's shape. A whole-GPU
request has 1000 milli per GPU; a share of one GPU has 1 GPU and less; CPU-only has 0 and 0. The
model mask has bit b set for each allowed GPU model b (0: any model)."""


@dataclass(frozen=True, slots=True)
class Mix:
    """Typical request shapes and their weights (shares of arrivals, summing to 1)."""

    cpu: np.ndarray
    mem: np.ndarray
    gpus: np.ndarray
    milli: np.ndarray
    models: np.ndarray
    weight: np.ndarray

    @classmethod
    def from_counts(
        cls, counts: dict[ShapeKey, float] | Counter, coverage: float = 0.95, limit: int = 64
    ) -> Mix:
        """The most frequent shapes covering `coverage` of the arrivals (at most `limit`),
        renormalised; ties by shape so the result does not depend on the counting order."""
        items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        total = float(sum(v for _, v in items))
        if total <= 0:
            return EMPTY_MIX
        keep: list[tuple[ShapeKey, float]] = []
        cum = 0.0
        for key, v in items:
            if cum >= coverage * total or len(keep) >= limit:
                break
            keep.append((key, v))
            cum += v
        arr = np.array([k for k, _ in keep], dtype=np.int64).reshape(-1, 5)
        w = np.array([v for _, v in keep], dtype=float)
        return cls(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4], w / w.sum())

    def __len__(self) -> int:
        return len(self.weight)


_NONE = np.zeros(0, dtype=np.int64)
EMPTY_MIX = Mix(_NONE, _NONE, _NONE, _NONE, _NONE, np.zeros(0))


class OnlineMix:
    """The typical shapes learned from recent requests: counts over a sliding window of the last
    `window` arrivals; `mix()` is rebuilt at most every `refresh` arrivals (`version` changes)."""

    def __init__(
        self,
        window: int = 2000,
        refresh: int = 100,
        coverage: float = 0.95,
        limit: int = 48,
    ) -> None:
        self.window = window
        self.refresh = refresh
        self.coverage = coverage
        self.limit = limit
        self.recent: deque[ShapeKey] = deque()
        self.counts: Counter[ShapeKey] = Counter()
        self.version = 0
        self._since = 0
        self._mix = EMPTY_MIX

    def observe(self, key: ShapeKey) -> None:
        """Count one arrival of `key`."""
        self.recent.append(key)
        self.counts[key] += 1
        if len(self.recent) > self.window:
            old = self.recent.popleft()
            self.counts[old] -= 1
            if not self.counts[old]:
                del self.counts[old]
        self._since += 1
        if self._since >= self.refresh or (self.version < 5 and self._since >= 1):
            # early on the mix changes fast: rebuild after every one of the first arrivals
            self._since = 0
            self.version += 1
            self._mix = Mix.from_counts(self.counts, self.coverage, self.limit)

    def mix(self) -> Mix:
        """The current typical shapes."""
        return self._mix


def model_access(node_models: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(nodes x shapes) True where a shape's GPU-model mask admits the node's model (mask 0: any;
    a node of model -1, no GPU model, admits only shapes that name none)."""
    node_bits = np.where(node_models >= 0, np.left_shift(1, np.maximum(node_models, 0)), 0)
    return (masks[None, :] == 0) | ((node_bits[:, None] & masks[None, :]) != 0)


class FragCache:
    """Per node: the fragmentation for a `Mix`, and the parts its growth is computed from.

    `small[i, k]`: room on node i's GPUs that are too small for shape k; `big[i, k]`: how many of
    its GPUs have room for k; `total[i]`: all its unallocated GPU; `frag[i]`: the expectation.
    """

    def __init__(self, mix: Mix, models: np.ndarray, need: np.ndarray | None = None) -> None:
        """`need[i, k]`: milli of node i's GPU that shape k needs on each of its GPUs (default: the
        shapes' own milli on every node; nodes whose GPUs differ in memory pass their own)."""
        self.mix = mix
        self.need = (
            np.broadcast_to(mix.milli[None, :].astype(float), (len(models), len(mix)))
            if need is None
            else need
        )
        self.gpu_shape = mix.gpus > 0
        self.acc = model_access(models, mix.models) & self.gpu_shape[None, :]
        n = len(models)
        k = len(mix)
        self.small = np.zeros((n, k))
        self.big = np.zeros((n, k), dtype=np.int64)
        self.total = np.zeros(n)
        self.frag = np.zeros(n)
        self.per = np.zeros((n, k))
        """`per[i, k]`: the fragmentation of node i for shape k alone (`frag` is `per @ weight`)"""

    def rows(
        self,
        idx: np.ndarray,
        cpu: np.ndarray,
        mem: np.ndarray,
        left: np.ndarray,
        whole: bool = False,
    ) -> None:
        """Recompute nodes `idx` from their free CPU, memory and per-GPU room.

        `whole`: afterwards take the expectation of every node in one pass, so `frag` is
        bit-identical to a pass over all nodes (`rows(arange(n), ...)`): the weighted sum of one
        node's row alone can round its last bit differently from the same row in a pass over
        several (numpy hands the two to different BLAS kernels). The per-shape figures do not
        depend on the pass, so only the nodes in `idx` need recomputing."""
        if whole and len(idx) == 1:
            self._one_row(int(idx[0]), float(cpu[idx[0]]), float(mem[idx[0]]), left)
        elif len(idx):
            g = left[idx]
            fits = g[:, :, None] >= self.need[idx][:, None, :]
            small = self.small[idx] = (g[:, :, None] * ~fits).sum(axis=1)
            big = self.big[idx] = fits.sum(axis=1)
            total = self.total[idx] = g.sum(axis=1)
            per = self.per[idx] = self._per(idx, cpu[idx], mem[idx], total, small, big)
            if not whole:
                self.frag[idx] = per @ self.mix.weight
        if whole:
            self.frag = self.per @ self.mix.weight

    def _one_row(self, i: int, cpu: float, mem: float, left: np.ndarray) -> None:
        """`rows` for node i alone, up to its expectation: the same figures by basic indexing
        (fewer, cheaper numpy calls for the common case of one changed node)."""
        m = self.mix
        g = left[i]
        fits = g[:, None] >= self.need[i][None, :]
        small = self.small[i] = (g[:, None] * ~fits).sum(axis=0)
        big = self.big[i] = fits.sum(axis=0)
        total = self.total[i] = g.sum()
        runs = (cpu >= m.cpu) & (mem >= m.mem) & (big >= m.gpus) & self.acc[i]
        self.per[i] = np.where(runs, small, total)

    def _per(
        self,
        idx: np.ndarray,
        cpu: np.ndarray,
        mem: np.ndarray,
        total: np.ndarray,
        small: np.ndarray,
        big: np.ndarray,
    ) -> np.ndarray:
        m = self.mix
        runs = (
            (cpu[:, None] >= m.cpu[None, :])
            & (mem[:, None] >= m.mem[None, :])
            & (big >= m.gpus[None, :])
            & self.acc[idx]
        )
        return np.where(runs, small, total[:, None])

    def _expect(
        self,
        idx: np.ndarray,
        cpu: np.ndarray,
        mem: np.ndarray,
        total: np.ndarray,
        small: np.ndarray,
        big: np.ndarray,
    ) -> np.ndarray:
        return self._per(idx, cpu, mem, total, small, big) @ self.mix.weight

    def growth(
        self,
        idx: np.ndarray,
        cpu_after: np.ndarray,
        mem_after: np.ndarray,
        room: np.ndarray | None,
        take: float | np.ndarray,
        gpus: int,
    ) -> np.ndarray:
        """How much the fragmentation of nodes `idx` grows when a request is placed there.

        A share of one GPU (`take` milli, per candidate or one for all, `gpus` 1): `room` holds
        the room of the GPU it goes to on each candidate. Whole GPUs (`gpus` n, `room` None):
        fully free ones. CPU-only: `gpus` 0. `cpu_after`/`mem_after`: what each node has left afterwards.
        """
        m = self.mix
        if not len(m):
            return np.zeros(len(idx))
        small = self.small[idx]
        big = self.big[idx]
        total = self.total[idx]
        if gpus and room is not None:
            need = self.need[idx]
            before = room[:, None] >= need
            after_room = room - take
            after = after_room[:, None] >= need
            small = (
                small
                - np.where(before, 0.0, room[:, None])
                + np.where(after, 0.0, after_room[:, None])
            )
            big = big - before + after
            total = total - take
        elif gpus:
            big = big - gpus
            total = total - gpus * MILLI
        return self._expect(idx, cpu_after, mem_after, total, small, big) - self.frag[idx]


def first_of_equal(left: np.ndarray) -> np.ndarray:
    """(nodes x GPUs) True for each GPU whose room no lower-numbered GPU of its node also has
    (GPUs with equal room are interchangeable, so only the first is a candidate)."""
    g = left.shape[1]
    eq = left[:, :, None] == left[:, None, :]
    lower = np.tril(np.ones((g, g), dtype=bool), k=-1)  # [j, j'] with j' < j
    return ~(eq & lower[None, :, :]).any(axis=2)


def least_growth(grow: np.ndarray, *tiebreak: np.ndarray, step: float = STEP) -> int:
    """Index of the candidate whose growth is least in steps of `step`; among equal steps, the
    least `tiebreak` keys in order (the first candidate when all are equal)."""
    steps = np.floor(np.asarray(grow) / step + 1e-9)
    return int(np.lexsort((*reversed(tiebreak), steps))[0])


def shape_of(cpu_milli: int, mem_mib: int, gpus: int, milli: int, models: int = 0) -> ShapeKey:
    """A request's shape key (whole GPUs carry 1000 milli per GPU)."""
    if gpus <= 0 or milli <= 0:
        return (int(cpu_milli), int(mem_mib), 0, 0, int(models))
    return (int(cpu_milli), int(mem_mib), int(gpus), int(min(milli, MILLI)), int(models))


def mix_of(shapes: Iterable[ShapeKey], coverage: float = 0.95, limit: int = 64) -> Mix:
    """The typical shapes of a list of requests (by share of arrivals)."""
    return Mix.from_counts(Counter(shapes), coverage, limit)


def node_fragmentation(
    cpu: Sequence[float],
    mem: Sequence[float],
    left: Sequence[Sequence[float]],
    models: Sequence[int],
    mix: Mix,
) -> np.ndarray:
    """The fragmentation of each node for `mix` (milli-GPUs), from free CPUs, memory, per-GPU room
    and GPU model index: the measure on its own, for tests and panels."""
    rows = np.zeros((len(left), MAX_GPUS))
    for i, r in enumerate(left):
        rows[i, : len(r)] = r
    cache = FragCache(mix, np.asarray(models, dtype=np.int64))
    cache.rows(
        np.arange(len(rows)), np.asarray(cpu, dtype=float), np.asarray(mem, dtype=float), rows
    )
    return cache.frag


class ModelBits:
    """Stable bit numbers for GPU model names (a policy keeps one, so shapes learned in one round
    mean the same in the next); at most 62 models, later ones share no bit with any node."""

    def __init__(self) -> None:
        self.bits: dict[str, int] = {}

    def index(self, name: str) -> int:
        """The bit of a node's model (-1: none, or past the 62nd)."""
        if not name:
            return -1
        bit = self.bits.get(name)
        if bit is None:
            if len(self.bits) >= 62:
                return -1
            bit = self.bits[name] = len(self.bits)
        return bit

    def mask(self, accepted: str) -> int:
        """The mask of the models a job accepts ("A100|H100"; 0: any)."""
        out = 0
        for name in accepted.split("|"):
            name = name.strip()
            if name:
                bit = self.index(name)
                out |= 1 << bit if bit >= 0 else 1 << 62
        return out


class RoundView(Protocol):
    """What `RoundFragmentation` reads of a scheduling round (heuristics.RoundState)."""

    fc: np.ndarray
    fm: np.ndarray
    gmem: list[list[int]]
    per_gpu: np.ndarray
    models: list[str]


def request_shape(
    cpus: float, mem_mb: int, gpus: int, gpu_mem_mb: int, models: int = 0
) -> ShapeKey:
    """A scheduler request's shape: whole GPUs as (n, 0), a share of one GPU as (1, its MB)."""
    cpu = int(round(cpus * 1000))
    if gpus:
        return (cpu, int(mem_mb), int(gpus), 0, models)
    if gpu_mem_mb:
        return (cpu, int(mem_mb), 1, int(gpu_mem_mb), models)
    return (cpu, int(mem_mb), 0, 0, models)


@dataclass(slots=True)
class FreeNodes:
    """The free resources of a set of nodes, as `RoundFragmentation` reads them: CPUs and
    memory per node, free memory per GPU, memory per whole GPU, GPU model."""

    fc: np.ndarray
    fm: np.ndarray
    gmem: list[list[int]]
    per_gpu: np.ndarray
    models: list[str]


class RoundFragmentation:
    """The fragmentation of a round's nodes for a mix of request shapes (`request_shape`), kept
    current as jobs are placed (`refresh`), in milli of each node's own GPU: a share of `m` MB
    needs `1000 m / per-GPU memory` of a GPU there, a whole GPU 1000."""

    def __init__(self, state: RoundView, mix: Mix, bits: ModelBits) -> None:
        self.state = state
        n = len(state.fc)
        width = max((len(g) for g in state.gmem), default=0) or 1
        self.per = np.asarray(state.per_gpu, dtype=float)
        self.left = np.zeros((n, width))
        models = np.array([bits.index(m) for m in state.models], dtype=np.int64)
        share = (mix.gpus > 0) & (mix.milli > 0)
        need = np.where(share[None, :], mix.milli[None, :] * MILLI / self.per[:, None], MILLI)
        need = np.where(need > MILLI + 1e-9, np.inf, need)  # a share bigger than the GPU
        need = np.where((mix.gpus > 0)[None, :], need, 0.0)
        self.cache = FragCache(mix, models, need)
        self.dirty: list[int] = []
        """nodes marked changed (`mark`) and not refreshed yet"""
        for i in range(n):
            self._load(i)
        self.cache.rows(np.arange(n), self._cpu(), np.asarray(state.fm, float), self.left)

    def _cpu(self) -> np.ndarray:
        return np.asarray(self.state.fc, dtype=float) * 1000 + 1e-6

    def _load(self, i: int) -> None:
        row = self.state.gmem[i]
        self.left[i, : len(row)] = np.asarray(row, dtype=float) * MILLI / self.per[i]

    def refresh(self, i: int) -> None:
        """Node i changed (a job was placed there)."""
        self._load(i)
        self.cache.rows(np.array([i]), self._cpu(), np.asarray(self.state.fm, float), self.left)

    def mark(self, i: int) -> None:
        """Node i changed: `refresh` it before the next `growth` (or let the owner recompute
        the nodes in `dirty` its own way). Each node's figures depend on that node alone, so a
        late one-node refresh gives what an immediate one after its last change would."""
        if i not in self.dirty:
            self.dirty.append(i)

    def flush(self) -> None:
        """Refresh the nodes marked changed, one at a time."""
        for i in self.dirty:
            self.refresh(i)
        self.dirty.clear()

    def growth(
        self, idx: np.ndarray, cpus: float, mem_mb: int, gpus: int, gpu_mem_mb: int
    ) -> np.ndarray:
        """Growth of the fragmentation of nodes `idx` if the request went there (a share to the
        GPU with the least room that holds it)."""
        if self.dirty:
            self.flush()
        st = self.state
        cpu_after = (np.asarray(st.fc, float)[idx] - cpus) * 1000 + 1e-6
        mem_after = np.asarray(st.fm, float)[idx] - mem_mb
        if gpus:
            return self.cache.growth(idx, cpu_after, mem_after, None, MILLI, gpus)
        if gpu_mem_mb:
            take = gpu_mem_mb * MILLI / self.per[idx]
            rows = self.left[idx]
            room = np.where(rows >= take[:, None] - 1e-9, rows, np.inf).min(axis=1)
            return self.cache.growth(idx, cpu_after, mem_after, room, take, 1)
        return self.cache.growth(idx, cpu_after, mem_after, None, 0, 0)
