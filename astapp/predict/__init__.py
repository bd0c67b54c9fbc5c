"""Prediction with a trained model: which files, windows of long clips, top-k, batches, CSV.

One `Predictor` (`predictor`) over two backends that only turn windows into logits: `torch_backend`
(PyTorch) and `onnx_backend` (onnxruntime, no torch); `settings` reads an exported folder's labels and
feature settings once; `sources` expands files, folders and zips into the clips to predict.
"""
