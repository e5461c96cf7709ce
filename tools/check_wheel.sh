#!/usr/bin/env bash
# Check acsdet as a user installs it: build the wheel, install it into a new virtualenv (mmcv
# from the wheelhouse, as the set-up does), and in an empty folder outside the clone run the
# command: --version, configs, every --help (each under a second), convert synthetic, convert
# coco, a two-iteration train of the demo config, convert nifti, then infer from that checkpoint
# alone, checking lesions.json. About 3 minutes on 2 cores (most of it installing torch from the
# pip cache).
#
#   ACSDET_WHEELHOUSE=DIR   mmcv wheels (else mmcv builds from source)
#   ACSDET_WHEEL_CHECK=DIR  where the virtualenv and the run go (default: a temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
CONSTRAINTS=$ROOT/requirements/constraints.txt
WORK=${ACSDET_WHEEL_CHECK:-$(mktemp -d)}
say() { printf '[wheel] %s\n' "$*"; }
fail() { printf '[wheel] FAILED: %s\n' "$*" >&2; exit 1; }

rm -rf "$WORK/dist" "$WORK/venv" "$WORK/run"
mkdir -p "$WORK/dist" "$WORK/run"
say "building the wheel"
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$WORK/dist" . >/dev/null
WHEEL=$(ls "$WORK"/dist/acsdet-*.whl)
"$PY" - "$WHEEL" <<'PYEOF' || fail "the wheel lacks its configs or its command"
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
need = ['acsdet/.mim/configs/deeplesion_acs_7slice.py', 'acsdet/.mim/configs/metafile.yml',
        'acsdet/.mim/configs/_base_/default_runtime.py',
        'acsdet/.mim/configs/demo/deeplesion_acs_7slice_demo.py', 'acsdet/cli/__init__.py']
missing = [n for n in need if n not in names]
eps = [n for n in names if n.endswith('entry_points.txt')]
text = zipfile.ZipFile(sys.argv[1]).read(eps[0]).decode() if eps else ''
assert not missing and 'acsdet = acsdet.cli:main' in text, (missing, text)
print(f'[wheel] {sys.argv[1].rsplit("/", 1)[-1]}: {len(names)} files, configs and command inside')
PYEOF

say "installing it into a new virtualenv"
"$PY" -m venv "$WORK/venv"
VPIP=("$WORK/venv/bin/python" -m pip --disable-pip-version-check -q)
"${VPIP[@]}" install -c "$CONSTRAINTS" setuptools wheel
"${VPIP[@]}" install -c "$CONSTRAINTS" torch
FIND=()
[ -n "${ACSDET_WHEELHOUSE:-}" ] && FIND=(--find-links "$ACSDET_WHEELHOUSE")
"${VPIP[@]}" install "${FIND[@]}" --prefer-binary -c <(grep -vE '^torch[=<>]' "$CONSTRAINTS") \
  "${WHEEL}[dicom]"
# mmengine declares the GUI OpenCV; keep the headless one, as the set-up does
if "${VPIP[@]}" show opencv-python >/dev/null 2>&1; then
  "${VPIP[@]}" uninstall -y opencv-python
  "${VPIP[@]}" install --force-reinstall --no-deps \
    -c <(grep -vE '^torch[=<>]' "$CONSTRAINTS") opencv-python-headless
fi

cd "$WORK/run"  # an empty folder outside the clone: nothing of the checkout is seen
export PATH="$WORK/venv/bin:$PATH"
[ "$(command -v acsdet)" = "$WORK/venv/bin/acsdet" ] || fail "acsdet is not the new virtualenv's"
acsdet --version | grep -q "^acsdet " || fail "acsdet --version"
acsdet configs > configs.txt
grep -q "^deeplesion_acs_7slice " configs.txt || fail "acsdet configs lists no deeplesion_acs_7slice"
grep -q "$WORK/venv/lib/.*/site-packages/acsdet/.mim/configs" configs.txt \
  || fail "acsdet configs does not read the installed package's configs"
python - <<'PYEOF' || fail "a --help took a second or more"
import subprocess, time
from acsdet.cli import SUBCOMMANDS
from acsdet.cli.convert import CONVERSIONS
for call in [[n] for n in SUBCOMMANDS] + [['convert', c] for c in CONVERSIONS]:
    t = time.perf_counter()
    subprocess.run(['acsdet', *call, '--help'], check=True, capture_output=True)
    dt = time.perf_counter() - t
    assert dt < 1.0, (call, dt)
print(f'[wheel] {len(SUBCOMMANDS) + len(CONVERSIONS)} --help calls, each under a second')
PYEOF

say "convert synthetic + coco, train one epoch (one or two iterations), infer from the checkpoint alone"
acsdet convert synthetic --out data --num-series 6 --seed 0 --image-size 128 --context-mm 8 \
  --lesion-mm 12 40 >/dev/null
acsdet convert coco --data-root data --out-dir data/annotations >/dev/null
# one epoch of the few training key slices in batches of 4: one or two iterations
acsdet train demo/deeplesion_acs_7slice_demo --work-dir work --data-root data/ --cfg-options \
  train_cfg.max_epochs=1 train_cfg.val_interval=1000 train_dataloader.num_workers=0 \
  train_dataloader.persistent_workers=False > train.log 2>&1 || { tail -30 train.log; fail "train"; }
CKPT=work/epoch_1.pth
[ -f "$CKPT" ] || { ls work; fail "no checkpoint $CKPT"; }
acsdet convert nifti --dl-info data/DL_info.csv --images-dir data/Images_png --split test \
  --limit 1 --out-dir ct >/dev/null
acsdet infer "$CKPT" ct/*.nii.gz --out-dir out --score-thr 0.0 --no-progress > infer.log \
  || { cat infer.log; fail "infer"; }
grep -q "config: the one $CKPT carries" infer.log || fail "infer did not say it used the checkpoint's config"
python - <<'PYEOF' || fail "lesions.json"
import glob, json
(path, ) = glob.glob('out/*/lesions.json')
doc = json.load(open(path))
assert doc['config'].endswith('(the config it carries)') and 'lesions' in doc, doc.keys()
assert doc['checkpoint_sha256'] and doc['geometry']['size_xyz'][0] == 128
print(f'[wheel] {path}: {len(doc["lesions"])} lesion(s), {len(doc["detections"])} detection(s)')
PYEOF
say "ok: the installed acsdet ran end to end from $WORK/run"
