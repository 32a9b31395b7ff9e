"""Writes a deliberately bad copy of a model package, to rehearse a rollback: its class list
rotated by one, so every photo gets another class's name while the confidences (and so the
review share) stay as they were. Only a comparison with the version before catches it.

    python -m autorma_models.bad_package --model ../models/fashion5 --out /tmp/fashion5-bad
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path


def write(model: Path, out: Path) -> list[str]:
    """Copies `model` to `out` (which must not exist) with its classes rotated; returns them."""
    shutil.copytree(model, out)
    manifest = json.loads((out / "model.json").read_text())
    classes = manifest["classes"]
    manifest["classes"] = classes[1:] + classes[:1]
    manifest["version"] = f"{manifest['version']}-labels-rotated"
    (out / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest["classes"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="package folder to copy")
    p.add_argument("--out", type=Path, required=True, help="new package folder (must not exist)")
    a = p.parse_args(argv)
    if a.out.exists():
        p.error(f"{a.out} exists")
    print("classes now:", ", ".join(write(a.model, a.out)))


if __name__ == "__main__":
    main()
