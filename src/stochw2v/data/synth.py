"""A synthetic English speech corpus made with espeak-ng (and flite, festival), for machines with no data or internet.

Sentences come from real English text (by default the quotations of Debian's `fortunes`
package, which `make setup` installs with espeak-ng). Each utterance draws a voice (accent x
variant), speaking rate and pitch. The test split holds sentences and voices that never occur
in train or valid. Output: DIR/audio/{split}/*.flac at 16 kHz and DIR/{train,valid,test}.{tsv,wrd,ltr}.
Deterministic for a seed; utterances are synthesised in parallel processes.
"""
from __future__ import annotations

import json
import math
import random
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from ..audio import SAMPLE_RATE, resample
from ..errors import Stochw2vError
from ..files import atomic_write
from .manifest import Manifest
from .text import normalize_text

FORTUNE_DIR = Path("/usr/share/games/fortunes")
FORTUNE_FILES = (
    "literature", "wisdom", "people", "humorists", "fortunes", "platitudes", "science", "education",
    "love", "food", "kids", "pets", "sports", "work", "law", "medicine", "miscellaneous", "riddles",
    "paradoxum", "tao", "goedel", "cookie",
)
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029")
# espeak-ng 1.51's voice variants, less the whispered ones (no voicing at all)
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3",
    "klatt4", "klatt5", "klatt6", "croak", "grandma", "grandpa", "john", "linda", "quincy", "Alex", "Alicia",
    "Andrea", "Andy", "Annie", "Denis", "Diogo", "Gene", "Gene2", "Henrique", "Hugo", "Jacky", "Lee", "Marco",
    "Mario", "Michael", "Mike", "Nguyen", "Storm", "Tweaky", "adam", "anika", "announcer", "antonio", "aunty",
    "belinda", "benjamin", "boris", "caleb", "david", "ed", "edward", "edward2", "fast", "gustave", "iven",
    "iven2", "iven3", "iven4", "kaukovalta", "marcelo", "max", "michel", "miguel", "norbert", "pablo", "paul",
    "pedro", "rob", "robert", "sandro", "shelby", "steph", "steph2", "steph3", "travis", "victor",
)
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
# Debian's festvox-kallpc16k and festvox-kdlpc16k: diphone voices, a third way of making speech. Not
# festvox-us-slt-hts: its speaker is flite's slt, the shipped corpus's held-out flite voice.
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone")
ENGINES = ("espeak", "flite", "festival")
_BINARIES = {"espeak": "espeak-ng", "flite": "flite", "festival": "text2wave"}
_PACKAGES = {"espeak": "espeak-ng", "flite": "flite", "festival": "festival festvox-kallpc16k festvox-kdlpc16k"}
SPLITS = ("train", "valid", "test")
# how a train/valid (or seen test) utterance picks its voice: an engine first, then one of its voices; or any voice
VOICE_SAMPLING = ("engine", "voice")
_SPOKEN = re.compile(r"^[A-Za-z' ,.!?;:]+$")


@dataclass(frozen=True)
class Utterance:
    split: str
    index: int
    text: str  # what espeak reads (letters and light punctuation)
    words: str  # the normalised transcript
    voice: str  # espeak accent+variant, or "flite:NAME" / "festival:NAME"
    speed: int  # espeak: words per minute; flite, festival: duration stretch in percent
    pitch: int  # espeak: 0-99; flite, festival: mean F0 in Hz
    warp: float = 1.0  # formant scale: the audio is played this much faster, speed and pitch compensated

    @property
    def relative_path(self) -> str:
        return f"audio/{self.split}/{self.split}-{self.index:06d}.flac"


class SynthError(Stochw2vError):
    """Speech synthesis cannot run (missing engine, no text, a failed utterance)."""


def engine_of(voice: str) -> str:
    """The engine a voice name belongs to: "flite:awb" -> flite; espeak voices carry no prefix."""
    return voice.split(":", 1)[0] if ":" in voice else "espeak"


