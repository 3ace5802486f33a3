"""The reference transcripts an evaluation scores against, normalised as training normalises them."""
from __future__ import annotations

from ..data import Manifest, normalize_text
from ..errors import ManifestError
from ..model import CTCModel


def prepare_references(manifest: Manifest, models: dict[str, CTCModel]) -> dict[str, str]:
    """References by utterance id, normalised as training normalises them; characters a model
    cannot emit are refused (they would count as errors no model could avoid)."""
    if not manifest.has_labels:
        raise ManifestError(f"{manifest.source}: evaluation needs transcripts (.wrd)")
    references = {manifest.utterance_id(i): normalize_text(manifest.words[i]) for i in range(len(manifest))}
    for name, model in models.items():
        bad = {utt: "".join(sorted(model.vocabulary.unknown_characters(text))) for utt, text in references.items()
               if model.vocabulary.unknown_characters(text)}
        if bad:
            listed = ", ".join(f"{utt} ({chars!r})" for utt, chars in list(bad.items())[:5])
            raise ManifestError(f"{manifest.source}: {len(bad)} of {len(references)} references hold characters "
                                f"model {name} cannot emit: "
                                f"{listed}{' ...' if len(bad) > 5 else ''}")
    return references


__all__ = ["prepare_references"]
