"""The learned model: features, LSTM training, ONNX export, evaluation, registry, ONNX Runtime runner.

Modules are importable one by one; nothing here imports torch at package import time, so the
inference process can use the runtime, registry and features without loading torch.
"""
