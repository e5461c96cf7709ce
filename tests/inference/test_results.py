"""inference/results: records are frozen; provenance goes into lesions.json as documented."""
import dataclasses

import pytest

from acsdet.inference import DetectionResult, Provenance
from acsdet.version import __version__


def test_results_are_frozen_and_provenance_says_only_what_is_known():
    res = DetectionResult(None, [], [], None, (0, 1), 0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.seconds = {}
    assert res.provenance.to_json() == dict(acsdet_version=__version__)
    full = Provenance('c.py', 'm.pth', 'ff')
    assert full.to_json() == dict(
        config='c.py', checkpoint='m.pth', checkpoint_sha256='ff', acsdet_version=__version__)
    assert dataclasses.replace(res, provenance=full).provenance is full and res.provenance != full
