"""Augment tab: hear and see one clip as the model will, with and without augmentation.

The controls are built from the service's transform catalogue (one toggle plus its parameters per
transform), so new transforms appear here without UI changes. Every change of a control is saved in
the session's state on the server, which the Train tab uses: what you hear is what trains, also
after a reload.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from astapp.core.config import AUGMENT_PRESETS, AugmentConfig, setting
from astapp.service import Service, effective_transforms, transform_specs
from astapp.ui.common import Guard, guarded, heavy, notice_card, pcm16, session


@dataclass
class AugmentTab:
    tab: gr.Tab
    restore: Callable[..., tuple[Any, ...]]
    restore_outputs: list[Any]
    on_dataset: Callable[..., Any]
    dataset_outputs: list[Any]


def preset_values(cfg: AugmentConfig, specs: list[dict[str, Any]]) -> list[Any]:
    """Control values (enabled, then each parameter, per transform) that `cfg` means."""
    eff = effective_transforms(cfg)
    out: list[Any] = []
    for spec in specs:
        e = eff.get(spec["name"], {"enabled": False, "params": {}})
        out.append(bool(e["enabled"]))
        out += [e["params"].get(k, v["default"]) for k, v in spec["params"].items()]
    return out


def _pretty(name: str) -> str:
    """"AddGaussianSNR" → "Add gaussian SNR" (acronyms kept)."""
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
    base = preset_values(AugmentConfig(preset=shown), specs) if shown in AUGMENT_PRESETS else []
    overrides: dict[str, dict[str, Any]] = {}
    i = 0
    for spec in specs:
        o: dict[str, Any] = {}
        for k in ["enabled", *spec["params"]]:
            if i < len(values) and values[i] is not None and (i >= len(base) or values[i] != base[i]):
                o[k] = bool(values[i]) if k == "enabled" else float(values[i])
            i += 1
        if o:
            overrides[spec["name"]] = o
    return AugmentConfig(preset=preset, transforms=overrides, freq_mask=int(freq_mask or 0),
                         time_mask=int(time_mask or 0), mixup=float(mixup or 0))


def _slider(path: str, info: str, **kw: Any) -> gr.Slider:
    s = setting(path)
    lo, hi, step = s.form or (0, 1, 0.05)
    return gr.Slider(lo, hi, value=0, step=step, label=s.label, info=info, **kw)


def build(svc: Service, token: gr.State) -> AugmentTab:
    specs = transform_specs()
    guard = Guard()
    with gr.Tab("2 · Augment", id="augment") as tab:
        # The preset the transform controls show. It must live inside the Tab: a State placed directly
        # under gr.Tabs shifts the tab labels in the Gradio 6.31 frontend.
        default = AugmentConfig()  # the settings table's default, as the CLI's
        shown = gr.State(default.preset)
        gr.Markdown("Augmentation makes each training pass hear a slightly different version of your clips, "
                    "so the model learns the sound and not the recording. Listen and look before you train: "
                    "**these settings are the ones training uses.**")
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                clip = gr.Dropdown(label="Clip", choices=[], allow_custom_value=True, elem_id="augment-clip")
                preset = gr.Radio(list(AUGMENT_PRESETS), value=default.preset, label="Preset", elem_id="augment-preset",
                                  info="none = off · light = gentle gain/shift/noise · classic = stronger")
                toggles: list[Any] = []
                initial = iter(preset_values(default, specs))
                with gr.Accordion("Waveform transforms", open=False):
                    for spec in specs:
                        toggles.append(gr.Checkbox(next(initial), label=_pretty(spec["name"]), info=spec["help"]))
                        with gr.Row():
                            for k, ps in spec["params"].items():
                                label = "probability" if k == "p" else k.replace("_", " ")
                                toggles.append(gr.Slider(ps["min"], ps["max"], value=next(initial), step=ps["step"],
                                                         label=label, min_width=110))
                with gr.Accordion("Spectrogram (SpecAugment) and mixup", open=False):
                    freq_mask = _slider("augment.freq_mask", "AST recipe: 48")
                    time_mask = _slider("augment.time_mask", "AST recipe: 192 at 10 s; keep it below your clip length")
                    mixup = _slider("augment.mixup", "mixes pairs of clips and their labels (AST recipe: 0.5)",
                                    elem_id="mixup")
                with gr.Row():
                    seed = gr.Number(0, label="Random seed", precision=0, min_width=100, elem_id="augment-seed")
                    reroll = gr.Button("Re-roll", min_width=100)
                with gr.Accordion("Background noise clips (Add background noise, Add short noises)", open=False):
                    noise_files = gr.File(label="Noise clips: audio files or a zip (recordings of the places your "
                                          "sounds will be heard)", file_count="multiple", file_types=["audio", ".zip"],
                                          elem_id="noise-files")
                    noise_mic = gr.Audio(sources=["microphone"], type="filepath", label="…or record the place "
                                         "(a few seconds of its background sound)", elem_id="noise-mic")
                    noise_info = gr.Markdown(elem_id="noise-info", elem_classes=["astapp-hint"])
                    forget_noise = gr.Button("Forget these noise clips", size="sm", elem_id="noise-clear")
                go = gr.Button("Preview", variant="primary", elem_id="preview-btn")
                notice = notice_card("augment-notice")
            with gr.Column(scale=2):
                figure = gr.Plot(label="Waveform and log-mel spectrogram", show_label=False,
                                 elem_id="augment-plot")
                with gr.Row():
                    original = gr.Audio(label="Original", interactive=False, buttons=[])
                    augmented = gr.Audio(label="Augmented (what training hears)", interactive=False, buttons=[])
                summary = gr.Markdown(elem_classes=["astapp-hint"])
    controls = [preset, freq_mask, time_mask, mixup, *toggles]

    def on_preset(p: str) -> list[Any]:
        return [*(gr.update(value=v) for v in preset_values(AugmentConfig(preset=p), specs)), p]

    @guard
    def preview_fn(tok: str | None, shown_v: str | None, clip: str | None, preset: str, freq_mask: float,
                   time_mask: float, mixup: float, seed: float, request: gr.Request, *values: Any) -> tuple[Any, ...]:
        cfg = make_augment(preset, freq_mask, time_mask, mixup, specs, values, shown_v)
        pv = svc.augmenting.preview(session(svc, tok, request), clip, cfg, int(seed or 0))
        sr = int(pv.sample_rate)
        applied = ", ".join(_pretty(n) for n in pv.applied) or (
            "nothing this time (re-roll to draw again)" if cfg.preset != "none" or cfg.transforms else "no augmentation")
        text = (f"Preset **{cfg.preset}** · this draw applied: {applied}"
                + (f", {len(cfg.transforms)} change(s) to it" if cfg.transforms else "")
                + (f" · SpecAugment {cfg.freq_mask} bins / {cfg.time_mask} frames" if cfg.freq_mask or cfg.time_mask
                   else "")
                + (f" · mixup {cfg.mixup:g}" if cfg.mixup else "")
                + " — saved for training.")
        return pv.figure, pcm16((sr, pv.original)), pcm16((sr, pv.augmented)), text

    def sync_fn(tok: str | None, shown_v: str, seed_v: float, preset_v: str, fm: float, tm: float, mx: float,
                request: gr.Request, *values: Any) -> None:
        """Keep the saved training settings in step with the controls, even without a preview."""
        try:
            svc.augmenting.save(session(svc, tok, request), make_augment(preset_v, fm, tm, mx, specs, values, shown_v),
                             seed=int(seed_v or 0))
        except Exception:  # noqa: BLE001 - a half-typed value is saved with the next good one
            return

    @guarded
    def restore_fn(tok: str | None, request: gr.Request) -> list[Any]:
        """The saved settings back into every control (and the dataset's clips into the list)."""
        sess = session(svc, tok, request)
        cfg = svc.augmenting.settings(sess)
        saved = svc.state(sess).preview
        return [on_dataset(tok, request, saved.get("clip")), cfg.preset, cfg.freq_mask, cfg.time_mask,
                cfg.mixup, *preset_values(cfg, specs), cfg.preset, int(saved.get("seed") or 0),
                svc.augmenting.noise_summary(sess)]

    def on_dataset(tok: str | None, request: gr.Request, keep: str | None = None) -> Any:
        try:
            choices = svc.datasets.clip_choices(session(svc, tok, request))
        except Exception:  # noqa: BLE001 - a list we cannot read just stays empty
            choices = []
        return gr.Dropdown(choices=choices, value=keep if keep in choices else (choices[0] if choices else None))

    gr.on([c.change for c in [*controls, seed]], sync_fn, [token, shown, seed, *controls], None,
          api_visibility="private", show_progress="hidden", trigger_mode="always_last")
    if toggles:
        preset.input(on_preset, preset, [*toggles, shown], api_visibility="private")
    inputs = [token, shown, clip, preset, freq_mask, time_mask, mixup, seed, *toggles]
    outputs = [figure, original, augmented, summary]
    previews = [go.click(preview_fn, inputs, outputs, api_name="preview_augment", **heavy()),
                reroll.click(lambda: random.randint(1, 1_000_000), None, seed, api_visibility="private").then(
                    preview_fn, inputs, outputs, api_visibility="private", **heavy()),
                clip.change(preview_fn, inputs, outputs, api_visibility="private", **heavy())]
    for event in previews:
        guard.keep(event, outputs, notice, say=lambda message, *_: f"The preview failed: {message}")

    @guarded
    def add_noise_fn(tok: str | None, files: list[Any] | None, request: gr.Request) -> str:
        paths = [str(getattr(f, "name", f)) for f in (files or []) if f]
        return svc.augmenting.add_noise(session(svc, tok, request), paths)

    @guarded
    def forget_noise_fn(tok: str | None, request: gr.Request) -> str:
        return svc.augmenting.clear_noise(session(svc, tok, request))

    def dataset_fn(tok: str | None, request: gr.Request) -> tuple[Any, str]:
        try:
            summary = svc.augmenting.noise_summary(session(svc, tok, request))
        except Exception:  # noqa: BLE001 - the summary is a hint; the clip list matters
            summary = ""
        return on_dataset(tok, request), summary

    @guarded
    def record_noise_fn(tok: str | None, path: str | None, request: gr.Request) -> str:
        if not path:
            raise gr.Error("Nothing was recorded: allow the microphone when the browser asks, or upload files.")
        return svc.augmenting.add_noise(session(svc, tok, request), [path])

    noise_files.upload(add_noise_fn, [token, noise_files], noise_info, api_name="add_noise", **heavy())
    noise_mic.stop_recording(record_noise_fn, [token, noise_mic], noise_info, api_visibility="private", **heavy()).then(
        lambda: None, None, noise_mic, api_visibility="private", show_progress="hidden")
    forget_noise.click(forget_noise_fn, [token], noise_info, api_name="forget_noise")
    return AugmentTab(tab, restore_fn, [clip, *controls, shown, seed, noise_info], dataset_fn, [clip, noise_info])
