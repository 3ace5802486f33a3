"""Reading audio files into 16 kHz mono float32."""
from ..errors import AudioError
from .io import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, SAMPLE_RATE, audio_info, decode_audio, load_audio, resample

__all__ = ["MAX_SAMPLE_RATE", "MIN_SAMPLE_RATE", "SAMPLE_RATE", "AudioError", "audio_info", "decode_audio",
           "load_audio", "resample"]