def engine_binary(engine: str) -> str:
    name = _BINARIES.get(engine)
    if name is None:
        raise SynthError(f"unknown synthesis engine {engine!r}; choose from {ENGINES}")
    path = shutil.which(name)
    if path is None:
        raise SynthError(f"{name} is not installed: run `make setup` (it installs espeak-ng, flite, festival and "
                         f"fortunes) or `apt-get install {_PACKAGES[engine]}`")
    if engine == "festival":
        missing = [v for v in FESTIVAL_VOICES if not _festival_voice_installed(v)]
        if missing:
            raise SynthError(f"festival voices {missing} are not installed: run `make setup` "
                             f"or `apt-get install {_PACKAGES[engine]}`")
    return path


def _festival_voice_installed(voice: str) -> bool:
    """Festival keeps each voice in voices/LANGUAGE/NAME (english/kal_diphone, us/cmu_us_slt_arctic_hts)."""
    return any(folder.is_dir() for root in (Path("/usr/share/festival"), Path("/usr/local/share/festival"))
               for folder in root.glob(f"voices/*/{voice}"))


def check_voices(voices: list[str]) -> None:
    """Refuse voice names no installed engine has, before any audio is made."""
    for voice in voices:
        engine = engine_of(voice)
        if engine not in ENGINES:
            raise SynthError(f"voice {voice!r}: unknown engine {engine!r}; choose from {ENGINES}")
        name = voice.split(":", 1)[1] if ":" in voice else voice
        if engine == "festival" and not _festival_voice_installed(name):
            raise SynthError(f"voice {voice!r}: festival has no voice {name!r} installed "
                             "(e.g. apt-get install festvox-us-slt-hts for festival:cmu_us_slt_arctic_hts)")
        if engine == "flite" and name not in FLITE_VOICES:
            raise SynthError(f"voice {voice!r}: flite's voices are {list(FLITE_VOICES)}")


def load_sentences(text_files: list[Path] | None = None, min_words: int = 4, max_words: int = 18) -> list[str]:
    """Speakable sentences from English text: fortunes quotations unless files are given."""
    if text_files is None:
        text_files = [FORTUNE_DIR / name for name in FORTUNE_FILES if (FORTUNE_DIR / name).exists()]
        if not text_files:
            raise SynthError(f"no text source: {FORTUNE_DIR} is missing; run `make setup` "
                             "(installs Debian's fortunes) or pass --text FILE")
    sentences: dict[str, None] = {}
    for path in text_files:
        if not Path(path).is_file():
            raise SynthError(f"{path}: text file not found")
        raw = Path(path).read_text(encoding="utf-8", errors="replace")
        for block in raw.split("\n%\n"):
            lines = [ln for ln in block.splitlines() if not ln.lstrip().startswith("--")]
            prose = " ".join(" ".join(lines).split())
            for sentence in re.split(r"(?<=[.!?])\s+", prose):
                sentence = sentence.strip().replace("--", ",").replace('"', "")
                if not _SPOKEN.match(sentence):
                    continue  # digits, symbols, quotes-within-quotes: espeak would read them differently
                words = sentence.split()
                if not min_words <= len(words) <= max_words:
                    continue
                if any(sum(c.isupper() for c in w) > 1 for w in words):
                    continue  # acronyms are spelled out by espeak
                if any(w.rstrip(",.!?;:").lower() in {"mr", "mrs", "dr", "st", "vs", "etc"} for w in words):
                    continue
                sentences.setdefault(sentence)
    return sorted(sentences)


def read_sentence_list(path: Path) -> list[str]:
    """One sentence per line, used as written (for example the output of `load_sentences`, saved):
    the same list gives the same corpus plan on any machine."""
    path = Path(path)
    if not path.is_file():
        raise SynthError(f"{path}: sentence file not found")
    sentences = sorted(dict.fromkeys(line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                                     if line.strip()))
    bad = [line for line in sentences if not _SPOKEN.match(line)]
    if bad:
        raise SynthError(f"{path}: {len(bad)} lines hold characters espeak would not read as words, e.g. {bad[0]!r}")
    if not sentences:
        raise SynthError(f"{path}: no sentences")
    return sentences


