"""The service layer: the one API of the web app (`Service`) and of the CLI (the headless functions).

`Service` (app.py) opens sessions (`open`), keeps their choices (`state`, `remember`) and lists
their runs (`runs`); it holds one part per job of the app, each a small class built with the
collaborators it needs:

    svc.datasets      the session's chosen dataset (example, upload, Hub id), its report and clips
    svc.augmenting    augmentation settings, previews, uploaded background noise
    svc.training      the Train form -> TrainConfig; start, stop, resume, attach, poll a job
    svc.evaluation    a finished run's metrics as tables, a matrix and playable mistakes
    svc.thresholds    a multi-label run's per-label thresholds, edited into its exported model
    svc.crossval      cross-validation: start, folds and map, label corrections -> a new dataset
    svc.predicting    a run's model on clips, the live listener, the model download
    svc.publishing    a run's model and card to the Hugging Face Hub
    svc.recording     classes of clips recorded in the browser, and using them as the dataset
    svc.tuning        the settings search: start, watch, stop, continue, train the best
    svc.runs_table    every run side by side, what changed between chosen runs, rename, delete, the default model

The session's choices live in `state.StateStore`; `headless.py` has what the CLI runs. Importing
this package loads no torch: engine modules are imported when an operation needs them.
"""

from astapp.core.events import fmt_score
from astapp.evaluation.embedmap import nearest as nearest_point
from astapp.evaluation.figures import (
                             confusion_matrix,
                             duration_histogram,
                             embedding_map,
                             fold_scores,
                             map_point,
                             pr_curves,
                             series_plot,
                             window_timeline,
)
from astapp.service.app import Service, default_model, model_choices
from astapp.service.augmenting import effective_transforms, transform_specs
from astapp.service.datasets import DatasetView
from astapp.service.evaluation import Evaluation
from astapp.service.headless import (
                             cv_run,
                             cv_summary,
                             export_run,
                             inspect_data,
                             label_issues_of,
                             predict_files,
                             push_run,
                             train_run,
                             tune_run,
                             tune_summary,
)
from astapp.service.runs import Comparison, compare_runs, runs_in_folder, split_numbers
from astapp.service.training import AUTO, FORM_FIELDS, Poll

__all__ = ["AUTO", "FORM_FIELDS", "Comparison", "compare_runs", "runs_in_folder", "split_numbers", "DatasetView", "Evaluation", "Poll", "Service", "confusion_matrix", "cv_run",
           "cv_summary", "default_model", "duration_histogram", "effective_transforms", "embedding_map",
           "export_run", "fmt_score", "fold_scores", "inspect_data", "label_issues_of", "map_point", "model_choices",
           "nearest_point", "pr_curves", "series_plot", "predict_files", "push_run", "train_run", "tune_run", "tune_summary", "transform_specs",
           "window_timeline"]
