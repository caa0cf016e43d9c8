"""numpyllm: a transformer library in pure NumPy, with its own reverse-mode autograd.

    import numpyllm as nl
    x = nl.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()      # x.grad == 2 * x

    model = nl.GPT(nl.GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128))
    logits, loss = model(idx, targets)

Subpackages and modules, in the order a batch flows through them:
  numpyllm.tokenizers   text -> ids (characters, byte-level BPE, GPT-2's vocabulary)
  numpyllm.data         ids -> (x, y) windows and batches, padding
  numpyllm.autograd     Tensor, Function, no_grad, gradcheck
  numpyllm.functional   the math: linear, softmax, cross_entropy, layer_norm, attention ...
  numpyllm.nn           layers and models: Module, Linear, MultiHeadAttention, GPT, Transformer
  numpyllm.optim        SGD, Adam, AdamW, clipping, schedules
  numpyllm.training     the training loop, objectives, evaluation, checkpoints, threads
  numpyllm.generate     sampling from a trained model
  numpyllm.hub          model files in and out (safetensors)
  numpyllm.checks       the gradient checks of every op, layer and model
Nothing optional (torch, matplotlib, tqdm) is imported here.
"""
from . import autograd, data, functional, nn, optim, tokenizers
from .autograd import (Function, Tensor, concat, enable_grad, gradcheck, is_grad_enabled,
                       no_grad, split, stack, where)
from .nn import GPT, GPTConfig, Transformer, TransformerConfig

__version__ = "0.1.0"

__all__ = ["Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "gradcheck",
           "concat", "stack", "split", "where", "GPT", "GPTConfig", "Transformer",
           "TransformerConfig", "autograd", "data", "functional", "nn", "optim", "tokenizers",
           "__version__"]
