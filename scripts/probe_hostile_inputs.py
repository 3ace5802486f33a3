"""Hostile inputs against the CLI, one subprocess each (60 s timeout): the table of issue #27's cases.

    .venv/bin/python scripts/probe_hostile_inputs.py [NAME_PART ...]

Each row: the case, the exit code (TRACEBACK if one was printed, HANG past the timeout), the last line of
stderr, and the seconds taken. The inputs are made in a temporary folder from the shipped model.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from safetensors.torch import load_file, save_file

REPOSITORY = Path(__file__).resolve().parents[1]
M = str(REPOSITORY / "models" / "stochw2v-synth-en")
S = str(Path(sys.executable).with_name("stochw2v"))
TIMEOUT = 60


def make_inputs(P: Path) -> None:
    sf.write(P / "ok.wav", (0.1 * np.random.randn(16000)).astype(np.float32), 16000)
    sf.write(P / "onehz.wav", np.zeros(100, np.float32), 1, subtype="FLOAT")
    sf.write(P / "loud.wav", np.full(16000, 1e30, np.float32), 16000, subtype="FLOAT")
    if not (P / "fifo.wav").exists():
        os.mkfifo(P / "fifo.wav")

    def model(name, **enc):
        d = P / name
        if d.exists():
            shutil.rmtree(d)
        shutil.copytree(M, d)
        c = json.loads((d / "config.json").read_text())
        c["encoder"].update(enc)
        (d / "config.json").write_text(json.dumps(c))
        return d

    model("m_eps_nan", layer_norm_eps=float("nan"))
    model("m_eps_neg", layer_norm_eps=-1e-5)
    model("m_lnf", layer_norm_first="")
    model("m_boolstr", normalize_waveform="false")
    model("m_dropx", dropout="x")
    model("m_epsstr", layer_norm_eps="1e-5")
    model("m_layers", num_layers=100000)
    model("m_dim", dim=1000000, num_heads=1, pos_conv_groups=1)
    d = model("m_deep")
    (d / "config.json").write_text("[" * 10000 + "]" * 10000)
    for name, f in (("m_nan", lambda t: t.fill_(float("nan"))), ("m_int", lambda t: t.long())):
        d = model(name)
        s = load_file(d / "model.safetensors")
        s["head.bias"] = f(s["head.bias"].clone())
        save_file(s, d / "model.safetensors")
    recipes = {
        "r_lr_inf": "optim:\n  lr: .inf\n",
        "r_mm_nan": "run:\n  max_minutes: .nan\n",
        "r_wd": "optim:\n  weight_decay: -0.1\n",
        "r_dup": "optim:\n  lr: 0.001\n  lr: 0.1\n",
        "r_lr_nan": "optim:\n  lr: .nan\n",
        "r_betas": "optim:\n  betas: [0.9, 1.5]\n",
        "r_betas_s": "optim:\n  betas: [a, b]\n",
        "r_eps": "optim:\n  eps: -1.0e-8\n",
        "r_seed": "run:\n  seed: 1180591620717411303424\n",
        "r_deep": "a: " + "[" * 1000 + "]" * 1000 + "\n",
        "r_bomb": "a: &a [x,x,x,x,x,x,x,x,x]\n"
        + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)),
    }
    for k, v in recipes.items():
        (P / f"{k}.yaml").write_text(v)
    prof = json.loads((Path(M) / "profile.json").read_text())

    def profile(name, mut):
        p = json.loads(json.dumps(prof))
        mut(p)
        (P / f"{name}.json").write_text(json.dumps(p))

    profile("p_gmacs", lambda p: p["settings"][0].update(gmacs_per_audio_second=float("nan")))
    profile("p_rtf0", lambda p: p["settings"][0]["rtf"].update({"1": 0}))
    profile("p_rtfneg", lambda p: p["settings"][0]["rtf"].update({"1": -1}))
    profile("p_threads", lambda p: p.update(threads="2"))
    profile("p_wer", lambda p: p["settings"][0].update(wer="0.3"))
    for name, content in (
        ("lm_neg", '{"beam": -5}'),
        ("lm_notjson", "not json"),
        ("lm_list", "[1]"),
        ("lm_str", '{"lm_weight": "0.5"}'),
    ):
        d = P / name
        if d.exists():
            shutil.rmtree(d)
        shutil.copytree(Path(M) / "lm", d)
        (d / "decoding.json").write_text(content)


def cases(P: str) -> list:
    found = [
        ("transcribe of a FIFO", [S, "transcribe", M, f"{P}/fifo.wav"]),
        ("WAV header 1 Hz", [S, "transcribe", M, f"{P}/onehz.wav"]),
        ("samples ~1e30", [S, "transcribe", M, f"{P}/loud.wav"]),
        ("file name too long (transcribe)", [S, "transcribe", M, f"{P}/" + "x" * 300 + ".wav"]),
        ("evaluate --out too long", [S, "evaluate", M, "--manifest", "x.tsv", "--out", f"{P}/" + "x" * 300]),
        (
            "finetune --out too long",
            [S, "finetune", "--init", M, "--train", "x.tsv", "--valid", "x.tsv", "--out", f"{P}/" + "y" * 300],
        ),
    ]
    for m in [
        "m_eps_nan",
        "m_eps_neg",
        "m_lnf",
        "m_boolstr",
        "m_dropx",
        "m_epsstr",
        "m_layers",
        "m_dim",
        "m_deep",
        "m_nan",
        "m_int",
    ]:
        found.append((f"model folder {m}", [S, "transcribe", f"{P}/{m}", f"{P}/ok.wav"]))
    for r in [
        "r_lr_inf",
        "r_lr_nan",
        "r_mm_nan",
        "r_wd",
        "r_dup",
        "r_betas",
        "r_betas_s",
        "r_eps",
        "r_seed",
        "r_deep",
        "r_bomb",
    ]:
        found.append(
            (
                f"recipe {r}",
                [
                    S,
                    "finetune",
                    "--init",
                    M,
                    "--config",
                    f"{P}/{r}.yaml",
                    "--train",
                    "x.tsv",
                    "--valid",
                    "x.tsv",
                    "--out",
                    f"{P}/out_{r}",
                ],
            )
        )
    for p in ["p_gmacs", "p_rtf0", "p_rtfneg", "p_threads", "p_wer"]:
        found.append(
            (
                f"profile {p} (transcribe --budget)",
                [S, "transcribe", M, f"{P}/ok.wav", "--budget", "0.01", "--profile", f"{P}/{p}.json"],
            )
        )
        found.append((f"profile {p} (serve)", [S, "serve", M, "--profile", f"{P}/{p}.json", "--port", "8799"]))
    for lm in ["lm_neg", "lm_notjson", "lm_list", "lm_str"]:
        found.append((f"LM folder {lm}", [S, "transcribe", M, f"{P}/ok.wav", "--lm", f"{P}/{lm}"]))
    found += [
        ("profile --seconds 1e6", [S, "profile", "--seconds", "1e6"]),
        ("profile --batch 100000", [S, "profile", "--batch", "100000"]),
        ("grow --layers 5000", [S, "grow", M, "--layers", "5000", "--out", f"{P}/grown"]),
        ("serve --port 70000", [S, "serve", M, "--port", "70000"]),
        ("transcribe --device cuda", [S, "transcribe", M, f"{P}/ok.wav", "--device", "cuda"]),
        (
            "pretrain --device cuda",
            [S, "pretrain", "--train", "x.tsv", "--valid", "x.tsv", "--out", f"{P}/pt", "--device", "cuda"],
        ),
        (
            "transcribe --budget without --profile (model has profile.json)",
            [S, "transcribe", M, f"{P}/ok.wav", "--budget", "0.01"],
        ),
    ]
    return found


def main() -> None:
    only = sys.argv[1:]
    with tempfile.TemporaryDirectory() as folder:
        make_inputs(Path(folder))
        print("| case | exit | last line of stderr | s |\n|---|---|---|---|")
        for name, cmd in cases(folder):
            if only and not any(o in name for o in only):
                continue
            start = time.time()
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, cwd=folder)
            except subprocess.TimeoutExpired:
                print(f"| {name} | HANG ({TIMEOUT} s) | | |", flush=True)
                continue
            lines = done.stderr.strip().splitlines() or [""]
            last = next((line for line in lines if "error:" in line), lines[-1])[:150]
            traceback = " TRACEBACK" if "Traceback" in done.stderr else ""
            print(f"| {name} | {done.returncode}{traceback} | {last} | {time.time() - start:.1f} |", flush=True)


if __name__ == "__main__":
    main()
