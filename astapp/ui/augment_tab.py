"""Augment tab: hear and see one clip as the model will, with and without augmentation.

The controls are built from `astapp.augment.PRESETS` (one toggle + probability per transform), so
new transforms appear here without UI changes. Every preview also stores the resulting
`AugmentConfig` in the session state that the Train tab reads, so what you hear is what trains.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from astapp.config import AUGMENT_PRESETS, AugmentConfig
from astapp.ui.common import UiContext, guarded, heavy, pcm16

MAX_CHOICES = 300


@dataclass
class AugmentTab:
    tab: gr.Tab
    dataset_outputs: list[Any]
    on_dataset: Callable[[dict[str, Any] | None], Any]


def transform_specs() -> list[dict[str, Any]]:
    """Every transform astapp offers: {name, help, params: {param: {default, min, max, step, help}}}."""
    from astapp.augment import CATALOGUE

    return [{"name": name, "help": c.get("help", ""), "params": c.get("params", {})}
            for name, c in CATALOGUE.items()]


def preset_values(preset: str, specs: list[dict[str, Any]]) -> list[Any]:
    """Control values (enabled, then each parameter, per transform) that a preset means."""
    from astapp.augment import resolve

    eff = {e["name"]: e for e in resolve(AugmentConfig(preset=preset))}
    out: list[Any] = []
    for spec in specs:
        e = eff.get(spec["name"], {"enabled": False, "params": {}})
        out.append(bool(e["enabled"]))
        out += [e["params"].get(k, v["default"]) for k, v in spec["params"].items()]
    return out


def _pretty(name: str) -> str:
    """"AddGaussianSNR" → "Add gaussian SNR" (acronyms kept)."""
    import re

    words = re.findall(r"[A-Z]+(?=[A-Z][a-z]|$)|[A-Z]?[a-z]+|\d+", name) or [name]
    return " ".join(w if (w.isupper() and len(w) > 1) or i == 0 else w.lower() for i, w in enumerate(words))


def make_augment(preset: str, freq_mask: float, time_mask: float, mixup: float,
                 specs: list[dict[str, Any]], values: tuple[Any, ...], shown: str | None = None) -> AugmentConfig:
    """AugmentConfig from the controls: the preset, plus overrides where a control was changed.

    `shown` is the preset the transform controls were last filled from; only controls that differ
    from it count as the user's changes (so an API call naming just a preset gets exactly that preset).
    """
    preset = str(preset or "none")
    shown = shown if shown in AUGMENT_PRESETS else preset
    base = preset_values(shown, specs) if shown in AUGMENT_PRESETS else []
    overrides: dict[str, dict[str, Any]] = {}
    i = 0
    for spec in specs:
        keys = ["enabled", *spec["params"]]
        o: dict[str, Any] = {}
        for k in keys:
            if i < len(values) and values[i] is not None and (i >= len(base) or values[i] != base[i]):
                o[k] = bool(values[i]) if k == "enabled" else float(values[i])
            i += 1
        if o:
            overrides[spec["name"]] = o
    return AugmentConfig(preset=preset, transforms=overrides, freq_mask=int(freq_mask or 0),
                         time_mask=int(time_mask or 0), mixup=float(mixup or 0))


def build(ctx: UiContext, dataset: gr.State, augment: gr.State) -> AugmentTab:
    specs = transform_specs()
    with gr.Tab("2 · Augment", id="augment") as tab:
        # The preset the transform controls show. It must live inside the Tab: a State placed directly
        # under gr.Tabs shifts the tab labels in the Gradio 6.31 frontend.
        shown = gr.State("light")
        gr.Markdown("Augmentation makes each training pass hear a slightly different version of your clips, "
                    "so the model learns the sound and not the recording. Listen and look before you train: "
                    "**these settings are the ones training uses.**")
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                clip = gr.Dropdown(label="Clip", choices=[], allow_custom_value=True, elem_id="augment-clip")
                preset = gr.Radio(list(AUGMENT_PRESETS), value="light", label="Preset",
                                  info="none = off · light = gentle gain/shift/noise · classic = stronger")
                toggles: list[Any] = []
                initial = iter(preset_values("light", specs))
                with gr.Accordion("Waveform transforms", open=False):
                    for spec in specs:
                        toggles.append(gr.Checkbox(next(initial), label=_pretty(spec["name"]), info=spec["help"]))
                        with gr.Row():
                            for k, ps in spec["params"].items():
                                label = "probability" if k == "p" else k.replace("_", " ")
                                toggles.append(gr.Slider(ps["min"], ps["max"], value=next(initial), step=ps["step"],
                                                         label=label, min_width=110))
                with gr.Accordion("Spectrogram (SpecAugment) and mixup", open=False):
                    freq_mask = gr.Slider(0, 64, value=0, step=1, label="Frequency mask width (mel bins)",
                                          info="AST recipe: 48")
                    time_mask = gr.Slider(0, 256, value=0, step=4, label="Time mask width (frames)",
                                          info="AST recipe: 192 at 10 s; keep it below your clip length")
                    mixup = gr.Slider(0, 1, value=0, step=0.05, label="Mixup probability",
                                      info="mixes pairs of clips and their labels (AST recipe: 0.5)")
                with gr.Row():
                    seed = gr.Number(0, label="Random seed", precision=0, min_width=100)
                    reroll = gr.Button("Re-roll", min_width=100)
                go = gr.Button("Preview", variant="primary", elem_id="preview-btn")
            with gr.Column(scale=2):
                figure = gr.Plot(label="Waveform and log-mel spectrogram", show_label=False,
                                 elem_id="augment-plot")
                with gr.Row():
                    original = gr.Audio(label="Original", interactive=False, buttons=[])
                    augmented = gr.Audio(label="Augmented (what training hears)", interactive=False, buttons=[])
                summary = gr.Markdown(elem_classes=["astapp-hint"])

    def on_preset(p: str) -> list[Any]:
        return [*(gr.update(value=v) for v in preset_values(p, specs)), p]

    def on_dataset(data: dict[str, Any] | None) -> Any:
        try:
            choices = clip_choices(data)
        except Exception:  # noqa: BLE001 - a list we cannot read just stays empty
            choices = []
        return gr.Dropdown(choices=choices, value=choices[0] if choices else None)

    @guarded
    def preview_fn(data: dict[str, Any] | None, shown_v: str | None, clip: str | None, preset: str,
                   freq_mask: float, time_mask: float, mixup: float, seed: float,
                   *values: Any) -> tuple[Any, ...]:
        from astapp.audio import load_audio
        from astapp.preview import preview

        cfg = make_augment(preset, freq_mask, time_mask, mixup, specs, values, shown_v)
        problems = _cfg_problems(cfg)
        if problems:
            raise gr.Error(" ".join(problems))
        from astapp.ui.data_tab import current

        path = _clip_path(current(ctx, data), clip)
        wav = load_audio(path, max_seconds=30)
        pv = preview(wav, cfg, int(seed or 0))
        sr = int(getattr(pv, "sample_rate", 16000))
        applied = ", ".join(_pretty(n) for n in getattr(pv, "applied", [])) or (
            "nothing this time (re-roll to draw again)" if cfg.preset != "none" or cfg.transforms else "no augmentation")
        text = (f"Preset **{cfg.preset}** · this draw applied: {applied}"
                + (f", {len(cfg.transforms)} change(s) to it" if cfg.transforms else "")
                + (f" · SpecAugment {cfg.freq_mask} bins / {cfg.time_mask} frames" if cfg.freq_mask or cfg.time_mask
                   else "")
                + (f" · mixup {cfg.mixup:g}" if cfg.mixup else "")
                + " — saved for training.")
        return cfg.__dict__.copy(), pv.figure, pcm16(sr, pv.original), pcm16(sr, pv.augmented), text

    def reroll_fn(_seed: float) -> int:
        import random

        return random.randint(1, 1_000_000)

    def sync_fn(shown_v: str, preset_v: str, fm: float, tm: float, mx: float, *values: Any) -> dict[str, Any]:
        """Keep the training settings in step with the controls, even without a preview."""
        return make_augment(preset_v, fm, tm, mx, specs, values, shown_v).__dict__.copy()

    inputs = [dataset, shown, clip, preset, freq_mask, time_mask, mixup, seed, *toggles]
    outputs = [augment, figure, original, augmented, summary]
    controls = [preset, freq_mask, time_mask, mixup, *toggles]
    gr.on([c.change for c in controls], sync_fn, [shown, *controls], augment, api_visibility="private",
          show_progress="hidden", trigger_mode="always_last")
    if toggles:
        preset.change(on_preset, preset, [*toggles, shown], api_visibility="private")
    go.click(preview_fn, inputs, outputs, api_name="preview_augment", **heavy())
    reroll.click(reroll_fn, seed, seed, api_visibility="private").then(
        preview_fn, inputs, outputs, api_visibility="private", **heavy())
    clip.change(preview_fn, inputs, outputs, api_visibility="private", **heavy())
    return AugmentTab(tab, [clip], on_dataset)


def _cfg_problems(cfg: AugmentConfig) -> list[str]:
    from astapp.config import TrainConfig

    return [p for p in TrainConfig(data="x", augment=cfg).validate() if "preset" in p.lower()]


def clip_choices(data: dict[str, Any] | None) -> list[str]:
    """Clips of the current dataset as paths relative to its root (first few per class)."""
    from astapp.ingest import scan

    root = (data or {}).get("clip_root") or (data or {}).get("root")
    if not root:
        return []
    listing = scan(Path(root))
    root, items = listing.root, listing.items
    per_class: dict[str, int] = {}
    out: list[str] = []
    for it in items:
        if per_class.get(it.label, 0) < 20 and len(out) < MAX_CHOICES:
            per_class[it.label] = per_class.get(it.label, 0) + 1
            out.append(Path(it.path).resolve().relative_to(Path(root).resolve()).as_posix())
    return out


def _clip_path(data: dict[str, Any] | None, clip: str | None) -> Path:
    """The chosen clip on disk; refuses anything outside the dataset folder."""
    from astapp.paths import inside

    root = (data or {}).get("clip_root") or (data or {}).get("root")
    if not root:
        raise gr.Error("Choose a dataset in the Data tab first.")
    if not clip:
        choices = clip_choices(data)
        if not choices:
            raise gr.Error("The dataset has no clips to preview.")
        clip = choices[0]
    path = inside(Path(root), clip)
    if not path.is_file():
        raise gr.Error(f"There is no clip {clip!r} in this dataset; pick one from the list.")
    return path
