"""Optimizers, gradient clipping and learning-rate schedules (`numpyllm.optim`).

  optimizer.py  Optimizer (param groups, state dict), configure_param_groups
  sgd.py        SGD (momentum, Nesterov, L2 weight decay)
  adam.py       Adam (L2 weight decay), AdamW (decoupled weight decay)
  clip.py       clip_grad_norm_, grad_norm
  schedule.py   cosine_with_warmup / CosineWithWarmup (nanoGPT's get_lr), constant

A training step::

    groups = configure_param_groups(model, weight_decay=0.1)
    opt = AdamW(groups, lr=1e-3, betas=(0.9, 0.99))
    schedule = CosineWithWarmup(max_lr=1e-3, min_lr=1e-4, warmup_iters=100, lr_decay_iters=5000)
    for it in range(max_iters):
        opt.lr = schedule(it)
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
"""
from .adam import Adam, AdamW
from .clip import clip_grad_norm_, grad_norm, scale_to_norm_
from .optimizer import Optimizer, configure_param_groups
from .schedule import Constant, CosineWithWarmup, constant, cosine_with_warmup
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "configure_param_groups", "clip_grad_norm_", "grad_norm",
           "scale_to_norm_", "cosine_with_warmup", "CosineWithWarmup", "constant", "Constant"]
