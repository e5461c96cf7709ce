"""CT intensity windows (HU) used across acsdet, in one place, and HU -> 8-bit display."""
from typing import Sequence

import numpy as np

WIDE_WINDOW = (-1024.0, 2050.0)  # the detector's input range (MULAN, AlignShift, the ACS paper)
SOFT_TISSUE_WINDOW = (-175.0, 275.0)  # weak masks, overlays, --show-dir
LUNG_WINDOW = (-1350.0, 150.0)
BONE_WINDOW = (-500.0, 1300.0)
WINDOWS = dict(wide=WIDE_WINDOW, soft=SOFT_TISSUE_WINDOW, lung=LUNG_WINDOW, bone=BONE_WINDOW)


def window_to_uint8(hu: np.ndarray, window: Sequence[float]) -> np.ndarray:
    """HU -> uint8 over ``window`` (min, max), clipped (no wrap-around)."""
    lo, hi = float(window[0]), float(window[1])
    if hi <= lo:
        raise ValueError(f'window max must exceed min, got {window}')
    return np.rint(np.clip((hu.astype(np.float32) - lo) * (255.0 / (hi - lo)), 0,
                           255)).astype(np.uint8)
