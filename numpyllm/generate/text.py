"""Text in, text out: encode a prompt, stream the continuation as text, cut at stop
strings.

A byte-level BPE token need not end on a character boundary: "é" is two bytes and may
be two tokens, and decoding the first alone gives U+FFFD. `TextDecoder` keeps the bytes
of an unfinished character until the rest arrives (an incremental UTF-8 decoder), so a
stream only ever shows complete characters, and the streamed pieces joined equal the
decoded whole. Tokenizers without ``decode_bytes`` (the character tokenizer) decode
token by token.

>>> from numpyllm.tokenizers import BPETokenizer
>>> tok = BPETokenizer()                        # 256 byte tokens, no merges
>>> dec = TextDecoder(tok)
>>> [dec.push(i) for i in tok.encode("né")]     # "é" is the bytes c3 a9
['n', '', 'é']
"""
from __future__ import annotations

import codecs

import numpy as np

from .decoding import generate, stream
from .stopping import StopStrings, check_eos

__all__ = ["TextDecoder", "stream_text", "generate_text", "encode_prompt"]


class TextDecoder:
    """Turn token ids, one at a time, into text: `push(id)` returns the text completed
    by that token ('' while a character is unfinished), `flush()` what is left at the
    end (an unfinished character as U+FFFD). Ids in `skip` (end tokens) produce no text.
    """

    def __init__(self, tokenizer, skip=()):
        self.tokenizer = tokenizer
        self.skip = frozenset(skip)
        self._bytes = hasattr(tokenizer, "decode_bytes")
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        token_id = int(token_id)
        if token_id in self.skip:
            return ""
        if self._bytes:
            return self._utf8.decode(self.tokenizer.decode_bytes([token_id]))
        return self.tokenizer.decode([token_id])

    def flush(self) -> str:
        return self._utf8.decode(b"", final=True) if self._bytes else ""


def encode_prompt(tokenizer, prompt) -> list:
    """`prompt` as token ids: a str is encoded with ``tokenizer.encode`` (a BPE
    tokenizer refuses special-token text in it unless told otherwise: encode such a
    prompt yourself, or with `ChatTemplate.encode`), ids pass through."""
    if isinstance(prompt, str):
        return tokenizer.encode(prompt)
    return np.asarray(prompt).tolist()


def stream_text(model, tokenizer, prompt, max_new_tokens: int, *, stop=None, eos_id=None,
                **kwargs):
    """Generate from `prompt` (a str, or token ids) and yield the new text as it comes,
    in pieces of complete characters (see the module doc).

    - `stop`: a string or a list of strings; generation ends at the first one, which is
      not yielded (nor anything after it). Text that might begin a stop string is held
      back until it is known not to.
    - `eos_id`: end token id(s); ends generation, and yields no text of its own.
    - everything else (`temperature`, `top_k`, `top_p`, `greedy`, `rng`, `use_cache`)
      as for `numpyllm.generate.generate`.

    The arguments are checked at once; the model runs as the pieces are consumed.
    """
    ids = encode_prompt(tokenizer, prompt)
    stops = StopStrings(stop)
    tokens = stream(model, ids, max_new_tokens, eos_id=eos_id, **kwargs)
    return _text_pieces(tokens, TextDecoder(tokenizer, skip=check_eos(eos_id)), stops)


def _text_pieces(tokens, decoder: TextDecoder, stops: StopStrings):
    try:
        for t in tokens:
            piece, stopped = stops.feed(decoder.push(t))
            if piece:
                yield piece
            if stopped:
                return
        piece, _ = stops.feed(decoder.flush())
        piece += stops.flush()
        if piece:
            yield piece
    finally:
        tokens.close()                       # stop the model when the reader stops


def generate_text(model, tokenizer, prompt, max_new_tokens: int, **kwargs):
    """The continuation of `prompt` as one string (the prompt not included); the
    arguments are those of `stream_text`. A list of prompt strings runs as one batch
    (left-padded: each row gets what it would get alone) and gives a list of strings;
    a stop string then cuts its row's text, but the row keeps generating until its end
    token or the length limit, with the others.

    >>> import numpy as np
    >>> from numpyllm.nn import GPT, GPTConfig
    >>> from numpyllm.tokenizers import CharTokenizer
    >>> tok = CharTokenizer.from_text("abc .")
    >>> model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2,
    ...                       n_embd=8), rng=np.random.default_rng(0))
    >>> text = generate_text(model, tok, "ab", 10, stop=".", rng=0)
    >>> "." in text, len(text) <= 10
    (False, True)
    >>> [len(t) for t in generate_text(model, tok, ["a", "abc"], 4, greedy=True)]
    [4, 4]
    """
    if isinstance(prompt, (list, tuple)) and prompt and all(isinstance(p, str) for p in prompt):
        return _generate_texts(model, tokenizer, list(prompt), max_new_tokens, **kwargs)
    return "".join(stream_text(model, tokenizer, prompt, max_new_tokens, **kwargs))


def _generate_texts(model, tokenizer, prompts: list, max_new_tokens: int, *, stop=None,
                    eos_id=None, **kwargs) -> list:
    StopStrings(stop)                                   # check the stop strings first
    ids = [encode_prompt(tokenizer, p) for p in prompts]
    outs = generate(model, ids, max_new_tokens, eos_id=eos_id, **kwargs)
    skip = check_eos(eos_id)
    return ["".join(_text_pieces((t for t in out[len(p):].tolist()),
                                 TextDecoder(tokenizer, skip=skip), StopStrings(stop)))
            for p, out in zip(ids, outs)]
