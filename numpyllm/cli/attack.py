"""``numpyllm attack gcg | hotflip``: adversarial inputs against a checkpoint, found with
gradients with respect to the input (the weights stay fixed).

gcg: a suffix of --suffix-length tokens, written after --prompt, that makes a language
model (a GPT or a Llama checkpoint) continue with --target, found by greedy coordinate
gradient (Zou et al. 2023): each step the one-hot gradient proposes the --topk best
tokens per position, --batch single-token swaps are evaluated exactly, the best is kept;
--method random swaps uniformly instead, at the same number of evaluations (the
baseline). It stops when the model writes the target greedily or after --steps steps, and
prints the suffix, the target's loss, whether it succeeded and the model's greedy
continuation; --targets FILE (one target a line) runs each and prints the success rate.
(numpyllm/adversarial/gcg.py, docs/adversarial.md)

hotflip: against a classifier of ``numpyllm finetune classify`` (Ebrahimi et al. 2018):
the fewest character or token substitutions that flip each message's predicted label.
One backward pass estimates, to first order, how every substitution would change the loss
of the label; the best proposals are run exactly (greedy, or a beam search with --beam).
It reports the share of the correctly classified messages flipped within 1, 2, ...,
--max-edits edits (the test split the run held out, or --data), and a few examples.
"""
from __future__ import annotations

import argparse
import importlib

ATTACKS = {
    # name: (module in numpyllm.cli, one-line help)
    "gcg": ("_attack_gcg", "a suffix that makes a language model say a target (GCG, or "
                           "random search at the same budget)"),
    "hotflip": ("_attack_hotflip", "the fewest token swaps that flip a classifier's label"),
}


def register(subparsers) -> None:
    p = subparsers.add_parser("attack", help="adversarial inputs: " + ", ".join(ATTACKS),
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = p.add_subparsers(dest="attack", metavar="ATTACK")
    kinds.required = True
    for name, (module, text) in ATTACKS.items():
        k = kinds.add_parser(name, help=text, description=text)
        mod = importlib.import_module(f".{module}", __package__)
        mod.add_arguments(k)
        k.set_defaults(func=mod.run)
