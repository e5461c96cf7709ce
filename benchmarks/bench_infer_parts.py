#!/usr/bin/env python
"""Where whole-CT inference spends its work and time, against the machine: the FLOPs of each
part of the model (``torch.utils.flop_counter.FlopCounterMode``: stem and dense blocks, the
depth-collapsing convs, neck, RPN, RoI box head, mask head), the seconds of each (module hooks,
a separate run), their achieved GFLOP/s, the GFLOP/s of a reference large convolution measured in
the same run, before and after the model (the practical peak: the better of the two), and the
ratio; and the seconds outside the model (reading, resampling and the test pipeline, grouping,
writing).

    python benchmarks/bench_infer_parts.py [--config CONFIG] [--ct 100x5] [--size 512]
        [--precision fp32 bf16] [--mode volumetric] [--depth-chunk 32]

Random weights (the work is the same as a trained model's); ``--score-thr`` sets how many
detections reach the mask head (a trained model keeps a few per slice: the default 0.5 on
random weights keeps about as many). Run on this project's 2-core CPU: docs/benchmarks.md.
"""
import argparse
import importlib
import os
import os.path as osp
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager

# isort: off
from acsdet.utils.allocator import reuse_freed_memory, use_huge_pages

HUGE_PAGES = use_huge_pages()  # as `acsdet infer` (THP_MEM_ALLOC_ENABLE=0 turns it off)
import torch  # noqa: E402  (after the switch: torch reads it when it starts)
# isort: on

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from benchmarks import bench_infer  # noqa: E402

#: The parts, by the module classes FlopCounterMode attributes the work to.
PARTS = ('stem + dense blocks', 'depth collapse', 'neck', 'RPN', 'RoI box head', 'mask head')


def part_modules(model) -> dict:
    """``{part: [modules]}`` whose calls make up each part's FLOPs (none nested in another; the
    volumetric pass calls the dense layers one by one, not their blocks)."""
    f = model.backbone.features
    dense = [f.conv0, f.norm0, f.relu0, f.pool0]
    for n, m in f.named_children():
        if n.startswith('denseblock'):
            dense += list(m.children())  # the dense layers
        elif n.startswith('transition') or (n.startswith('norm') and n != 'norm0'):
            dense.append(m)
    roi = model.roi_head
    return {
        'stem + dense blocks': dense,
        'depth collapse': [],  # a function, not its convs' calls: FUNCTION_PARTS
        'neck': [model.neck],
        'RPN': [model.rpn_head],
        'RoI box head': [roi.bbox_roi_extractor, roi.bbox_head],
        'mask head': [roi.mask_roi_extractor, roi.mask_head],
    }


#: The functions whose whole work is a part's (the volumetric pass collapses depth by a matrix
#: product or by the conv, per window: ``collapse_windows``, looked up at each pass).
FUNCTION_PARTS = {
    'depth collapse': ('acsdet.models.backbones.truncated_densenet', 'collapse_windows')
}


@contextmanager
def functions_wrapped(targets: dict, wrap):
    """Each function ``targets[key] = (module, name)`` replaced by ``wrap(key, function)`` in its
    module (looked up there at each call), while in the ``with`` block; restored after."""
    saved = []
    for key, (module, name) in targets.items():
        mod = importlib.import_module(module)
        inner = getattr(mod, name)
        setattr(mod, name, wrap(key, inner))
        saved.append((mod, name, inner))
    try:
        yield
    finally:
        for mod, name, inner in saved:
            setattr(mod, name, inner)


def around_functions(enter, leave):
    """Each of :data:`FUNCTION_PARTS` calling ``enter(part)`` before and ``leave(part)`` after
    every call, while in the ``with`` block."""

    def wrap(part, inner):

        def wrapped(*a, **k):
            enter(part)
            try:
                return inner(*a, **k)
            finally:
                leave(part)

        return wrapped

    return functions_wrapped(FUNCTION_PARTS, wrap)


#: The methods whose whole time is a head's (its layers and its post-processing: decoding, NMS,
#: pasting masks into the image).
HEAD_METHODS = {
    'RPN': ('rpn_head', 'predict'),
    'RoI box head': ('roi_head', 'predict_bbox'),
    'mask head': ('roi_head', 'predict_mask')
}


def flops_by_part(model, run) -> dict:
    """FLOPs of each part during ``run()`` (by the module that did them), and their total."""
    from torch.utils.flop_counter import FlopCounterMode
    names = {}
    for part, mods in part_modules(model).items():
        for m in mods:
            names[id(m)] = part
    by_part = defaultdict(float)
    handles = []
    stack = []

    def pre(mod, args, part):
        stack.append((part, counter.get_total_flops()))

    def post(mod, args, out):
        part, before = stack.pop()
        by_part[part] += counter.get_total_flops() - before

    with FlopCounterMode(display=False) as counter:
        for part, mods in part_modules(model).items():
            for m in mods:
                handles.append(m.register_forward_pre_hook(lambda mod, a, p=part: pre(mod, a, p)))
                handles.append(m.register_forward_hook(post))
        try:
            with around_functions(lambda p: pre(None, None, p), lambda p: post(None, None, None)):
                run()
        finally:
            for h in handles:
                h.remove()
    by_part['total'] = counter.get_total_flops()
    return dict(by_part)


