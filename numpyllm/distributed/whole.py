"""The whole model behind a split one: what tensor and pipeline parallelism share to
rebuild the optimizer over a rank's parameters, to take a rank's part of a whole AdamW
state (a run resumed from an ordinary checkpoint), and to assemble the whole GPT and its
AdamW state from the ranks' parts (a consolidated checkpoint)."""
from __future__ import annotations

import numpy as np

__all__ = ["model_class", "full_shapes", "optimizer_names", "adamw_like", "whole_model",
           "take_state"]


def model_class(config):
    """`Llama` for a `LlamaConfig`, `GPT` for a `GPTConfig`."""
    from ..nn.gpt import GPT
    from ..nn.llama import Llama, LlamaConfig
    return Llama if isinstance(config, LlamaConfig) else GPT


def full_shapes(config) -> dict:
    """name -> shape of every parameter of the whole model (no weights drawn)."""
    from ..nn.layers import uninitialized_weights
    with uninitialized_weights():
        return {n: p.data.shape for n, p in model_class(config)(config).named_parameters()}


def optimizer_names(model, optimizer) -> dict:
    """name -> the parameter's index in `optimizer`'s state (its groups, in order)."""
    order = {id(p): i for i, p in enumerate(p for g in optimizer.param_groups
                                            for p in g["params"])}
    return {n: order[id(p)] for n, p in model.named_parameters() if id(p) in order}


def adamw_like(model, like):
    """An AdamW over `model`'s parameters (decayed and non-decayed groups, as the
    Trainer makes them) with `like`'s hyperparameters."""
    from ..optim import AdamW, configure_param_groups
    group = like.param_groups[0]
    decay = max(g["weight_decay"] for g in like.param_groups)
    return AdamW(configure_param_groups(model, decay), lr=group["lr"], betas=group["betas"],
                 eps=group["eps"], weight_decay=decay)


def whole_model(config, weights: dict, moments: dict, like, rngs: list) -> tuple:
    """``(GPT or Llama, AdamW)`` from every weight of the whole model (by name) and the AdamW
    state of each (by name; absent before the first step), hyperparameters as `like`'s.
    `rngs`: the states of the split model's random generators (`model_generators` order),
    which the whole one takes: the checkpoint carries where its dropout draws have got
    to, not a fresh generator's."""
    from ..nn.layers import uninitialized_weights
    from ..training.data_parallel import model_generators
    with uninitialized_weights():
        model = model_class(config)(config)
    model.load_state_dict(weights)
    generators = model_generators(model)
    if len(generators) != len(rngs):
        raise RuntimeError(f"whole_model: the split model has {len(rngs)} random generators, "
                           f"the whole one {len(generators)}")
    for generator, state in zip(generators, rngs):
        generator.bit_generator.state = state
    optimizer = adamw_like(model, like)
    index = optimizer_names(model, optimizer)
    optimizer.state = {index[name]: state for name, state in moments.items()}
    return model, optimizer


def take_state(full_state: dict, full_names: dict, local_names: dict, source) -> dict:
    """This rank's AdamW state from a whole one: ``source(local name) -> (whole name,
    index)`` says which whole parameter a local one is and which part of it (index None:
    all of it). Returns ``{local index: state}`` (empty before the first step)."""
    saved = full_state["state"]
    by_name = {name: saved[i] for name, i in full_names.items() if i in saved}
    state = {}
    for name, i in local_names.items():
        whole, index = source(name)
        entry = by_name.get(whole)
        if entry is None:
            continue
        state[i] = {k: (np.array(v if index is None else v[index])
                        if isinstance(v, np.ndarray) else v) for k, v in entry.items()}
    return state
