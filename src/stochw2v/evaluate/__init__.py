"""Measuring models: compute profiles now, WER-versus-compute evaluation later."""
