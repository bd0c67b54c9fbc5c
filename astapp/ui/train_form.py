"""The Train form, built from the settings table: one control per field of `FORM_ROWS`, shaped by its setting.

A setting's kind and form range pick the control (a number box, a slider when the range has few steps, a
checkbox, a text box, a dropdown for choices, a radio for the mode); its entry gives the label, the hint
and the range. So a setting joins the form by being named in `FORM_ROWS`, with no change here. Handlers
get the values as one {field: value} mapping (Gradio's `inputs_kwargs`), which also names the parameters
of the app's API endpoints.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from astapp.core.config import DEFAULT_MODEL, FORM_FIELDS, is_scratch, setting
from astapp.service import AUTO

SLIDER_STEPS = 100  # a form range of at most this many steps is a slider; a wider one, a number box
OPEN_ROWS = 2  # the rows always shown; the others fold under "More settings"
SPLIT_FIELDS = ("max_length", "val_split", "val_fold")  # what follows the chosen dataset
DEPENDENT = tuple(name for name in FORM_FIELDS if setting(name).scratch is not None)  # follow the model
MODES = [("full — every layer learns", "full"), ("LoRA — small adapters in every layer", "lora"),
         ("last-2 — last 2 layers + classifier", "last-2"), ("frozen — classifier only", "frozen")]


def control(name: str, value: Any, **over: Any) -> Any:
    """The control of one form field; `over` adds what only the page knows (choices found at run time,
    element ids the page has always had, visibility)."""
    s = setting(name)
    kw = {"label": s.label or name, "info": s.info or None, "elem_id": name.replace("_", "-"), **over}
    lo, hi, step = s.form or (None, None, None)
    if s.kind == "bool":
        return gr.Checkbox(value, **kw)
    if s.kind == "mode":
        return gr.Radio(MODES, value=value, **kw)
    if s.choices or "choices" in kw:  # choices found at run time also take a typed value (a path, a fold)
        return gr.Dropdown(kw.pop("choices", list(s.choices)), value=value, allow_custom_value=not s.choices, **kw)
    if s.kind in ("int", "float") and step and lo is not None and hi is not None and (hi - lo) / step <= SLIDER_STEPS:
        return gr.Slider(lo, hi, value=value, step=step, **kw)
    if s.kind in ("int", "float"):
        return gr.Number(value, minimum=lo, maximum=hi, precision=0 if s.kind == "int" else None,
                         **{"min_width": 100, **kw})
    return gr.Textbox(str(value), **{"min_width": 140, **kw})


def rows(names: tuple[tuple[str, ...], ...], values: dict[str, Any], over: dict[str, dict[str, Any]]
         ) -> dict[str, Any]:
    """A `gr.Row` of controls per tuple of field names; {field: control}."""
    made: dict[str, Any] = {}
    for row in names:
        with gr.Row():
            made.update({name: control(name, values[name], **over.get(name, {})) for name in row})
    return made


def overrides(model_choices: list[Any]) -> dict[str, dict[str, Any]]:
    """What a setting's entry cannot say: the models this app offers, the folds (known once a dataset is
    chosen: hidden until then), and the ids the page's model and mode pickers have always had."""
    return {"model": {"choices": model_choices, "elem_id": "model-choice", "scale": 3},
            "mode": {"elem_id": "mode-choice", "scale": 3},
            "val_fold": {"choices": [("auto", AUTO)], "visible": False}}


def split_controls(view: dict[str, Any] | None, fold: str | None = None) -> tuple[dict, dict, dict]:
    """Updates (as keyword dicts) of the input length, the validation share and the validation fold for a
    dataset: what 'auto' length means, and who decides the split (the share slider without folds; a fold
    picker, with the slider disabled, when the manifest has folds)."""
    view = view or {}
    auto = view.get("auto_length")
    length = {"info": f"auto = {auto} frames ({auto / 100:.2f} s) for this dataset, fits 95% of clips"
              if isinstance(auto, int) else "auto = fits 95% of your clips"}
    folds, auto_fold = list(view.get("folds") or []), view.get("auto_fold")
    if len(folds) < 2:
        return length, {"interactive": True, "info": None}, {"visible": False, "value": AUTO}
    choices = [(f"auto (fold {auto_fold})", AUTO), *((f"fold {f}", f) for f in folds)]
    value = fold if fold in folds else AUTO
    note = "Not used: the manifest's folds decide the split (pick the fold that validates beside)"
    return length, {"interactive": False, "info": note}, {"choices": choices, "value": value, "visible": True}


