"""astapp: fine-tune the Audio Spectrogram Transformer on your own labelled sounds."""

__version__ = "0.1.0"
