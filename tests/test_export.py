"""rnnkit export: every supported task's run exports to TorchScript and ONNX, and the exported graph, run on a
padded batch of mixed lengths with another B and T than it was traced with, gives the eager model's outputs.
ONNX runs need onnxruntime (the optional extra rnnkit[onnx]); without it those tests skip."""
import io
import json
import random
import sys
import tarfile

import pytest
import torch

from rnnkit import export
from rnnkit.tasks import (act, babi, captions, classify, forecast, han, lm, mdlstm, memory, music, ntm, seq2seq,
                          seqmnist, vqa)

from clikit import cli, one_line_error

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
B, T = 4, 17  # neither the traced example's (9, 6) nor the export's own check's (5, 11)
CPU = ["--device", "cpu", "--quiet"]


def lengths(batch=B, steps=T, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = torch.randint(1, steps + 1, (batch,), generator=g)
    out[0], out[-1] = steps, 1  # one full, one of a single step
    return out


def run_exported(path, fmt, *inputs):
    if fmt == "torchscript":
        with torch.no_grad():
            return list(torch.jit.load(str(path))(*inputs))
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert len(names) == len(inputs)
    return [torch.from_numpy(o) for o in session.run(None, {n: x.numpy() for n, x in zip(names, inputs)})]


def exported(run_dir, fmt, tmp_path, name="model"):
    """Export through the CLI into tmp_path; returns (graph file, sidecar)."""
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    out = tmp_path / f"export-{fmt}"
    result = cli("export", run_dir, "--format", fmt, "--out", out)
    assert "checked against the eager model" in result.stdout, result.stdout
    sidecar = json.loads((out / f"{fmt}.json").read_text())
    return out / (name + export.SUFFIX[fmt]), sidecar


def write_babi(root):
    """A tiny bAbI directory: task 1 (one-word answers) and task 8 (lists, the GRU decoder), 24 questions a file."""
    rng = random.Random(0)
    names, places, things = ["mary", "john", "sandra"], ["garden", "hallway", "kitchen"], ["apple", "milk", "ball"]
    en = root / "tasks_1-20_v1-2" / "en"
    en.mkdir(parents=True)
    for task, name in ((1, "single-supporting-fact"), (8, "lists-sets")):
        lines = []
        for _ in range(12):  # stories of 1..4 facts, two questions each
            facts = [f"{rng.choice(names)} {'moved to the' if task == 1 else 'took the'} "
                     f"{rng.choice(places if task == 1 else things)}." for _ in range(rng.randint(1, 4))]
            for i, fact in enumerate(facts, start=1):
                lines.append(f"{i} {fact}")
            for k in range(2):
                who = facts[-1].split()[0]
                answer = facts[-1].split()[-1].rstrip(".") if task == 1 else ",".join(
                    sorted({f.split()[-1].rstrip(".") for f in facts if f.startswith(who)}))
                question = f"Where is {who}?" if task == 1 else f"What is {who} carrying?"
                lines.append(f"{len(facts) + 1 + k} {question}\t{answer}\t{len(facts)}")
        text = "\n".join(lines) + "\n"
        for split in ("train", "test"):
            (en / f"qa{task}_{name}_{split}.txt").write_text(text)
    return root / "tasks_1-20_v1-2"


def babi_inputs(model, batch=B, facts=7, words=5, question=4, seed=0):
    """facts (B, F, W) and question (B, Q) ids: mixed numbers of facts and words, padding after them."""
    g = torch.Generator().manual_seed(seed)
    c = model.config
    fact_counts, question_counts = lengths(batch, facts, seed), lengths(batch, question, seed + 1)
    word_counts = torch.randint(1, words + 1, (batch, facts), generator=g)
    word_counts[torch.arange(facts)[None, :] >= fact_counts[:, None]] = 0
    ids = torch.randint(3, c.vocab_size, (batch, facts, words), generator=g)
    ids[torch.arange(words) >= word_counts[..., None]] = c.pad_id
    q = torch.randint(3, c.vocab_size, (batch, question), generator=g)
    q[torch.arange(question)[None, :] >= question_counts[:, None]] = c.pad_id
    return ids, q, fact_counts


def write_reviews(path, n=12):
    """A tiny review archive in Pang & Lee's layout: three sentences a review (tests/tasks/test_han_task.py)."""
    words = {1: "a great wonderful film , loved it", 0: "a dull awful film , hated it"}
    with tarfile.open(path, "w:gz") as tar:
        for k in range(n):
            data = f"the story of number {k} .\n{words[k % 2]} .\nthe end .\n".encode()
            info = tarfile.TarInfo(f"txt_sentoken/{'pos' if k % 2 else 'neg'}/cv{k * 80:03d}_{k}.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_piano_rolls(path, n=(4, 2, 2), T=8):
    """A tiny .mat of piano rolls (tests/tasks/test_music_task.py)."""
    import numpy as np
    import scipy.io

    rng, data = np.random.default_rng(0), {}
    for key, count in zip(("traindata", "validdata", "testdata"), n):
        cell = np.empty((1, count), dtype=object)
        for k in range(count):
            cell[0, k] = (rng.random((T + k, 88)) < 0.05).astype(np.uint8)
        data[key] = cell
    scipy.io.savemat(path, data)
    return path


def close(got, want):
    assert tuple(got.shape) == tuple(want.shape)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


FORMATS = pytest.mark.parametrize("fmt", export.FORMATS)


# ----- tiny runs, trained once per module ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    text = root / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog\n" * 30)
    rng = random.Random(0)
    reviews = root / "reviews.tsv"
    reviews.write_text("".join(f"{' '.join(rng.choice('a film was good bad dull great'.split()) for _ in range(rng.randint(1, 6)))}"
                               f"\t{rng.choice(['neg', 'pos'])}\n" for _ in range(80)))
    pairs = root / "pairs.tsv"
    pairs.write_text("".join((lambda w: " ".join(f"w{x}" for x in w) + "\t" + " ".join(f"v{x}" for x in reversed(w)) + "\n")(
        [rng.randrange(6) for _ in range(rng.randint(1, 5))]) for _ in range(120)))
    bAbI = write_babi(root)
    reviews_archive = write_reviews(root / "reviews.tar.gz")
    rolls = write_piano_rolls(root / "rolls.mat")
    small = ["--steps", 1, "--eval-every", 1, *CPU]
    images = ["--image-size", 16, "--channels", "4,4", "--pools", 2, "--train-size", 8, "--valid-size", 4, "--test-size", 4,
              "--batch-size", 4]
    commands = {
        "charlm": ["charlm", "--data", text, "--cell", "lstm", "--layers", 2, "--hidden", 8, "--seq-len", 10,
                   "--batch-size", 4, *small],
        "wordlm": ["wordlm", "--data", text, "--cell", "peephole", "--layers", 1, "--hidden", 6, "--embedding", 4,
                   "--seq-len", 5, "--batch-size", 2, *small],
        "classify": ["classify", "--data", reviews, "--model", "gru", "--bidirectional", "--layers", 2,
                     "--pooling", "attention", "--hidden", 6, "--embedding", 4, "--batch-size", 8, *small],
        "seqmnist": ["seqmnist", "--model", "gru-cho", "--hidden", 6, "--batch-size", 8, *small],
        "adding": ["adding", "--length", 8, "--model", "lstm", "--hidden", 6, "--valid-size", 8, "--test-size", 8,
                   "--batches-per-epoch", 1, "--batch-size", 4, *small],
        "copy": ["copy", "--length", 4, "--model", "minimal-gru", "--hidden", 6, "--valid-size", 8, "--test-size", 8,
                 "--batches-per-epoch", 1, "--batch-size", 4, *small],
        "forecast": ["forecast", "--data", "synthetic", "--target", "y", "--lookback", 12, "--delay", 0, "--season", 12,
                     "--model", "gru", "--bidirectional", "--hidden", 6, "--batch-size", 8, *small],
        "ntm": ["ntm", "--memory-size", 6, "--memory-width", 3, "--hidden", 6, "--width", 3, "--max-length", 2,
                "--valid-size", 4, "--test-size", 4, "--batches-per-epoch", 1, "--batch-size", 4, *small],
        "ntm-lstm": ["ntm", "--model", "lstm", "--hidden", 6, "--layers", 1, "--width", 3, "--max-length", 2,
                     "--valid-size", 4, "--test-size", 4, "--batches-per-epoch", 1, "--batch-size", 4, *small],
        "seq2seq": ["seq2seq", "--data", pairs, "--attention", "bahdanau", "--cell", "lstm", "--layers", 2, "--hidden", 8,
                    "--embedding", 4, "--batch-size", 8, "--max-len", 6, "--beam", 1, *small],
        "act": ["act", "--size", 6, "--hidden", 6, "--max-steps", 4, "--halting-bias", 0, "--valid-size", 8,
                "--test-size", 8, "--batches-per-epoch", 1, "--batch-size", 4, *small],
        "babi": ["babi", "--data", bAbI, "--task", 1, "--hidden", 6, "--passes", 2, "--batch-size", 4, *small],
        "babi-decoder": ["babi", "--data", bAbI, "--task", 8, "--variant", "dmn", "--fusion", "--hidden", 6,
                         "--passes", 2, "--batch-size", 4, *small],
        "dates": ["dates", "--attention", "local-m", "--cell", "gru", "--hidden", 8, "--embedding", 4, "--train-size", 40,
                  "--valid-size", 4, "--test-size", 4, "--batch-size", 8, "--beam", 1, *small],
        "captions": ["captions", *images, "--hidden", 6, "--embedding", 4, *small],
        "vqa": ["vqa", *images, "--hidden", 6, "--passes", 2, *small],
        "mdlstm": ["mdlstm", "--hidden", 3, "--batch-size", 8, *small],
        "han": ["han", "--data", reviews_archive, "--embedding", 4, "--hidden", 3, "--attention", 4, "--batch-size", 4,
                *small],
        "music": ["music", "--data", rolls, "--model", "gru", "--layers", 2, "--hidden", 6, "--batch-size", 2, *small],
    }
    made = {}
    for name, args in commands.items():
        made[name] = root / name
        cli("train", *args, "--out", made[name])
    return made


# ----- every task: the exported graph equals the eager model on padded batches of mixed lengths -----------------

@FORMATS
@pytest.mark.parametrize("task", ["charlm", "wordlm"])
def test_language_model(runs, task, fmt, tmp_path):
    path, sidecar = exported(runs[task], fmt, tmp_path)
    model, vocab, _ = lm.load(runs[task])
    model.eval()
    names = [p["name"] for p in sidecar["graphs"][0]["inputs"]][2:]  # h, c or h
    L, H = model.config.layers, model.config.hidden
    assert sidecar["vocabulary"] == ["vocab.json"] and (path.parent / "vocab.json").is_file()
    ids = torch.randint(0, len(vocab), (B, T))
    lens = lengths()
    state = [0.3 * torch.randn(L, B, H) for _ in names]
    logits, *final = run_exported(path, fmt, ids, lens, *state)
    per_layer = [tuple(s[l] for s in state) if len(names) > 1 else state[0][l] for l in range(L)]
    with torch.no_grad():
        want, want_state = model(ids, per_layer, lens)
    for b in range(B):  # the valid steps; past them the exported graph and the model agree too
        close(logits[b, :lens[b]], want[b, :lens[b]])
    close(logits, want)
    for k, s in enumerate(final):
        close(s, torch.stack([ws[k] if len(names) > 1 else ws for ws in want_state]))


@FORMATS
@pytest.mark.parametrize("task", ["classify", "seqmnist"])
def test_classifier(runs, task, fmt, tmp_path):
    path, sidecar = exported(runs[task], fmt, tmp_path)
    model = (classify.load if task == "classify" else seqmnist.load)(runs[task])[0]
    c = model.config
    x = torch.randint(0, c.vocab_size, (B, T)) if c.vocab_size else torch.randn(B, T, c.input_size)
    lens = lengths()
    (got,) = run_exported(path, fmt, x, lens)
    with torch.no_grad():
        close(got, model(x, lengths=lens)[0])
        alone = torch.cat([model(x[b:b + 1, :lens[b]])[0] for b in range(B)])  # each sequence unpadded
    close(got, alone)
    if task == "classify":
        assert sidecar["vocabulary"] == ["tokenizer.json"]


@FORMATS
@pytest.mark.parametrize("task", ["adding", "copy", "ntm", "ntm-lstm"])
def test_memory_tasks(runs, task, fmt, tmp_path):
    path, _ = exported(runs[task], fmt, tmp_path)
    model = (ntm.load if task.startswith("ntm") else memory.load)(runs[task])[0].eval()
    x, lens = torch.randn(B, T, model.config.input_size), lengths()
    (got,) = run_exported(path, fmt, x, lens)
    with torch.no_grad():
        close(got, model(x, lengths=lens)[0])


@FORMATS
def test_act_ponders_as_the_model(runs, fmt, tmp_path):
    """The scripted ponder loop halts each row where ACT does: same logits, steps and ponder cost."""
    path, _ = exported(runs["act"], fmt, tmp_path)
    model = act.load(runs["act"])[0].eval()
    x, lens = torch.randn(B, T, model.config.input_size), lengths()
    logits, steps, cost = run_exported(path, fmt, x, lens)
    with torch.no_grad():
        out, _ = model(x, lengths=lens)
    close(logits, out.logits)
    close(steps, out.halting.steps)
    close(cost, out.halting.cost)
    assert len(set(steps[steps > 0].tolist())) > 1  # the rows ponder different numbers of steps


@FORMATS
def test_babi_one_word_answers(runs, fmt, tmp_path):
    path, sidecar = exported(runs["babi"], fmt, tmp_path)
    model = babi.load(runs["babi"])[0]
    facts, question, fact_counts = babi_inputs(model)
    logits, gates = run_exported(path, fmt, facts, question)
    with torch.no_grad():
        _, want = model.predict(facts, question)
        close(logits, want.logits)
        close(gates, want.gates)
        for b in range(B):  # each story alone, without padded facts, words or question words
            n, w, q = int(fact_counts[b]), int((facts[b] != 0).sum(-1).max()), int((question[b] != 0).sum())
            alone, _ = run_exported(path, fmt, facts[b:b + 1, :n, :w], question[b:b + 1, :q])
            close(alone, logits[b:b + 1])
    assert sidecar["vocabulary"] == ["vocab.json"]


@FORMATS
def test_babi_decoder_greedy_answers_with_the_two_graphs(runs, fmt, tmp_path):
    encoder, _ = exported(runs["babi-decoder"], fmt, tmp_path, name="encoder")
    step_file = encoder.with_name("decoder_step" + export.SUFFIX[fmt])
    model = babi.load(runs["babi-decoder"])[0]
    c = model.config
    facts, question, _ = babi_inputs(model)
    a, q, gates = run_exported(encoder, fmt, facts, question)
    with torch.no_grad():
        want_ids, want = model.predict(facts, question)
    close(gates, want.gates)
    y, done, ids = torch.full((B,), c.eos_id), torch.zeros(B, dtype=torch.bool), []
    for i in range(want_ids.shape[1]):
        logits, a = run_exported(step_file, fmt, y, a, q)
        close(logits, want.logits[:, i])
        y = logits.index_fill(1, torch.tensor([c.pad_id]), float("-inf")).argmax(1)
        done = done | (y == c.eos_id)
        ids.append(y.masked_fill(done, c.pad_id))
    assert torch.equal(torch.stack(ids, 1), want_ids)


@FORMATS
def test_forecaster(runs, fmt, tmp_path):
    path, sidecar = exported(runs["forecast"], fmt, tmp_path)
    model = forecast.load(runs["forecast"])[0].eval()
    x = torch.randn(B + 3, model.config.window, model.config.input_size)  # windows have the run's length; any B
    (got,) = run_exported(path, fmt, x)
    with torch.no_grad():
        close(got, model(x)[0])
    assert sidecar["files"] == ["normalisation.json", "columns.json"]


@FORMATS
@pytest.mark.parametrize("task", ["seq2seq", "dates"])
def test_seq2seq_greedy_decoding_with_the_two_graphs(runs, task, fmt, tmp_path):
    """Greedy decoding driven by the exported encoder and decoder step gives the eager model's logits."""
    encoder, sidecar = exported(runs[task], fmt, tmp_path, name="encoder")
    step_file = encoder.with_name("decoder_step" + export.SUFFIX[fmt])
    model = seq2seq.load(runs[task])[0]
    c = model.config
    src, lens = torch.randint(4, c.src_vocab_size, (B, T)), lengths()
    encoded = dict(zip([p["name"] for p in sidecar["graphs"][0]["outputs"]], run_exported(encoder, fmt, src, lens)))
    step_inputs = [p["name"] for p in sidecar["graphs"][1]["inputs"]]
    step_outputs = [p["name"] for p in sidecar["graphs"][1]["outputs"]]
    with torch.no_grad():
        state = model.encode(src, lens)
        close(encoded["memory"], state.memory)
        feed = {**encoded, "src_lengths": lens}
        y = torch.full((B,), c.bos_id)
        for i in range(5):
            feed.update(y_prev=y, step=torch.full((B,), i))
            got = dict(zip(step_outputs, run_exported(step_file, fmt, *(feed[n] for n in step_inputs))))
            want, state = model.step(y, state)
            close(got["logits"], want)
            feed.update({n[:-2]: v for n, v in got.items() if n.endswith("_n")})
            y = want.argmax(dim=1)


@FORMATS
def test_music_continues_from_the_state(runs, fmt, tmp_path):
    path, _ = exported(runs["music"], fmt, tmp_path)
    model = music.load(runs["music"])[0]
    L, H = model.config.layers, model.config.hidden
    x, lens, h = (torch.rand(B, T, 88) < 0.1).float(), lengths(), 0.3 * torch.randn(L, B, H)
    logits, h_n = run_exported(path, fmt, x, lens, h)
    with torch.no_grad():
        want, want_state = model(x, list(h), lens)
    close(logits, want)
    close(h_n, torch.stack(want_state))


@FORMATS
def test_han_documents_of_other_sizes(runs, fmt, tmp_path):
    """Documents of more sentences and words than the traced example, padding sentences and words: the same
    logits and attention as HAN.attend, and each document alone gives its row."""
    path, sidecar = exported(runs["han"], fmt, tmp_path)
    model = han.load(runs["han"])[0]
    c = model.config
    g = torch.Generator().manual_seed(0)
    S, W = 7, 9
    sentences = lengths(B, S)
    words = torch.randint(1, W + 1, (B, S), generator=g).masked_fill(torch.arange(S) >= sentences[:, None], 0)
    docs = torch.randint(1, c.vocab_size, (B, S, W), generator=g).masked_fill(torch.arange(W) >= words[..., None], 0)
    logits, word_weights, sentence_weights = run_exported(path, fmt, docs)
    with torch.no_grad():
        want, ww, ws = model.attend(docs)
        close(logits, want)
        close(word_weights[:, :ww.shape[1], :ww.shape[2]], ww)
        close(sentence_weights[:, :ws.shape[1]], ws)
        for b in range(B):
            alone = docs[b:b + 1, :int(sentences[b]), :int(words[b].max())]
            close(run_exported(path, fmt, alone)[0], logits[b:b + 1])
    assert sidecar["vocabulary"] == ["tokenizer.json"]


@FORMATS
def test_mdlstm_images_of_other_sizes(runs, fmt, tmp_path):
    """The loop over diagonals is scripted: the trained size and other sizes (wide, tall, one position)."""
    path, _ = exported(runs["mdlstm"], fmt, tmp_path)
    model = mdlstm.load(runs["mdlstm"])[0]
    p = model.config.patch
    for H, W in (model.config.image_size, (3 * p, 7 * p), (6 * p, 2 * p), (p, p)):
        images = torch.rand(B, H, W)
        (got,) = run_exported(path, fmt, images)
        with torch.no_grad():
            x = images.reshape(B, H // p, p, W // p, p).permute(0, 1, 3, 2, 4).reshape(B, H // p, W // p, p * p)
            for layer in model.layers:
                x, _ = layer(x)
            close(got, model.head(x.mean(dim=(1, 2))))


@FORMATS
def test_captions_greedy_decoding_with_the_two_graphs(runs, fmt, tmp_path):
    encoder, sidecar = exported(runs["captions"], fmt, tmp_path, name="encoder")
    step_file = encoder.with_name("decoder_step" + export.SUFFIX[fmt])
    model = captions.load(runs["captions"])[0]
    S = model.config.image_size
    images = torch.rand(B + 2, 3, S, S)
    memory, keys, h, c = run_exported(encoder, fmt, images)
    with torch.no_grad():
        state = model.encode(images)
        close(memory, state.memory)
        close(keys, state.keys)
        y = torch.full((B + 2,), model.config.bos_id)
        for _ in range(4):
            logits, h, c, weights = run_exported(step_file, fmt, y, h, c, memory, keys)
            want, state = model.step(y, state)
            close(logits, want)
            close(weights, state.weights)
            y = want.argmax(dim=1)
    assert [p["name"] for p in sidecar["graphs"][1]["outputs"]] == ["logits", "h_n", "c_n", "weights"]


@FORMATS
def test_vqa_answers_and_gates(runs, fmt, tmp_path):
    path, sidecar = exported(runs["vqa"], fmt, tmp_path)
    model = vqa.load(runs["vqa"])[0]
    S, V = model.config.image_size, model.config.vocab_size
    images, question = torch.rand(B, 3, S, S), torch.randint(1, V, (B, 9))
    question[torch.arange(9) >= lengths(B, 9)[:, None]] = model.config.pad_id
    logits, gates = run_exported(path, fmt, images, question)
    with torch.no_grad():
        want, want_gates = model.run(images, question)
    close(logits, want)
    close(gates, want_gates)
    assert sidecar["files"] == ["vocab.json", "answers.json"]


# ----- the sidecar and the CLI ------------------------------------------------------------------------------------

def test_default_directory_and_sidecar(runs):
    result = cli("export", runs["adding"], "--format", "torchscript")
    out = runs["adding"] / "export"
    assert str(out / "model.pt") in result.stdout and "max |difference|" in result.stdout
    sidecar = json.loads((out / "torchscript.json").read_text())
    assert sidecar["task"] == "adding" and sidecar["format"] == "torchscript"
    graph = sidecar["graphs"][0]
    assert [p["name"] for p in graph["inputs"]] == ["x", "lengths"]
    assert graph["inputs"][0] == {"name": "x", "dtype": "float32", "shape": ["B", "T", 2]}
    assert graph["outputs"] == [{"name": "preds", "dtype": "float32", "shape": ["B", 1]}]
    assert graph["check"]["max_abs_diff"] <= export.CHECK_TOLERANCE
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # atomic writes leave no temporary files


def test_onnx_without_onnxruntime_exports_unchecked(runs, tmp_path, monkeypatch):
    pytest.importorskip("onnx")  # the exporter itself needs it
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime fails
    result = cli("export", runs["adding"], "--format", "onnx", "--out", tmp_path)
    assert "not checked: onnxruntime is not installed (pip install 'rnnkit[onnx]')" in result.stdout
    assert (tmp_path / "model.onnx").stat().st_size > 0
    assert "skipped" in json.loads((tmp_path / "onnx.json").read_text())["graphs"][0]["check"]


def test_onnx_without_the_onnx_package_is_one_line(runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx fails, as in an install without rnnkit[onnx]
    one_line_error(cli("export", runs["adding"], "--format", "onnx", "--out", tmp_path, ok=False),
                   "export --format onnx needs the onnx package", "pip install 'rnnkit[onnx]'")
    assert not (tmp_path / "model.onnx").exists()


def test_models_built_directly_export_too(tmp_path):
    """Encoders and options the trained runs above do not cover: a TCN, the 1D ConvNet, a TCN language model, a
    Jordan network, forecasters without recurrence or with one prediction per step, a seq2seq model reading the
    source backwards with local-p attention."""
    from rnnkit.models.classifier import ClassifierConfig, SequenceClassifier
    from rnnkit.models.conv_text import ConvTextClassifier, ConvTextConfig
    from rnnkit.models.forecast import Forecaster, ForecastConfig
    from rnnkit.models.lm import LanguageModel, LMConfig
    from rnnkit.models.seq2seq import Seq2Seq, Seq2SeqConfig

    torch.manual_seed(0)
    models = [("classify", SequenceClassifier(ClassifierConfig(num_classes=3, vocab_size=9, embedding=4, hidden=5,
                                                                model="tcn", pooling="max"))),
              ("classify", ConvTextClassifier(ConvTextConfig(num_classes=2, vocab_size=9, embedding=4, channels=5,
                                                             kernel_size=3))),
              ("charlm", LanguageModel(LMConfig(vocab_size=7, cell="tcn", hidden=5, layers=2, embedding=4))),
              ("charlm", LanguageModel(LMConfig(vocab_size=7, cell="jordan", hidden=5, layers=2))),
              ("forecast", Forecaster(ForecastConfig(input_size=3, window=10, model="dense"))),
              ("forecast", Forecaster(ForecastConfig(input_size=3, window=10, model="rnn", hidden=5, seq2seq=True,
                                                     residual=True, target_index=1))),
              ("seq2seq", Seq2Seq(Seq2SeqConfig(src_vocab_size=9, tgt_vocab_size=8, cell="gru-cho", embedding=4,
                                                hidden=6, attention="local-p", reverse_source=True, bridge="copy")))]
    for task, model in models:
        for graph in export.GRAPHS[task](model.eval()):
            path = tmp_path / f"{type(model).__name__}-{graph.name}.pt"
            path.write_bytes(export._torchscript_bytes(export._trace(graph)))
            inputs = graph.example(B, T, torch.Generator().manual_seed(3))
            got = run_exported(path, "torchscript", *inputs)
            with torch.no_grad():
                for a, b in zip(got, graph.reference(inputs), strict=True):
                    close(a, b)


@FORMATS
def test_memory_models_with_other_options_export(fmt, tmp_path):
    """Options the trained runs above do not cover: an NTM with a feed-forward controller, two read and two write
    heads and shifts -2..2; an LSTM that ponders; Kumar et al.'s DMN (a GRU over the story's words, no fusion)."""
    from rnnkit.memory.act import ACTConfig, ACTModel
    from rnnkit.memory.ntm import NTM, NTMConfig
    from rnnkit.models.dmn import DMN, VARIANTS, DMNConfig

    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    models = [("ntm", NTM(NTMConfig(input_size=4, output_size=3, controller="feedforward", controller_size=6,
                                    memory_size=7, memory_width=3, read_heads=2, write_heads=2, shift_range=2,
                                    memory_init="learned"))),
              ("act", ACTModel(ACTConfig(input_size=5, output_size=2, cell="lstm", hidden_size=6, max_steps=3,
                                         halting_bias=0.0))),
              ("babi", DMN(DMNConfig(vocab_size=11, hidden=6, passes=2, **VARIANTS["dmn"])))]
    for task, model in models:
        (graph,) = export.GRAPHS[task](model.eval())
        traced = export._trace(graph)
        path = tmp_path / f"{task}{export.SUFFIX[fmt]}"
        path.write_bytes(export._torchscript_bytes(traced) if fmt == "torchscript" else export._onnx_bytes(traced, graph))
        inputs = graph.example(B, T, torch.Generator().manual_seed(3))
        with torch.no_grad():
            for a, b in zip(run_exported(path, fmt, *inputs), graph.reference(inputs), strict=True):
                close(a, b)


def test_bad_input(runs, tmp_path):
    one_line_error(cli("export", runs["adding"], "--format", "tflite", ok=False),
                   "expected --format torchscript or onnx, got 'tflite'")
    one_line_error(cli("export", tmp_path / "missing", ok=False), "does not exist")
    one_line_error(cli("export", tmp_path, ok=False), "missing config.json")
    run = tmp_path / "tsp"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"task": "tsp"}))
    one_line_error(cli("export", run, "--format", "torchscript", ok=False),
                   "task 'tsp'", "is not supported", "supported: charlm, wordlm, classify")
