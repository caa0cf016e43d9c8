"""Module, Parameter, ModuleList: names, sharing, state dicts, modes, dtype, repr."""
import numpy as np
import pytest

from numpyllm import Tensor
from numpyllm.nn import Module, ModuleList, Parameter


class Affine(Module):
    def __init__(self, n_in=2, n_out=3, dtype=np.float32):
        super().__init__()
        self.weight = Parameter(np.arange(n_in * n_out).reshape(n_in, n_out), dtype=dtype)
        self.bias = Parameter(np.zeros(n_out), dtype=dtype)

    def forward(self, x):
        return x @ self.weight + self.bias


class Attn(Module):
    def __init__(self):
        super().__init__()
        self.c_attn = Affine(4, 12)
        self.c_proj = Affine(4, 4)


class Block(Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = Affine(1, 4)
        self.attn = Attn()


class Tiny(Module):
    """GPT-shaped: an embedding-like weight, a ModuleList, a plain list, a tied head."""

    def __init__(self):
        super().__init__()
        self.wte = Affine(5, 4)
        self.h = ModuleList([Block(), Block()])
        self.extra = [Affine(1, 1)]
        self.ln_f = Affine(1, 4)
        self.lm_head = Affine(5, 4)
        self.lm_head.weight = self.wte.weight          # weight tying


def test_dotted_names_in_definition_order():
    names = [n for n, _ in Tiny().named_parameters()]
    assert names == [
        "wte.weight", "wte.bias",
        "h.0.ln_1.weight", "h.0.ln_1.bias",
        "h.0.attn.c_attn.weight", "h.0.attn.c_attn.bias",
        "h.0.attn.c_proj.weight", "h.0.attn.c_proj.bias",
        "h.1.ln_1.weight", "h.1.ln_1.bias",
        "h.1.attn.c_attn.weight", "h.1.attn.c_attn.bias",
        "h.1.attn.c_proj.weight", "h.1.attn.c_proj.bias",
        "extra.0.weight", "extra.0.bias",
        "ln_f.weight", "ln_f.bias",
        "lm_head.bias",                  # lm_head.weight is wte.weight: listed once
    ]


def test_prefix_and_modules_and_children():
    m = Tiny()
    assert [n for n, _ in m.named_parameters(prefix="model")][:2] == ["model.wte.weight",
                                                                      "model.wte.bias"]
    mods = [n for n, _ in m.named_modules()]
    assert mods[:4] == ["", "wte", "h", "h.0"]
    assert "h.1.attn.c_proj" in mods and "extra.0" in mods
    assert [n for n, _ in m.named_children()] == ["wte", "h", "extra.0", "ln_f", "lm_head"]
    assert list(m.children())[1] is m.h


def test_shared_parameter_listed_and_counted_once():
    m = Tiny()
    params = list(m.parameters())
    assert len(params) == len({id(p) for p in params})
    assert sum(p is m.wte.weight for p in params) == 1
    assert m.num_parameters() == sum(p.size for p in params)
    # a whole shared module is walked once, under its first name: `extra` is assigned
    # before `ln_f`, so ln_f's parameters are now named extra.1.*
    m.extra.append(m.ln_f)
    names = [n for n, _ in m.named_parameters()]
    assert "extra.1.weight" in names and "ln_f.weight" not in names
    assert len(names) == 19


def test_cycle_does_not_loop():
    m = Tiny()
    m.h[0].parent = m           # a back-reference
    assert len(list(m.named_parameters())) == 19


def test_parameter_is_a_float_leaf_that_owns_its_array():
    a = np.ones(3)
    p = Parameter(a, dtype=np.float32)
    assert p.requires_grad and p.is_leaf and p.dtype == np.float32
    p.data += 1
    assert a.tolist() == [1.0, 1.0, 1.0]                 # the caller's array is untouched
    assert Parameter(Tensor([1.0, 2.0])).dtype == np.float64
    with pytest.raises(TypeError, match="floating"):
        Parameter(np.arange(3))
    assert "Parameter(" in repr(p)
    y = (p * 2).sum()
    assert type(y) is Tensor
    y.backward()
    assert p.grad.tolist() == [2.0, 2.0, 2.0]


def test_state_dict_round_trip_copies():
    m, n = Tiny(), Tiny()
    rng = np.random.default_rng(0)
    for p in m.parameters():
        p.data[...] = rng.standard_normal(p.shape)
    sd = m.state_dict()
    assert list(sd) == [k for k, _ in m.named_parameters()]
    assert all(sd[k] is not p.data and np.array_equal(sd[k], p.data)
               for k, p in m.named_parameters())
    arrays_before = [p.data for p in n.parameters()]
    n.load_state_dict(sd)
    for (k, p), before in zip(n.named_parameters(), arrays_before):
        assert p.data is before                          # loaded in place
        assert np.array_equal(p.data, sd[k])
        assert p.data is not sd[k]
    sd["wte.weight"][...] = 99                           # no reference kept to the caller's arrays
    assert not np.any(n.wte.weight.data == 99)
    assert n.lm_head.weight is n.wte.weight              # tying survives a load


def test_load_casts_to_parameter_dtype_and_accepts_tensors():
    m = Affine()
    m.load_state_dict({"weight": Tensor(np.full((2, 3), 1.5)), "bias": np.arange(3)})
    assert m.weight.dtype == np.float32 and m.bias.dtype == np.float32
    assert m.weight.data.tolist() == [[1.5] * 3] * 2 and m.bias.data.tolist() == [0, 1, 2]


def test_strict_load_lists_every_problem_and_writes_nothing():
    m = Tiny()
    sd = m.state_dict()
    del sd["h.0.ln_1.weight"], sd["ln_f.bias"]
    sd["bogus.weight"] = np.zeros(2)
    sd["wte.weight"] = np.zeros((6, 4))
    sd["h.1.ln_1.bias"] = np.zeros(5)
    sd["ln_f.weight"] = np.zeros((1, 4)) + 7             # valid: must not be written either
    with pytest.raises(ValueError) as info:
        m.load_state_dict(sd)
    msg = str(info.value)
    for text in ["missing keys (2)", "h.0.ln_1.weight", "ln_f.bias",
                 "unexpected keys (1)", "bogus.weight",
                 "mismatched values (2)", "wte.weight: expected shape (5, 4), got (6, 4)",
                 "h.1.ln_1.bias"]:
        assert text in msg
    assert not np.any(m.ln_f.weight.data == 7)


def test_non_strict_load_reports_keys_but_shape_errors_still_raise():
    m = Tiny()
    out = m.load_state_dict({"ln_f.bias": np.ones(4), "other": np.ones(1)}, strict=False)
    assert m.ln_f.bias.data.tolist() == [1.0] * 4
    assert out["unexpected_keys"] == ["other"] and "wte.weight" in out["missing_keys"]
    with pytest.raises(ValueError, match="expected shape"):
        m.load_state_dict({"ln_f.bias": np.ones(3)}, strict=False)
    with pytest.raises(ValueError, match="not numeric"):
        m.load_state_dict({"ln_f.bias": np.array(["a"] * 4)}, strict=False)


def test_load_from_npz(tmp_path):
    m, n = Tiny(), Tiny()
    for p in m.parameters():
        p.data += 0.5
    np.savez(tmp_path / "w.npz", **m.state_dict())
    with np.load(tmp_path / "w.npz") as f:
        n.load_state_dict(f)
    assert all(np.array_equal(a, b) for a, b in zip(m.state_dict().values(),
                                                    n.state_dict().values()))


def test_to_float64_in_place_and_back():
    m = Tiny()
    m.buffer = np.ones(3, dtype=np.float32)              # a buffer is converted too
    m.ids = np.arange(3)                                  # integer arrays are left alone
    m.wte.weight.grad = np.ones((5, 4), dtype=np.float32)
    params = list(m.parameters())
    assert m.to(np.float64) is m
    assert list(m.parameters()) == params                 # same Parameter objects
    assert all(p.dtype == np.float64 for p in params)
    assert m.wte.weight.grad.dtype == np.float64
    assert m.buffer.dtype == np.float64 and m.ids.dtype == np.int64
    assert m.lm_head.weight is m.wte.weight
    x = Tensor(np.ones((2, 5)))
    assert m.wte(x).dtype == np.float64
    m.to("float32")
    assert all(p.dtype == np.float32 for p in params)
    with pytest.raises(TypeError, match="float32 or float64"):
        m.to(np.int32)


def test_train_eval_recursive_and_zero_grad():
    m = Tiny()
    assert all(mod.training for _, mod in m.named_modules())
    assert m.eval() is m
    assert not any(mod.training for _, mod in m.named_modules())
    m.train()
    assert all(mod.training for _, mod in m.named_modules())
    m.h.train(False)
    assert m.training and not m.h[1].attn.c_proj.training
    for p in m.parameters():
        p.grad = np.ones_like(p.data)
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_module_without_super_init_and_call():
    class NoInit(Module):
        def __init__(self):
            self.w = Parameter(np.ones(2))

        def forward(self, x, scale=1.0):
            return x * self.w * scale

    m = NoInit()
    assert m.training and [n for n, _ in m.named_parameters()] == ["w"]
    assert m(Tensor([1.0, 2.0]), scale=3.0).data.tolist() == [3.0, 6.0]
    with pytest.raises(NotImplementedError):
        Module()(1)


def test_module_list():
    ml = ModuleList([Affine(), Affine()])
    ml.append(Affine(1, 1))
    assert len(ml) == 3 and isinstance(ml[1:], ModuleList) and len(ml[1:]) == 2
    assert [n for n, _ in ml.named_parameters()][-2:] == ["2.weight", "2.bias"]
    ml[0] = Affine(1, 2)
    assert ml[0].weight.shape == (1, 2)
    with pytest.raises(TypeError, match="Modules"):
        ml.append(3)


def test_repr_nested_with_shapes():
    text = repr(Tiny())
    assert text.startswith("Tiny(\n  (wte): Affine(weight: [5, 4], bias: [4])\n  (h): ModuleList(\n"
                           "    (0): Block(\n      (ln_1): Affine(weight: [1, 4], bias: [4])\n")
    assert "      (attn): Attn(\n        (c_attn): Affine(weight: [4, 12], bias: [12])" in text
    assert "  (extra): list(\n    (0): Affine(weight: [1, 1], bias: [1])\n  )" in text
    assert text.endswith("  (lm_head): Affine(weight: [5, 4], bias: [4])\n)")
