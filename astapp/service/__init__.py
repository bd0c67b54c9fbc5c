"""The service layer: the one API of the web app (`Service`) and of the CLI (the headless functions).

`Service` (app.py) opens sessions (`open`), keeps their choices (`state`, `remember`) and lists
their runs (`runs`); it holds one part per job of the app, each a small class built with the
collaborators it needs:

    svc.datasets      the session's chosen dataset (example, upload, Hub id), its report and clips
    svc.augmenting    augmentation settings, previews, uploaded background noise
    svc.training      the Train form -> TrainConfig; start, stop, resume, attach, poll a job
    svc.evaluation    a finished run's metrics as tables, a matrix and playable mistakes
    svc.thresholds    a multi-label run's per-label thresholds, edited into its exported model
    svc.unknown       a run's unknown score: its histogram, the threshold picked, recalibration with other sounds
    svc.crossval      cross-validation: start, folds and map, label corrections -> a new dataset
    svc.predicting    a run's model on clips, the live listener, the model download
    svc.detecting     a run's model finding events in long recordings (kept in the session's workspace)
    svc.publishing    a run's model and card to the Hugging Face Hub
    svc.recording     classes of clips recorded in the browser, and using them as the dataset
    svc.versioning    dataset versions (v1, v2 ...), the clips waiting for the next one, going back to one
    svc.reviewing     a recording's detected events reviewed by ear; decisions -> a new version -> retrain
    svc.pooling       unlabeled recordings as a pool: search by example, label next, the labels as the dataset
    svc.distilling    a small fast student of a finished run, its teacher-vs-student table, which model answers
    svc.tuning        the settings search: start, watch, stop, continue, train the best
    svc.runs_table    every run side by side, what changed between chosen runs, rename, delete, the default model

The session's choices live in `state.StateStore`; `headless.py` has what the CLI runs (`scaling.py`: on a
Ray cluster). Importing
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
                             unknown_histogram,
                             window_timeline,
)
from astapp.service.app import Service, default_model, model_choices
from astapp.service.augmenting import effective_transforms, transform_specs
from astapp.service.datasets import DatasetView
from astapp.service.detecting import detect_files, detect_score, detect_settings
from astapp.service.evaluation import Evaluation
from astapp.service.headless import (
                             calibrate_run,
                             calibration_lines,
                             cv_run,
                             cv_summary,
                             distill_run,
                             export_run,
                             inspect_data,
                             label_issues_of,
                             predict_files,
                             push_run,
                             train_run,
                             tune_run,
                             tune_summary,
)
from astapp.service.pooling import build_pool_files, search_pool
from astapp.service.runs import Comparison, compare_runs, runs_in_folder, split_numbers
from astapp.service.scaling import detect_on_cluster, pool_on_cluster
from astapp.service.training import AUTO, FORM_FIELDS, Poll
from astapp.service.unknown import UnknownView, shares_line
from astapp.service.versioning import dataset_versions

__all__ = ["AUTO", "FORM_FIELDS", "Comparison", "DatasetView", "Evaluation", "Poll", "Service", "build_pool_files",
           "calibrate_run", "calibration_lines", "compare_runs", "confusion_matrix", "cv_run", "cv_summary",
           "dataset_versions", "default_model", "detect_files", "detect_on_cluster", "detect_score", "detect_settings", "distill_run",
           "duration_histogram", "effective_transforms", "embedding_map",
           "export_run", "fmt_score", "fold_scores", "inspect_data", "label_issues_of", "map_point", "model_choices",
           "nearest_point", "pr_curves", "predict_files", "push_run", "runs_in_folder", "search_pool", "series_plot",
           "shares_line", "split_numbers", "train_run", "transform_specs", "tune_run", "tune_summary",
           "UnknownView", "unknown_histogram", "window_timeline"]
__all__ += ["pool_on_cluster"]  # pool --ray (issue 29)
