"""Speech data: manifests, transcripts, the synthetic corpus, batching."""
from .dataset import AudioDataset, Batch, collate, make_loader
from .librispeech import folder_manifest, librispeech_manifest
from .manifest import AudioProblem, Manifest, ManifestError, audit_audio, combine_manifests, read_manifest
from .sampler import BucketBatchSampler, padding_fraction, random_batches
from .text import Vocabulary, normalize_text, to_letters

__all__ = [
    "AudioDataset", "AudioProblem", "Batch", "BucketBatchSampler", "Manifest", "ManifestError", "audit_audio",
    "Vocabulary", "collate", "combine_manifests",
    "folder_manifest", "librispeech_manifest", "make_loader", "normalize_text", "padding_fraction",
    "random_batches", "read_manifest", "to_letters",
]
