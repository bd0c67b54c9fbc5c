"""Outgrow one machine: the per-file jobs (detection, pool embedding, window scores) spread over many workers.

`shard` splits a file list deterministically for clusters without Ray (a SLURM job array: `--shard I/N`);
`cluster` connects to Ray only when asked (`--ray [ADDRESS|auto]`: ray stays an optional dependency);
`runner` runs a `FileJob` over files, in this process or on Ray actors that hold one model each, and writes
each file's record as it comes back (`records`), so a rerun skips finished files and a killed worker loses
only its in-flight file; `scores` is the job that scores each file's windows with an exported model.
"""
