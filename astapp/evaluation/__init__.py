"""Scores and pictures of a model's answers: metrics, multi-label mAP and thresholds, label issues,
the embedding map and the figures the app shows.
"""
