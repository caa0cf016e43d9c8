"""Our safetensors files and the reference library's are the same format, both ways."""
import numpy as np
import pytest

from numpyllm.hub.safetensors import load_file, save_file

st_numpy = pytest.importorskip("safetensors.numpy")


def test_reference_reads_ours_and_we_read_theirs(tmp_path):
    tensors = {"w": np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32),
               "ids": np.arange(5, dtype=np.int64), "half": np.ones(2, np.float16)}
    save_file(tensors, tmp_path / "ours.safetensors")
    theirs = st_numpy.load_file(str(tmp_path / "ours.safetensors"))
    st_numpy.save_file(tensors, str(tmp_path / "theirs.safetensors"))
    ours = load_file(tmp_path / "theirs.safetensors")
    for name, ref in tensors.items():
        np.testing.assert_array_equal(theirs[name], ref)
        np.testing.assert_array_equal(ours[name], ref)
        assert ours[name].dtype == ref.dtype


def test_torch_loads_a_numpyllm_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file as torch_load

    from numpyllm.training.checkpoint import save_checkpoint
    from numpyllm.nn.gpt import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=9, block_size=4, n_layer=1, n_head=1, n_embd=4),
                rng=np.random.default_rng(0))
    step_dir = save_checkpoint(tmp_path, step=1, model=model)
    state = torch_load(str(step_dir / "model.safetensors"))
    assert set(state) == {n for n, _ in model.named_parameters()}
    assert torch.equal(state["wte.weight"], torch.from_numpy(model.wte.weight.data))
