"""Outgrow one machine: the per-file jobs (detection; pool embedding next) spread over the workers of a Ray
cluster, with the records and outputs of the single-machine run.

`cluster` connects to Ray only when asked (`--ray [ADDRESS|auto]`: ray stays an optional dependency, one
sentence when it is missing or the cluster does not answer); `runner` runs a per-file job in this process or
on Ray actors that hold one model each, the driver writing each file's record as it comes back, so a rerun
skips finished files and a killed worker loses only its in-flight file; `detect` is `detect --ray`. Clusters
without Ray split the files with `--shard I/N` (`astapp.detection.run.shard_items`), one job-array task each.
"""
