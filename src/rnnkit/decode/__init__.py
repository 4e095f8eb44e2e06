"""Decoding from step-wise models: sampling with temperature, top-k, top-p, greedy; beam search."""
from .beam import Hypothesis, beam_search, decode
from .sample import generate, generate_many, next_token

__all__ = ["Hypothesis", "beam_search", "decode", "generate", "generate_many", "next_token"]
