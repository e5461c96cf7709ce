"""depth_grid: a CT resampled once along depth; every grid key's D-slice window is the stack the
per-slice loader samples for that position."""
import numpy as np
import pytest

from acsdet.datasets.slices import depth_grid, resample_on_grid, volume_stack


def _hu(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 6, 5)).astype(np.float32)


@pytest.mark.parametrize('interval,keep_thick', [(1.0, False), (0.5, False), (2.0, False),
                                                 (5.0, True)])
def test_grid_windows_are_the_per_slice_stacks_of_on_grid_keys(interval, keep_thick):
    n, d = 15, 7
    z = np.arange(n) * interval
    hu = _hu(n)
    grid = depth_grid(z, np.arange(n), d, 2.0, keep_thick)
    stack = resample_on_grid(hu, grid)
    step = 2.0 if not keep_thick else 5.0
    assert grid.step_mm == step and len(stack) == grid.size + d - 1
    on_grid = 0
    for k in range(n):
        j = k * interval / step
        if abs(j - round(j)) < 1e-9:
            j = int(round(j))
            np.testing.assert_allclose(
                stack[j:j + d], volume_stack(hu, z, k, d, 2.0, keep_thick), atol=1e-6)
            on_grid += 1
    assert on_grid == len(range(0, n, int(round(step / interval))))


def test_each_stored_slice_takes_the_nearest_grid_key_once():
    z = np.arange(10) * 1.0  # 1 mm slices, 2 mm grid: 0, 2, .., 8 mm
    grid = depth_grid(z, np.arange(2, 9), 7, 2.0)
    assert grid.size == 5 and grid.keys.tolist() == [1, 2, 3, 4]
    # 2 mm -> key 1 (2 mm), 3 mm half way -> towards the feet (4 mm), ...
    assert [int(grid.keys[k]) for k in grid.stored_key] == [1, 2, 2, 3, 3, 4, 4]
    thick = depth_grid(np.arange(6) * 5.0, np.arange(6), 3, 2.0)  # resampled at 2 mm
    assert thick.size == 13 and [int(thick.keys[k]) * 2.0
                                 for k in thick.stored_key] == [0.0, 6.0, 10.0, 16.0, 20.0, 24.0]


def test_uneven_spacing_interpolates_at_the_real_positions():
    z = np.array([0.0, 1.2, 2.5, 3.4, 5.0, 6.1, 8.0])
    hu = _hu(len(z), 1)
    grid = depth_grid(z, np.arange(len(z)), 3, 2.0)
    stack = resample_on_grid(hu, grid)
    # grid slice 1 (2 mm, extended index 2) lies between 1.2 and 2.5 mm
    w = (2.0 - 1.2) / 1.3
    np.testing.assert_allclose(stack[2], (1 - w) * hu[1] + w * hu[2], atol=1e-5)
    np.testing.assert_array_equal(stack[0], hu[0])  # past the head end: the edge slice
    np.testing.assert_array_equal(stack[-1], hu[-1])  # 8 mm is the last slice itself
    with pytest.raises(ValueError, match='odd'):
        depth_grid(z, [0], 4)


def test_a_range_of_the_grid_is_the_same_slices():
    z = np.arange(12) * 1.0
    hu = _hu(12, 2)
    grid = depth_grid(z, np.arange(12), 5, 2.0)
    np.testing.assert_array_equal(resample_on_grid(hu, grid, 3, 7), resample_on_grid(hu, grid)[3:7])
