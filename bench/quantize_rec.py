"""int8 copies of the recognition model, for measuring (not used by the pipeline: see README).

    .venv/bin/pip install -e ".[quantize]"     # onnx: onnxruntime.quantization needs it
    .venv/bin/python bench/quantize_rec.py CROPS.pkl OUTDIR

CROPS.pkl: a pickled list of (crops, readings) per recognition call, as a recording engine
wrapped around `engines.get_engine` collects them while `process.process_file` runs dev files;
200 crops of it calibrate the static model. Writes OUTDIR/rec_dyn.onnx (dynamic, per-channel
int8 weights of every Conv and MatMul), rec_qcm.onnx (static QDQ, per-channel, U8S8, Conv and
MatMul only, MinMax on the calibration crops) and rec_qdq.onnx (static QDQ of every op).
The model is upgraded from opset 11 to 13 first: per-channel DequantizeLinear needs `axis`.
"""

from __future__ import annotations

import math
import pickle
import random
import sys
from importlib.util import find_spec
from pathlib import Path

import cv2
import numpy as np


def norm(img: np.ndarray) -> np.ndarray:
    """A crop as RapidOCR feeds it alone: 48 px high, padded to at least 320 px, in [-1, 1]."""
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    h, w = img.shape[:2]
    rw = int(math.ceil(48 * w / h))
    width = max(320, rw)
    x = cv2.resize(img, (rw, 48)).astype(np.float32).transpose(2, 0, 1) / 255
    p = np.zeros((3, 48, width), np.float32)
    p[:, :, :rw] = (x - 0.5) / 0.5
    return p[None]


def main(crops_pkl: Path, out: Path) -> None:
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    spec = find_spec("rapidocr")
    assert spec is not None and spec.origin
    src = Path(spec.origin).parent / "models" / "PP-OCRv6_rec_small.onnx"
    out.mkdir(parents=True, exist_ok=True)
    m13 = out / "rec_f32_op13.onnx"
    onnx.save(version_converter.convert_version(onnx.load(src), 13), m13)
    calls = pickle.loads(crops_pkl.read_bytes())
    crops = [c for cs, _ in calls for c in cs]
    random.seed(0)
    calib = random.sample(crops, min(200, len(crops)))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"x": norm(c)} for c in calib])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    def keep_meta(dst: Path) -> None:  # the character list lives in the model's metadata
        m0, m = onnx.load(src), onnx.load(dst)
        have = {p.key for p in m.metadata_props}
        m.metadata_props.extend(p for p in m0.metadata_props if p.key not in have)
        onnx.save(m, dst)

    quantize_dynamic(m13, out / "rec_dyn.onnx", per_channel=True, weight_type=QuantType.QInt8)
    for name, ops in (("rec_qcm.onnx", ["Conv", "MatMul"]), ("rec_qdq.onnx", None)):
        quantize_static(m13, out / name, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=ops)
    for name in ("rec_dyn.onnx", "rec_qcm.onnx", "rec_qdq.onnx"):
        keep_meta(out / name)
        print(out / name)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
