"""Load against `stochw2v serve`: an adaptive server against a fixed s=1 one, on loopback, bounded.

    .venv/bin/python benchmarks/load_generator.py MODEL --profile PROFILE.json --manifest test.tsv \
        [--rates 1,2,4,8] [--seconds 20] [--latency-target 1.0] [--out runs/load] [--bad-requests 10000] \
        [--threads 1 --server-cpus 1 --client-cpus 0]

Each server is `stochw2v serve` in a process of its own on 127.0.0.1 (the profile should be measured
with the server's --threads). For each server (adaptive: every setting of the profile; fixed: the
profile cut to s=1) and each
offered rate, requests with Poisson arrivals are sent for `--seconds` (at most `--max-requests`),
and the answers scored against the manifest's transcripts. Reports p50/p95 latency, throughput,
the settings chosen, WER, and the highest rate each server sustains with p95 under the target;
writes load.json, load.md and load.png. `--bad-requests N` then sends N malformed requests and
reports the server's resident memory before and after.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from functools import partial
from pathlib import Path

import httpx
import soundfile as sf

from stochw2v.audio import load_audio
from stochw2v.compute.budget import Profile
from stochw2v.data import read_manifest
from stochw2v.data.error_rates import error_rates


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(model: str, profile: Path, args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    """`stochw2v serve` in a process of its own (pinned to --server-cpus), as a user would run it: the
    load generator's own work then neither shares the server's GIL nor, when pinned, its cores."""
    port = free_port()
    command = [sys.executable, "-m", "stochw2v", "serve", model, "--profile", str(profile), "--port", str(port),
               "--latency-target", str(args.latency_target), "--max-batch", str(args.max_batch),
               "--max-queue", "256", "--threads", str(args.threads), "--log-level", "error"]
    if args.server_cpus:
        command = ["taskset", "-c", args.server_cpus, *command]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}: {' '.join(command)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return server, url
        time.sleep(0.2)
    server.kill()
    raise SystemExit(f"the server did not answer /health within 120 s: {' '.join(command)}")


def warm_up(url: str, items: list[tuple[bytes, str]], count: int = 20) -> None:
    """A few requests one after another, not counted: the first passes at new shapes are slow."""
    with httpx.Client(timeout=60) as client:
        for body, _ in items[:count]:
            client.post(f"{url}/transcribe", content=body, headers={"content-type": "audio/wav"})


def stop_server(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)  # graceful: accepted requests finish
    try:
        server.wait(60)
    except subprocess.TimeoutExpired:
        server.kill()


def wav_bytes(path: Path) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, load_audio(path), 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


async def offer(url: str, items: list[tuple[bytes, str]], rate: float, seconds: float, limit: int, seed: int) -> dict:
    """Poisson arrivals at `rate` for `seconds` (at most `limit` requests); every answer awaited."""
    rng = random.Random(seed)
    results = []
    async with httpx.AsyncClient(timeout=120) as client:
        async def one(body: bytes, reference: str) -> None:
            start = time.perf_counter()
            response = await client.post(f"{url}/transcribe", content=body, headers={"content-type": "audio/wav"})
            elapsed = time.perf_counter() - start
            answer = response.json() if response.status_code == 200 else {}
            results.append((response.status_code, elapsed, answer.get("setting"), answer.get("text", ""), reference))

        tasks, start, sent = [], time.perf_counter(), 0
        while time.perf_counter() - start < seconds and sent < limit:
            body, reference = items[sent % len(items)]
            tasks.append(asyncio.create_task(one(body, reference)))
            sent += 1
            await asyncio.sleep(rng.expovariate(rate))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
    ok = [r for r in results if r[0] == 200]
    latencies = sorted(r[1] for r in ok)
    counts = error_rates([r[4] for r in ok], [r[3] for r in ok]) if ok else None
    return {"rate": rate, "sent": sent, "answered": len(ok), "refused": sum(r[0] == 503 for r in results),
            "throughput": len(ok) / wall, "p50": statistics.median(latencies) if ok else None,
            "p95": latencies[int(0.95 * (len(latencies) - 1))] if ok else None,
            "wer": counts.wer if counts else None, "settings": dict(Counter(r[2] for r in ok))}


def sustained(rows: list[dict], target: float) -> float:
    """Highest offered rate answered fully (nothing refused) with p95 under the target."""
    good = [r["rate"] for r in rows if r["p95"] is not None and r["p95"] <= target and r["refused"] == 0
            and r["answered"] == r["sent"]]
    return max(good, default=0.0)


def bad_request_flood(url: str, count: int, server_pid_rss) -> dict:
    bodies = [b"not audio", b"", b"RIFF\x00\x00\x00\x00WAVEfmt ", b"\x00" * 1000]
    before = server_pid_rss()
    with httpx.Client(timeout=30) as client:
        statuses = Counter(client.post(f"{url}/transcribe?setting=s=1", content=bodies[i % len(bodies)]).status_code
                           for i in range(count))
        healthy = client.get(f"{url}/health").status_code == 200
    return {"requests": count, "statuses": dict(statuses), "rss_before_mb": before, "rss_after_mb": server_pid_rss(),
            "health_after": healthy}


def rss_mb(pid: int) -> float:
    """Resident memory of process `pid` in MB (Linux /proc)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise SystemExit(f"no VmRSS for process {pid}")


