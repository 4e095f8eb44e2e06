"""Lecture 002's vanishing gradient, measured: ||dL/dh_t|| for an Elman RNN and an LSTM.

A loss on the last output only; the plot shows how much of its gradient reaches each earlier step.
    python examples/gradient_flow.py [--steps 100] [--out docs/gradient_flow.png]
"""
import argparse

import torch

import rnnkit as rk
from rnnkit.train import hidden_gradient_norms
from rnnkit.train.plots import plot_gradient_flow


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--out", default="docs/gradient_flow.png")
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(16, args.steps, 8)
    cells = {
        "Elman (tanh)": rk.cells.ElmanCell(8, args.hidden),
        "LSTM": rk.cells.LSTMCell(8, args.hidden),
        "LSTM, forget bias 1": rk.cells.LSTMCell(8, args.hidden, forget_bias=1.0),
        "GRU (Cho)": rk.cells.GRUCell(8, args.hidden),
    }
    norms = {}
    for name, cell in cells.items():
        n = hidden_gradient_norms(cell, x, lambda out: out[:, -1].pow(2).sum())
        norms[name] = n.tolist()
        print(f"{name:22s} ||dL/dh_1|| / ||dL/dh_T|| = {float(n[0] / n[-1]):.3e}")
    plot_gradient_flow(norms, args.out, title=f"gradient from a loss at step {args.steps} reaching step t")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
