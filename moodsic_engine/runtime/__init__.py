"""Speed infrastructure: on-disk caches keyed by weights fingerprints, ONNX Runtime
sessions for the CLIP image encoder and EmoNet, and background model loading.

Nothing here changes what the experts compute: a cached prompt embedding is the one the
text encoder gave for the same weights, and an ONNX model is exported from the same
weights and checked against PyTorch (fp32, within 1e-4) before it is cached. When
onnxruntime is not installed, or an export fails, the experts run on PyTorch as before.
Heavy imports (torch, onnxruntime) happen inside functions only.
"""
