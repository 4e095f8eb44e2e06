"""Batches and batch sources: deterministic shuffles per (seed, epoch), the stream layout, Batch helpers."""
import pytest
import torch

from rnnkit.data import Batch, StreamBatches, TensorBatches


def examples(n=10, T=3):
    """Example i has x[i] = i everywhere, y[i] = 10 i and length i % T + 1, so rows can be traced."""
    ids = torch.arange(n)
    return ids[:, None, None].expand(n, T, 2).float(), 10 * ids, ids % T + 1


def ids_of(batch):
    return batch.x[:, 0, 0].long().tolist()


def order(source, epoch):
    return [i for b in source.batches(epoch) for i in ids_of(b)]


# ----- TensorBatches --------------------------------------------------------------------------------

def test_tensor_batches_every_example_once_per_epoch_rows_aligned():
    x, y, lengths = examples()
    source = TensorBatches(x, y, 4, lengths=lengths, seed=3)
    assert len(source) == 3
    for epoch in range(3):
        batches = list(source.batches(epoch))
        assert [b.size for b in batches] == [4, 4, 2]
        assert sorted(order(source, epoch)) == list(range(10))
        for b in batches:
            ids = torch.tensor(ids_of(b))
            assert torch.equal(b.y, 10 * ids) and torch.equal(b.lengths, ids % 3 + 1)
            assert b.weights is None and b.reset is None


def test_tensor_batches_shuffle_is_a_function_of_seed_and_epoch():
    x, y, _ = examples(n=12)
    a, b = TensorBatches(x, y, 5, seed=3), TensorBatches(x, y, 5, seed=3)
    assert order(a, 0) == order(b, 0) == order(a, 0)  # the same every time it is asked
    assert order(a, 4) == order(b, 4)
    assert len({tuple(order(a, e)) for e in range(4)}) == 4  # a new order every epoch
    assert order(TensorBatches(x, y, 5, seed=4), 0) != order(a, 0)
    assert order(TensorBatches(x, y, 5, shuffle=False), 7) == list(range(12))
    torch.manual_seed(0)
    first = order(a, 1)
    torch.manual_seed(1)
    assert order(a, 1) == first  # private generator: the global RNG plays no part


def test_tensor_batches_drop_last():
    x, y, _ = examples(n=10)
    source = TensorBatches(x, y, 4, drop_last=True, seed=1)
    assert len(source) == 2
    for epoch in range(3):
        batches = list(source.batches(epoch))
        assert [b.size for b in batches] == [4, 4]
        seen = order(source, epoch)
        assert len(set(seen)) == 8
    assert len({tuple(sorted(order(source, e))) for e in range(5)}) > 1  # a different 2 left out each time
    assert len(TensorBatches(x, y, 5, drop_last=True)) == 2 == len(TensorBatches(x, y, 5))


