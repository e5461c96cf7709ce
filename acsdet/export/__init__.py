"""Writing results: a case folder per CT (:mod:`.case_writer`, owned and swapped in whole:
:mod:`.case_folder`) by a registry of writers (:mod:`.writers`: json, csv, html, nifti,
overlays, and the DICOM SEG / SR of :mod:`.dicom_seg` / :mod:`.dicom_sr` over
:mod:`.dicom_kit`), and batch runs (:mod:`.batch`, planned by :mod:`.planner`)."""
from .case_folder import CaseFolderError, is_done
from .case_writer import write_case
from .writers import (OUTPUT_FILES, OUTPUT_TYPES, CaseOutput, output_types, register_writer,
                      resolve_writer)

__all__ = [
    'CaseFolderError', 'CaseOutput', 'OUTPUT_FILES', 'OUTPUT_TYPES', 'is_done', 'output_types',
    'register_writer', 'resolve_writer', 'write_case'
]
