"""Generation: predict a token, append it, predict again, until an end token, a stop
sequence or a length limit.

    ids [B, T] --model (prefill, then one token per step with the KV cache)-->
        logits [B, V] --temperature, top-k, top-p | greedy--> next id [B] --> ...

Decoder-only models (`numpyllm.nn.GPT`, or any model returning logits ``[B, T, V]``):

- `generate(model, ids, max_new_tokens, *, temperature, top_k, top_p, greedy, eos_id,
  stop, rng, use_cache)`: the tokens; batches of prompts of different lengths too.
- `stream(...)`: the same, one token at a time as each is sampled.
- `generate_text` / `stream_text(model, tokenizer, prompt, ...)`: text in and out,
  streamed in complete UTF-8 characters, cut at stop strings.
- `ChatTemplate`: ``<SYSTEM> ... <USER> ... <ASSISTANT>`` prompts and replies.
- `respond` / `write_responses`: greedy responses to a set of instructions, in a JSON
  file beside their references (supervised fine-tuning's test split).

Encoder-decoder models (`numpyllm.nn.Transformer`): `generate_seq2seq` (greedy or
sampled) and `beam_search`; the encoder runs once and the cross-attention keys and
values are cached.

The pieces: `sampling` (the strategies and their order), `stopping` (end tokens, stop
sequences and strings), `numpyllm.nn.kv_cache` (the caches).
"""
from ..nn.kv_cache import KVCache, LayerKVCache
from .chat import ChatTemplate
from .decoding import generate, stream
from .responses import respond, write_responses
from .sampling import probabilities, sample, warp_logits
from .seq2seq import Hypothesis, beam_search, generate_seq2seq
from .stopping import StopCriteria, StopStrings
from .text import TextDecoder, generate_text, stream_text

__all__ = ["generate", "stream", "generate_text", "stream_text", "TextDecoder",
           "ChatTemplate", "generate_seq2seq", "beam_search", "Hypothesis", "sample",
           "probabilities", "warp_logits", "StopCriteria", "StopStrings", "KVCache",
           "LayerKVCache", "respond", "write_responses"]