@pytest.mark.parametrize("kwargs,match", [
    ({"y": torch.zeros(9)}, "same number of examples"),
    ({"lengths": torch.ones(9, dtype=torch.long)}, "same number of examples"),
    ({"batch_size": 0}, "batch_size >= 1"),
    ({"x": torch.zeros(0, 3, 2), "y": torch.zeros(0)}, "at least 1"),
    ({"batch_size": 11, "drop_last": True}, "at least 11"),
])
def test_tensor_batches_errors(kwargs, match):
    x, y, _ = examples()
    args = {"x": x, "y": y, "batch_size": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        TensorBatches(args.pop("x"), args.pop("y"), args.pop("batch_size"), **args)


# ----- StreamBatches --------------------------------------------------------------------------------

def test_stream_layout_continues_every_stream():
    ids = torch.arange(27)  # 3 streams of (27 - 1) // 3 = 8 columns
    source = StreamBatches(ids, batch_size=3, seq_len=3)
    batches = list(source.batches())
    assert len(source) == len(batches) == 3
    assert [b.x.shape for b in batches] == [(3, 3), (3, 3), (3, 2)]  # the last chunk is shorter
    for prev, nxt in zip(batches, batches[1:]):
        assert torch.equal(nxt.x[:, 0], prev.x[:, -1] + 1)  # batch i + 1 continues batch i, every stream
    stream = torch.cat([b.x for b in batches], dim=1)
    assert torch.equal(stream, torch.arange(24).view(3, 8))  # stream b: ids b*8 .. b*8 + 7
    for b in batches:
        assert torch.equal(b.y, b.x + 1)  # targets: the inputs shifted by one
    assert torch.equal(torch.cat([b.y for b in batches], dim=1)[-1, -1], torch.tensor(24))


def test_stream_targets_shifted_on_real_tokens():
    ids = torch.randint(0, 50, (41,), generator=torch.Generator().manual_seed(0))
    source = StreamBatches(ids, batch_size=4, seq_len=5)  # 10 columns
    x = torch.cat([b.x for b in source.batches()], 1)
    y = torch.cat([b.y for b in source.batches()], 1)
    for s in range(4):
        assert torch.equal(x[s], ids[s * 10:(s + 1) * 10]) and torch.equal(y[s], ids[s * 10 + 1:(s + 1) * 10 + 1])


def test_stream_reset_flags_only_on_the_first_batch_of_each_epoch():
    source = StreamBatches(torch.arange(40), batch_size=2, seq_len=4)
    for epoch in range(2):
        batches = list(source.batches(epoch))
        assert batches[0].reset.dtype == torch.bool and batches[0].reset.tolist() == [True, True]
        assert all(b.reset.tolist() == [False, False] for b in batches[1:])
    assert all(torch.equal(a.x, b.x) for a, b in zip(source.batches(0), source.batches(1)))


@pytest.mark.parametrize("ids,batch_size,seq_len,match", [
    (torch.arange(3), 3, 2, "too short"),
    (torch.arange(4), 3, 2, None),  # 3 streams of 1 column: just enough
    (torch.arange(12).view(3, 4), 2, 2, "1-D"),
    (torch.arange(12), 0, 2, ">= 1"),
    (torch.arange(12), 2, 0, ">= 1"),
])
def test_stream_errors(ids, batch_size, seq_len, match):
    if match is None:
        (batch,) = StreamBatches(ids, batch_size, seq_len).batches()
        assert batch.x.tolist() == [[0], [1], [2]] and batch.y.tolist() == [[1], [2], [3]]
        return
    with pytest.raises(ValueError, match=match):
        StreamBatches(ids, batch_size, seq_len)


# ----- Batch ----------------------------------------------------------------------------------------

def full_batch():
    x = torch.arange(24.0).view(4, 3, 2)
    return Batch(x, torch.arange(12).view(4, 3), lengths=torch.tensor([3, 1, 2, 3]),
                 weights=torch.rand(4, 3), reset=torch.tensor([True, False, True, False]))


def test_batch_rows_slice_every_field():
    b = full_batch()
    r = b.rows(1, 3)
    for name in ("x", "y", "lengths", "weights", "reset"):
        assert torch.equal(getattr(r, name), getattr(b, name)[1:3]), name
    assert r.size == 2
    plain = Batch(b.x, b.y).rows(0, 1)
    assert plain.lengths is None and plain.weights is None and plain.reset is None


def test_batch_steps_slice_time_and_refuse_lengths():
    b = full_batch()
    with pytest.raises(ValueError, match="lengths"):
        b.steps(0, 2)
    s = Batch(b.x, b.y, weights=b.weights, reset=b.reset).steps(1, 3)
    assert torch.equal(s.x, b.x[:, 1:3]) and torch.equal(s.y, b.y[:, 1:3]) and torch.equal(s.weights, b.weights[:, 1:3])
    assert torch.equal(s.reset, b.reset)  # per row, not per step
    assert s.tokens == 8


def test_batch_tokens():
    b = full_batch()
    assert b.tokens == 9  # the sum of lengths
    assert Batch(b.x, b.y).tokens == 12  # B * T
    assert Batch(torch.zeros(5), torch.zeros(5)).tokens == 5  # (B,) inputs: one token each


def test_batch_to_moves_every_tensor_and_keeps_none():
    b = Batch(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long), lengths=torch.tensor([3, 2]))
    m = b.to("meta")
    assert all(getattr(m, n).device.type == "meta" for n in ("x", "y", "lengths"))
    assert m.weights is None and m.reset is None
    assert m.y.dtype == torch.long and m.lengths.dtype == torch.int64
    assert b.x.device.type == "cpu"  # a new batch; the old one is unchanged
    c = b.to(torch.device("cpu"))
    assert torch.equal(c.x, b.x) and torch.equal(c.lengths, b.lengths)
