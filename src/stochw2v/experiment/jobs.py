"""The experiment's stages as jobs with dependencies, run by a few worker processes.

Jobs are taken in priority order (the stochastic start and the core arms first), each as soon as
the stages it needs are done, so two processes stay busy until the last job: a long run that is
stopped keeps every finished stage and the checkpoints of the unfinished ones.
"""
from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path

import torch

from ..errors import TrainingError
from .arms import ARMS_BY_NAME, STARTS
from .plan import ExperimentPlan
from .stages import finetune_arm, pretrain, warm_start


@dataclass(frozen=True)
class Job:
    kind: str  # pretrain | warm | arm
    name: str  # the start's or the arm's
    seed: int
    target: int = 0  # arms: updates to reach

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name} seed {self.seed}" + (f" to {self.target}" if self.target else "")

    @property
    def needs(self) -> tuple["Job", ...]:
        if self.kind == "warm" and STARTS[self.name].pretrain is not None:
            return (Job("pretrain", self.name, self.seed),)
        if self.kind == "arm":
            return (Job("warm", ARMS_BY_NAME[self.name].start, self.seed),)
        return ()


def plan_jobs(plan: ExperimentPlan, targets: dict[str, int]) -> list[Job]:
    """Every stage the arms in `targets` (arm -> updates) need, in priority order: the arms grouped by
    start in the plan's order (the core arms' stochastic start first), each group's pre-training and
    warm start before its arms, seed by seed."""
    arms = [arm for arm in plan.chosen_arms if arm.name in targets]
    jobs: list[Job] = []
    for start in dict.fromkeys(arm.start for arm in arms):
        for seed in plan.seeds:
            if STARTS[start].pretrain is not None:
                jobs.append(Job("pretrain", start, seed))
            jobs.append(Job("warm", start, seed))
        for seed in plan.seeds:
            jobs += [Job("arm", arm.name, seed, targets[arm.name]) for arm in arms if arm.start == start]
    return jobs


def run_job(plan: ExperimentPlan, job: Job) -> None:
    if job.kind == "pretrain":
        pretrain(plan, STARTS[job.name], job.seed)
    elif job.kind == "warm":
        warm_start(plan, STARTS[job.name], job.seed)
    else:
        finetune_arm(plan, ARMS_BY_NAME[job.name], job.seed, job.target)


def _worker_start(threads: int) -> None:
    torch.set_num_threads(threads)


def _logged_job(plan: ExperimentPlan, job: Job, log: Path) -> str:
    """One job in a worker process, its output in its own log (progress bars of several processes on
    one terminal would garble each other)."""
    saved = os.dup(1), os.dup(2)
    with open(log, "a", buffering=1) as stream:
        os.dup2(stream.fileno(), 1)
        os.dup2(stream.fileno(), 2)
        try:
            run_job(plan, job)
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
    return job.label


def _log_name(job: Job) -> str:
    return f"{job.kind}-{job.name.replace('>', '-to-')}-seed{job.seed}.log"


def run_jobs(plan: ExperimentPlan, jobs: list[Job]) -> None:
    """Run `jobs` in plan.parallel processes (in this one when 1), each as soon as what it needs is done."""
    if plan.parallel <= 1:
        for job in jobs:
            print(f"[experiment] {job.label}", flush=True)
            run_job(plan, job)
        return
    logs = plan.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    threads = max(1, torch.get_num_threads() // plan.parallel)
    waiting, done, running = list(jobs), set(), {}
    failed: list[str] = []
    child = replace(plan, parallel=1)
    with ProcessPoolExecutor(plan.parallel, mp_context=get_context("spawn"), initializer=_worker_start,
                             initargs=(threads,)) as pool:
        while waiting or running:
            while len(running) < plan.parallel and not failed:
                ready = next((job for job in waiting
                              if all(need in done or need not in jobs for need in job.needs)), None)
                if ready is None:
                    break
                waiting.remove(ready)
                log = logs / _log_name(ready)
                running[pool.submit(_logged_job, child, ready, log)] = (ready, log)
                print(f"[experiment] started {ready.label} ({threads} thread(s)); log {log}", flush=True)
            if not running:
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                job, log = running.pop(future)
                _collect(future, job, log, done, failed)
    if failed:
        raise TrainingError("a training stage failed: " + "; ".join(failed) +
                            "; finished stages are kept: run the same command again to continue")


def _collect(future: Future, job: Job, log: Path, done: set, failed: list[str]) -> None:
    error = future.exception()
    if error is None:
        done.add(job)
        print(f"[experiment] finished {job.label}", flush=True)
    else:
        failed.append(f"{job.label}: {error} (log {log})")


__all__ = ["Job", "plan_jobs", "run_job", "run_jobs"]
