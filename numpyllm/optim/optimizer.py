"""`Optimizer`: parameter groups, per-parameter state, and a state dict without pickle.

An optimizer holds ``param_groups``: a list of dicts, each with its ``"params"`` (a list
of Parameters) and its hyperparameters (``lr``, ``weight_decay``, ...; missing keys come
from the optimizer's defaults). The learning rate can be changed between steps, per
group or all at once::

    for g in opt.param_groups:
        g["lr"] = schedule(it)
    opt.lr = schedule(it)          # the same thing

The state of parameter ``i`` (counting through the groups in order) is a dict of
arrays and numbers in ``opt.state[i]``, created at its first update. `state_dict`
returns only arrays, numbers and lists, so a checkpoint can store it as .npz + JSON;
`load_state_dict` restores it so that training resumes bit-exactly.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Tensor

__all__ = ["Optimizer", "configure_param_groups"]


class Optimizer:
    """Base class: subclasses set `defaults` and write `_update(p, grad, state, group)`."""

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        if isinstance(params, Tensor):
            raise TypeError("optimizer params must be an iterable of Parameters or of "
                            "param-group dicts, not a single Tensor")
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups: list = []
        self.state: dict = {}                      # parameter index -> dict of its state
        self._scratch: dict = {}                   # dtype -> flat work buffer, reused
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        """Add a group ``{"params": [...], hyperparameter: value, ...}``; missing
        hyperparameters take the optimizer's defaults."""
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError("a param group is a dict with a 'params' entry")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for p in params:
            if not isinstance(p, Tensor) or not np.issubdtype(p.dtype, np.floating):
                raise TypeError(f"optimizers update floating-point Tensors; got "
                                f"{type(p).__name__} of dtype {getattr(p, 'dtype', None)}")
            if id(p) in seen:
                raise ValueError(f"a parameter of shape {p.shape} appears twice in the "
                                 "optimizer's groups")
            seen.add(id(p))
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise ValueError(f"{type(self).__name__} has no hyperparameter(s) {sorted(unknown)}; "
                             f"known: {sorted(self.defaults)}")
        full = dict(self.defaults)
        full.update(group)
        full["params"] = params
        self._check_hyperparameters(full)
        self.param_groups.append(full)

    def _check_hyperparameters(self, group: dict) -> None:
        if group["lr"] < 0:
            raise ValueError(f"learning rate must be >= 0, got {group['lr']}")
        if group.get("weight_decay", 0.0) < 0:
            raise ValueError(f"weight_decay must be >= 0, got {group['weight_decay']}")

    # ------------------------------------------------------------------ learning rate
    @property
    def lr(self) -> float:
        """The first group's learning rate; setting it sets every group's."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        for g in self.param_groups:
            g["lr"] = float(value)

    # ------------------------------------------------------------------ the step
    def zero_grad(self) -> None:
        """Set every parameter's ``.grad`` to None."""
        for g in self.param_groups:
            for p in g["params"]:
                p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient, in place; skip those whose
        ``.grad`` is None and frozen ones (``requires_grad`` False): their state does not
        advance, and a frozen parameter never gets any."""
        index = 0
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and p.requires_grad:
                    state = self.state.get(index)
                    if state is None:
                        state = self.state[index] = self._init_state(p)
                    self._update(p.data, p.grad, state, group)
                index += 1

    # Per-parameter state entries a subclass may hold besides those `_init_state` makes
    # (SGD's momentum buffer appears on the first step): arrays of the parameter's shape.
    optional_state: tuple = ()

    def _init_state(self, p) -> dict:
        return {}

    def _update(self, data: np.ndarray, grad: np.ndarray, state: dict, group: dict) -> None:
        raise NotImplementedError  # pragma: no cover - abstract

    def _work(self, like: np.ndarray, slot: int = 0) -> np.ndarray:
        """A scratch array shaped and typed like `like`: a view of a flat buffer that is
        allocated once per (dtype, slot) and grown when needed, so a step allocates no
        temporaries. Valid until the next call with the same dtype and slot."""
        key = (like.dtype, slot)
        buf = self._scratch.get(key)
        if buf is None or buf.size < like.size:
            buf = self._scratch[key] = np.empty(like.size, dtype=like.dtype)
        return buf[:like.size].reshape(like.shape)

    # ------------------------------------------------------------------ state dict
    def state_dict(self) -> dict:
        """``{"state": {index: {name: array or number}}, "param_groups": [{hyper: value,
        "params": [index, ...]}]}``: copies of the moments, plain Python numbers and
        lists elsewhere (tuples become lists, so the groups are JSON-ready)."""
        groups, index = [], 0
        for g in self.param_groups:
            d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items() if k != "params"}
            d["params"] = list(range(index, index + len(g["params"])))
            index += len(g["params"])
            groups.append(d)
        state = {i: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                 for i, s in sorted(self.state.items())}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyperparameters and state saved by `state_dict` (index keys may be
        ints or strings, as after a JSON round trip). The groups must have the same
        sizes and the moments the shapes of the parameters; arrays are copied into the
        parameter's dtype, so no reference to the caller's arrays is kept."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"optimizer state has {len(saved_groups)} param groups, "
                             f"this optimizer has {len(self.param_groups)}")
        params = []
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"param group {i}: the state has {len(saved['params'])} "
                                 f"parameters, this optimizer has {len(group['params'])}")
            if set(saved) != set(group):
                raise ValueError(f"param group {i}: the state has hyperparameters "
                                 f"{sorted(set(saved) - {'params'})}, {type(self).__name__} "
                                 f"has {sorted(set(group) - {'params'})} (another optimizer's state?)")
            params.extend(group["params"])
        new_state = {}
        for key, saved in state_dict["state"].items():
            i = int(key)
            if not 0 <= i < len(params):
                raise ValueError(f"optimizer state for parameter {i}, but there are "
                                 f"{len(params)} parameters")
            p, entry = params[i], {}
            template = self._init_state(p)
            missing = set(template) - set(saved)
            extra = set(saved) - set(template) - set(self.optional_state)
            if missing or extra:
                raise ValueError(f"optimizer state of parameter {i} holds {sorted(saved)}; "
                                 f"{type(self).__name__} keeps {sorted(template)}"
                                 + (f" (and may keep {list(self.optional_state)})"
                                    if self.optional_state else ""))
            for name, value in saved.items():
                counter = isinstance(template.get(name), int)      # Adam's step: an int >= 0
                if counter != (np.ndim(value) == 0) or (counter and not (
                        float(np.asarray(value)).is_integer() and np.asarray(value) >= 0)):
                    raise ValueError(f"optimizer state {name!r} of parameter {i} must be "
                                     + ("a count >= 0" if counter else
                                        f"an array of the parameter's shape {p.shape}")
                                     + f", got {np.asarray(value)!r:.40}")
                if isinstance(value, np.ndarray) and value.ndim > 0:
                    if value.shape != p.shape:
                        raise ValueError(f"optimizer state {name!r} of parameter {i} has shape "
                                         f"{value.shape}; the parameter has shape {p.shape}")
                    value = np.array(value, dtype=p.dtype, copy=True)
                elif isinstance(value, (np.ndarray, np.generic)):
                    value = value.item()          # a 0-d array from .npz: back to a number
                if counter:
                    value = int(value)
                entry[name] = value
            new_state[i] = entry
        for saved, group in zip(saved_groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    group[k] = tuple(v) if isinstance(self.defaults.get(k), tuple) else v
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}("]
        for i, g in enumerate(self.param_groups):
            hyper = ", ".join(f"{k}={v}" for k, v in g.items() if k != "params")
            lines.append(f"  group {i}: {len(g['params'])} params, {hyper}")
        return "\n".join(lines) + "\n)"


def configure_param_groups(model, weight_decay: float, *, decay_embeddings: bool = True) -> list:
    """Split a model's parameters into a decayed and a non-decayed group, as nanoGPT's
    ``configure_optimizers`` does: every parameter with ``ndim >= 2`` (matmul weights and
    embeddings) is decayed, biases and LayerNorm weights (``ndim < 2``) are not.

    With ``decay_embeddings=False`` the weights of `numpyllm.nn.Embedding` modules (token
    and learned position tables) go to the non-decayed group too; a tied LM head shares
    the token table and so follows it. Frozen parameters (``requires_grad`` False) are
    left out. Returns
    ``[{"params": decayed, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]``,
    ready for `AdamW`.

    >>> from numpyllm.nn import Linear
    >>> decay, no_decay = configure_param_groups(Linear(4, 2), 0.1)
    >>> [p.shape for p in decay["params"]], [p.shape for p in no_decay["params"]]
    ([(4, 2)], [(2,)])
    """
    from ..nn.layers import Embedding   # optim does not otherwise depend on nn

    embedding_weights = set()
    if not decay_embeddings:
        embedding_weights = {id(m.weight) for _, m in model.named_modules()
                             if isinstance(m, Embedding)}
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:          # frozen: not the optimizer's business
            continue
        if p.ndim >= 2 and id(p) not in embedding_weights:
            decay.append(p)
        else:
            no_decay.append(p)
    return [{"params": decay, "weight_decay": float(weight_decay)},
            {"params": no_decay, "weight_decay": 0.0}]