def dataset_info(view: dict[str, Any] | None) -> tuple[Any, Any, Any]:
    """The split controls for a newly chosen dataset (its folds start on auto)."""
    return tuple(gr.update(**kw) for kw in split_controls(view))


def restored(saved: dict[str, Any], view: dict[str, Any] | None) -> list[Any]:
    """Updates of every control, in form order: the saved values, and the dataset's split controls (the
    saved fold, when the dataset has it)."""
    saved = {**saved, "max_length": str(saved["max_length"])}
    controls = dict(zip(SPLIT_FIELDS, split_controls(view, str(saved.get("val_fold") or AUTO)), strict=True))
    return [gr.update(**{"value": saved[name], **controls.get(name, {})}) for name in FORM_FIELDS]


AUGMENTED_FAST_MODE = (
    "**Augmentation is on, so this mode loses its one-off cache:** each epoch runs the whole backbone on new "
    "augmented clips instead of reusing one cached pass (measured on the example, 2 CPU cores: about 4 min "
    "instead of seconds). For the fast path, set the preset to *none* (and SpecAugment and mixup to 0) in "
    "**Augment**.")


def caches(mode: str) -> bool:
    """Whether a mode runs its frozen layers once per clip and trains on the cached outputs (without
    augmentation: `astapp.training.fastmodes`)."""
    return mode == "frozen" or mode.startswith("last-")


def mode_hint(model: str, mode: str, hw: str, augmented: bool = False) -> str:
    """Plain-language speed hint for the chosen mode on the hardware we found; `augmented` (the session's
    saved augmentation is on) warns that a caching mode then runs at full cost."""
    text = _speed_hint(model, mode, hw)
    if augmented and caches(mode) and not is_scratch(model):
        text += "\n\n" + AUGMENTED_FAST_MODE
    return text


def _speed_hint(model: str, mode: str, hw: str) -> str:
    where = "your GPU" if hw == "cuda" else "this computer's CPU (no GPU found)"
    scratch = is_scratch(model)
    if scratch and mode != "full":
        return ("**Note:** a model trained **from scratch** knows nothing yet: choose mode **full**, otherwise "
                "only the classifier on top of random features learns.")
    size = ("a small from-scratch model" if scratch else "the full-size AST (87M parameters)"
            if model.strip() == DEFAULT_MODEL else "this checkpoint")
    if mode == "full":
        speed = ("fast on a GPU" if hw == "cuda" else
                 ("fine on a CPU" if scratch else "slow on a CPU: expect minutes per epoch even for a few "
                  "hundred clips; *frozen* is several times faster"))
        return f"**Training on {where}.** *full* trains every layer of {size}: best accuracy, {speed}."
    if mode == "frozen":
        return (f"**Training on {where}.** *frozen* trains only the final classifier: several times faster "
                "than full and light on memory — a good first try on a CPU or with few clips.")
    if mode == "lora":
        return (f"**Training on {where}.** *LoRA* adds small low-rank adapters to the attention of every layer "
                "and trains them with the classifier: 0.35% of the base AST's weights learn, so it overfits "
                "less on small datasets and needs 285× less optimizer memory; each step still runs the whole "
                "network (measured on 2 CPU cores: 1.7× faster per step than *full* for the base AST).")
    return (f"**Training on {where}.** *{mode}* trains the last layers and the classifier: "
            "a middle ground between *frozen* (fastest) and *full* (most accurate).")
