"""``numpyllm vae``: a variational autoencoder for sentences (docs/vae.md).

    numpyllm vae train --data FILE --out DIR [--latent 32] [--latent-mode add|prefix|both]
        [--kl-anneal N [--anneal linear|logistic]] [--beta 1] [--free-bits F]
        [--word-dropout P] [--n_encoder_layer N] [model and training flags] [--resume]
    numpyllm vae eval        --ckpt DIR/ckpt [--data FILE]
    numpyllm vae reconstruct --ckpt DIR/ckpt (--text S ... | --data FILE [--n 5])
    numpyllm vae sample      --ckpt DIR/ckpt [--n 5] [--temperature 0] [--seed 0]
    numpyllm vae interpolate --ckpt DIR/ckpt --from S --to S [--steps 5]
    numpyllm vae denoise     --ckpt DIR/ckpt (--text S ... | --data FILE [--n 5])
                             [--drop 0.1] [--swap 0.1] [--mask 0.1] [--seed 0]

``train`` reads one sentence per line (blank lines skipped; a Shakespeare text works
as it is, a line a sentence), holds out the last --val_fraction of the lines, and trains
a SentenceVAE: a transformer encoder of --n_encoder_layer blocks (default --n_layer)
to q(z | x), and a GPT decoder of --n_layer blocks given z. --block_size is the longest
sentence in tokens: longer lines are left out (the count is printed). The tokenizer
(--tokenizer char or bpe) gets <pad>, <s>, </s> and <unk>. The evaluations report the
negative ELBO per sentence (nats) and its two terms, val recon and val kl; the end of
the run the KL per dimension and the active units (posterior collapse measured), and a
few reconstructions. Checkpoints go to DIR/ckpt; --resume carries on exactly (the
model and the objective are the checkpoint's).

The other actions read a checkpoint. ``eval`` scores the held-out lines of the run's
file (or --data): the ELBO, the reconstruction's token accuracy, KL per dimension, active
units. ``reconstruct`` decodes each sentence's posterior mean greedily; ``sample`` decodes
z ~ N(0, I); ``interpolate`` decodes points on the line between two sentences' means;
``denoise`` corrupts each sentence (tokens dropped, adjacent ones swapped, some masked with
<unk>), reconstructs it, and scores the token accuracy against the clean sentence.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from . import CLIError

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
# numpyllm train's model options that a SentenceVAE has no use for
NOT_FOR_VAE = ("bias", "positions", "attn_block_size")
VAE_FLAGS = ("latent", "latent_mode", "kl_anneal", "anneal", "beta", "free_bits",
             "word_dropout", "n_encoder_layer")


def register(subparsers) -> None:
    from .train import add_options
    p = subparsers.add_parser("vae", help="a variational autoencoder for sentences: train, "
                              "eval, reconstruct, sample, interpolate, denoise",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    t = actions.add_parser("train", help="train a sentence VAE on a file of lines")
    t.add_argument("--data", metavar="FILE", help="UTF-8 text, one sentence per line")
    t.add_argument("--out", default="out", metavar="DIR", help="output directory")
    t.add_argument("--latent", type=int, default=None, help="Z, latent dimensions (32)")
    t.add_argument("--latent-mode", "--latent_mode", dest="latent_mode", default=None,
                   choices=["add", "prefix", "both"], help="how z reaches the decoder (add)")
    t.add_argument("--kl-anneal", "--kl_anneal", dest="kl_anneal", type=int, default=None,
                   metavar="N", help="steps over which the KL weight grows from 0 (0: none)")
    t.add_argument("--anneal", choices=["linear", "logistic"], default=None,
                   help="the annealing curve (linear)")
    t.add_argument("--beta", type=float, default=None, help="the KL weight after annealing (1)")
    t.add_argument("--free-bits", "--free_bits", dest="free_bits", type=float, default=None,
                   metavar="F", help="nats per latent dimension not charged for (0)")
    t.add_argument("--word-dropout", "--word_dropout", dest="word_dropout", type=float,
                   default=None, metavar="P", help="share of decoder inputs replaced by <unk> (0)")
    t.add_argument("--n_encoder_layer", "--n-encoder-layer", dest="n_encoder_layer", type=int,
                   default=None, help="encoder blocks (default: --n_layer)")
    t.add_argument("--tokenizer", choices=["char", "bpe"], default="char",
                   help="char (default) or byte-level bpe")
    t.add_argument("--vocab_size", "--vocab-size", type=int, default=None,
                   help="for --tokenizer bpe (default 1024)")
    t.add_argument("--val_fraction", "--val-fraction", type=float, default=None,
                   help="last share of the lines held out (0.1)")
    t.add_argument("--config", metavar="FILE", help="JSON file of training options")
    t.add_argument("--resume", action="store_true", help="continue the run in DIR/ckpt")
    t.add_argument("--quiet", action="store_true", help="no progress lines")
    add_options(t)
    t.set_defaults(func=run_train)

    def reader(name, help_text, func):
        q = actions.add_parser(name, help=help_text)
        q.add_argument("--ckpt", required=True, metavar="DIR", help="a checkpoint of vae train")
        q.set_defaults(func=func)
        return q

    def sentences(q):
        q.add_argument("--text", action="append", metavar="S", help="a sentence (repeatable)")
        q.add_argument("--data", metavar="FILE", help="sentences, one per line")
        q.add_argument("--n", type=int, default=5, help="with --data: the first N lines (5)")

    q = reader("eval", "score held-out sentences: ELBO, accuracy, KL, active units", run_eval)
    q.add_argument("--data", metavar="FILE", help="lines to score (default: the run's "
                   "held-out lines)")
    q.add_argument("--seed", type=int, default=0, help="seed of the ELBO's sample of z")
    q = reader("reconstruct", "decode each sentence's posterior mean", run_reconstruct)
    sentences(q)
    q = reader("sample", "decode samples of the prior", run_sample)
    q.add_argument("--n", type=int, default=5, help="how many (5)")
    q.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default)")
    q.add_argument("--seed", type=int, default=0)
    q = reader("interpolate", "decode the line between two sentences", run_interpolate)
    q.add_argument("--from", dest="start", required=True, metavar="S")
    q.add_argument("--to", dest="end", required=True, metavar="S")
    q.add_argument("--steps", type=int, default=5, help="points, ends included (5)")
    q = reader("denoise", "corrupt sentences, reconstruct them, score", run_denoise)
    sentences(q)
    for name, text in (("drop", "tokens dropped"), ("swap", "adjacent pairs swapped"),
                       ("mask", "tokens replaced by <unk>")):
        q.add_argument(f"--{name}", type=float, default=0.1, help=f"share of {text} (0.1)")
    q.add_argument("--seed", type=int, default=0)


# ---------------------------------------------------------------------- sentences
def read_lines(text: str) -> list[str]:
    """The non-blank lines of a text, stripped (a line longer than the model's max_len is
    left out where lines are read from a file)."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def encode_lines(tokenizer, lines, max_len: int) -> tuple[list, int]:
    """``(id lists, how many lines were left out as longer than max_len)``."""
    encode = getattr(tokenizer, "encode_ordinary", tokenizer.encode)
    out, longer = [], 0
    for line in lines:
        ids = encode(line)
        if len(ids) > max_len:
            longer += 1
        elif ids:
            out.append(ids)
    return out, longer


