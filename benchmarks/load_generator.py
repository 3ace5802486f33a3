"""Load against `stochw2v serve`: an adaptive server against a fixed s=1 one, on loopback, bounded.

    .venv/bin/python benchmarks/load_generator.py MODEL --profile PROFILE.json --manifest test.tsv \
        [--rates 1,2,4,8] [--seconds 20] [--latency-target 1.0] [--out runs/load] [--bad-requests 10000]

For each server (adaptive: every setting of the profile; fixed: the profile cut to s=1) and each
offered rate, requests with Poisson arrivals are sent for `--seconds` (at most `--max-requests`),
and the answers scored against the manifest's transcripts. Reports p50/p95 latency, throughput,
the settings chosen, WER, and the highest rate each server sustains with p95 under the target;
writes load.json, load.md and load.png. `--bad-requests N` then sends N malformed requests and
reports the server's resident memory before and after.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import resource
import socket
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import soundfile as sf
import torch
import uvicorn

import stochw2v
from stochw2v.audio import load_audio
from stochw2v.data import read_manifest
from stochw2v.data.error_rates import error_rates
from stochw2v.model.budget import Profile
from stochw2v.serve import ServeSettings, create_app


def start_server(model, profile: Profile, target: float, max_batch: int) -> tuple[uvicorn.Server, str]:
    app = create_app(model, profile, ServeSettings(latency_target=target, max_batch=max_batch, max_queue=256))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


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


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = stochw2v.load(args.model)
    profile = Profile.load(args.profile)
    manifest = read_manifest(args.manifest, labels=True)
    items = [(wav_bytes(manifest.audio_path(i)), manifest.words[i]) for i in range(min(args.utterances, len(manifest)))]
    fixed = Profile([c for c in profile.settings if c.setting == "s=1"], profile.device, profile.threads)
    rates = [float(r) for r in args.rates.split(",")]
    results, out = {}, Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, prof in (("adaptive", profile), ("fixed s=1", fixed)):
        server, url = start_server(model, prof, args.latency_target, args.max_batch)
        results[name] = []
        for rate in rates:
            row = asyncio.run(offer(url, items, rate, args.seconds, args.max_requests, seed=int(rate * 10)))
            results[name].append(row)
            print(f"{name} at {rate:g}/s: {row['answered']}/{row['sent']} answered, p95 "
                  f"{row['p95'] if row['p95'] is None else round(row['p95'], 3)} s, {row['settings']}",
                  file=sys.stderr, flush=True)
        if name == "adaptive" and args.bad_requests:
            results["bad_requests"] = bad_request_flood(url, args.bad_requests, rss_mb)
        server.should_exit = True
        time.sleep(1.0)
    summary = {name: sustained(rows, args.latency_target) for name, rows in results.items() if name != "bad_requests"}
    payload = {"latency_target": args.latency_target, "threads": args.threads, "results": results, "sustained": summary}
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
