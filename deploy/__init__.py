"""Deploy stage: ONNX export of a pretrained policy and an onnxruntime runner (not built yet, issue 4)."""
