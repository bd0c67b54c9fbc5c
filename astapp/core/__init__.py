"""The base every layer stands on: settings, error sentences, atomic files, events, paths, the run folder.

`config` holds the one settings table (`SETTINGS`) that drives the CLI, the form and validation; `env`
reads numbers and flags from the environment; `errors` turns any exception into one sentence with its fix;
`fsutil` writes files crash-safely; `events` are the dicts a run streams; `paths` names the data root and
checks ids; `runfolder` names a run's files and reads them; `hub` says whether the Hugging Face Hub is
reachable. No torch, no gradio.
"""