def plot(results: dict, target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, rows in results.items():
        rates = [r["rate"] for r in rows]
        left.plot(rates, [r["p95"] for r in rows], "o-", label=name)
        right.plot(rates, [r["wer"] for r in rows], "o-", label=name)
    left.axhline(target, color="k", ls="--", lw=1, label="latency target")
    left.set_xlabel("offered requests per second")
    left.set_ylabel("p95 latency (s)")
    left.set_yscale("log")
    right.set_xlabel("offered requests per second")
    right.set_ylabel("WER of the answers")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--profile", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--rates", default="0.5,1,2,4,8")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--max-requests", type=int, default=400)
    parser.add_argument("--latency-target", type=float, default=1.0)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--utterances", type=int, default=100)
    parser.add_argument("--bad-requests", type=int, default=0)
    parser.add_argument("--out", default="runs/load")
    parser.add_argument("--server-cpus", help="pin each server to these CPUs (taskset -c), e.g. 1")
    parser.add_argument("--client-cpus", help="pin the load generator to these CPUs, e.g. 0")
    args = parser.parse_args()
    if args.client_cpus:
        os.sched_setaffinity(0, {int(c) for c in args.client_cpus.split(",")})
    profile = Profile.load(args.profile)
    manifest = read_manifest(args.manifest, labels=True)
    items = [(wav_bytes(manifest.audio_path(i)), manifest.words[i]) for i in range(min(args.utterances, len(manifest)))]
    rates = [float(r) for r in args.rates.split(",")]
    results, out = {}, Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fixed = Profile([c for c in profile.settings if c.setting == "s=1"], profile.device, profile.threads)
    fixed_path = fixed.save(out / "profile_fixed_s1.json")
    for name, profile_path in (("adaptive", Path(args.profile)), ("fixed s=1", fixed_path)):
        server, url = start_server(args.model, profile_path, args)
        warm_up(url, items)
        results[name] = []
        for rate in rates:
            row = asyncio.run(offer(url, items, rate, args.seconds, args.max_requests, seed=int(rate * 10)))
            results[name].append(row)
            print(f"{name} at {rate:g}/s: {row['answered']}/{row['sent']} answered, p95 "
                  f"{row['p95'] if row['p95'] is None else round(row['p95'], 3)} s, {row['settings']}",
                  file=sys.stderr, flush=True)
        if name == "adaptive" and args.bad_requests:
            results["bad_requests"] = bad_request_flood(url, args.bad_requests, partial(rss_mb, server.pid))
        stop_server(server)
    summary = {name: sustained(rows, args.latency_target) for name, rows in results.items() if name != "bad_requests"}
    payload = {"latency_target": args.latency_target, "threads": args.threads, "server_cpus": args.server_cpus,
               "client_cpus": args.client_cpus, "results": results, "sustained": summary}
    (out / "load.json").write_text(json.dumps(payload, indent=1))
    lines = ["| server | offered req/s | answered | refused | throughput | p50 s | p95 s | WER | settings |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, rows in results.items():
        if name == "bad_requests":
            continue
        for r in rows:
            p50 = "-" if r["p50"] is None else f"{r['p50']:.2f}"
            p95 = "-" if r["p95"] is None else f"{r['p95']:.2f}"
            wer = "-" if r["wer"] is None else f"{r['wer']:.3f}"
            lines.append(f"| {name} | {r['rate']:g} | {r['answered']}/{r['sent']} | {r['refused']} | "
                         f"{r['throughput']:.2f} | {p50} | {p95} | {wer} | {r['settings']} |")
    lines.append("")
    lines.append("highest rate with p95 under the target: " + ", ".join(f"{k} {v:g}/s" for k, v in summary.items()))
    if "bad_requests" in results:
        lines.append(f"bad requests: {results['bad_requests']}")
    (out / "load.md").write_text("\n".join(lines) + "\n")
    plot({k: v for k, v in results.items() if k != "bad_requests"}, args.latency_target, out / "load.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
