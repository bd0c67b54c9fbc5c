"""Runs as jobs: the queue and its worker, a job's progress, the run record, the run registry, slices, sessions.

`manager.JobManager` queues and runs jobs on one worker thread; `job.Job` is one job's in-memory
progress; `record.RunRecord` is the one writer of a run's status, config, meta and log, and
`record.run_job` runs the engine under it; `registry` lists the runs an owner may see; `slicing` runs
training in slices of bounded time; `sessions` are owners and their workspaces.
"""
