import numpy as np
import pytest
import soundfile as sf

from stochw2v.audio import AudioError, load_audio


def _tone(rate, seconds=0.5, freq=440.0, channels=1):
    t = np.arange(int(rate * seconds)) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


@pytest.mark.parametrize("suffix, fmt", [(".wav", "WAV"), (".flac", "FLAC"), (".ogg", "OGG")])
def test_formats_load_as_16k_mono_float32(tmp_path, suffix, fmt):
    path = tmp_path / f"a{suffix}"
    sf.write(path, _tone(16000), 16000, format=fmt)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 8000) <= 1


def test_resampling_keeps_duration_and_pitch(tmp_path):
    path = tmp_path / "a44.wav"
    sf.write(path, _tone(44100, seconds=1.0, freq=1000.0), 44100)
    audio = load_audio(path)
    assert len(audio) == 16000
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) - 1000) <= 1  # 1 Hz bins over one second


def test_stereo_is_downmixed(tmp_path):
    path = tmp_path / "stereo.wav"
    left_right = np.stack([np.full(1600, 0.5), np.full(1600, -0.1)], axis=1).astype(np.float32)
    sf.write(path, left_right, 16000, subtype="FLOAT")
    assert np.allclose(load_audio(path), 0.2, atol=1e-6)


def test_silence_is_allowed(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(1600, dtype=np.float32), 16000)
    assert load_audio(path).max() == 0.0


def test_bad_files_raise_errors_naming_the_file(tmp_path):
    cases = {}
    cases["missing"] = (tmp_path / "nope.wav", "no such audio file")
    (tmp_path / "folder.wav").mkdir()
    cases["dir"] = (tmp_path / "folder.wav", "is a directory")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage" + bytes(range(50)))
    cases["corrupt"] = (corrupt, "not a readable audio file")
    text = tmp_path / "notes.flac"
    text.write_text("these are not samples")
    cases["text"] = (text, "not a readable audio file")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    cases["empty"] = (empty, "holds no samples")
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([0.0, np.nan, 0.1] * 100, dtype=np.float32), 16000, subtype="FLOAT")
    cases["nan"] = (nan, "NaN or inf")
    for name, (path, words) in cases.items():
        with pytest.raises(AudioError, match=words) as error:
            load_audio(path)
        assert str(path) in str(error.value), name


@pytest.mark.parametrize("subtype, channels", [("PCM_16", 1), ("PCM_24", 2), ("FLOAT", 1), ("DOUBLE", 3),
                                                ("MS_ADPCM", 1), ("ULAW", 1)])
def test_the_header_fast_path_agrees_with_libsndfile(tmp_path, subtype, channels):
    from stochw2v.audio import audio_info

    path = tmp_path / "a.wav"
    sf.write(path, np.zeros((12345, channels), np.float32), 22050, subtype=subtype)
    info = sf.info(str(path))
    assert audio_info(path) == (info.frames, info.samplerate)
