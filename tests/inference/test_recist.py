"""inference/recist: RECIST diameters of known ellipses."""
import numpy as np
import pytest

from acsdet.inference import recist


@pytest.mark.parametrize('angle', [0, 20, 45, 90, 135])
@pytest.mark.parametrize('axes', [(30, 12), (8, 3), (20, 19), (50.5, 24.2)])
def test_recist_of_known_ellipses_is_within_one_pixel(angle, axes):
    a, b = axes
    yy, xx = np.mgrid[0:160, 0:160].astype(float)
    t = np.radians(angle)
    u = (xx - 80.3) * np.cos(t) + (yy - 79.6) * np.sin(t)
    v = -(xx - 80.3) * np.sin(t) + (yy - 79.6) * np.cos(t)
    r = recist((u / a)**2 + (v / b)**2 <= 1)
    assert abs(r['long_mm'] - 2 * a) <= 1 and abs(r['short_mm'] - 2 * b) <= 1
    (p, q), (s, e) = np.array(r['long_axis']), np.array(r['short_axis'])
    cos = abs(np.dot(q - p, e - s)) / (np.linalg.norm(q - p) * np.linalg.norm(e - s))
    assert cos < 0.05  # perpendicular
    # pixel spacing scales the lengths: 0.7 mm pixels
    r2 = recist((u / a)**2 + (v / b)**2 <= 1, (0.7, 0.7))
    assert r2['long_mm'] == pytest.approx(0.7 * r['long_mm'])
