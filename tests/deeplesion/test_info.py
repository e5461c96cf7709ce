"""DL_info.csv parser, on real rows of DeepLesion's DL_info.csv (tests/data/DL_info_sample.csv, a
copy of the 45 rows the project keeps in ../shared/deeplesion/)."""
import csv
import os.path as osp

import numpy as np
import pytest

from acsdet.deeplesion.info import group_by_key_slice, key_slice_path, read_dl_info

from ..helpers import ROOT

SAMPLE = osp.join(ROOT, 'tests', 'data', 'DL_info_sample.csv')


@pytest.fixture(scope='module')
def parsed():
    return read_dl_info(SAMPLE)


def test_all_real_rows_parse_with_splits(parsed):
    records, errors = parsed
    assert errors == []
    with open(SAMPLE) as f:
        n_rows = sum(1 for _ in csv.DictReader(f))
    assert len(records) == n_rows == 45
    counts = {s: sum(r.split == s for r in records) for s in (1, 2, 3)}
    assert counts == {1: 24, 2: 6, 3: 15}
    assert all(r.lesion_type == -1 for r in records if r.split == 1)  # train is unlabelled
    assert {r.lesion_type for r in records if r.split != 1} <= {1, 2, 3, 4, 5, 6, 7, 8}


def test_first_row_values_and_zero_based_coordinates(parsed):
    r = parsed[0][0]
    assert (r.file_name, r.patient, r.study, r.series, r.key_slice) == ('000089_01_01_037.png', 89,
                                                                        1, 1, 37)
    assert r.line == 2
    # Measurement_coordinates "154.273, 176.808, 143.903, 209.029, ..." shifted by -1
    np.testing.assert_allclose(r.recist[0], [153.273, 175.808])
    np.testing.assert_allclose(r.recist[1], [142.903, 208.029])
    np.testing.assert_allclose(r.bbox, [131.977, 170.808, 164.939, 213.029])
    assert r.diameters_px == pytest.approx((33.8477, 24.7578))
    assert r.spacing == pytest.approx((0.859375, 0.859375)) and r.slice_interval == 5
    assert r.slice_range == (31, 43) and r.image_size == (512, 512)
    assert r.window == (-175, 275) and r.gender == 'F' and r.age == 71 and not r.noisy
    assert r.long_diameter_mm == pytest.approx(33.8477 * 0.859375)
    assert r.key_slice_relpath == '000089_01_01/037.png'
    assert key_slice_path('/d/Images_png', r.file_name) == '/d/Images_png/000089_01_01/037.png'
    # the long axis really has the stated length
    assert np.linalg.norm(r.recist[0] - r.recist[1]) == pytest.approx(33.8477, abs=1e-3)


def test_multi_lesion_key_slices_are_grouped(parsed):
    groups = group_by_key_slice(parsed[0])
    multi = {k: v for k, v in groups.items() if len(v) > 1}
    assert set(multi) == {
        '000091_03_01_093.png', '000096_02_01_106.png', '000097_02_01_065.png',
        '000098_03_01_038.png'
    }
    assert all(len(v) == 2 for v in multi.values())
    assert sum(len(v) for v in groups.values()) == 45 and len(groups) == 41


def _write_rows(path, header, rows):
    with open(path, 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def test_malformed_rows_are_reported_and_skipped(tmp_path):
    with open(SAMPLE, newline='') as f:
        header, *rows = list(csv.reader(f))
    col = {c: i for i, c in enumerate(header)}
    rows[1][col['Measurement_coordinates']] = '142.391, abc, 1, 2, 3, 4, 5, 6'  # line 3
    rows[2][col['File_name']] = '000089_02_01_051.png'  # line 4
    rows[3] = rows[3][:10]  # line 5
    rows[4][col['Coarse_lesion_type']] = '42'  # line 6
    rows[5][col['DICOM_windows']] = ''  # line 7: optional
    rows[5][col['Patient_age']] = ''
    rows[6][col['Bounding_boxes']] = '10, 10, 5, 20'  # line 8
    path = tmp_path / 'DL_info.csv'
    _write_rows(path, header, rows)
    records, errors = read_dl_info(str(path))
    assert [(e.line, e.field) for e in errors] == [(3, 'Measurement_coordinates'), (4, 'File_name'),
                                                   (5, '<row>'), (6, 'Coarse_lesion_type'),
                                                   (8, 'Bounding_boxes')]
    assert 'abc' in errors[0].message and 'line 3' in str(errors[0])
    assert len(records) == 45 - 5
    r7 = next(r for r in records if r.line == 7)
    assert r7.window is None and r7.age is None


def test_not_a_dl_info_file(tmp_path):
    p = tmp_path / 'x.csv'
    p.write_text('a,b\n1,2\n')
    with pytest.raises(ValueError, match='missing columns'):
        read_dl_info(str(p))


def test_utf8_bom_is_accepted(tmp_path, parsed):
    p = tmp_path / 'DL_info.csv'
    with open(SAMPLE, 'rb') as f:
        p.write_bytes(b'\xef\xbb\xbf' + f.read())  # what spreadsheet programs save
    records, errors = read_dl_info(str(p))
    assert errors == [] and len(records) == len(parsed[0])
    assert records[0].file_name == parsed[0][0].file_name


def test_duplicated_rows_and_zero_size_boxes_are_reported(tmp_path):
    with open(SAMPLE, newline='') as f:
        header, *rows = list(csv.reader(f))
    col = {c: i for i, c in enumerate(header)}
    rows.append(list(rows[0]))  # line 47: the first row again
    rows[2][col['Bounding_boxes']] = '123, 181.32, 123, 223.888'  # line 4: zero width
    path = tmp_path / 'DL_info.csv'
    _write_rows(path, header, rows)
    records, errors = read_dl_info(str(path))
    assert [(e.line, e.field) for e in errors] == [(4, 'Bounding_boxes'), (47, '<row>')]
    assert 'zero-size' in errors[0].message and 'duplicate of line 2' in errors[1].message
    assert len(records) == 45 - 1 and [r.line for r in records].count(2) == 1
    # a second lesion of the same key slice (another box) is no duplicate
    rows[-1][col['Bounding_boxes']] = '140, 180, 160, 210'
    _write_rows(path, header, rows)
    records, errors = read_dl_info(str(path))
    assert [e.line for e in errors] == [4] and len(records) == 45
