"""Training: task pipelines, evaluation, tuning, runs and ONNX export."""
