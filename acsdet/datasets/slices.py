"""Multi-slice loading around a DeepLesion key slice, normalised to a fixed slice spacing.

For D slices at ``target_interval`` mm around the key slice, neighbour ``p`` (-D//2 .. D//2)
sits at ``key + p * target_interval / slice_interval`` in original slice indices. An integral
position is read as it is; otherwise the two bracketing slices are blended linearly with weights
from that position's own fractional part (the 3DCE/MULAN/AlignShift loaders use the first
neighbour's fraction for every neighbour, which is wrong for 7 slices and more). A slice missing
from the series folder (volume edge or gap), or of another size than the key slice, is replaced
by the nearest existing slice of the key slice's size towards the key slice. The same rule holds
for every slice thickness.

``fraction_rule='first'`` reproduces the references' weights instead (the M3DV/AlignShift
loaders, ``load_multislice_img_16bit_png``): every interpolated neighbour takes the first
neighbour's fraction ``a = frac(target_interval / slice_interval)``, ``a`` on the slice further
from the key slice and ``1 - a`` on the nearer one. Their released DeepLesion weights were
trained on it, so the configs that run them (``configs/m3dv/``) use it; nothing else should.

Names: a *stack* is the D slices around one key slice (:func:`stack_plan` of a DeepLesion series,
read by :func:`load_slice_stack`; :func:`volume_stack_plan` / :func:`volume_stack` of an
in-memory volume); a *depth grid* is a whole volume resampled once along depth for volumetric
inference (:func:`depth_grid`, :func:`resample_on_grid`), every grid key's window being that key
slice's stack.
"""
import hashlib
import os
import os.path as osp
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import List, Optional, Tuple

import cv2
import numpy as np

from ..deeplesion.png import decode_slice, png_shape
from ..defaults import TARGET_INTERVAL_MM
from ..utils import atomic_write


class SliceReader:
    """Decodes DeepLesion PNGs (uint16, HU + 32768) to int16 HU ``(H, W)``.

    Two caches, both optional:

    - ``cache_size``: decoded slices kept in memory per process (LRU; 512 x 512 int16 = 0.5 MiB
      each), for neighbouring samples that share slices.
    - ``cache_dir``: decoded slices kept on disk as ``.npy`` (0.5 MiB a slice). PNG decoding
      (zlib inflate, about 3.5 ms a 512 x 512 slice) bounds the training pipeline; a cached slice
      loads in about 0.2 ms, so every epoch after the first reads the cache. Entries are keyed by
      the series folder (its full path: two data roots may hold a series of the same name), the
      slice and the PNG's size and modification time (a changed PNG is decoded again), written
      atomically (a crash never leaves a partial entry), and an entry that is empty, truncated,
      damaged or of another shape or type than the PNG is decoded and written again.
    """

    def __init__(self, cache_size: int = 64, cache_dir: Optional[str] = None):
        self.cache_size, self.cache_dir = cache_size, cache_dir
        self._cache: 'OrderedDict[str, np.ndarray]' = OrderedDict()
        self.hits = self.misses = self.disk_hits = 0
        self._store_failed = False

    def exists(self, path: str) -> bool:
        return path in self._cache or osp.isfile(path)

    def read(self, path: str) -> np.ndarray:
        img = self._cache.get(path)
        if img is not None:
            self._cache.move_to_end(path)
            self.hits += 1
            return img
        self.misses += 1
        img = self._load(path)
        if self.cache_size > 0:
            self._cache[path] = img
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return img

    def _load(self, path: str) -> np.ndarray:
        entry = self._entry(path) if self.cache_dir else None
        if entry is not None:
            try:
                img = np.load(entry)
                if img.dtype == np.int16 and img.shape == png_shape(path):
                    self.disk_hits += 1
                    return img
            except (OSError, ValueError, EOFError):  # not cached yet, or damaged: decode again
                pass
        img = decode_slice(path)
        if entry is not None:
            self._store(entry, img)
        return img

    def _entry(self, path: str) -> Optional[str]:
        try:
            st = os.stat(path)
        except OSError:
            return None  # decode_slice reports it
        series, name = osp.split(osp.realpath(path))
        stem = osp.splitext(name)[0]
        # the series folder's full path in the key: two data roots may hold the same series name
        where = hashlib.sha1(series.encode()).hexdigest()[:12]
        return osp.join(self.cache_dir, f'{osp.basename(series)}-{where}',
                        f'{stem}-{st.st_size}-{st.st_mtime_ns}.npy')

    def _store(self, entry: str, img: np.ndarray) -> None:
        try:
            os.makedirs(osp.dirname(entry), exist_ok=True)
            atomic_write(entry, lambda f: np.save(f, img), binary=True, fsync=False)
        except OSError as e:  # full or read-only disk: keep training from the PNGs
            if not self._store_failed:
                warnings.warn(f'slice cache {self.cache_dir}: cannot write {entry} ({e}); '
                              'slices that are not cached yet are decoded from the PNGs')
                self._store_failed = True


