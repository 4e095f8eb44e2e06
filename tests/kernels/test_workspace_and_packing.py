"""The two helpers of the whole-sequence kernels: reused CPU buffers (workspace) and packed step products."""
import warnings

import pytest
import torch

from rnnkit.kernels import packed, workspace


@pytest.fixture(autouse=True)
def small_buffers_kept(monkeypatch):
    monkeypatch.setattr(workspace, "MIN_BYTES", 0)
    workspace.release()
    yield
    workspace.release()


def storage(t):
    return t.untyped_storage().data_ptr()


def test_a_buffer_is_handed_out_again_only_when_nothing_uses_it():
    like = torch.empty(0)
    a = workspace.empty((3, 4), like)
    b = workspace.empty((3, 4), like)
    assert storage(a) != storage(b)  # a is still held
    kept_view = a[1:]
    del a
    c = workspace.empty((3, 4), like)
    assert storage(c) not in (storage(kept_view), storage(b))  # a view of a keeps it busy
    old = storage(kept_view)
    del kept_view
    assert storage(workspace.empty((3, 4), like)) == old  # now free: reused


def test_a_buffer_saved_for_backward_is_not_reused_until_the_graph_is_freed():
    like = torch.empty(0)
    saved = []

    class Saves(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            buf = workspace.empty((5,), x)
            buf.copy_(x * 2)
            ctx.save_for_backward(buf)
            saved.append(storage(buf))
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            (buf,) = ctx.saved_tensors
            return g * buf

    x = torch.arange(5.0, requires_grad=True)
    y = Saves.apply(x)
    meanwhile = workspace.empty((5,), like)
    assert storage(meanwhile) != saved[0]  # the graph still holds the saved buffer
    meanwhile.fill_(-1)
    y.sum().backward(retain_graph=True)
    assert torch.equal(x.grad, 2 * torch.arange(5.0))
    assert storage(workspace.empty((5,), like)) != saved[0]  # retained graph: still busy
    del y
    assert storage(workspace.empty((5,), like)) == saved[0]  # graph freed: reused


def test_shape_dtype_and_device_are_respected_and_gpus_get_plain_tensors():
    a = workspace.empty((2, 3), torch.empty(0, dtype=torch.float64))
    assert a.shape == (2, 3) and a.dtype == torch.float64 and a.is_contiguous()
    del a
    b = workspace.empty((2, 3), torch.empty(0, dtype=torch.float32))
    assert b.dtype == torch.float32  # a free float64 buffer of that shape is not handed out as float32
    meta = workspace.empty((2, 3), torch.empty(0, device="meta"))
    assert meta.device.type == "meta" and workspace.kept_bytes() == b.nbytes + 2 * 3 * 8


def test_buffers_made_in_inference_mode_serve_inference_mode_only():
    with torch.inference_mode():
        inside = workspace.empty((3,), torch.empty(0))
        assert inside.is_inference()
        old = storage(inside)
        del inside
    outside = workspace.empty((3,), torch.empty(0))
    assert not outside.is_inference() and storage(outside) != old
    outside.add_(1)  # a normal tensor: in-place changes and autograd work on it
    del outside
    with torch.inference_mode():
        assert storage(workspace.empty((3,), torch.empty(0))) == old


def test_small_buffers_are_not_kept_and_the_total_is_bounded(monkeypatch):
    monkeypatch.setattr(workspace, "MIN_BYTES", 1024)
    workspace.empty((10,), torch.empty(0))
    assert workspace.kept_bytes() == 0
    monkeypatch.setattr(workspace, "MAX_BYTES", 3 * 4096)
    held = [workspace.empty((1024,), torch.empty(0)) for _ in range(5)]
    assert workspace.kept_bytes() <= 3 * 4096  # the oldest dropped; the tensors themselves stay valid
    for t in held:
        t.fill_(1.0)
    workspace.release()
    assert workspace.kept_bytes() == 0


needs_onednn = pytest.mark.skipif(not packed.packs(torch.ones(1, 1)), reason="no oneDNN packed products")


@needs_onednn
@pytest.mark.parametrize("bias", [False, True])
def test_packed_products_equal_mm_in_float32(bias, monkeypatch):
    monkeypatch.setattr(packed, "MIN_PACKED_MACS", 0)
    g = torch.Generator().manual_seed(0)
    w, h, add = torch.randn(48, 16, generator=g), torch.randn(8, 32, generator=g), torch.randn(8, 48, generator=g)
    b = torch.randn(48, generator=g) if bias else None
    step = packed.StepProduct(w, 8, b)
    assert step.packed is not None
    x = h[:, ::2]  # a non-contiguous state slice, as the kernels pass
    want = x @ w.t() + (0 if b is None else b)
    out = torch.empty(8, 48)
    torch.testing.assert_close(step.mm(x, out=out), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(step.addmm(add, x, out=out), add + want, rtol=1e-5, atol=1e-5)
    wide = torch.empty(8, 96)[:, :48]  # into a column slice of a wider gate matrix
    torch.testing.assert_close(step.addmm(add, x, out=wide), add + want, rtol=1e-5, atol=1e-5)


def test_small_products_float64_and_disabled_onednn_use_plain_mm(monkeypatch):
    w = torch.randn(8, 4)
    assert packed.StepProduct(w, 2).packed is None  # below MIN_PACKED_MACS
    monkeypatch.setattr(packed, "MIN_PACKED_MACS", 0)
    assert packed.StepProduct(w.double(), 2).packed is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about TF32 on Intel GPUs whenever the flags change
        with torch.backends.mkldnn.flags(enabled=False):
            assert packed.StepProduct(w, 2).packed is None
    h = torch.randn(2, 4, dtype=torch.float64)
    out = torch.empty(2, 8, dtype=torch.float64)
    torch.testing.assert_close(packed.StepProduct(w.double(), 2).mm(h, out=out), h @ w.double().t())
