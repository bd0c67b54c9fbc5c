"""Generate the built-in example dataset, `assets/example_sounds.zip`, deterministically.

Five everyday sound classes: "speech" (short words from Debian's `espeak-ng` with varied English
voices, speeds, pitches and positions in the clip) and four synthesised ones from `astapp.data.synth`:
"whistle" (chirps, sweeps, vibrato), "beeps" (square and pulsed tones), "knocks" (click trains) and
"noise" (filtered and bursty noise). The classes differ in kind, like a tiny ESC-50, so even a model
trained from scratch offline learns them, while a pretrained AST nails them. Every clip is 1 s of
16 kHz mono 16-bit PCM. The zip is committed, so the app, the CLI and CI never need espeak-ng.

    python assets/make_example.py            # rewrite assets/example_sounds.zip
    python assets/make_example.py --check    # regenerate in memory and compare with the committed zip

The same espeak-ng version and this script give a byte-identical zip (fixed seed, fixed zip
timestamps, sorted members). The generated audio is dedicated to the public domain (CC0 1.0); see
assets/README.md.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from astapp.data.synth import make_signal  # noqa: E402

SR = 16_000
SECONDS = 1.0
PER_CLASS = 16
TOP = "example_sounds"
WORDS = ("yes", "no", "stop", "go", "hello", "seven", "left", "right")
SYNTH = {"whistle": ("chirp", "fm", "sweep_down"), "beeps": ("square", "am"), "knocks": ("clicks",),
         "noise": ("noise", "bursts")}
# espeak-ng's built-in English voices (MBROLA voices need extra packages and are left out).
LANGS = ("en", "en-us", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
         "en-us-nyc")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
ZIP_TIME = (2024, 1, 1, 0, 0, 0)


def speak(word: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """One utterance from espeak-ng as 16 kHz float32, leading/trailing silence trimmed."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "w.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(out), word],
                       check=True, capture_output=True)
        wav, sr = sf.read(str(out), dtype="float32", always_2d=True)
    wav = soxr.resample(wav.mean(axis=1), sr, SR).astype(np.float32)
    loud = np.flatnonzero(np.abs(wav) > 0.01)
    return wav[loud[0]: loud[-1] + 1] if loud.size else wav


def place(utterance: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Put the utterance at a random offset inside a 1-second clip at a random level."""
    n = int(SR * SECONDS)
    clip = np.zeros(n, dtype=np.float32)
    u = utterance[:n]
    u = u / max(float(np.abs(u).max()), 1e-6) * rng.uniform(0.3, 0.9)
    start = int(rng.integers(0, n - len(u) + 1))
    clip[start: start + len(u)] = u
    return clip


def clips(seed: int = 0) -> dict[str, list[np.ndarray]]:
    """All clips by class name (deterministic for a given seed and espeak-ng version)."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[np.ndarray]] = {"speech": []}
    for _ in range(PER_CLASS):
        word = WORDS[rng.integers(len(WORDS))]
        voice = f"{LANGS[rng.integers(len(LANGS))]}+{VARIANTS[rng.integers(len(VARIANTS))]}"
        speed = int(rng.integers(120, 231))
        pitch = int(rng.integers(20, 81))
        out["speech"].append(place(speak(word, voice, speed, pitch), rng))
    for label, kinds in SYNTH.items():
        out[label] = [make_signal(kinds[j % len(kinds)], SECONDS, SR, rng) for j in range(PER_CLASS)]
    return out


def build_zip(seed: int = 0) -> bytes:
    """The dataset as zip bytes: example_sounds/<class>/<class>_NN.wav, sorted, fixed timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for label, wavs in sorted(clips(seed).items()):
            for i, wav in enumerate(wavs):
                data = io.BytesIO()
                sf.write(data, wav, SR, subtype="PCM_16", format="WAV")
                info = zipfile.ZipInfo(f"{TOP}/{label}/{label}_{i:02d}.wav", date_time=ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, data.getvalue())
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output", type=Path, default=ROOT / "assets" / "example_sounds.zip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check", action="store_true", help="compare with the existing zip instead of writing")
    args = p.parse_args(argv)
    data = build_zip(args.seed)
    if args.check:
        same = args.output.exists() and args.output.read_bytes() == data
        print("identical" if same else "differs (another espeak-ng version, or the script changed)")
        return 0 if same else 1
    args.output.write_bytes(data)
    print(f"wrote {args.output} ({len(data) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
