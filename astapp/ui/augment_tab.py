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
from astapp.ui.common import (
    SAVE_EVENTS,
    STAMP_JS,
    Guard,
    guarded,
    heavy,
    notice_card,
    page_stamp,
    pcm16,
    session,
    stamp_box,
)


@dataclass
class AugmentTab:
    tab: gr.Tab
    restore: Callable[..., list[Any]]  # the saved settings into the controls: no dataset needed, cheap
    restore_outputs: list[Any]
    restore_clips: Callable[..., tuple[Any, str]]  # the dataset's clips (saved clip kept) and the noise line
    on_dataset: Callable[..., Any]
    dataset_outputs: list[Any]  # what `restore_clips` and `on_dataset` fill


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


@dataclass
class _Page:
    """The Augment tab's components, for the functions that wire them."""

    shown: gr.State  # the preset the transform controls show
    clip: gr.Dropdown
    preset: gr.Radio
    toggles: list[Any]  # per transform: its on/off checkbox, then a slider per parameter
    freq_mask: gr.Slider
    time_mask: gr.Slider
    mixup: gr.Slider
    seed: gr.Number
    reroll: gr.Button
    noise: list[Any]  # files, microphone, info, forget button
    go: gr.Button
    notice: gr.Markdown
    views: list[Any]  # figure, original, augmented, summary
    stamp: gr.Number  # filled by the page (STAMP_JS) when an event takes its values

    @property
    def controls(self) -> list[Any]:
        """What makes the AugmentConfig, in `make_augment`'s order."""
        return [self.preset, self.freq_mask, self.time_mask, self.mixup, *self.toggles]


def build(svc: Service, token: gr.State) -> AugmentTab:
    specs = transform_specs()
    with gr.Tab("2 · Augment", id="augment") as tab:
        # The preset the transform controls show. It must live inside the Tab: a State placed directly
        # under gr.Tabs shifts the tab labels in the Gradio 6.31 frontend.
        default = AugmentConfig()  # the settings table's default, as the CLI's
        shown = gr.State(default.preset)
        stamp = stamp_box()
        gr.Markdown("Augmentation makes each training pass hear a slightly different version of your clips, "
                    "so the model learns the sound and not the recording. Listen and look before you train: "
                    "**these settings are the ones training uses.**")
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                clip = gr.Dropdown(label="Clip", choices=[], allow_custom_value=True, elem_id="augment-clip")
                preset = gr.Radio(list(AUGMENT_PRESETS), value=default.preset, label="Preset", elem_id="augment-preset",
                                  info="none = off · light = gentle gain/shift/noise · classic = stronger")
                toggles = _transform_controls(specs, default)
                with gr.Accordion("Spectrogram (SpecAugment) and mixup", open=False):
                    freq_mask = _slider("augment.freq_mask", "AST recipe: 48")
                    time_mask = _slider("augment.time_mask", "AST recipe: 192 at 10 s; keep it below your clip length")
                    mixup = _slider("augment.mixup", "mixes pairs of clips and their labels (AST recipe: 0.5)",
                                    elem_id="mixup")
                with gr.Row():
                    seed = gr.Number(0, label="Random seed", precision=0, min_width=100, elem_id="augment-seed")
                    reroll = gr.Button("Re-roll", min_width=100)
                noise = _noise_controls()
                go = gr.Button("Preview", variant="primary", elem_id="preview-btn")
                notice = notice_card("augment-notice")
            with gr.Column(scale=2, min_width=520):  # narrower, it goes under the controls at full width
                views = _views()
    page = _Page(shown, clip, preset, toggles, freq_mask, time_mask, mixup, seed, reroll, noise, go, notice, views,
                 stamp)
    _wire_preview(svc, token, page, specs)
    listed = _wire_noise(svc, token, page)

    def dataset_fn(tok: str | None, request: gr.Request) -> tuple[Any, str]:
        """A newly chosen dataset: its clips from the first, and the noise line."""
        return listed(tok, request, None)

    @guarded
    def restore_fn(tok: str | None, request: gr.Request) -> list[Any]:
        """The saved settings back into every control. It reads only state.json, so the page runs it at
        once on load, before the (CPU-heavy) dataset restore: the controls are back before a user touches
        them, and a late restore never puts older values over a newer edit."""
        sess = session(svc, tok, request)
        cfg = svc.augmenting.settings(sess)
        saved = svc.state(sess).preview
        return [cfg.preset, cfg.freq_mask, cfg.time_mask, cfg.mixup, *preset_values(cfg, specs), cfg.preset,
                int(saved.get("seed") or 0)]

    def restore_clips_fn(tok: str | None, request: gr.Request) -> tuple[Any, str]:
        """Once the dataset is back: its clips (the saved one chosen) and the noise line."""
        try:
            saved = svc.state(session(svc, tok, request)).preview.get("clip")
        except Exception:  # noqa: BLE001 - without the saved clip the list starts at its first
            saved = None
        return listed(tok, request, saved)

    return AugmentTab(tab, restore_fn, [*page.controls, shown, seed], restore_clips_fn, dataset_fn, [clip, noise[2]])