def voice_pool(engines: tuple[str, ...]) -> dict[str, list[str]]:
    """Every voice of each engine, in a fixed order."""
    pool = {}
    if "espeak" in engines:
        pool["espeak"] = [f"{a}+{v}" for a in ACCENTS for v in VARIANTS]
    if "flite" in engines:
        pool["flite"] = [f"flite:{v}" for v in FLITE_VOICES]
    if "festival" in engines:
        pool["festival"] = [f"festival:{v}" for v in FESTIVAL_VOICES]
    return pool


def prosody(voice: str, rng: random.Random) -> tuple[int, int]:
    """(rate, pitch) drawn for one utterance in the units its engine takes."""
    if engine_of(voice) in ("flite", "festival"):
        return rng.randint(80, 125), rng.randint(85, 210)  # duration stretch %, mean F0 Hz
    return rng.randint(130, 200), rng.randint(20, 80)  # words per minute, espeak pitch


def warp_prosody(voice: str, speed: int, pitch: int, warp: float) -> tuple[int, int]:
    """(rate, pitch) to synthesise at so that, sped up `warp` times afterwards, the speech keeps its drawn
    tempo and F0 and only its formants move (a shorter vocal tract: `warp` 1.2 takes a male voice most of
    the way to a female one). espeak's pitch scale is not in Hz, so its F0 rises with the formants."""
    if engine_of(voice) in ("flite", "festival"):
        return round(speed * warp), round(pitch / warp)  # duration stretch %, mean F0 Hz
    return round(speed / warp), pitch  # words per minute


def _split_voices(engines: tuple[str, ...], rng: random.Random, test_voices: int,
                  held_out_voices: tuple[str, ...] | None) -> tuple[list[str], dict[str, list[str]]]:
    """(held-out voices, seen voices per engine): `test_voices` espeak voices and one voice of each other
    engine drawn at random, or exactly `held_out_voices` (to keep a voice out of a corpus that supplements another)."""
    pool = voice_pool(engines)
    if held_out_voices is not None:
        known = {v for voices in pool.values() for v in voices}
        unknown = sorted(set(held_out_voices) - known)
        if unknown:
            raise SynthError(f"--held-out-voices: {unknown} are not voices of {list(engines)} "
                             f"(e.g. {', '.join(sorted(known)[:3])})")
    held_out, seen = [], {}
    for engine, voices in pool.items():
        voices = voices[:]
        rng.shuffle(voices)
        if held_out_voices is None:
            count = test_voices if engine == "espeak" else 1
            held_out += voices[:count]
            seen[engine] = voices[count:]
        else:
            held_out += [v for v in voices if v in held_out_voices]
            seen[engine] = [v for v in voices if v not in held_out_voices]
        if not seen[engine]:
            raise SynthError(f"every {engine} voice is held out: none is left to train on")
    if not held_out:
        raise SynthError("--held-out-voices is empty: the test split needs voices never heard in training")
    return held_out, seen


