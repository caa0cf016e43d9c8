"""From text to training batches (`numpyllm.data`). NumPy arrays in, NumPy arrays out;
the model wraps them into Tensors.

One concept per file:
  corpus.py    the default corpus: the Python standard library's own source
  tokens.py    a corpus as a 1-D token array: encode, save and load (memory-mapped), split
  windows.py   fixed-length (input, target) windows and batches of them
  padding.py   documents of different lengths in one batch: padding, masks, ignored targets
  examples.py  data sets of examples: (source, target) pairs, (sequence, label) pairs
  instruction.py     instruction/input/output examples: Alpaca and chat prompts, splits
  preference.py      preference pairs (prompt, chosen, rejected): JSON reader, collate
  classification.py  labelled texts: strict readers (TSV, CSV, JSONL), balancing,
                     stratified splits
"""
from .tokens import (encode_file, encode_text, load_tokens, read_text_blocks, save_tokens,
                     to_token_array, token_dtype, train_val_split)
from .windows import TokenWindows
from .padding import (IGNORE_INDEX, PaddedBatch, attention_mask, iter_lm_batches, lm_batch,
                      pad_sequences)

__all__ = ["IGNORE_INDEX", "token_dtype", "to_token_array", "encode_text", "encode_file",
           "read_text_blocks", "save_tokens", "load_tokens", "train_val_split", "TokenWindows",
           "PaddedBatch", "pad_sequences", "lm_batch", "iter_lm_batches", "attention_mask"]
from .instruction import alpaca_prompt, split_examples  # noqa: E402
from .preference import (PreferencePairs, collate_preferences, read_preference_json,  # noqa: E402
                         tokenize_preferences)
__all__ += ["PreferencePairs", "alpaca_prompt", "read_preference_json", "tokenize_preferences",
            "collate_preferences", "split_examples"]
