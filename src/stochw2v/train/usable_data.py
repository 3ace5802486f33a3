"""What a training run may use of a manifest, decided before the first update.

Every audio header is read once at the start: a file that cannot be read, or whose length is not
what the manifest says, would otherwise crash the run at the same update after every --resume.
All such entries are listed at once; `data.drop_unreadable` leaves them out instead. Utterances
shorter than the run needs are left out with a count (fairseq's min_sample_size).
"""
from __future__ import annotations

import warnings

from ..audio import SAMPLE_RATE
from ..data import Manifest
from ..data.manifest import audit_audio
from ..errors import ManifestError


def usable_manifest(manifest: Manifest, min_samples: int, drop_unreadable: bool, verbose: bool = True) -> Manifest:
    problems = audit_audio(manifest, progress=verbose)
    if problems and not drop_unreadable:
        listed = "; ".join(p.describe() for p in problems[:10])
        raise ManifestError(f"{manifest.source}: {len(problems)} entries cannot be used: {listed}"
                            f"{' ...' if len(problems) > 10 else ''}. Fix them, or set data.drop_unreadable=true "
                            "to leave them out")
    bad = {p.index for p in problems}
    short = [i for i, n in enumerate(manifest.num_samples) if n < min_samples and i not in bad]
    keep = [i for i in range(len(manifest)) if i not in bad and i not in short]
    if not keep:
        raise ManifestError(f"{manifest.source}: no utterance is usable ({len(bad)} unreadable, {len(short)} "
                            f"shorter than {min_samples} samples)")
    if bad or short:
        warnings.warn(f"{manifest.source}: left out {len(bad)} unreadable and {len(short)} utterances shorter than "
                      f"{min_samples} samples ({min_samples / SAMPLE_RATE:.2f} s); {len(keep)} remain", stacklevel=2)
    return manifest if len(keep) == len(manifest) else manifest.subset(keep)


__all__ = ["usable_manifest"]
