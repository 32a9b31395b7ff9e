"""AutoRMA model tooling: train, judge, export and package the photo classifier.

The Rust pipeline runs what this package writes: a folder with `model.onnx`, `model.json`
(the contract in `models/PACKAGE.md`) and `MODEL_CARD.md`. Preprocessing lives in
`preprocess.py` and is the single definition both training and evaluation use.
"""