#: The dense blocks' memory-bound step, timed on its own inside them: a dense layer's (and a
#: transition's) inputs normalised (eval BatchNorm, ReLU) into one buffer.
NORMALISATION = ('acsdet.models.backbones.densenet', 'bn_relu_concat')


def normalisation_timed(by_part: dict):
    """:data:`NORMALISATION` adding its seconds to ``by_part['normalisation']`` and the elements
    it writes to ``by_part['normalised elements']``, while in the ``with`` block."""

    def wrap(_, inner):

        def timed(*a, **k):
            t = time.perf_counter()
            out = inner(*a, **k)
            by_part['normalisation'] += time.perf_counter() - t
            by_part['normalised elements'] += out.numel()
            return out

        return timed

    return functions_wrapped({'normalisation': NORMALISATION}, wrap)


def best_seconds(fn, rounds: int) -> float:
    """The least wall time of ``fn()`` in ``rounds`` calls, after one call to warm up."""
    fn()
    best = float('inf')
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def reference_normalisation_rate(precision: str, rounds: int = 5) -> float:
    """G elements/s of :data:`NORMALISATION` on one large input (256 channels, 8 x 128 x 128,
    channels-last-3d, the pass's dtype), its best of ``rounds``: this machine's rate for that
    memory-bound step without the dense layers' many thin inputs."""
    normalise = getattr(importlib.import_module(NORMALISATION[0]), NORMALISATION[1])
    norm = torch.nn.BatchNorm3d(256).eval()
    dtype = torch.bfloat16 if precision == 'bf16' else torch.float32
    x = torch.randn(
        1, 256, 8, 128, 128, dtype=dtype).contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        return x.numel() / best_seconds(lambda: normalise([x], norm), rounds) / 1e9


def seconds_by_part(model, run) -> dict:
    """Wall seconds of each part during ``run()``: the backbone's and neck's by forward hooks,
    the heads' by their predict methods (post-processing included; CPU: synchronous); and
    within the dense blocks the normalisation's (:func:`normalisation_timed`)."""
    by_part, handles, stack = defaultdict(float), [], []
    saved = []
    for part, (owner, name) in HEAD_METHODS.items():
        obj = getattr(model, owner)
        inner = getattr(obj, name)

        def timed(*a, _inner=inner, _part=part, **k):
            t = time.perf_counter()
            try:
                return _inner(*a, **k)
            finally:
                by_part[_part] += time.perf_counter() - t

        setattr(obj, name, timed)
        saved.append((obj, name))
    for part, mods in part_modules(model).items():
        if part in HEAD_METHODS:
            continue
        for m in mods:
            handles.append(
                m.register_forward_pre_hook(lambda mod, a, p=part: stack.append(
                    (p, time.perf_counter()))))
            handles.append(
                m.register_forward_hook(lambda mod, a, o: (lambda p, t: by_part.__setitem__(
                    p, by_part[p] + time.perf_counter() - t))(*stack.pop())))
    starts = []

    def leave(part):
        by_part[part] += time.perf_counter() - starts.pop()

    try:
        t0 = time.perf_counter()
        with around_functions(lambda p: starts.append(time.perf_counter()), leave), \
                normalisation_timed(by_part):
            out = run()
        by_part['total'] = time.perf_counter() - t0
    finally:
        for h in handles:
            h.remove()
        for obj, name in saved:
            delattr(obj, name)  # the class's method again
    return dict(by_part), out


def reference_conv_gflops(precision: str, rounds: int = 7) -> float:
    """GFLOP/s of one large convolution (256 -> 256 channels, 3 x 3, 128 x 128, batch 2,
    channels-last as oneDNN prefers), its best of ``rounds``: what these cores reach on the
    model's dominant operation."""
    from torch.utils.flop_counter import FlopCounterMode

    from acsdet.inference.precision import autocast_to
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).eval()
    x = torch.randn(2, 256, 128, 128).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), autocast_to(precision, 'cpu'):
        with FlopCounterMode(display=False) as fc:
            conv(x)
        best = best_seconds(lambda: conv(x), rounds)
    return fc.get_total_flops() / best / 1e9


