"""Training objectives (`numpyllm.training.objectives`): what a model learns to predict.

  base.py      Batch, Objective: the interface the Trainer runs
  causal.py    CausalLM (next token), PrefixLM (a prefix read both ways)    on GPT
  masked.py    MaskedLM (BERT's 80/10/10 masking)                          on the encoder
  span.py      SpanCorruption (T5's sentinel spans)                        on the encoder-decoder
  seq2seq.py   Seq2Seq ((source, target) pairs, label smoothing)           on the encoder-decoder
  classify.py  Classification (one label per sequence)                     on SequenceClassifier
  adversarial.py  AdversarialClassification (PGD, FreeLB in embedding space) on SequenceClassifier
                  (its checkpoints record the classifier as classify: not in OBJECTIVES)
  sft.py       InstructionTuning (prompt + response, loss on the response)  on GPT, Llama
  dpo.py       DPO (preference pairs against a frozen reference)           on GPT, Llama
  vae.py       ELBO (a sentence VAE: reconstruction + annealed KL, free bits,
               word dropout)                                            on SentenceVAE
  distill.py   Distill (a student against a teacher's softened logits)     on GPT, Llama
               (its checkpoints record the student as causal LM: not in OBJECTIVES)

`objective_from_dict` rebuilds one from the record a checkpoint keeps (`Objective.to_dict`).
"""
from .base import Batch, Objective
from .causal import CausalLM, PrefixLM
from .masked import MaskedLM
from .span import SpanCorruption
from .seq2seq import Seq2Seq
from .classify import Classification
from .sft import InstructionTuning
from .dpo import DPO
from .distill import Distill
from .vae import ELBO
from .adversarial import AdversarialClassification

__all__ = ["Batch", "Objective", "CausalLM", "PrefixLM", "MaskedLM", "SpanCorruption",
           "Seq2Seq", "Classification", "InstructionTuning", "DPO", "Distill", "ELBO",
           "AdversarialClassification", "OBJECTIVES",
           "objective_from_dict"]

OBJECTIVES = {cls.name: cls for cls in (CausalLM, PrefixLM, MaskedLM, SpanCorruption, Seq2Seq,
                                        Classification, InstructionTuning, DPO, ELBO)}


def objective_from_dict(record: dict) -> Objective:
    """The objective a record (``{"name": ..., settings ...}``) describes. A ValueError
    names what is wrong with a record that is not one."""
    if not isinstance(record, dict) or not isinstance(record.get("name"), str) \
            or record["name"] not in OBJECTIVES:
        raise ValueError(f"an objective record needs a name among {sorted(OBJECTIVES)}, got "
                         f"{record!r:.80}")
    settings = {k: v for k, v in record.items() if k != "name"}
    try:
        return OBJECTIVES[record["name"]](**settings)
    except (TypeError, OverflowError) as exc:       # a missing, extra or mistyped setting
        raise ValueError(f"objective {record['name']!r}: {exc}") from None
