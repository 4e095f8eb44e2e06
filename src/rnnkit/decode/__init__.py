"""Decoding from step-wise models: sampling with temperature, top-k, top-p, greedy."""
from .sample import generate, next_token

__all__ = ["generate", "next_token"]
