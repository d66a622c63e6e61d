"""The blockwise cross-entropy of a vocabulary projection against ``F.linear`` + ``F.cross_entropy``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lmforge.objectives import IGNORE_INDEX, cross_entropy, linear_cross_entropy


def inputs(rows: int = 40, width: int = 16, vocab: int = 50, bias: bool = True, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(rows, width, generator=generator, dtype=torch.float32, requires_grad=True)
    weight = torch.randn(vocab, width, generator=generator, dtype=torch.float32, requires_grad=True)
    b = torch.randn(vocab, generator=generator, dtype=torch.float32, requires_grad=True) if bias else None
    targets = torch.randint(0, vocab, (rows,), generator=generator)
    targets[::3] = IGNORE_INDEX  # positions the loss leaves out
    return hidden, weight, b, targets


def gradients(loss: torch.Tensor, *tensors: torch.Tensor | None) -> list[torch.Tensor | None]:
    present = [t for t in tensors if t is not None]
    found = iter(torch.autograd.grad(loss, present))
    return [next(found) if t is not None else None for t in tensors]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("rows_per_block", [7, 512])  # several blocks, and one
def test_loss_gradients_and_predictions_equal_the_plain_way(bias, rows_per_block, monkeypatch):
    monkeypatch.setattr(cross_entropy, "ROWS_PER_BLOCK", rows_per_block)
    hidden, weight, b, targets = inputs(bias=bias)
    logits = F.linear(hidden, weight, b)
    expected = F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX)
    loss, predicted = linear_cross_entropy(hidden, weight, targets, b, predict=True)
    torch.testing.assert_close(loss, expected)
    assert torch.equal(predicted, logits.argmax(-1))
    for got, want in zip(
        gradients(3.0 * loss, hidden, weight, b), gradients(3.0 * expected, hidden, weight, b), strict=True
    ):
        if want is not None:
            torch.testing.assert_close(got, want)  # the outer factor reaches every gradient


def test_only_what_requires_a_gradient_gets_one():
    hidden, weight, b, targets = inputs()
    weight.requires_grad_(False)  # a frozen tied embedding under a tuning method
    loss, predicted = linear_cross_entropy(hidden, weight, targets, b)
    assert predicted is None
    grad_hidden, grad_bias = torch.autograd.grad(loss, [hidden, b])
    expected = torch.autograd.grad(F.cross_entropy(F.linear(hidden, weight, b), targets), [hidden, b])
    torch.testing.assert_close(grad_hidden, expected[0])
    torch.testing.assert_close(grad_bias, expected[1])


def test_a_batch_with_no_target_has_a_zero_loss_and_zero_gradients():
    hidden, weight, b, targets = inputs()
    loss, _ = linear_cross_entropy(hidden, weight, torch.full_like(targets, IGNORE_INDEX), b)
    assert loss.item() == 0.0
    assert all(torch.count_nonzero(g) == 0 for g in gradients(loss, hidden, weight, b))


def test_under_bf16_autocast_it_follows_the_plain_way_and_keeps_the_weights_dtype():
    hidden, weight, b, targets = (
        t.float() if t is not None and t.is_floating_point() else t for t in inputs()
    )
    hidden, weight, b = (t.detach().requires_grad_() for t in (hidden, weight, b))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = linear_cross_entropy(hidden, weight, targets, b)
        expected = F.cross_entropy(F.linear(hidden, weight, b).float(), targets, ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(loss, expected, atol=2e-2, rtol=0)
    grads = gradients(loss, hidden, weight, b)
    assert [g.dtype for g in grads] == [torch.float32] * 3
    for got, want in zip(grads, gradients(expected, hidden, weight, b), strict=True):
        torch.testing.assert_close(got, want, atol=2e-2, rtol=0.05)
