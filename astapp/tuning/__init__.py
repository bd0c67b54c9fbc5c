"""Hyperparameter search (task "tune"): Optuna TPE over the settings that matter in a mode, each trial a head
(or top layers) fit on the activations one pass of the frozen layers cached, pruned from its per-epoch validation
scores, recorded as a child folder; a held-back test share is scored once at the end (`search.run_tune`)."""
