"""The names a model version's files and its ONNX graph's metadata go by (written at publish, read when served)."""

from __future__ import annotations

# the files of a bundle (``manifest.json`` lists each with its sha256; it is written last)
MODEL_SKOPS = "model.skops"
MODEL_ONNX = "model.onnx"
SIGNATURE = "signature.json"
METRICS = "metrics.json"
BASELINE = "baseline.json"
REFERENCE = "reference.parquet"
HOLDOUT = "holdout.parquet"
RUN = "run.json"
EXPORT = "export.json"
MANIFEST = "manifest.json"

# ONNX metadata_props written by the export and read by the ONNX runner
META_INPUTS = "mlopsctl.inputs"  # a JSON list: for each graph input, the feature(s) it takes and how
META_TASK = "mlopsctl.task"
META_CLASSES = "mlopsctl.classes"  # the graph's class labels, in its probability columns' order
# a missing category is fed to the graph as this string (ONNX strings have no NaN)
MISSING_STRING = "__missing__"
# the graph input holding every numeric feature, one column each
MATRIX_INPUT = "mlopsctl_numeric_features"
