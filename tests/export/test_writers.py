"""export/writers: the registry and the one table of file names: every file write_case writes is
in OUTPUT_FILES, and unknown output types are refused naming the close ones."""
import dataclasses
import json
import os
import re

import pytest
import SimpleITK as sitk

from acsdet.export import OUTPUT_FILES, OUTPUT_TYPES, output_types, resolve_writer, write_case
from acsdet.inference import Provenance, restore_lesions
from acsdet.io import read_ct
from acsdet.testing.ct_files import (head_to_feet_phantom, lps_image, perfect_predictions,
                                     phantom_lesion_labels)
from acsdet.utils.errors import cli_message


def test_every_file_of_a_case_is_in_the_table_and_the_provenance_is_recorded(tmp_path):
    hu, lesions = head_to_feet_phantom(16, 48)
    sitk.WriteImage(lps_image(hu, (2.0, 0.8, 0.8)), str(tmp_path / 'ct.nii.gz'))
    vol = read_ct(str(tmp_path / 'ct.nii.gz'))
    result = restore_lesions(vol, perfect_predictions(phantom_lesion_labels(lesions, hu.shape)),
                             (0, 16), 0.5)
    assert result.lesions and result.provenance == Provenance()
    result = dataclasses.replace(result, provenance=Provenance('a/cfg.py', 'b/m.pth', 'ab12'))
    folder = write_case(result, str(tmp_path / 'out'), outputs=('nifti', 'overlays'))
    patterns = [
        re.escape(n).replace(re.escape('{id:03d}'), r'\d{3}') for files in OUTPUT_FILES.values()
        for n in files
    ]
    written = set(os.listdir(folder)) - {'acsdet-case.json'}
    assert written and all(any(re.fullmatch(p, n) for p in patterns) for n in written)
    assert len([n for n in written if n.endswith('.png')]) == len(result.lesions)
    js = json.load(open(os.path.join(folder, 'lesions.json')))
    assert (js['config'], js['checkpoint'], js['checkpoint_sha256']) == ('a/cfg.py', 'b/m.pth',
                                                                         'ab12')
    assert js['acsdet_version'] == result.provenance.acsdet_version
    assert set(OUTPUT_FILES) == set(OUTPUT_TYPES)


def test_unknown_output_types_are_refused_with_the_close_names():
    with pytest.raises(ValueError, match="did you mean 'nifti'") as e:
        resolve_writer('nifty')
    assert "'dicom-seg'" in str(e.value)
    with pytest.raises(ValueError, match=r"outputs: unknown output type\(s\) \['png'\]") as e:
        output_types(['png'])
    assert cli_message(e.value, dict(outputs='--output-type')).startswith('--output-type: unknown')
    assert output_types(['dicom-sr'], save_masks=True) == ('json', 'nifti', 'dicom-seg', 'dicom-sr')
