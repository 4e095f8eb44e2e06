"""`rnnkit bench`: the command runs at toy sizes and prints the tables it promises; the FLOP count is right;
bad options fail with one line naming the valid values. Nothing here asserts a timing."""
import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch

import rnnkit as rk
from rnnkit.bench import BenchConfig, forward_flops, run_bench, train_flops
from rnnkit.bench import rows as rows_mod
from rnnkit.bench.memory import MemorySpec, measure_scaling
from rnnkit.bench.table import MAIN_COLUMNS, MEMORY_COLUMNS
from rnnkit.bench.timing import measure
from rnnkit.cells import ElmanCell

from clikit import cli, one_line_error

ROOT = Path(__file__).resolve().parents[1]


def tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table in text, as rows of cells (header first, the |---| rule dropped)."""
    found, current = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if current is None:
                current = []
                found.append(current)
            if not all(re.fullmatch(r"-+:?", c) for c in cells):
                current.append(cells)
        else:
            current = None
    return found


@pytest.fixture
def no_keras(monkeypatch):
    monkeypatch.setattr(rows_mod, "keras_status", lambda: "not installed")


# ----- FLOP count ---------------------------------------------------------------------------------------

def test_flops_of_an_lstm_are_2BT_F_plus_H_4H_forward_and_three_times_that_for_training():
    B, T, F, H = 2, 3, 5, 7
    cells = rk.layers.RNN("lstm", F, H).cells
    assert forward_flops(cells, B, T) == 2 * B * T * (F + H) * 4 * H == 4032
    assert train_flops(cells, B, T) == 3 * 4032


@pytest.mark.parametrize("kind, k", [("rnn", 1), ("gru", 3), ("gru-cho", 3), ("minimal-gru", 2), ("peephole", 4)])
def test_flops_count_k_gate_blocks_and_ignore_vectors(kind, k):
    B, T, F, H = 3, 4, 6, 5
    assert forward_flops(rk.layers.RNN(kind, F, H).cells, B, T) == 2 * B * T * (F + H) * k * H


def test_flops_of_jordan_add_its_output_layer():
    B, T, F, H = 2, 3, 5, 7
    cells = rk.layers.RNN("jordan", F, H).cells  # output size O = H: U_h is (H, O), W_y (O, H)
    assert forward_flops(cells, B, T) == 2 * B * T * ((F + H) * H + H * H)


def test_flops_of_two_layers_bidirectional_sum_every_cell():
    B, T, F, H = 2, 3, 5, 4
    cells = rk.layers.RNN("gru", F, H, num_layers=2, bidirectional=True).cells
    layer0 = 2 * B * T * (F + H) * 3 * H
    layer1 = 2 * B * T * (2 * H + H) * 3 * H
    assert forward_flops(cells, B, T) == 2 * layer0 + 2 * layer1


# ----- the command --------------------------------------------------------------------------------------

def test_tiny_bench_prints_one_row_per_kind_and_the_bptt_table(tmp_path, no_keras):
    out = tmp_path / "bench.md"
    result = cli("bench", "--tiny", "--kinds", "lstm,jordan", "--threads", "1", "--markdown", out)
    text = result.stdout
    first = text.splitlines()[0]
    for expected in ("rnnkit", "CPU:", "logical CPUs", "1 torch thread(s)", f"torch {torch.__version__}", "device cpu"):
        assert expected in first, first
    main, memory = tables(text)
    assert main[0] == MAIN_COLUMNS
    by_kind = {r[0]: dict(zip(MAIN_COLUMNS, r)) for r in main[1:]}
    assert list(by_kind) == ["lstm", "jordan"]
    lstm, jordan = by_kind["lstm"], by_kind["jordan"]
    assert lstm["B, T, H"] == "4, 6, 8" and lstm["rnnkit path"] == "torch kernel (LSTM)"
    assert lstm["vs torch fused"].endswith("× nn.LSTM") and jordan["vs torch fused"].endswith("× nn.RNN")
    assert re.fullmatch(r"[\d.]+×", lstm["vs Python loop"])
    assert lstm["vs NumPy reference"].endswith("× lstm_loss") and jordan["vs NumPy reference"] == "— none"
    assert lstm["vs Keras 3"] == jordan["vs Keras 3"] == "not installed"
    for row in (lstm, jordan):
        assert float(row["tokens/s"].replace(",", "")) > 0
        assert float(row["GFLOP/s"]) >= 0 and row["% of sgemm peak"].endswith("%")
    assert memory[0] == MEMORY_COLUMNS
    assert [(r[0], r[1]) for r in memory[1:]] == [
        (mode, T) for T in ("8", "16", "32") for mode in ("full", "truncated, k=8")]
    assert [r[2] for r in memory[1:]] == ["1", "1", "1", "2", "1", "4"]  # updates: T / k truncated
    assert "GFLOP/s = the step's matrix-product FLOPs" in text and "Peak memory:" in text
    assert out.read_text(encoding="utf-8") == text
    assert "timing" in result.stderr  # progress goes to stderr, the report alone to stdout


def test_new_kinds_in_the_registry_get_rows_without_code_changes(monkeypatch, no_keras):
    monkeypatch.setitem(rk.layers.KINDS, "relu-elman", (ElmanCell, {"activation": "relu"}))
    assert "relu-elman" in BenchConfig().kinds
    text = run_bench(BenchConfig.preset("tiny", kinds=("relu-elman",), memory=None, threads=1))
    (main,) = tables(text)
    row = dict(zip(MAIN_COLUMNS, main[1]))
    assert row["kind"] == "relu-elman" and row["vs torch fused"].endswith("nn.RNN")
    assert row["vs NumPy reference"] == "— none"


def test_families_pick_the_torch_module_a_user_would_use():
    assert [rows_mod.family(k) for k in ("lstm", "peephole", "min-lstm", "gru", "gru-cho", "minimal-gru", "min-gru",
                                         "rnn", "jordan")] == ["LSTM"] * 3 + ["GRU"] * 4 + ["RNN"] * 2
    assert rows_mod.keras_variant("gru-cho") == ("GRU", {"reset_after": False})


@pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="keras (the bench extra) is not installed")
def test_keras_column_when_keras_is_installed():
    text = run_bench(BenchConfig.preset("tiny", kinds=("gru-cho",), memory=None, threads=1))
    (main,) = tables(text)
    assert re.fullmatch(r"[\d.]+× GRU\(reset_after=False\)", dict(zip(MAIN_COLUMNS, main[1]))["vs Keras 3"])
    assert "Keras 3." in text.splitlines()[0] and "torch backend" in text.splitlines()[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tiny_bench_on_cuda(no_keras):
    text = run_bench(BenchConfig.preset("tiny", kinds=("lstm", "peephole"), device="cuda"))
    main, memory = tables(text)
    assert [r[0] for r in main[1:]] == ["lstm", "peephole"] and len(memory) == 7


def test_full_bptt_memory_grows_with_T_and_truncated_stays_flat():
    rows, method = measure_scaling(MemorySpec(batch=8, hidden=64, steps=(50, 800), k=50, threads=1, repeats=1))
    peak = {(r.mode, r.steps): r.peak_bytes for r in rows}
    assert peak["full", 800] > 4 * peak["truncated", 800]   # 16x the steps held vs one 50-step window
    assert peak["full", 800] > 4 * peak["full", 50]
    assert "peak" in method.lower() or "max_memory" in method


# ----- bad options --------------------------------------------------------------------------------------

def test_unknown_kind_names_the_valid_ones():
    line = one_line_error(cli("bench", "--tiny", "--kinds", "lstm,lsmt", ok=False), "'lsmt'", "valid kinds:")
    for kind in rk.layers.KINDS:
        assert kind in line


@pytest.mark.parametrize("args, expected", [
    (["--threads", "0"], "--threads >= 1, got 0"),
    (["--device", "tpu"], "--device cpu or cuda, got 'tpu'"),
    (["--kinds", ","], "at least one cell kind"),
    (["--kinds", "gru,gru"], "each kind once"),
    (["--markdown", "no/such/folder/b.md"], "does not exist"),
])
def test_bad_options_fail_with_one_line(args, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_line_error(cli("bench", "--tiny", *args, ok=False), expected)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_says_so():
    one_line_error(cli("bench", "--tiny", "--device", "cuda", ok=False), "CUDA is not available")


# ----- the shared timing loop ----------------------------------------------------------------------------

class _Timed:
    def __init__(self, key, step):
        self.key, self.step, self.step_times, self.iters = key, step, [], 1


def test_measure_interleaves_rounds_and_records_failures():
    calls = []
    ok = _Timed("ok", lambda: calls.append("ok"))
    broken = _Timed("broken", lambda: 1 / 0)
    failures = {}
    ran = measure([ok, broken], repeats=3, warmup=2, min_time=0, log=lambda m: None, failures=failures)
    assert ran == [ok] and len(ok.step_times) == 3 and len(calls) == 2 + 3
    assert failures == {"broken": "ZeroDivisionError: division by zero"}
    with pytest.raises(ZeroDivisionError):
        measure([broken], repeats=1, warmup=1, min_time=0, log=lambda m: None)


def test_bench_core_still_runs_on_the_shared_loop(capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_core", ROOT / "benchmarks" / "bench_core.py")
    bench_core = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_core", bench_core)  # its dataclasses look their module up
    spec.loader.exec_module(bench_core)
    assert bench_core.main(["--repeats", "1", "--batch", "2", "--steps", "3", "--hidden", "4", "--threads", "1",
                            "--warmup", "1"]) == 0
    (table,) = tables(capsys.readouterr().out)
    assert table[0][:3] == ["model", "path", "tokens/s"] and len(table) == 1 + 8


def _bench_module(name, monkeypatch):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def test_bench_babi_keeps_each_result_and_refuses_other_settings(tmp_path, monkeypatch):
    bench_babi = _bench_module("bench_babi", monkeypatch)
    settings = {"minutes": 7.0, "seed": 0}
    record = bench_babi.Record(tmp_path, settings)
    assert record.get(1, "10k") is None
    record.add({"task": 1, "set": "10k", "accuracy": 1.0})
    again = bench_babi.Record(tmp_path, settings)  # a later command: the result is there, written at once
    assert again.get(1, "10k") == {"task": 1, "set": "10k", "accuracy": 1.0} and again.get(1, "1k") is None
    with pytest.raises(SystemExit, match=r"measured with other settings \(recorded, now\): "
                                         r"\{'minutes': \(7.0, 9.0\)\}"):
        bench_babi.Record(tmp_path, {"minutes": 9.0, "seed": 0})
    run = tmp_path / "qa2-10k"
    for n in (1, 2):  # an unfinished run's directory is moved aside, never deleted
        run.mkdir()
        (run / "trainer.pt").write_bytes(b"x")
        bench_babi.set_aside(run)
        assert not run.exists() and (tmp_path / f"qa2-10k.interrupted{n}" / "trainer.pt").is_file()
    bench_babi.set_aside(run)  # nothing there: nothing to do
