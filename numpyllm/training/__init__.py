"""Training (`numpyllm.training`): the loop, evaluation, logs, checkpoints and data
parallelism on threads.

One concept per file:
  trainer.py        TrainConfig and Trainer: one optimizer step, evaluation, fit, resume
  objectives/       what a model learns: causal/prefix/masked LM, span corruption, seq2seq,
                    classification, DPO
  data_parallel.py  the batch cut into slices, one thread each, gradients summed
  checkpoint.py     atomic, pickle-free checkpoints (safetensors + JSON) and their loader
  manifest.py       what a checkpoint's manifest may say, checked before anything is read
  evaluate.py       a whole data set's loss, perplexity, accuracy; exact match
  log.py            CSVLogger, the events as rows of a CSV file
  vae.py            VAETrainer: the Trainer that tells the ELBO objective its step
"""
from .trainer import NonFiniteError, TrainConfig, Trainer
from .evaluate import evaluate_objective, evaluate_tokens, exact_match, perplexity
from .objectives import (DPO, Batch, CausalLM, Classification, MaskedLM, Objective, PrefixLM,
                         Seq2Seq, SpanCorruption, objective_from_dict)
from .log import CSVLogger
from .data_parallel import DataParallel
from .checkpoint import (Checkpoint, CheckpointError, build_model, load_checkpoint, load_model,
                         save_checkpoint)

__all__ = ["TrainConfig", "Trainer", "NonFiniteError", "evaluate_tokens", "perplexity",
           "evaluate_objective", "exact_match", "Batch", "Objective", "CausalLM", "PrefixLM",
           "MaskedLM", "SpanCorruption", "Seq2Seq", "Classification", "DPO", "objective_from_dict",
           "CSVLogger", "DataParallel", "Checkpoint", "CheckpointError", "build_model",
           "load_checkpoint", "load_model", "save_checkpoint"]