def encode_one(tokenizer, text: str, model, flag: str) -> list[int]:
    encode = getattr(tokenizer, "encode_ordinary", tokenizer.encode)
    ids = encode(text.strip())
    if not ids:
        raise CLIError(f"{flag}: an empty sentence")
    if len(ids) > model.config.max_len:
        raise CLIError(f"{flag}: {len(ids)} tokens, longer than the model's max_len "
                       f"{model.config.max_len}")
    return list(ids)


def load_vae(path):
    from ._common import load_model_and_tokenizer
    model, tokenizer, ckpt = load_model_and_tokenizer(path, "read sentences")
    if type(model).__name__ != "SentenceVAE":
        raise CLIError(f"--ckpt {path}: a {type(model).__name__}, not a SentenceVAE (a "
                       "checkpoint of numpyllm vae train)")
    return model, tokenizer, ckpt


def given_sentences(args, model, tokenizer) -> list[list[int]]:
    if (args.text is None) == (args.data is None):
        raise CLIError("give the sentences with --text S (repeatable) or --data FILE")
    if args.text is not None:
        return [encode_one(tokenizer, s, model, "--text") for s in args.text]
    from ._common import read_text
    if args.n < 1:
        raise CLIError(f"--n must be >= 1, got {args.n}")
    sents, _ = encode_lines(tokenizer, read_lines(read_text(args.data).text),
                            model.config.max_len)
    if not sents:
        raise CLIError(f"--data {args.data}: no line of at most {model.config.max_len} tokens")
    return sents[:args.n]


