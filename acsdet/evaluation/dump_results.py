"""``AcsdetDumpDetResults``: MMDetection's ``DumpDetResults`` (predictions to a pickle for
``tools/froc_eval.py``) written atomically and only where acsdet may write
(:mod:`acsdet.utils.run_outputs`: never over the run's config or checkpoint, never over a file
acsdet did not write)."""
import pickle
from typing import Sequence

from mmengine.logging import print_log

from mmdet.evaluation.metrics import DumpDetResults
from mmdet.registry import METRICS

from ..utils.run_outputs import RunOutputs


@METRICS.register_module()
class AcsdetDumpDetResults(DumpDetResults):
    """Args: those of ``DumpDetResults``, and ``inputs``: the run's input files (a dump over
    one of them is refused when the metric is built, before the model runs)."""

    def __init__(self, out_file_path: str, inputs: Sequence[str] = (), **kwargs):
        super().__init__(out_file_path=out_file_path, **kwargs)
        self.outputs = RunOutputs('test', inputs)
        self.out_file_path = self.outputs.claim(out_file_path)

    def compute_metrics(self, results: list) -> dict:
        self.outputs.write(
            self.out_file_path, lambda f: pickle.dump(results, f, protocol=2), binary=True)
        print_log(f'Results has been saved to {self.out_file_path}.', logger='current')
        return {}
