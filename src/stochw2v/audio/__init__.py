"""Reading audio files into 16 kHz mono float32."""
from .io import SAMPLE_RATE, AudioError, audio_info, load_audio, resample

__all__ = ["SAMPLE_RATE", "AudioError", "audio_info", "load_audio", "resample"]