_DEFAULT_READER = SliceReader()


def stack_spacing(slice_interval: float, target_interval: float, keep_thick_slices: bool) -> float:
    """The spacing (mm) of the slices a stack is sampled at: ``target_interval``, or with
    ``keep_thick_slices`` the series' own interval where that is larger (its slices as they are,
    the AlignShift authors' input)."""
    if keep_thick_slices and slice_interval > target_interval:
        return slice_interval
    return target_interval


def _at_index(pos: float) -> Tuple[int, int, float]:
    """``(lower, upper, weight of the upper)`` of a fractional slice-index position: an integral
    one (within 1e-6) is read as it is, else the two bracketing slices blend by its fraction."""
    near = round(pos)
    if abs(pos - near) < 1e-6:
        return near, near, 0.0
    lo = int(np.floor(pos))
    return lo, lo + 1, float(pos - lo)


def _at_position(z: np.ndarray, pos: float) -> Tuple[int, int, float]:
    """:func:`_at_index` for a position ``pos`` mm among slices at ``z`` mm (increasing, uneven):
    past either end the edge slice."""
    n = len(z)
    if pos <= z[0] or pos >= z[-1] or n == 1:
        edge = 0 if pos <= z[0] else n - 1
        return edge, edge, 0.0
    hi = int(np.searchsorted(z, pos, side='left'))
    if abs(z[hi] - pos) < 1e-6:
        return hi, hi, 0.0
    return hi - 1, hi, float((pos - z[hi - 1]) / (z[hi] - z[hi - 1]))


FRACTION_RULES = ('own', 'first')


def check_fraction_rule(rule: str) -> str:
    if rule not in FRACTION_RULES:
        raise ValueError(f"fraction_rule must be 'own' (each position's own fraction) or 'first' "
                         f"(the references' first-neighbour fraction), got {rule!r}")
    return rule