def plan_corpus(sentences: list[str], hours: float, seed: int, test_voices: int = 4,
                valid_fraction: float = 0.05, test_fraction: float = 0.05,
                engines: tuple[str, ...] = ("espeak",), valid_count: int | None = None,
                test_count: int | None = None, held_out_voices: tuple[str, ...] | None = None,
                formant_warp: tuple[float, float] | None = None,
                voice_sampling: str = "engine") -> list[Utterance]:
    """Choose every utterance (text, voice, rate, pitch, formant warp) before any audio is made.

    The test split's sentences never occur in train or valid, and it alternates voices never
    heard in training with voices that were. Each engine speaks an equal share of the other
    utterances: drawn over all voices, flite's 4 would speak 1 utterance in 140 next to espeak's
    ~570 (so the shipped model's first corpus had, and its test CER on flite was 0.69).
    `voice_sampling="voice"` draws every seen voice equally instead: the plan as it was before the equal
    shares, kept so that corpora made then (the shipped model's first) can be made again, utterance for utterance.
    With `formant_warp` (low, high), every utterance's formants are scaled by a factor drawn in that range.
    """
    check_formant_warp(formant_warp)
    if voice_sampling not in VOICE_SAMPLING:
        raise SynthError(f"--voice-sampling must be one of {list(VOICE_SAMPLING)}, got {voice_sampling!r}")
    rng = random.Random(seed)
    pool = sentences[:]
    rng.shuffle(pool)
    n_valid = max(1, int(len(pool) * valid_fraction))
    n_test = max(1, int(len(pool) * test_fraction))
    by_split = {"test": pool[:n_test], "valid": pool[n_test:n_test + n_valid], "train": pool[n_test + n_valid:]}
    if not by_split["train"]:
        raise SynthError(f"only {len(pool)} usable sentences: too few for three splits")
    held_out, seen = _split_voices(tuple(engines), rng, test_voices, held_out_voices)
    every_seen_voice = [v for engine in seen for v in seen[engine]]  # voice_pool's engine order

    mean_chars = sum(len(s) for s in pool) / len(pool)
    total = max(3, math.ceil(hours * 3600 / (mean_chars / 15.0)))  # speech runs about 15 chars/s
    counts = {"valid": valid_count or max(2, round(total * valid_fraction)),
              "test": test_count or max(4, round(total * test_fraction))}
    counts["train"] = max(1, total - counts["valid"] - counts["test"])
    plan = []
    for split in SPLITS:
        texts = by_split[split]
        order = list(range(len(texts)))
        rng.shuffle(order)
        for i in range(counts[split]):
            text = texts[order[i % len(order)]]
            if split == "test" and i % 2 == 0:  # alternate held-out and seen voices; every held-out voice is used
                voice = held_out[(i // 2) % len(held_out)]
            elif voice_sampling == "voice":
                voice = rng.choice(every_seen_voice)
            else:
                engine = rng.choice(sorted(seen)) if len(seen) > 1 else next(iter(seen))
                voice = rng.choice(seen[engine])
            speed, pitch = prosody(voice, rng)
            warp = 1.0
            if formant_warp is not None:  # drawn only when asked, so corpora without it keep their plans
                warp = round(rng.uniform(*formant_warp), 3)
                speed, pitch = warp_prosody(voice, speed, pitch, warp)
            plan.append(Utterance(split, i, text, normalize_text(text), voice, speed, pitch, warp))
    return plan


def check_formant_warp(formant_warp: tuple[float, float] | None) -> None:
    """A clear error for a warp range that is not 0.5 <= low <= high <= 2."""
    if formant_warp is None:
        return
    if (len(formant_warp) != 2 or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in formant_warp)
            or not 0.5 <= formant_warp[0] <= formant_warp[1] <= 2.0):
        raise SynthError(f"--formant-warp must be LOW,HIGH with 0.5 <= LOW <= HIGH <= 2, got {formant_warp}")


def _command(utterance: Utterance, binaries: dict[str, str], wav: str) -> list[str]:
    engine = engine_of(utterance.voice)
    if engine == "festival":  # text2wave reads its text from a file; prosody goes in as Scheme
        text_file = Path(wav).with_suffix(".txt")
        text_file.write_text(utterance.text + "\n", encoding="utf-8")
        f0 = f"(list (list 'target_f0_mean {utterance.pitch}) (list 'target_f0_std {max(10, utterance.pitch // 6)}) " \
             "(list 'model_f0_mean 170) (list 'model_f0_std 34))"
        return [binaries["festival"], "-eval", f"(voice_{utterance.voice.split(':', 1)[1]})",
                "-eval", f"(Parameter.set 'Duration_Stretch {utterance.speed / 100:.2f})",
                "-eval", f"(set! int_lr_params {f0})", str(text_file), "-o", wav]
    if engine == "flite":
        return [binaries["flite"], "-voice", utterance.voice.split(":", 1)[1],
                "--setf", f"duration_stretch={utterance.speed / 100:.2f}",
                "--setf", f"int_f0_target_mean={utterance.pitch}", "-t", utterance.text, "-o", wav]
    return [binaries["espeak"], "-v", utterance.voice, "-s", str(utterance.speed), "-p", str(utterance.pitch),
            "-w", wav, utterance.text]


def synthesize(utterance: Utterance, out_dir: Path, binaries: dict[str, str]) -> tuple[Utterance, int]:
    """Speak one utterance, resample to 16 kHz, write FLAC; returns its sample count."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = str(Path(tmp) / "speech.wav")
        result = subprocess.run(_command(utterance, binaries, wav), capture_output=True, check=False)
        if result.returncode != 0 or not Path(wav).exists() or Path(wav).stat().st_size <= 44:
            raise SynthError(f"synthesis failed for {utterance.relative_path} ({utterance.voice}): "
                             f"{result.stderr.decode(errors='replace').strip()}")
        audio, rate = sf.read(wav, dtype="float32")
    # Reading the samples as if taken `warp` times faster scales every frequency (and the tempo) by warp.
    audio = resample(audio if audio.ndim == 1 else audio.mean(axis=1), rate * utterance.warp, SAMPLE_RATE)
    audio = np.clip(audio, -1.0, 1.0)
    path = out_dir / utterance.relative_path
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return utterance, len(audio)


def _work(args: tuple[Utterance, Path, dict[str, str]]) -> tuple[Utterance, int]:
    return synthesize(*args)


def make_corpus(out_dir: str | Path, hours: float, seed: int = 0, workers: int = 2,
                text_files: list[Path] | None = None, progress: bool = True,
                engines: tuple[str, ...] = ("espeak",), valid_count: int | None = None,
                test_count: int | None = None, sentence_file: Path | None = None,
                held_out_voices: tuple[str, ...] | None = None,
                formant_warp: tuple[float, float] | None = None, voice_sampling: str = "engine") -> dict:
    """Generate the corpus; returns a summary (utterances, seconds, throughput per split)."""
    if not (isinstance(hours, (int, float)) and math.isfinite(hours) and hours > 0):
        raise SynthError(f"--hours must be a finite number > 0, got {hours}")
    if not engines or len(set(engines)) != len(engines):
        raise SynthError(f"--engines must name each engine once, got {list(engines)}")
    out = Path(out_dir)
    binaries = {engine: engine_binary(engine) for engine in engines}
    sentences = read_sentence_list(sentence_file) if sentence_file else load_sentences(text_files)
    plan = plan_corpus(sentences, hours, seed, engines=tuple(engines), valid_count=valid_count, test_count=test_count,
                       held_out_voices=held_out_voices, formant_warp=formant_warp, voice_sampling=voice_sampling)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results: list[tuple[Utterance, int]] = []
    jobs = [(u, out, binaries) for u in plan]
    bar = tqdm(total=len(plan), desc="synth", unit="utt", disable=not progress)
    if workers > 1:
        with get_context("spawn").Pool(workers) as pool:
            for item in pool.imap(_work, jobs, chunksize=4):
                results.append(item)
                bar.update()
    else:
        for job in jobs:
            results.append(_work(job))
            bar.update()
    bar.close()
    elapsed = time.perf_counter() - start

    summary: dict = {"seed": seed, "hours_requested": hours, "engines": list(engines),
                     "formant_warp": list(formant_warp) if formant_warp else None, "voice_sampling": voice_sampling,
                     "held_out_voices": sorted({u.voice for u in plan if u.split == "test" and u.index % 2 == 0}),
                     "sentences_available": len(sentences),
                     "splits": {}, "voices": {}}
    for split in SPLITS:
        items = [(u, n) for u, n in results if u.split == split]
        Manifest(out, [u.relative_path for u, _ in items], [n for _, n in items],
                 [u.words for u, _ in items]).write(out / f"{split}.tsv")
        seconds = round(sum(n for _, n in items) / SAMPLE_RATE, 1)
        summary["splits"][split] = {"utterances": len(items), "seconds": seconds,
                                    "sentences": len({u.text for u, _ in items})}
        summary["voices"][split] = sorted({u.voice for u, _ in items})
    audio_seconds = sum(n for _, n in results) / SAMPLE_RATE
    summary["audio_seconds"] = round(audio_seconds, 1)
    summary["wall_seconds"] = round(elapsed, 1)
    summary["audio_seconds_per_second"] = round(audio_seconds / elapsed, 1)
    summary["workers"] = workers
    atomic_write(out / "corpus.json", json.dumps({**summary, "utterances": [asdict(u) for u, _ in results]},
                                                 indent=1).encode())
    return summary
