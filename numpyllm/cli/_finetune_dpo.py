"""``numpyllm finetune dpo``: direct preference optimisation of a decoder on preference
pairs (see numpyllm/cli/finetune.py for the options), against the model as it starts:
with LoRA the base (adapters off), without it the starting model's log-probabilities of
every pair, computed before the first step and kept in --out (`_reference_logps`)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from . import CLIError
from .finetune import _data_file, _data_source, _decoder, _max_length, _train

def run_dpo(args, opts, explicit, lora, ckpt, record, split, out) -> int:
    from ..data.instruction import end_token_id, split_examples
    from ..data.preference import read_preference_json, tokenize_preferences
    from ..nn.lora import disable_lora
    from ..training import evaluate_objective
    from ..training.objectives import DPO
    from ..training.objectives.dpo import sequence_logprobs
    path = _data_file(args, ckpt.trainer_state.get("data") if ckpt else None)
    model, tokenizer = _decoder(args, opts, explicit, lora, ckpt)
    max_length = _max_length(args, model, record)
    seed = record.get("seed", opts["seed"])
    beta = record.get("beta", args.beta)
    smoothing = record.get("label_smoothing", args.label_smoothing)
    sft_weight = record.get("sft_weight", args.sft_weight)
    examples = read_preference_json(path)
    parts = split_examples(examples, split, seed=seed)
    if not parts[0]:
        raise CLIError(f"--split: the training split of {path} is empty")
    eos = end_token_id(tokenizer)
    sets = [tokenize_preferences(part, tokenizer, max_length=max_length, eos_id=eos)
            if part else None for part in parts]
    context = model.config.block_size if model is not None else record["context"]
    record = {"task": "dpo", "split": split, "max_length": max_length, "seed": seed,
              "context": context, "beta": beta, "label_smoothing": smoothing,
              "sft_weight": sft_weight}
    try:
        DPO(beta=beta, label_smoothing=smoothing, pad_id=eos, sft_weight=sft_weight)
    except ValueError as exc:
        raise CLIError(f"--beta/--label-smoothing/--sft-weight: {exc}") from None

    with_lora = bool(lora) or (ckpt is not None and ckpt.model_config.get("lora") is not None)
    if not with_lora:
        # the reference is the model as it starts: its log-probabilities of every pair,
        # computed now and kept in --out, so training holds no second copy of the weights
        # and --resume needs no reference model
        logps = _reference_logps(model, sets, out, ckpt is not None,
                                 DPO(beta=beta, label_smoothing=smoothing, pad_id=eos))

    def objective(model):
        if with_lora:                          # the reference: the base, adapters off
            def reference(ids, mask):
                was = model.training
                model.eval()
                try:
                    with disable_lora(model):
                        return sequence_logprobs(model, ids, mask).data
                finally:
                    model.train(was)
            return DPO(beta=beta, label_smoothing=smoothing, pad_id=eos,
                       sft_weight=sft_weight, reference=reference)
        dpo = DPO(beta=beta, label_smoothing=smoothing, pad_id=eos, sft_weight=sft_weight,
                  reference=_no_reference)
        for data, values in zip(sets, logps):
            if data is not None:
                dpo.set_reference_logps(data, values)
        return dpo
    summary = (f"{len(examples):,} preference pairs of {path}; "
               + " / ".join(f"{len(p)} {n}" for p, n in zip(parts, ("train", "val", "test")))
               + f", at most {max_length} tokens each; beta {beta}"
               + (f", SFT term {sft_weight}" if sft_weight else "")
               + (", reference: the base (LoRA off)" if with_lora else
                  f", reference: the starting model's log-probabilities ({out / REFERENCE})"))
    trainer = _train(args, model, tokenizer, objective, sets[0], sets[1], opts, ckpt, out,
                     _data_source(path, record), summary)
    if isinstance(trainer, int):
        return trainer
    for name, held in (("validation", sets[1]), ("test", sets[2])):
        if held is None:
            continue
        r = evaluate_objective(trainer.model, trainer.objective, held)
        print(f"{name}: {r['count']:,} pairs, loss {r['loss']:.4f}, reward margin "
              f"{r['margin']:.4f}, preference accuracy {r['accuracy']:.3f}, rewards: chosen "
              f"{r['chosen_reward']:.4f}, rejected {r['rejected_reward']:.4f}")
    return 0


REFERENCE = "reference_logps.npz"      # a DPO run's reference log-probabilities, in --out


def _no_reference(ids, mask):
    raise ValueError("DPO: a pair whose reference log-probabilities were not computed "
                     "before training")


def _pairs_digest(data) -> str:
    """SHA-256 of a data set's token ids: the pairs the saved log-probabilities are of."""
    h = hashlib.sha256()
    for rows in (data.prompts, data.chosen, data.rejected):
        for ids in rows:
            h.update(np.asarray(ids, dtype="<i8").tobytes())
            h.update(b"|")
    return h.hexdigest()


def _reference_logps(model, sets, out: Path, resuming: bool, dpo) -> list:
    """The reference log-probabilities ``[N, 2]`` of each set (None where a set is), of
    `model` as it is now (a new run: written to --out) or read back from --out (a run
    that resumes: checked to be of the same pairs)."""
    import os
    import zipfile
    path = out / REFERENCE
    names = ("train", "val", "test")
    if resuming:
        try:
            with np.load(path, allow_pickle=False) as saved:
                stored = {k: saved[k] for k in saved.files}
        except FileNotFoundError:
            raise CLIError(f"--resume: {path} is missing: a DPO run without LoRA keeps its "
                           "reference log-probabilities there; start a new run") from None
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise CLIError(f"--resume: {path}: unreadable ({exc})") from None
        logps = []
        for name, data in zip(names, sets):
            if data is None:
                logps.append(None)
                continue
            values, digest = stored.get(name), stored.get(name + "_digest")
            if (values is None or digest is None or values.shape != (len(data), 2)
                    or str(digest) != _pairs_digest(data)):
                raise CLIError(f"--resume: {path} does not hold the reference "
                               f"log-probabilities of this run's {name} pairs (the data "
                               "or the split changed?): start a new run")
            logps.append(values)
        return logps
    dpo.reference = model
    logps = [dpo.reference_logps(data) if data is not None else None for data in sets]
    arrays = {}
    for name, data, values in zip(names, sets, logps):
        if data is not None:
            arrays[name] = values
            arrays[name + "_digest"] = np.array(_pairs_digest(data))
    out.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:               # written whole, then renamed into place
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return logps