def stack_plan(key_slice: int,
               slice_interval: Optional[float],
               num_slices: int,
               target_interval: float = TARGET_INTERVAL_MM,
               offset: float = 0.0,
               keep_thick_slices: bool = False,
               fraction_rule: str = 'own') -> List[Tuple[int, int, float]]:
    """For each output slice: ``(lower index, upper index, weight of the upper)``.

    ``offset`` shifts every position by that many mm (depth jitter); a missing or non-positive
    ``slice_interval`` is taken as ``target_interval`` (neighbouring slices).
    ``keep_thick_slices``: see :func:`stack_spacing`; thinner series are still resampled.
    ``fraction_rule``: ``'own'`` (each position's own fraction) or ``'first'`` (the
    references' rule, module docstring).
    """
    if num_slices < 1 or num_slices % 2 == 0:
        raise ValueError(f'num_slices must be odd and >= 1, got {num_slices}')
    check_fraction_rule(fraction_rule)
    interval = slice_interval if slice_interval and slice_interval > 0 else target_interval
    step = stack_spacing(interval, target_interval, keep_thick_slices)
    first = step / interval - np.floor(step / interval)
    plan = []
    for p in range(-(num_slices // 2), num_slices // 2 + 1):
        lo, hi, w = _at_index(key_slice + (p * step + offset) / interval)
        if fraction_rule == 'first' and lo != hi:
            w = float(first) if p > 0 else float(1 - first)
        plan.append((lo, hi, w))
    return plan


def _read_towards_key(idx: int, key: int, key_img: np.ndarray, series_dir: str,
                      reader: SliceReader) -> np.ndarray:
    """Slice ``idx``, or the nearest slice towards the key slice ``key_img`` that exists and has
    its shape (a volume edge, a gap, or a neighbour of another size)."""
    step = -1 if idx > key else 1
    while idx != key:
        path = osp.join(series_dir, f'{idx:03d}.png')
        if reader.exists(path):
            img = reader.read(path)
            if img.shape == key_img.shape:
                return img
            _warn_size_once(path, img.shape, key_img.shape)
        idx += step
    return key_img


_WARNED_SIZES = set()


def _warn_size_once(path: str, got: Tuple[int, ...], want: Tuple[int, ...]) -> None:
    if path not in _WARNED_SIZES:
        _WARNED_SIZES.add(path)
        warnings.warn(f'{path} is {got[1]}x{got[0]} px, its key slice {want[1]}x{want[0]}: '
                      'replaced by the nearest slice of the key slice\'s size')


def load_slice_stack(series_dir: str,
                     key_slice: int,
                     slice_interval: Optional[float],
                     num_slices: int,
                     target_interval: float = TARGET_INTERVAL_MM,
                     offset: float = 0.0,
                     reader: Optional[SliceReader] = None,
                     keep_thick_slices: bool = False,
                     fraction_rule: str = 'own') -> np.ndarray:
    """``float32`` ``(num_slices, H, W)`` HU: slices at ``target_interval`` mm around the key slice.

    ``offset`` (mm) moves the whole stack along depth (training-time jitter);
    ``keep_thick_slices`` and ``fraction_rule`` as in :func:`stack_plan`. Errors name the
    file: a missing key slice (``FileNotFoundError``), an unreadable or non-16-bit PNG.
    """
    reader = reader or _DEFAULT_READER
    key_path = osp.join(series_dir, f'{key_slice:03d}.png')
    if not reader.exists(key_path):
        raise FileNotFoundError(f'key slice {key_path} not found')
    key_img = reader.read(key_path)
    out = np.empty((num_slices, ) + key_img.shape, np.float32)
    for d, (lo, hi, w) in enumerate(
            stack_plan(key_slice, slice_interval, num_slices, target_interval, offset,
                       keep_thick_slices, fraction_rule)):
        a = _read_towards_key(lo, key_slice, key_img, series_dir, reader)
        if w == 0.0:
            out[d] = a
        else:
            b = _read_towards_key(hi, key_slice, key_img, series_dir, reader)
            # (1 - w) a + w b in float32, one pass
            cv2.addWeighted(a, 1.0 - w, b, w, 0.0, dst=out[d], dtype=cv2.CV_32F)
    return out


def volume_stack_plan(z_positions: np.ndarray,
                      key: int,
                      num_slices: int,
                      target_interval: float = TARGET_INTERVAL_MM,
                      keep_thick_slices: bool = False,
                      fraction_rule: str = 'own') -> List[Tuple[int, int, float]]:
    """:func:`stack_plan` for a key slice ``key`` of an in-memory volume whose slices sit at
    ``z_positions`` mm (increasing). Evenly spaced volumes use :func:`stack_plan` itself (with
    ``fraction_rule``), with positions past the volume's ends replaced by its edge slice (the
    nearest existing slice towards the key slice, as for a DeepLesion series); unevenly spaced
    ones interpolate at the real positions, each position with its own fraction."""
    z = np.asarray(z_positions, dtype=np.float64)
    n = len(z)
    gaps = np.diff(z)
    if n > 1 and gaps.max() - gaps.min() <= 1e-3 * max(float(np.median(gaps)), 1e-6):
        plan = stack_plan(
            key,
            float(np.median(gaps)),
            num_slices,
            target_interval,
            keep_thick_slices=keep_thick_slices,
            fraction_rule=fraction_rule)
        return [(min(max(lo, 0), n - 1), min(max(hi, 0), n - 1), w) for lo, hi, w in plan]
    step = stack_spacing(
        float(np.median(gaps)) if n > 1 else 0.0, target_interval, keep_thick_slices)
    return [
        _at_position(z, z[key] + p * step) for p in range(-(num_slices // 2), num_slices // 2 + 1)
    ]


def volume_stack(hu: np.ndarray,
                 z_positions: np.ndarray,
                 key: int,
                 num_slices: int,
                 target_interval: float = TARGET_INTERVAL_MM,
                 keep_thick_slices: bool = False,
                 fraction_rule: str = 'own') -> np.ndarray:
    """``float32`` ``(num_slices, H, W)``: the slices around key slice ``key`` of the volume
    ``hu`` ``(Z, H, W)``, sampled as :func:`load_slice_stack` samples a DeepLesion series."""
    out = np.empty((num_slices, ) + hu.shape[1:], np.float32)
    for d, (lo, hi, w) in enumerate(
            volume_stack_plan(z_positions, key, num_slices, target_interval, keep_thick_slices,
                              fraction_rule)):
        if w == 0.0:
            out[d] = hu[lo]
        else:
            cv2.addWeighted(hu[lo], 1.0 - w, hu[hi], w, 0.0, dst=out[d], dtype=cv2.CV_32F)
    return out


@dataclass(frozen=True)
class DepthGrid:
    """A volume resampled once along depth for volumetric inference.

    ``step_mm``: the grid spacing (:func:`stack_spacing`); grid slice ``j`` sits ``j x step_mm``
    below the volume's first slice. ``plan``: ``(lower, upper, weight of the upper)`` stored
    slices of the *extended* grid, ``j = -D//2 .. M - 1 + D//2`` (the ends by the per-stack rule:
    the edge slice), so the D-slice stack of grid key ``j`` is extended slices ``j .. j + D - 1``.
    ``keys``: the grid keys the heads run on (the grid slice nearest to each stored slice asked
    for, each once); ``stored_key``: for each of those stored slices, its key's position in
    ``keys``; ``stored``: the stored slices asked for.
    """
    step_mm: float
    num_slices: int
    plan: List[Tuple[int, int, float]]
    keys: np.ndarray
    stored: np.ndarray
    stored_key: np.ndarray

    @property
    def size(self) -> int:
        """M, the grid's slices (keys possible)."""
        return len(self.plan) - self.num_slices + 1


def depth_grid(z_positions: np.ndarray,
               stored: np.ndarray,
               num_slices: int,
               target_interval: float = TARGET_INTERVAL_MM,
               keep_thick_slices: bool = False) -> DepthGrid:
    """The :class:`DepthGrid` of a volume whose slices sit at ``z_positions`` mm (increasing),
    for key slices near the stored slices ``stored``. Each grid position is interpolated as
    :func:`volume_stack_plan` interpolates a stack's (evenly spaced volumes: index positions and
    their own fractions; uneven ones: the real positions), so a grid key that falls on a stored
    slice has exactly that slice's per-stack stack."""
    if num_slices < 1 or num_slices % 2 == 0:
        raise ValueError(f'num_slices must be odd and >= 1, got {num_slices}')
    z = np.asarray(z_positions, dtype=np.float64)
    n = len(z)
    gaps = np.diff(z)
    interval = float(np.median(gaps)) if n > 1 else target_interval
    step = stack_spacing(interval, target_interval, keep_thick_slices)
    size = int(np.floor((z[-1] - z[0]) / step + 1e-6)) + 1
    even = n > 1 and gaps.max() - gaps.min() <= 1e-3 * max(interval, 1e-6)
    half = num_slices // 2
    plan = []
    for j in range(-half, size + half):
        if even:
            lo, hi, w = _at_index(j * step / interval)
            plan.append((min(max(lo, 0), n - 1), min(max(hi, 0), n - 1), w))
        else:
            plan.append(_at_position(z, z[0] + j * step))
    stored = np.asarray(stored, dtype=np.int64)
    # the nearest grid slice; a stored slice half way between two takes the one towards the feet
    nearest = np.clip(np.floor((z[stored] - z[0]) / step + 0.5).astype(np.int64), 0, size - 1)
    keys, stored_key = np.unique(nearest, return_inverse=True)
    return DepthGrid(step, num_slices, plan, keys, stored, stored_key.reshape(-1))


def resample_on_grid(hu: np.ndarray,
                     grid: DepthGrid,
                     start: int = 0,
                     end: Optional[int] = None) -> np.ndarray:
    """``float32`` ``(M + D - 1, H, W)``: the volume ``hu`` ``(Z, H, W)`` on the extended grid
    (its slices ``start:end`` only, when given)."""
    plan = grid.plan[start:end]
    out = np.empty((len(plan), ) + hu.shape[1:], np.float32)
    for d, (lo, hi, w) in enumerate(plan):
        if w == 0.0:
            out[d] = hu[lo]
        else:
            cv2.addWeighted(hu[lo], 1.0 - w, hu[hi], w, 0.0, dst=out[d], dtype=cv2.CV_32F)
    return out