def print_parts(secs: dict, flops: dict, model_s: float, ref: float):
    """The parts table: each part's FLOPs, seconds, GFLOP/s and its ratio to the reference
    conv's ``ref`` GFLOP/s, and where the time over the reference rate goes: each part's
    seconds at that rate and over it, with its share of the model's seconds over it; then the
    glue, the model's time outside the parts (the depth stream's bookkeeping, the copies of a
    step's features, the heads' data samples), all of it over."""
    total = flops.get('total')
    model_over = model_s - total / ref / 1e9 if total else None

    def row(part, s, fl, over=None):
        rate = fl / s / 1e9 if fl and s > 0 else None
        at_ref = fl / ref / 1e9 if fl is not None else None
        over = s - at_ref if at_ref is not None else over
        share = (f' ({100 * over / model_over:.0f}%)'
                 if over is not None and model_over and part != 'model' else '')
        print(f'| {part} | {"-" if fl is None else f"{fl / 1e12:.2f}"} | {s:.1f} | '
              f'{"-" if rate is None else f"{rate:.0f}"} | '
              f'{"-" if rate is None else f"{100 * rate / ref:.0f}%"} | '
              f'{"-" if at_ref is None else f"{at_ref:.1f}"} | '
              f'{"-" if over is None else f"{over:.1f}"}{share} |')

    print('| part | TFLOP | s | GFLOP/s | of the reference conv | s at the reference rate | '
          's over it (share) |')
    print('|---|---|---|---|---|---|---|')
    for part in PARTS:
        row(part, secs.get(part, 0.0), flops.get(part))
    glue = model_s - sum(secs.get(part, 0.0) for part in PARTS)
    row('glue (outside the parts)', glue, None, glue if total else None)
    row('model', model_s, total)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--config', default='configs/deeplesion_acs_7slice.py')
    p.add_argument('--ct', default='100x5', help='NxMM: N slices MM apart')
    p.add_argument('--size', type=int, default=512)
    p.add_argument('--precision', nargs='+', default=['fp32', 'bf16'])
    p.add_argument('--mode', default='volumetric', choices=['per-slice', 'volumetric'])
    p.add_argument('--depth-chunk', type=int, default=32)
    p.add_argument('--score-thr', type=float, default=0.5)
    bench_infer.add_max_per_slice(p)
    p.add_argument('--no-flops', action='store_true', help='times only (FLOP counting is slow)')
    p.add_argument(
        '--reuse-memory', action='store_true', help='as acsdet infer --reuse-memory (glibc)')
    args = p.parse_args(argv)
    reuse = args.reuse_memory and reuse_freed_memory()
    import acsdet.all_modules  # noqa: F401  (registers acsdet's modules)
    from acsdet.apis import LesionDetector, write_case
    from acsdet.io import read_ct
    print(f'{torch.get_num_threads()} threads, torch {torch.__version__}; {args.config}, CT '
          f'{args.ct} mm at {args.size} px, {args.mode}; huge pages {"on" if HUGE_PAGES else "off"}'
          f', freed memory {"reused" if reuse else "returned"}')
    with tempfile.TemporaryDirectory() as tmp:
        n, mm = args.ct.split('x')
        ct = bench_infer.phantom_nifti(osp.join(tmp, 'ct'), int(n), float(mm), args.size)
        ckpt = bench_infer.random_checkpoint(args.config, tmp)
        cfg = bench_infer.capped_config(args.config, args.max_per_slice)
        counted = {}
        for precision in args.precision:
            det = LesionDetector(
                cfg,
                ckpt,
                score_thr=args.score_thr,
                volumetric=args.mode == 'volumetric',
                depth_chunk=args.depth_chunk,
                precision=precision)
            ref = reference_conv_gflops(det.precision)  # and after: the better of the two
            t0 = time.perf_counter()
            vol = read_ct(ct)
            t_read = time.perf_counter() - t0
            secs, res = seconds_by_part(det.model, lambda: det(vol))
            t1 = time.perf_counter()
            with tempfile.TemporaryDirectory() as out:
                write_case(res, out, 'case', save_masks=True)
            t_write = time.perf_counter() - t1
            if not args.no_flops and not counted:  # the same work in every precision: once
                counted = flops_by_part(det.model, lambda: det(vol))
            flops = counted
            ref = max(ref, reference_conv_gflops(det.precision))
            model_s = res.seconds['model']
            print(f'\nprecision {det.precision}: reference conv {ref:.0f} GFLOP/s; '
                  f'{len(res.detections)} detections kept, {len(res.lesions)} lesions; heads '
                  'timed with their post-processing (decoding, NMS, mask pasting)')
            print_parts(secs, flops, model_s, ref)
            if secs.get('normalisation'):
                elements = secs['normalised elements'] / 1e9
                print(f'of the dense blocks: the normalisation {secs["normalisation"]:.1f} s, '
                      f'{elements:.2f} G elements at '
                      f'{elements / secs["normalisation"]:.2f} G/s; on one 256-channel input '
                      f'{reference_normalisation_rate(det.precision):.2f} G/s')
            outside = dict(
                read=t_read,
                prepare=res.seconds.get('prepare', 0.0),
                group=res.seconds['group'],
                write=t_write)
            print('outside the model: ' + ', '.join(f'{k} {v:.1f} s' for k, v in outside.items()) +
                  f'; whole CT {t_read + res.seconds["total"] + t_write:.1f} s')
            sys.stdout.flush()
    return 0


if __name__ == '__main__':
    os.environ.setdefault('OMP_NUM_THREADS', str(torch.get_num_threads()))
    sys.exit(main())
