import json
from pathlib import Path

from autorma_models import bad_package

FIXTURE = Path(__file__).resolve().parents[2] / "classifier/tests/fixtures/tiny5"


def test_the_bad_copy_rotates_the_classes_and_keeps_the_graph(tmp_path):
    out = tmp_path / "bad"
    classes = bad_package.write(FIXTURE, out)
    original = json.loads((FIXTURE / "model.json").read_text())
    assert classes == original["classes"][1:] + original["classes"][:1]
    assert json.loads((out / "model.json").read_text())["classes"] == classes
    assert (out / "model.onnx").read_bytes() == (FIXTURE / "model.onnx").read_bytes()
