"""Freezing: `requires_grad_` on parameters and modules. A frozen parameter gets no
gradient, is never updated, and optimizers hold no state for it; the gradients of the
others are those of the unfrozen model."""
import numpy as np
import pytest

from numpyllm import Tensor
from numpyllm.nn import GPT, GPTConfig, Linear
from numpyllm.optim import SGD, AdamW, configure_param_groups

IDS = np.random.default_rng(0).integers(0, 11, size=(2, 6))


def gpt(**kw):
    return GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8,
                         tie_weights=False, dtype="float64", **kw), rng=0)


def grads(model):
    _, loss = model(IDS, targets=IDS)
    loss.backward()
    return {n: p.grad for n, p in model.named_parameters()}


def test_frozen_parameters_get_no_gradient_and_the_others_the_same_one():
    full = grads(gpt())
    model = gpt().requires_grad_(False)
    model.h[1].requires_grad_(True)
    model.lm_head.requires_grad_(True)
    part = grads(model)
    for name, g in part.items():
        if name.startswith(("h.1.", "lm_head.")):
            np.testing.assert_array_equal(g, full[name], err_msg=name)
        else:
            assert g is None, name


def test_optimizers_never_touch_frozen_parameters_nor_keep_state_for_them():
    model = gpt()
    model.wte.requires_grad_(False)
    model.h[0].requires_grad_(False)
    frozen = {n: p.data.copy() for n, p in model.named_parameters() if not p.requires_grad}
    for opt in (AdamW(model.parameters(), lr=0.1, weight_decay=0.1),
                SGD(model.parameters(), lr=0.1, momentum=0.9)):
        for _ in range(3):
            model.zero_grad()
            grads(model)
            opt.step()
        params = list(model.parameters())
        stateful = {i for i in opt.state}
        assert all(params[i].requires_grad for i in stateful)
        assert len(stateful) == sum(p.requires_grad for p in params)
    for name, p in model.named_parameters():
        if name in frozen:
            np.testing.assert_array_equal(p.data, frozen[name], err_msg=name)


def test_a_gradient_set_by_hand_on_a_frozen_parameter_is_still_not_applied():
    layer = Linear(3, 2, rng=0)
    layer.weight.requires_grad_(False)
    before = layer.weight.data.copy()
    layer.weight.grad = np.ones_like(before)
    opt = SGD(layer.parameters(), lr=1.0)
    opt.step()
    np.testing.assert_array_equal(layer.weight.data, before)


def test_param_groups_leave_frozen_parameters_out_and_the_summary_counts_them():
    model = gpt()
    total = model.num_parameters()
    model.requires_grad_(False).lm_head.requires_grad_(True)
    decay, no_decay = configure_param_groups(model, 0.1)
    assert [p for p in decay["params"]] == [model.lm_head.weight] and no_decay["params"] == []
    assert model.num_parameters(trainable=True) == 8 * 11
    assert model.parameter_summary() == (f"trainable parameters: 88 of {total:,} "
                                         f"({100 * 88 / total:.2f}%), {total - 88:,} frozen")


def test_requires_grad_is_for_floating_leaves():
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(ValueError, match="leaf tensors"):
        (x * 2).requires_grad_(False)
    with pytest.raises(TypeError, match="floating-point"):
        Tensor(np.arange(3)).requires_grad_()
    assert x.requires_grad_(False) is x and x.grad is None and not x.requires_grad


def test_the_trainer_trains_only_what_is_not_frozen():
    from numpyllm.training import TrainConfig, Trainer
    data = np.random.default_rng(1).integers(0, 11, size=400)
    model = gpt()
    model.requires_grad_(False)
    model.h[1].mlp.requires_grad_(True)
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    Trainer(model, data, data, TrainConfig(batch_size=4, max_iters=3, warmup_iters=1,
                                           lr_decay_iters=3, learning_rate=1e-2)).fit()
    for name, p in model.named_parameters():
        changed = not np.array_equal(p.data, before[name])
        assert changed == name.startswith("h.1.mlp."), name
