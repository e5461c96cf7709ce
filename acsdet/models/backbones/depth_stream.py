"""Depth streaming: a network whose layers each mix a few neighbouring slices, run over a whole
volume a chunk of slices at a time, every slice of every layer computed once.

A :class:`DepthNode` is one layer of such a network, with its depth reach: output slice ``j``
comes from its sources' slices ``j - left .. j + right``. :func:`stream` moves forward through
the volume: each step plans the window of slices every node must hold (from the outputs back
to the input), then each node computes the slices of its window it has not computed before and
drops those before it. At the volume's ends a layer's own padding applies, so the result is the
one a pass over the whole volume gives, whatever the chunk; memory is bounded by the chunk plus
each layer's reach, not by the volume. (The simple alternative, a halo of the whole network's
receptive radius around every chunk, recomputes 2 x 45 slices a chunk for the ACS DenseNet-121.)
"""
from functools import partial
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn


class BackboneOutput:
    """Backbone features computed beforehand (by a volumetric pass), standing in for a detector's
    ``batch_inputs``: a backbone given one returns its features, so MMDetection's own
    ``predict`` runs the neck and heads on them unchanged. ``device`` is the features'."""

    def __init__(self, feats: Tuple[torch.Tensor, ...]):
        self.feats = tuple(feats)

    @property
    def device(self) -> torch.device:
        return self.feats[0].device


