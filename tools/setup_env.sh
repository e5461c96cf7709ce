#!/usr/bin/env bash
# Set up acsdet in an isolated virtualenv (.venv in the project root). Safe to re-run.
#
#   ACSDET_WHEELHOUSE=DIR   install mmcv from the wheels in DIR (else build it from source, 10-20 min)
#   ACSDET_PYTHON=python3.11 interpreter that creates the virtualenv
#   ACSDET_VENV=.venv        where the virtualenv lives
#
# Exact versions come from requirements/constraints.txt. A torch already present in the
# virtualenv (e.g. a CUDA build you installed there) is kept; otherwise the pinned torch is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${ACSDET_VENV:-.venv}
PY_BOOT=${ACSDET_PYTHON:-python3}
CONSTRAINTS=$ROOT/requirements/constraints.txt
say() { printf '[setup] %s\n' "$*"; }
pin() { grep -E "^$1[=<>]" "$CONSTRAINTS" | head -1; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtualenv $VENV with $($PY_BOOT --version)"
  "$PY_BOOT" -m venv "$VENV"
fi
PY="$ROOT/$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

# Build tooling first: mmcv's setup.py needs pkg_resources (setuptools<82). Every install below
# goes through the constraints, so no dependency (torch wants setuptools>=77) lifts that pin.
"${PIP[@]}" install -q --upgrade -c "$CONSTRAINTS" setuptools wheel

# torch: keep one that is already installed (a user's CUDA build), else the pinned CPU wheel.
if "$PY" -c 'import torch' 2>/dev/null; then
  TORCH_VER=$("$PY" -c 'import torch; print(torch.__version__)')
  say "keeping installed torch $TORCH_VER"
else
  say "installing $(pin torch)"
  "${PIP[@]}" install -q -c "$CONSTRAINTS" torch
  TORCH_VER=$("$PY" -c 'import torch; print(torch.__version__)')
fi
# Constraints without the torch pin, so the installed torch is never replaced.
CONS_NO_TORCH=$(mktemp)
trap 'rm -f "$CONS_NO_TORCH"' EXIT
grep -vE '^torch[=<>]' "$CONSTRAINTS" > "$CONS_NO_TORCH"

mmcv_ok() {
  "$PY" - "$(pin mmcv | sed 's/.*==//')" <<'PYEOF' 2>/dev/null
import sys
import mmcv
from mmcv.ops import nms, RoIAlign  # needs the compiled mmcv._ext
assert mmcv.__version__ == sys.argv[1], mmcv.__version__
PYEOF
}

if mmcv_ok; then
  say "mmcv with compiled ops already installed"
else
  "${PIP[@]}" uninstall -q -y mmcv mmcv-lite 2>/dev/null || true
  if [ -n "${ACSDET_WHEELHOUSE:-}" ]; then
    say "installing $(pin mmcv) from wheelhouse $ACSDET_WHEELHOUSE"
    "${PIP[@]}" install -q --prefer-binary --find-links "$ACSDET_WHEELHOUSE" -c "$CONS_NO_TORCH" mmcv
  else
    say "building $(pin mmcv) from source with compiled ops (10-20 minutes on 2 cores)"
    "${PIP[@]}" install -q -c "$CONS_NO_TORCH" mmengine ninja psutil
    MMCV_WITH_OPS=1 "${PIP[@]}" install --no-build-isolation --no-binary mmcv -c "$CONS_NO_TORCH" mmcv
  fi
  mmcv_ok || { echo "[setup] ERROR: mmcv.ops (compiled mmcv._ext) does not import after install" >&2; exit 1; }
fi

# Re-running is cheap: skip the resolver when nothing that decides the install has changed.
STAMP="$VENV/.acsdet-setup-stamp"
STATE=$(cat setup.py pyproject.toml "$CONSTRAINTS" | sha256sum | cut -d' ' -f1)-$TORCH_VER
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STATE" ] && "$PY" -c 'import acsdet' 2>/dev/null; then
  say "acsdet and its dependencies already installed (delete $STAMP to force)"
else
  say "installing acsdet (editable) with the dev extra (DICOM outputs, test and lint tools)"
  "${PIP[@]}" install -q -c "$CONS_NO_TORCH" -e ".[dev]"
  # The official ACS operators, the tests' reference. Its metadata pulls torchvision and a dozen
  # unrelated packages it does not import, so it is installed without them.
  "${PIP[@]}" install -q --no-deps "$(pin acsconv)"
fi

# mmengine declares opencv-python (the GUI build, needs libGL); acsdet uses the headless build.
# Two wheels own the same cv2 package, so keep exactly the headless one.
if "${PIP[@]}" show -q opencv-python >/dev/null 2>&1; then
  say "replacing opencv-python (GUI) with opencv-python-headless"
  "${PIP[@]}" uninstall -q -y opencv-python
  "${PIP[@]}" install -q --force-reinstall --no-deps -c "$CONS_NO_TORCH" opencv-python-headless
fi

"$PY" - <<'PYEOF' && echo "$STATE" > "$STAMP"
import cv2, mmcv, mmdet, mmengine, torch
import acsdet  # noqa: F401  registers acsdet's modules
from mmcv.ops import nms, RoIAlign  # noqa: F401
print(f'[setup] ok: torch {torch.__version__} (cuda {torch.cuda.is_available()}), '
      f'mmengine {mmengine.__version__}, mmcv {mmcv.__version__} (ops), mmdet {mmdet.__version__}, '
      f'opencv {cv2.__version__}')
PYEOF
