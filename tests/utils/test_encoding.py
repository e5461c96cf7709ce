"""utils/encoding: strict JSON."""
import json

import numpy as np

from acsdet.utils import json_safe


def test_json_safe_makes_strict_json():
    obj = dict(a=float('nan'), b=[1.0, np.float32('inf'), 2], c=dict(d=-np.inf), e='x')
    text = json.dumps(json_safe(obj), allow_nan=False)
    assert json.loads(text) == dict(a=None, b=[1.0, None, 2], c=dict(d=None), e='x')
