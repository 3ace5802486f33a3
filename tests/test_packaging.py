"""The package works installed, not only from a checkout: the wheel carries its recipes, and the demo and
the recipes load outside the repository."""
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import stochw2v

REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_installed_in_a_fresh_venv_outside_the_checkout_runs_the_demo_help_and_loads_a_preset(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(wheels), str(REPOSITORY)], check=True, cwd=tmp_path)
    wheel = next(wheels.glob("stochw2v-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, cwd=tmp_path)
    # the dependencies (torch and the rest) come from this environment; stochw2v itself only from the wheel
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    check = ("import stochw2v, pathlib; from stochw2v.train.recipe import load_recipe; "
             f"assert pathlib.Path(stochw2v.__file__).is_relative_to({str(site)!r}), stochw2v.__file__; "
             "recipe = load_recipe('pretrain_tiny'); "
             "folder = stochw2v.save(stochw2v.Encoder(stochw2v.EncoderConfig.preset('tiny')), 'tiny_model'); "
             "back = stochw2v.load(folder); "
             "print(recipe.model.preset, recipe.optim.max_updates, type(back).__name__, back.config.dim)")
    loaded = subprocess.run([python, "-c", check], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert loaded.returncode == 0, loaded.stderr
    preset, _, kind, dim = loaded.stdout.split()
    assert (preset, kind, dim) == ("tiny", "Encoder", str(stochw2v.EncoderConfig.tiny().dim))
    demo = subprocess.run([python, "-m", "stochw2v", "demo", "--help"], capture_output=True, text=True, cwd=tmp_path,
                          env=env)
    assert demo.returncode == 0 and "usage: stochw2v demo" in demo.stdout, demo.stderr