def show(tokenizer, ids) -> str:
    return repr(tokenizer.decode(ids))


# ---------------------------------------------------------------------- train
def run_train(args) -> int:
    from ..generate.vae import posterior_stats, reconstruct
    from ..nn.vae import SentenceVAE, SentenceVAEConfig
    from ..training import TrainConfig
    from ..training.checkpoint import CheckpointError
    from ..training.objectives import ELBO
    from ..training.vae import VAETrainer
    from ._common import run_checkpoint, run_text
    from ._fit import fit_logged, schedule_line
    from .train import TRAIN_OPTIONS, _build_tokenizer, _check_out, _options

    out = Path(args.out)
    _check_out(out)
    _, ckpt = run_checkpoint(out, args.resume)
    if ckpt is not None:
        if ckpt.model_config.get("type") != "SentenceVAE" or ckpt.optimizer_state is None \
                or ckpt.tokenizer is None:
            raise CLIError(f"--resume: {ckpt.path} is not a run of numpyllm vae train")
        given = [f"--{n.replace('_', '-')}" for n in VAE_FLAGS if getattr(args, n) is not None]
        given += [f"--{n}" for n in ("n_layer", "n_head", "n_embd", "block_size", "dropout",
                                     "dtype", "vocab_size") if getattr(args, n) is not None]
        if given:
            raise CLIError(f"--resume: the model and its objective are the checkpoint's: drop "
                           f"{', '.join(given)}")
    saved = ckpt.trainer_state.get("train_config", {}) if ckpt else None
    opts, explicit = _options(args, saved)
    for name in NOT_FOR_VAE:
        if name in explicit:
            raise CLIError(f"--{name}: not an option of the sentence VAE (its decoder has "
                           "learned positions and biases, standard attention)")

    # the lines: the file given, or (resuming) the one the checkpoint records
    source, recorded = run_text(args.data, ckpt, required="one sentence per line")
    val_fraction = args.val_fraction if args.val_fraction is not None else \
        (recorded or {}).get("val_fraction", 0.1)
    if not 0 <= val_fraction < 1:
        raise CLIError(f"--val_fraction must be in [0, 1), got {val_fraction}")
    lines = read_lines(source.text)
    n_val = int(len(lines) * val_fraction)
    train_lines, val_lines = lines[:len(lines) - n_val], lines[len(lines) - n_val:]

    if ckpt is not None:
        tokenizer = ckpt.tokenizer
        max_len = int(ckpt.model_config["config"]["max_len"])
    else:
        max_len = opts["block_size"]
        tokenizer = _build_tokenizer(args, "\n".join(lines), SPECIALS)
    train, longer = encode_lines(tokenizer, train_lines, max_len)
    val, val_longer = encode_lines(tokenizer, val_lines, max_len)
    if not train:
        raise CLIError(f"--data {source.label}: no line of at most {max_len} tokens to train "
                       "on: raise --block_size")

    try:
        cfg = TrainConfig.from_dict({**(saved or {}), **{k: opts[k] for k in TRAIN_OPTIONS}})
    except (TypeError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    val_data = val if len(val) >= 2 else None
    if ckpt is not None:
        if cfg.max_iters <= ckpt.step:
            raise CLIError(f"--resume: the checkpoint is at step {ckpt.step} and --max_iters "
                           f"is {cfg.max_iters}: nothing to train; pass a larger --max_iters")
        try:
            trainer, _ = VAETrainer.resume(ckpt, train, val_data, config=cfg)
        except CheckpointError as exc:
            raise CLIError(f"--resume: {exc}") from None
    else:
        ids = tokenizer.special_tokens
        try:
            model_cfg = SentenceVAEConfig(
                vocab_size=tokenizer.vocab_size, max_len=max_len, n_layer=opts["n_layer"],
                n_encoder_layer=args.n_encoder_layer or opts["n_layer"], n_head=opts["n_head"],
                n_embd=opts["n_embd"], latent=32 if args.latent is None else args.latent,
                latent_mode=args.latent_mode or "add", dropout=opts["dropout"],
                pad_id=ids["<pad>"], bos_id=ids["<s>"], eos_id=ids["</s>"],
                unk_id=ids["<unk>"], dtype=opts["dtype"])
            model = SentenceVAE(model_cfg, rng=np.random.default_rng(opts["seed"]))
            settings = {k: getattr(args, k) for k in ("kl_anneal", "anneal", "beta",
                                                      "free_bits", "word_dropout")
                        if getattr(args, k) is not None}
            objective = ELBO.for_model(model, **settings)
            trainer = VAETrainer(model, train, val_data, cfg, objective=objective)
        except (TypeError, ValueError) as exc:
            raise CLIError(str(exc)) from None
    trainer.data_source = {**source.record, "val_fraction": val_fraction}
    model, objective, c = trainer.model, trainer.objective, trainer.model.config

    print(f"numpyllm vae: {len(lines):,} lines of {source.label}: {len(train):,} train / "
          f"{len(val):,} val sentences of at most {max_len} tokens"
          + (f" ({longer + val_longer:,} longer lines left out)" if longer + val_longer else ""))
    print(f"SentenceVAE: encoder {c.n_encoder_layer} x {c.n_embd}, decoder {c.n_layer} x "
          f"{c.n_embd}, {c.n_head} heads, Z = {c.latent} ({c.latent_mode}), "
          f"{model.num_parameters():,} parameters; {cfg.max_iters} steps of batch "
          f"{cfg.batch_size}" + (f" (resuming at step {trainer.step})" if ckpt else ""))
    print(f"loss per sentence: recon + beta KL; beta {objective.beta:g}"
          + (f", annealed ({objective.anneal}) over {objective.kl_anneal} steps"
             if objective.kl_anneal else "")
          + f"; free bits {objective.free_bits:g}; word dropout {objective.word_dropout:g}"
          + " (evaluations: the plain negative ELBO)")
    print(schedule_line(cfg, trainer.step))
    code = fit_logged(trainer, out=out, ckpt=ckpt, quiet=args.quiet, command="vae train",
                      tokenizer=tokenizer)
    if code is not None:
        return code
    held = val if len(val) >= 2 else train
    stats = posterior_stats(model, held[:1000])
    print(_collapse_line(stats, "val" if held is val else "train"))
    for src, got in zip(held[:3], reconstruct(model, held[:3])):
        print(f"  {show(tokenizer, src)} -> {show(tokenizer, got)}")
    return 0


def _collapse_line(stats: dict, what: str) -> str:
    kl = stats["kl_per_dim"]
    return (f"posterior ({what}): KL {stats['kl']:.3f} nats per sentence; active units "
            f"{stats['active_units']} of {len(kl)} (Cov(E_q[z]) > 0.01); KL per dimension "
            f"max {kl.max():.3f}, median {np.median(kl):.3f}")


# ---------------------------------------------------------------------- the readers
def run_eval(args) -> int:
    from ..autograd import no_grad
    from ..generate.vae import posterior_stats, reconstruct, token_accuracy
    from ..training.objectives import ELBO
    from ._common import read_text, recorded_text
    model, tokenizer, ckpt = load_vae(args.ckpt)
    if args.data is not None:
        lines, what = read_lines(read_text(args.data).text), args.data
    else:
        recorded = ckpt.trainer_state.get("data")
        if not isinstance(recorded, dict):
            raise CLIError(f"{ckpt.path} records no data file: pass --data FILE")
        source = recorded_text(recorded, advice="pass --data FILE")
        lines = read_lines(source.text)
        n_val = int(len(lines) * recorded.get("val_fraction", 0.1))
        lines, what = lines[len(lines) - n_val:], f"the held-out lines of {source.label}"
    sents, longer = encode_lines(tokenizer, lines, model.config.max_len)
    if len(sents) < 2:
        raise CLIError(f"{what}: fewer than 2 sentences of at most {model.config.max_len} "
                       "tokens to score")
    objective = ELBO.for_model(model)
    totals = {"recon": 0.0, "kl": 0.0, "count": 0}
    rng = np.random.default_rng(args.seed)
    with no_grad():
        for batch in objective.batches(objective.dataset(sents), 64, rng):
            for k, v in objective.scores(model, batch).items():
                if k in totals:
                    totals[k] += v
    n = totals["count"]
    recon, kl = totals["recon"] / n, totals["kl"] / n
    accuracy = token_accuracy(reconstruct(model, sents[:500]), sents[:500])
    print(f"{n:,} sentences of {what}" + (f" ({longer} longer left out)" if longer else ""))
    print(f"negative ELBO {recon + kl:.3f} nats per sentence = recon {recon:.3f} + KL {kl:.3f} "
          f"(one sample of z, seed {args.seed})")
    print(f"reconstruction token accuracy (posterior mean, greedy): {accuracy:.3f}"
          + (" over the first 500" if n > 500 else ""))
    print(_collapse_line(posterior_stats(model, sents[:1000]), "these sentences"))
    return 0


def run_reconstruct(args) -> int:
    from ..generate.vae import reconstruct
    model, tokenizer, _ = load_vae(args.ckpt)
    sents = given_sentences(args, model, tokenizer)
    for src, got in zip(sents, reconstruct(model, sents)):
        print(f"{show(tokenizer, src)} -> {show(tokenizer, got)}")
    return 0


def run_sample(args) -> int:
    from ..generate.vae import sample_prior
    model, tokenizer, _ = load_vae(args.ckpt)
    if args.n < 1 or args.temperature < 0:
        raise CLIError(f"--n must be >= 1 and --temperature >= 0, got {args.n} and "
                       f"{args.temperature}")
    for ids in sample_prior(model, args.n, np.random.default_rng(args.seed),
                            temperature=args.temperature):
        print(show(tokenizer, ids))
    return 0


def run_interpolate(args) -> int:
    from ..generate.vae import interpolate
    model, tokenizer, _ = load_vae(args.ckpt)
    if args.steps < 2:
        raise CLIError(f"--steps must be >= 2 (the two ends), got {args.steps}")
    a = encode_one(tokenizer, args.start, model, "--from")
    b = encode_one(tokenizer, args.end, model, "--to")
    for t, ids in zip(np.linspace(0, 1, args.steps), interpolate(model, a, b, args.steps)):
        print(f"{t:.2f}  {show(tokenizer, ids)}")
    return 0


def run_denoise(args) -> int:
    from ..generate.vae import corrupt, denoise, token_accuracy
    model, tokenizer, _ = load_vae(args.ckpt)
    for name in ("drop", "swap", "mask"):
        if not 0 <= getattr(args, name) < 1:
            raise CLIError(f"--{name} must be in [0, 1), got {getattr(args, name)}")
    clean = given_sentences(args, model, tokenizer)
    rng = np.random.default_rng(args.seed)
    noisy = [corrupt(s, rng, drop=args.drop, swap=args.swap, mask=args.mask,
                     mask_id=model.config.unk_id) for s in clean]
    guess = denoise(model, noisy)
    for n, g in zip(noisy, guess):
        print(f"{show(tokenizer, n)} -> {show(tokenizer, g)}")
    print(f"token accuracy against the clean sentences: denoised {token_accuracy(guess, clean):.3f}"
          f", corrupted input {token_accuracy(noisy, clean):.3f}")
    return 0
