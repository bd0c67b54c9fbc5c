"""Detection: find sounds with a start and an end in recordings of any length (issue 26).

stream (blockwise decode + streaming resample) -> scores (windows at a hop, batched through a Predictor)
-> events (smoothing, hysteresis, min length, merge gap, unknown) -> formats (CSV, Audacity, Raven, JSONL),
run (many files, resumable per-file records, shards) and scoring (event-based P/R/F1 against references).
"""
