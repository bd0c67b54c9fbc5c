"""Prediction with a trained model: which files, windows of long clips, top-k, batches, CSV.

One `Predictor` interface with a torch backend (`predictor`) and an ONNX backend that needs no torch
(`onnx_predictor`); `sources` expands files, folders and zips into the clips to predict.
"""