def depth_reach(module: nn.Module) -> int:
    """How many slices each side an output of ``module`` depends on: the sum of the depth
    half-extents of the layers in it that mix slices (an upper bound for any wiring of them).
    acsdet's operators say their own (an int ``depth_radius``); a ``Conv3d`` / 3D pooling its
    kernel's; layers acting per slice 0."""
    r = 0
    for m in module.modules():
        own = getattr(m, 'depth_radius', None)
        if isinstance(own, int):
            r += own
        elif isinstance(m, (nn.Conv3d, nn.MaxPool3d, nn.AvgPool3d)):
            k = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size, ) * 3
            d = getattr(m, 'dilation', 1)
            d = d[0] if isinstance(d, tuple) else d
            r += d * (k[0] // 2)
    return r


class DepthNode:
    """One layer's output over a volume of ``length`` slices, computed a window at a time.

    Each step, :func:`stream` plans the window every node must hold (from the outputs back to
    the input), then advances the nodes in order: a node computes only the slices of its window
    it has not computed before and keeps only its window: the next step's windows lie further
    on, so no slice is computed twice.
    """

    def __init__(self, length: int, sources: Sequence['DepthNode'] = (), reach=(0, 0)):
        self.length, self.sources, self.reach = length, list(sources), reach
        self.start = 0
        self.cache: Optional[torch.Tensor] = None  # (1, C, n, h, w): slices start .. start + n - 1
        self.need: Optional[Tuple[int, int]] = None  # this step's window

    @property
    def end(self) -> int:
        return self.start + (0 if self.cache is None else self.cache.shape[2])

    def plan(self, a: int, b: int):
        """Add slices ``a .. b - 1`` (clipped to the volume) to this step's window."""
        a, b = max(a, 0), min(b, self.length)
        self.need = (a, b) if self.need is None else (min(a, self.need[0]), max(b, self.need[1]))

    def plan_sources(self):
        if self.need is not None:
            left, right = self.reach
            for s in self.sources:
                s.plan(self.need[0] - left, self.need[1] + right)

    def view(self, a: int, b: int) -> torch.Tensor:
        """Slices ``a .. b - 1`` (clipped), which this step's window holds."""
        a, b = max(a, 0), min(b, self.length)
        if self.cache is None or a < self.start or b > self.end:
            raise RuntimeError(f'depth stream: slices {a}..{b - 1} asked for, '
                               f'{self.start}..{self.end - 1} held')
        return self.cache[:, :, a - self.start:b - self.start]

    def advance(self):
        """Hold this step's window: drop the slices before it (no layer reads them again), then
        compute those after what is held."""
        if self.need is None:
            return
        a, b = self.need
        if self.cache is None or a >= self.end:
            self.cache, self.start = self.compute(a, b), a
            return
        if a > self.start:  # dropped before the concatenation copies the rest
            self.cache, self.start = self.cache[:, :, a - self.start:], a
        if b > self.end:
            self.cache = torch.cat([self.cache, self.compute(self.end, b)], 2)

    def compute(self, a: int, b: int) -> torch.Tensor:
        """Slices ``a .. b - 1`` from the sources' views ``(1, C, b - a, h, w)``."""
        raise NotImplementedError

    def at(self, keys: torch.Tensor) -> torch.Tensor:
        """``(k, C, h, w)``: slices ``keys`` (increasing, in this step's window), a copy."""
        lo, hi = int(keys[0]), int(keys[-1]) + 1
        return self.view(lo, hi)[0, :, keys - lo].transpose(0, 1)

    def end_step(self):
        """Forget this step's window. (Its front, which the next step does not need, is dropped
        when that step advances, before its concatenation: a view taken here would keep the
        whole storage until then, and the concatenation would copy it.)"""
        self.need = None


class VolumeNode(DepthNode):
    """The input volume ``(1, C, L, H, W)`` itself (nothing to compute or keep)."""

    def __init__(self, volume: torch.Tensor):
        super().__init__(volume.shape[2])
        self.cache = volume

    def plan(self, a: int, b: int):
        """Nothing to plan: every slice is held."""


class LayerNode(DepthNode):
    """``fn(*sources)`` (``fn`` concatenates them if it needs one tensor), a same-depth layer
    (padded as it pads): output slice ``j`` from the sources' slices ``j - radius .. j +
    radius``."""

    def __init__(self,
                 fn: Callable[..., torch.Tensor],
                 sources: Sequence[DepthNode],
                 radius: int = 0):
        super().__init__(sources[0].length, sources, (radius, radius))
        self.fn = fn

    def compute(self, a: int, b: int) -> torch.Tensor:
        """Slices ``a .. b - 1``: ``fn`` on the sources' slices they depend on."""
        left, right = self.reach
        lo, hi = max(a - left, 0), min(b + right, self.sources[0].length)
        out = self.fn(*[s.view(lo, hi) for s in self.sources])
        if out.shape[2] != hi - lo:
            raise RuntimeError(f'depth stream: a layer gave {out.shape[2]} slices for {hi - lo} '
                               f'(expected {hi - lo}): it must keep depth (stride 1, same padding)')
        return out[:, :, a - lo:b - lo]


class WindowNode(DepthNode):
    """An output layer with a depth window of ``window`` slices and no padding (a ``Conv3d`` of
    depth ``window``): ``L - window + 1`` slices, slice ``j`` from the sources' slices ``j .. j +
    window - 1``, concatenated along channels. Computed at the key slices only (:meth:`at`): on
    a thick CT's finer grid the keys are a fraction of the slices.

    ``fn(x, starts)``: the layer on the windows of ``x`` ``(1, C, n, h, w)`` starting at
    ``starts`` -> ``(len(starts), C', h, w)``; a module ``m`` instead: ``m`` on each window.
    """

    def __init__(self, fn: Callable[..., torch.Tensor], sources: Sequence[DepthNode], window: int):
        super().__init__(sources[0].length - window + 1, sources, (0, window - 1))
        self.fn = partial(each_window, fn, window) if isinstance(fn, nn.Module) else fn
        self.window = window

    def advance(self):
        """Nothing ahead of :meth:`at`: the window is computed per key slice."""

    def at(self, keys: torch.Tensor) -> torch.Tensor:
        """``(k, C, h, w)``: the layer at ``keys`` (increasing, planned this step)."""
        lo, hi = int(keys[0]), int(keys[-1]) + self.window
        views = [s.view(lo, hi) for s in self.sources]
        x = views[0] if len(views) == 1 else torch.cat(views, 1)  # once for all keys
        out = self.fn(x, [int(k) - lo for k in keys])
        if out.shape[0] != len(keys):
            raise RuntimeError(f'depth stream: a window layer gave {out.shape[0]} slices for '
                               f'{len(keys)} keys')
        return out


def in_depth_pieces(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, reach: int,
                    piece: int) -> torch.Tensor:
    """``fn(x)`` for a same-depth layer ``fn`` of depth reach ``reach`` on ``x`` ``(1, C, n, h,
    w)``, computed in pieces of about ``piece`` slices along depth, each with its ``reach``
    neighbours: the same values, with one piece's intermediates held at a time (the first
    step's window spans the network's reach: the stem over it at once was the pass's peak)."""
    n = x.shape[2]
    count = max(1, round(n / piece))
    if count == 1:
        return fn(x)
    size = -(-n // count)
    parts = []
    for m in range(0, n, size):
        lo, hi = max(m - reach, 0), min(m + size + reach, n)
        parts.append(fn(x[:, :, lo:hi])[:, :, m - lo:min(m + size, n) - lo])
    return torch.cat(parts, 2)


def each_window(module: nn.Module, window: int, x: torch.Tensor,
                starts: Sequence[int]) -> torch.Tensor:
    """``module`` (depth ``window`` -> 1) on each window of ``x`` ``(1, C, n, h, w)`` starting at
    ``starts``: ``(len(starts), C', h, w)``, in ``x``'s layout."""
    out = None
    layout = (
        torch.channels_last if x.is_contiguous(
            memory_format=torch.channels_last_3d) else torch.contiguous_format)
    for i, j in enumerate(starts):
        y = module(x[:, :, j:j + window])
        if y.shape[2] != 1:
            raise RuntimeError(f'depth stream: a window layer gave {y.shape[2]} slices for '
                               f'{window} (expected 1)')
        if out is None:
            out = torch.empty(
                (len(starts), ) + y.shape[1:2] + y.shape[3:],
                dtype=y.dtype,
                device=y.device,
                memory_format=layout)
        out[i] = y[0, :, 0]
    return out


def stream(nodes: Sequence[DepthNode], outputs: Sequence[DepthNode], keys: Sequence[int],
           chunk: int) -> List[torch.Tensor]:
    """The ``outputs``' slices ``keys`` (increasing), ``chunk`` output slices a step: one
    ``(len(keys), C, h, w)`` tensor per output. ``nodes``: every node but the input, each after
    its sources (the outputs among them)."""
    parts: List[List[torch.Tensor]] = [[] for _ in outputs]
    for _, feats in stream_steps(nodes, outputs, keys, chunk):
        for part, f in zip(parts, feats):
            part.append(f)
    return [torch.cat(p) for p in parts]


def key_pieces(keys: torch.Tensor, span: Optional[int]) -> List[torch.Tensor]:
    """``keys`` (increasing) in consecutive pieces, each spanning fewer than ``span`` slices
    (None: one piece)."""
    if span is None or not len(keys):
        return [keys]
    pieces, first = [], 0
    for i in range(1, len(keys) + 1):
        if i == len(keys) or int(keys[i]) - int(keys[first]) >= span:
            pieces.append(keys[first:i])
            first = i
    return pieces


def stream_steps(nodes: Sequence[DepthNode],
                 outputs: Sequence[DepthNode],
                 keys: Sequence[int],
                 chunk: int,
                 piece: Optional[int] = None) -> Iterator[Tuple[torch.Tensor, List[torch.Tensor]]]:
    """:func:`stream` one step at a time: ``(keys, one (k, C, h, w) tensor per output)``, so
    that a consumer (the heads) can finish a step before the next is computed and memory stays
    bounded by the chunk. ``piece``: the outputs at a step's keys are made and yielded in pieces
    spanning fewer than ``piece`` slices (:func:`key_pieces`), so that what a window output
    concatenates, and what the consumer is handed, is a piece's and not the whole step's."""
    keys = torch.as_tensor(keys, dtype=torch.long)
    for a in range(0, outputs[0].length, chunk):
        sel = keys[(keys >= a) & (keys < a + chunk)]
        if not len(sel):
            continue
        lo, hi = int(sel[0]), int(sel[-1]) + 1
        for node in outputs:
            node.plan(lo, hi)
        for node in reversed(nodes):
            node.plan_sources()
        for node in nodes:
            node.advance()
        for part in key_pieces(sel, piece):
            yield part, [node.at(part) for node in outputs]  # copies
        for node in nodes:
            node.end_step()
