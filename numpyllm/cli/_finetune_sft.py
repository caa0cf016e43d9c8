"""``numpyllm finetune sft``: instruction tuning of a decoder on instruction/response
examples (see numpyllm/cli/finetune.py for the options)."""
from __future__ import annotations

from . import CLIError
from .finetune import _data_file, _data_source, _decoder, _max_length, _train

def run_sft(args, opts, explicit, lora, ckpt, record, split, out) -> int:
    from ..data.instruction import (encode_instructions, end_token_id, read_instructions,
                                    split_examples)
    from ..generate import respond, write_responses
    from ..training import evaluate_objective
    from ..training.objectives import InstructionTuning
    path = _data_file(args, ckpt.trainer_state.get("data") if ckpt else None)
    model, tokenizer = _decoder(args, opts, explicit, lora, ckpt)
    fmt = record.get("format", args.format)
    max_length = _max_length(args, model, record)
    seed = record.get("seed", opts["seed"])
    examples = read_instructions(path)
    parts = split_examples(examples, split, seed=seed)
    if not parts[0]:
        raise CLIError(f"--split: the training split of {path} is empty")
    eos = end_token_id(tokenizer)
    sets = [encode_instructions(tokenizer, part, format=fmt, eos_id=eos, max_length=max_length)
            if part else None for part in parts]
    settings = {"pad_id": eos, "train_on_prompt": int(record.get("train_on_prompt",
                                                                  args.train_on_prompt)),
                "max_length": max_length, "pack": int(record.get("pack", args.pack))}
    context = model.config.block_size if model is not None else record["context"]
    record = {"task": "sft", "split": split, "format": fmt, "max_length": max_length,
              "seed": seed, "context": context, "train_on_prompt": settings["train_on_prompt"],
              "pack": settings["pack"]}
    try:
        InstructionTuning(**settings)
    except ValueError as exc:
        raise CLIError(str(exc)) from None

    def objective(model):
        return InstructionTuning(**settings)
    summary = (f"{len(examples):,} instructions of {path} ({fmt}); "
               + " / ".join(f"{len(p)} {n}" for p, n in zip(parts, ("train", "val", "test")))
               + f", at most {max_length} tokens each")
    trainer = _train(args, model, tokenizer, objective, sets[0], sets[1], opts, ckpt, out,
                     _data_source(path, record), summary)
    if isinstance(trainer, int):
        return trainer
    model = trainer.model
    held = sets[1] or sets[2]
    if held is not None:
        result = evaluate_objective(model, trainer.objective, held)
        print(f"held-out ({'validation' if sets[1] else 'test'}) response loss "
              f"{result['loss']:.4f} (perplexity {result['perplexity']:.2f}, "
              f"{result['count']:,} tokens)")
    if sets[2] is not None:
        answers = respond(model, tokenizer, sets[2], max_new_tokens=args.max_new_tokens,
                          eos_id=eos)
        write_responses(out / "test-responses.json", sets[2].examples, answers)
        print(f"test responses ({len(answers)}, greedy): {out / 'test-responses.json'}")
    return 0


