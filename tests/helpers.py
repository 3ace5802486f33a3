"""Shared test helpers: small models, padded batches, a server on a free port."""
import contextlib
import threading
import time

import torch

from stochw2v import EncoderConfig


def small_config(**overrides) -> EncoderConfig:
    """A few-thousand-parameter encoder with W2V2's structure (hop 320, receptive field 400)."""
    values = dict(
        conv_layers=((32, 10, 5), (32, 3, 2), (32, 3, 2), (32, 3, 2), (32, 3, 2), (32, 2, 2), (32, 2, 2)),
        conv_norm="layer", conv_bias=True, dim=32, num_layers=3, num_heads=4, ffn_dim=64,
        pos_conv_kernel=16, pos_conv_groups=4, max_upsample=8, dropout=0.0, attention_dropout=0.0,
        activation_dropout=0.0, feature_dropout=0.0, layerdrop=0.0,
    )
    values.update(overrides)
    return EncoderConfig(**values)


def padded_batch(lengths, seed=0):
    """Random audio [B, max(lengths)], zero past each item's length."""
    g = torch.Generator().manual_seed(seed)
    audio = torch.randn(len(lengths), max(lengths), generator=g)
    for i, n in enumerate(lengths):
        audio[i, n:] = 0.0
    return audio


def noise_corpus(folder, transcripts, step=2000):
    """A labelled manifest (test.tsv) of quiet noise files u0.wav, u1.wav, ... of 12000 + step * i samples."""
    import numpy as np
    import soundfile as sf

    from stochw2v.data import Manifest

    folder.mkdir()
    rng = np.random.default_rng(0)
    paths, sizes = [], []
    for i in range(len(transcripts)):
        audio = (0.1 * rng.standard_normal(12000 + step * i)).astype(np.float32)
        sf.write(folder / f"u{i}.wav", audio, 16000, subtype="FLOAT")
        paths.append(f"u{i}.wav")
        sizes.append(len(audio))
    Manifest(folder, paths, sizes, list(transcripts)).write(folder / "test.tsv")
    return folder


@contextlib.contextmanager
def serving(app, max_connections=100, header_timeout=10.0):
    """`app` on the guarded uvicorn server `stochw2v serve` runs, on a free local port: its URL."""
    from stochw2v.serve.http_server import bind_socket, build_server

    sock = bind_socket("127.0.0.1", 0)
    server = build_server(app, max_connections, header_timeout, log_level="critical")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
