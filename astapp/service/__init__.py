"""The service layer: the one API of the web app (`Service`) and of the CLI (the headless functions).

    Face     app.py, astapp/cli.py            parse, launch, print
    UI       astapp/ui/                       Gradio tabs: layout and thin handlers
    Service  astapp/service/                  this package
    App      jobs, jobstate, runner, slicing, runs, publish, sessions, paths
    Train    train, trainer_setup, trainer_utils, fastmodes, lora, devices, events, metrics
    Data     ingest/, dataset, report, audio, examples, recordings
    Signal   features, featcache, figures, augment, augment_spec, preview, synth, noise
    Model    model, checkpoints, infer, export, hub
    Base     config, errors, fsutil, rundir

The UI imports only this package, `astapp.core.config` and `astapp.core.errors`. Importing it loads no torch:
engine modules are imported when an operation needs them.
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
)
from astapp.service.training import AUTO, FORM_FIELDS, Poll

__all__ = ["AUTO", "FORM_FIELDS", "DatasetView", "Evaluation", "Poll", "Service", "confusion_matrix", "cv_run",
           "cv_summary", "default_model", "duration_histogram", "effective_transforms", "embedding_map",
           "export_run", "fmt_score", "fold_scores", "inspect_data", "label_issues_of", "map_point", "model_choices",
           "nearest_point", "pr_curves", "predict_files", "push_run", "train_run", "transform_specs",
           "window_timeline"]