def _transform_controls(specs: list[dict[str, Any]], default: AugmentConfig) -> list[Any]:
    """Per transform of the catalogue: its on/off checkbox, then a slider per parameter."""
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
    return toggles


def _noise_controls() -> list[Any]:
    """[files, microphone, info, forget button] of the background-noise clips."""
    with gr.Accordion("Background noise clips (Add background noise, Add short noises)", open=False):
        files = gr.File(label="Noise clips: audio files or a zip (recordings of the places your "
                        "sounds will be heard)", file_count="multiple", file_types=["audio", ".zip"],
                        elem_id="noise-files")
        mic = gr.Audio(sources=["microphone"], type="filepath", label="…or record the place "
                       "(a few seconds of its background sound)", elem_id="noise-mic")
        info = gr.Markdown(elem_id="noise-info", elem_classes=["astapp-hint"])
        forget = gr.Button("Forget these noise clips", size="sm", elem_id="noise-clear")
    return [files, mic, info, forget]


def _views() -> list[Any]:
    """[figure, original, augmented, summary]: what a preview shows."""
    figure = gr.Plot(label="Waveform and log-mel spectrogram", show_label=False, elem_id="augment-plot")
    with gr.Row(elem_classes=["astapp-players"]):  # side by side when they fit, else one under the other
        original = gr.Audio(label="Original", interactive=False, buttons=[], min_width=280)
        augmented = gr.Audio(label="Augmented (what training hears)", interactive=False, buttons=[], min_width=280)
    summary = gr.Markdown(elem_classes=["astapp-hint"])
    return [figure, original, augmented, summary]


def _summary(cfg: AugmentConfig, applied_names: list[str]) -> str:
    applied = ", ".join(_pretty(n) for n in applied_names) or (
        "nothing this time (re-roll to draw again)" if cfg.preset != "none" or cfg.transforms else "no augmentation")
    return (f"Preset **{cfg.preset}** · this draw applied: {applied}"
            + (f", {len(cfg.transforms)} change(s) to it" if cfg.transforms else "")
            + (f" · SpecAugment {cfg.freq_mask} bins / {cfg.time_mask} frames" if cfg.freq_mask or cfg.time_mask
               else "")
            + (f" · mixup {cfg.mixup:g}" if cfg.mixup else "")
            + " — saved for training.")


