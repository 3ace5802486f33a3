"""Measuring models: error rates with intervals, time and compute per setting, decoding."""
