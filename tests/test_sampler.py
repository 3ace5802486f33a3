import numpy as np
import pytest
import soundfile as sf
import torch

from stochw2v.data import (
    AudioDataset,
    BucketBatchSampler,
    Manifest,
    Vocabulary,
    collate,
    make_loader,
    padding_fraction,
    random_batches,
)

LENGTHS = np.random.default_rng(0).integers(8000, 160000, size=301).tolist()


def test_batches_respect_budget_and_cover_each_utterance_once():
    sampler = BucketBatchSampler(LENGTHS, max_samples=400_000, seed=3)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert all(len(b) * max(LENGTHS[i] for i in b) <= 400_000 for b in batches)
        assert sorted(i for b in batches for i in b) == list(range(len(LENGTHS)))
        assert len(batches) == len(sampler)


def test_epochs_shuffle_differently_and_deterministically():
    a = BucketBatchSampler(LENGTHS, 400_000, seed=3)
    b = BucketBatchSampler(LENGTHS, 400_000, seed=3)
    a.set_epoch(1)
    b.set_epoch(1)
    first = list(a)
    assert first == list(b)
    a.set_epoch(2)
    assert list(a) != first


@pytest.mark.parametrize("budget", [400_000, 1_000_000, 170_000])
def test_two_ranks_get_disjoint_equal_shards_covering_everything(budget):
    shards = []
    for rank in range(2):
        sampler = BucketBatchSampler(LENGTHS, budget, seed=5, num_replicas=2, rank=rank)
        sampler.set_epoch(4)
        shards.append(list(sampler))
    assert len(shards[0]) == len(shards[1])
    seen = [i for shard in shards for b in shard for i in b]
    assert sorted(seen) == list(range(len(LENGTHS)))  # disjoint and complete


def test_resuming_skips_consumed_batches():
    sampler = BucketBatchSampler(LENGTHS, 400_000, seed=1)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, start_batch=5)
    assert list(sampler) == full[5:] and len(sampler) == len(full) - 5


def test_bucketing_pads_far_less_than_random_batches():
    sampler = BucketBatchSampler(LENGTHS, 1_000_000, seed=0)
    bucketed = sampler.padding_fraction()
    mean_batch = len(LENGTHS) / len(sampler.epoch_batches())
    baseline = padding_fraction(random_batches(len(LENGTHS), round(mean_batch)), LENGTHS)
    assert bucketed < 0.05 < baseline


def test_too_long_utterances_are_reported():
    with pytest.raises(ValueError, match="2 utterances are longer than the batch budget"):
        BucketBatchSampler([100, 5000, 6000], max_samples=4000)


def _write_corpus(tmp_path, n=6):
    paths, sizes = [], []
    for i in range(n):
        samples = 3000 + 700 * i
        sf.write(tmp_path / f"u{i}.wav", np.random.default_rng(i).uniform(-0.5, 0.5, samples).astype(np.float32),
                 16000, subtype="FLOAT")
        paths.append(f"u{i}.wav")
        sizes.append(samples)
    return Manifest(tmp_path, paths, sizes, [f"WORD {'A' * (i + 1)}" for i in range(n)])


def test_collate_pads_and_keeps_lengths(tmp_path):
    manifest = _write_corpus(tmp_path)
    dataset = AudioDataset(manifest, Vocabulary())
    batch = collate([dataset[0], dataset[3]])
    assert batch.waveforms.shape == (2, 5100) and batch.lengths.tolist() == [3000, 5100]
    assert batch.waveforms[0, 3000:].abs().max() == 0
    assert batch.target_lengths.tolist() == [6, 9] and batch.targets[0, 6:].tolist() == [-1, -1, -1]


def test_cropping_is_deterministic_per_epoch(tmp_path):
    manifest = _write_corpus(tmp_path)
    dataset = AudioDataset(manifest, crop=2500, seed=1)
    a, b = dataset[4]["audio"], dataset[4]["audio"]
    assert len(a) == 2500 and torch.equal(a, b)
    dataset.set_epoch(1)
    assert not torch.equal(dataset[4]["audio"], a)
    assert dataset.sizes()[0] == 2500


def test_loader_with_workers_matches_without(tmp_path):
    manifest = _write_corpus(tmp_path)
    dataset = AudioDataset(manifest, Vocabulary())
    sampler = BucketBatchSampler(dataset.sizes(), 12_000, seed=0)
    plain = [b.waveforms for b in make_loader(dataset, sampler, num_workers=0)]
    workers = [b.waveforms for b in make_loader(dataset, sampler, num_workers=2)]
    assert len(plain) == len(workers) and all(torch.equal(x, y) for x, y in zip(plain, workers))


def test_labels_outside_vocabulary_name_the_utterance(tmp_path):
    manifest = _write_corpus(tmp_path, n=2)
    manifest.words[1] = "ROOM 101"
    with pytest.raises(ValueError, match="utterance u1 has characters outside the vocabulary: '01'"):
        AudioDataset(manifest, Vocabulary())