def _wire_preview(svc: Service, token: gr.State, p: _Page, specs: list[dict[str, Any]]) -> None:
    """Preview (button, re-roll, another clip) and keep the saved settings in step with the controls."""
    guard = Guard()

    def on_preset(preset: str) -> list[Any]:
        return [*(gr.update(value=v) for v in preset_values(AugmentConfig(preset=preset), specs)), preset]

    @guard
    def preview_fn(tok: str | None, shown_v: str | None, clip: str | None, preset: str, freq_mask: float,
                   time_mask: float, mixup: float, seed: float, request: gr.Request, *values: Any) -> tuple[Any, ...]:
        """`values`: the transform controls, then the stamp (the page's, or 0 from the API)."""
        *values, when = values or (None,)
        cfg = make_augment(preset, freq_mask, time_mask, mixup, specs, tuple(values), shown_v)
        pv = svc.augmenting.preview(session(svc, tok, request), clip, cfg, int(seed or 0),
                                    stamp=page_stamp(when, request))
        sr = int(pv.sample_rate)
        return pv.figure, pcm16((sr, pv.original)), pcm16((sr, pv.augmented)), _summary(cfg, pv.applied)

    def sync_fn(tok: str | None, shown_v: str, seed_v: float, preset_v: str, fm: float, tm: float, mx: float,
                request: gr.Request, *values: Any) -> None:
        """Keep the saved training settings in step with the controls, even without a preview (stamped,
        so a preview asked for earlier that ends later does not put older values back)."""
        *values, when = values
        try:
            svc.augmenting.save(session(svc, tok, request),
                                make_augment(preset_v, fm, tm, mx, specs, tuple(values), shown_v),
                                seed=int(seed_v or 0), stamp=page_stamp(when, request))
        except Exception:  # noqa: BLE001 - a half-typed value is saved with the next good one
            return

    # Every change sends its own save (issue 31): the server keeps the newest by its stamp. Not "always_last":
    # Gradio's page then holds back a change while a save is in flight and sends it only when that save ends
    # normally (an error or a lost stream drops it: mixup 0.5 never arrived). Queue-free: a save never waits
    # behind heavy work or for the page's event stream (see `SAVE_EVENTS`).
    gr.on([c.change for c in [*p.controls, p.seed]], sync_fn, [token, p.shown, p.seed, *p.controls, p.stamp], None,
          js=STAMP_JS, **SAVE_EVENTS)
    inputs = [token, p.shown, p.clip, p.preset, p.freq_mask, p.time_mask, p.mixup, p.seed, *p.toggles, p.stamp]
    # A new preset fills the transform controls, then plays and draws itself at once: a preview left from
    # the old preset (its text naming it "saved for training") would say the wrong thing.
    previews = [p.preset.input(on_preset, p.preset, [*p.toggles, p.shown], api_visibility="private").then(
                    preview_fn, inputs, p.views, api_visibility="private", js=STAMP_JS, **heavy()),
                p.go.click(preview_fn, inputs, p.views, api_name="preview_augment", js=STAMP_JS, **heavy()),
                p.reroll.click(lambda: random.randint(1, 1_000_000), None, p.seed, api_visibility="private").then(
                    preview_fn, inputs, p.views, api_visibility="private", js=STAMP_JS, **heavy()),
                p.clip.change(preview_fn, inputs, p.views, api_visibility="private", js=STAMP_JS, **heavy())]
    for event in previews:
        guard.keep(event, p.views, p.notice, say=lambda message, *_: f"The preview failed: {message}")


def clip_list(svc: Service, tok: str | None, request: gr.Request, keep: str | None = None) -> Any:
    """The dataset's clips, keeping `keep` chosen when it is one of them."""
    try:
        choices = svc.datasets.clip_choices(session(svc, tok, request))
    except Exception:  # noqa: BLE001 - a list we cannot read just stays empty
        choices = []
    return gr.Dropdown(choices=choices, value=keep if keep in choices else (choices[0] if choices else None))


def _wire_noise(svc: Service, token: gr.State, p: _Page) -> Callable[..., tuple[Any, str]]:
    """Noise clips from files or the microphone; returns what a (restored or newly chosen) dataset refreshes:
    (token, request, clip to keep) -> (clip list, noise line)."""
    files, mic, info, forget = p.noise

    @guarded
    def add_noise_fn(tok: str | None, files: list[Any] | None, request: gr.Request) -> str:
        paths = [str(getattr(f, "name", f)) for f in (files or []) if f]
        return svc.augmenting.add_noise(session(svc, tok, request), paths)

    @guarded
    def forget_noise_fn(tok: str | None, request: gr.Request) -> str:
        return svc.augmenting.clear_noise(session(svc, tok, request))

    def listed(tok: str | None, request: gr.Request, keep: str | None) -> tuple[Any, str]:
        try:
            summary = svc.augmenting.noise_summary(session(svc, tok, request))
        except Exception:  # noqa: BLE001 - the summary is a hint; the clip list matters
            summary = ""
        return clip_list(svc, tok, request, keep), summary

    @guarded
    def record_noise_fn(tok: str | None, path: str | None, request: gr.Request) -> str:
        if not path:
            raise gr.Error("Nothing was recorded: allow the microphone when the browser asks, or upload files.")
        return svc.augmenting.add_noise(session(svc, tok, request), [path])

    files.upload(add_noise_fn, [token, files], info, api_name="add_noise", **heavy())
    mic.stop_recording(record_noise_fn, [token, mic], info, api_visibility="private", **heavy()).then(
        lambda: None, None, mic, api_visibility="private", show_progress="hidden")
    forget.click(forget_noise_fn, [token], info, api_name="forget_noise")
    return listed
