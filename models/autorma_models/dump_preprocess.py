"""Writes the reference tensors the Rust preprocessing parity test compares against.

    python -m autorma_models.dump_preprocess --model fashion5 --out DIR IMAGE...

For each image: `<n>.f32` (raw little-endian float32, CHW, exactly `preprocess_file`'s output)
and one `index.json` listing {image, file, shape}.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .preprocess import PreprocessSpec, preprocess_file


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="model package folder: its model.json sets the spec")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("images", type=Path, nargs="+")
    a = p.parse_args(argv)
    spec = PreprocessSpec.from_model_json(json.loads((a.model / "model.json").read_text()))
    a.out.mkdir(parents=True, exist_ok=True)
    index = []
    for i, img in enumerate(a.images):
        x = preprocess_file(img, spec)
        name = f"{i}.f32"
        x.astype("<f4").tofile(a.out / name)
        index.append({"image": str(img.resolve()), "file": name, "shape": list(x.shape)})
    (a.out / "index.json").write_text(json.dumps(index, indent=2))
    print(f"wrote {len(index)} tensors to {a.out}")


if __name__ == "__main__":
    main()
