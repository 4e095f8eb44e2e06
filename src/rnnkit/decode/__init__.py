"""Decoding from step-wise models: sampling with temperature, top-k, top-p, greedy; beam search."""
from .beam import Hypothesis, beam_search, decode
from .sample import generate, next_token

__all__ = ["Hypothesis", "beam_search", "decode", "generate", "next_token"]
