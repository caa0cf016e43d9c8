"""numpyllm's Hugging Face tokenizers against `tokenizers` and `transformers` themselves.

No file can be downloaded here, so the `tokenizers` library builds each family's
tokenizer.json on the spot, with the structure of the real one: GPT-2 (ByteLevel),
Qwen2 (NFC + Split regex + ByteLevel), Llama 3 (Split regex + ByteLevel, ignore_merges,
"<|begin_of_text|>" template), Llama 2 / TinyLlama (SentencePiece-style BPE with byte
fallback, Prepend/Replace normalizer, "<s>" template), Mistral v0.3 (Metaspace
pre-tokenizer); and GPT-2's real 50,257-token vocabulary from ../shared. Ids must equal
`tokenizers`' on generated text and on Tiny Shakespeare; what numpyllm writes must load in
`tokenizers` and `transformers` to the same ids; chat templates render as in `transformers`.
"""
import functools
import json
import os
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numpyllm.tokenizers import BPETokenizer, gpt2
from numpyllm.tokenizers.hf import load_hf_tokenizer, save_hf_tokenizer

tokenizers = pytest.importorskip("tokenizers")
transformers = pytest.importorskip("transformers")
pytest.importorskip("jinja2")
from tokenizers import (Regex, Tokenizer, decoders, models, normalizers,  # noqa: E402
                        pre_tokenizers, processors, trainers)

QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
         r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+"
          r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + "
          "message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt "
          "%}{{ '<|im_start|>assistant\n' }}{% endif %}")
SP = "\u2581"
BYTES = [f"<0x{b:02X}>" for b in range(256)]

CORPUS = ["First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.",
          "Hello world, it's 2024! Don't stop: naïve café, Привет мир, 日本語のテキスト 😀👍🏽.",
          "    indented code()\n\treturn x  # comment\r\n\n\n  trailing   spaces   ",
          "The quick brown fox jumps over the lazy dog 1234567890 times; THE END.",
          "I'll we're they've you'd she's IT'S ab12cd 3.14 x_y x-y (a) [b] {c} <d>"] * 4
SPECIAL_TEXTS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<s>", "</s>", "<unk>",
                 "<|begin_of_text|>", "<tool>", "[MASK]", "<0x41>", SP, " " + SP]
texts = st.lists(st.one_of(
    st.sampled_from([" ", "   ", "\n", "\n\n\n", "\t", " \n", "\r\n", "\u00a0", "\u3000",
                     "'s", "'T", "don't", "I'LL", "0", "42", "1234567", " 3.14", "٣٤", "😀",
                     "👨‍👩‍👧", "é", "e\u0301", "naïve", "日本語", "Привет", " Hello", "world",
                     "!!!", "...", "\x00", "\ufffd", "Ω", "ﬁ"] + SPECIAL_TEXTS),
    st.text(max_size=8),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=4)), max_size=25).map("".join)
shared_fixture = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


# ---------------------------------------------------------------------------- builders
def _train_byte_level(pre, specials, vocab_size=420, **model):
    tok = Tokenizer(models.BPE(**model))
    tok.pre_tokenizer = pre
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.decoder = decoders.ByteLevel()
    return tok


def gpt2_style():
    tok = _train_byte_level(pre_tokenizers.ByteLevel(add_prefix_space=False), ["<|endoftext|>"])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    # ordinary added tokens with each flag, matched in the raw or the normalized text
    tok.add_tokens([tokenizers.AddedToken("<tool>", single_word=True),
                    tokenizers.AddedToken("[MASK]", lstrip=True, rstrip=True, normalized=False),
                    tokenizers.AddedToken("fox", normalized=True)])
    return tok, {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>"}


def qwen2_style():
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok = _train_byte_level(pre, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tok.normalizer = normalizers.NFC()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok, {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                 "chat_template": CHATML}


def llama3_style():
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok = _train_byte_level(pre, ["<|begin_of_text|>", "<|end_of_text|>"], ignore_merges=True)
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
                                      special_tokens=[("<|begin_of_text|>", 0)])])
    return tok, {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}


def _sentencepiece(split_words: bool, string_merges: bool, metaspace: bool):
    """Llama 2's structure. Trained with a Metaspace pre-tokenizer (as SentencePiece cuts
    at spaces), or without one (merges then cross words: numpyllm's slow path)."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend(SP), normalizers.Replace(" ", SP)])
    if split_words:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="never", split=True)
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=450, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False))
    d = json.loads(tok.to_str())
    vocab = d["model"]["vocab"]
    ordered = ["<unk>", "<s>", "</s>"] + BYTES + [t for t in sorted(vocab, key=vocab.get)
                                                  if t not in ("<unk>", "<s>", "</s>")]
    d["model"]["vocab"] = {t: i for i, t in enumerate(ordered)}
    for a in d["added_tokens"]:
        a["id"] = d["model"]["vocab"][a["content"]]
    if string_merges:
        d["model"]["merges"] = [" ".join(m) for m in d["model"]["merges"]]
    if metaspace:             # Mistral v0.3: the Metaspace pre-tokenizer, no normalizer
        d["normalizer"] = None
        d["pre_tokenizer"] = {"type": "Metaspace", "replacement": SP, "prepend_scheme": "first",
                              "split": False}
        d["decoder"] = {"type": "Metaspace", "replacement": SP, "prepend_scheme": "first",
                        "split": False}
    else:
        d["pre_tokenizer"] = None
        d["decoder"] = json.loads(decoders.Sequence([
            decoders.Replace(SP, " "), decoders.ByteFallback(), decoders.Fuse(),
            decoders.Strip(" ", 1, 0)]).__getstate__())
    tok = Tokenizer.from_str(json.dumps(d))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s>:1 $B:1", special_tokens=[("<s>", 1)])
    return tok, {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                 "add_bos_token": True, "add_eos_token": False}


def smollm2_style():
    # trained without Digits, so that merges of digits exist for Digits to keep apart
    tok = _train_byte_level(pre_tokenizers.ByteLevel(add_prefix_space=False),
                            ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    return tok, {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}


def split_behaviours():
    """Every Split behaviour, invert, contiguous Digits and a prefix space, in one chain."""
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"[,;]"), behavior="removed"),
        pre_tokenizers.Split("-", behavior="merged_with_previous"),
        pre_tokenizers.Split(Regex(r"\s+"), behavior="merged_with_next"),
        pre_tokenizers.Split(Regex(r"[a-z]+"), behavior="merged_with_next", invert=True),
        pre_tokenizers.Split(Regex(r"[.!?]"), behavior="contiguous"),
        pre_tokenizers.Digits(individual_digits=False),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=False)])
    tok = _train_byte_level(pre, ["<|endoftext|>"])
    return tok, {"eos_token": "<|endoftext|>"}


def metaspace_always_split():
    # the vocabulary whose merges cross "▁", so that the split matters
    tok, config = _sentencepiece(False, False, True)
    d = json.loads(tok.to_str())
    d["pre_tokenizer"] = {"type": "Metaspace", "replacement": SP, "prepend_scheme": "always",
                          "split": True}
    d["decoder"]["prepend_scheme"] = "always"
    return Tokenizer.from_str(json.dumps(d)), config


FAMILIES = {
    "smollm2": smollm2_style, "split-behaviours": split_behaviours,
    "metaspace-always-split": metaspace_always_split,
    "gpt2": gpt2_style, "qwen2": qwen2_style, "llama3": llama3_style,
    "llama2": lambda: _sentencepiece(True, True, False),
    "llama2-crossing-merges": lambda: _sentencepiece(False, False, False),
    "mistral-metaspace": lambda: _sentencepiece(True, False, True),
}


def _write_dir(tok, config) -> str:
    d = tempfile.mkdtemp(prefix="numpyllm-hf-")
    tok.save(os.path.join(d, "tokenizer.json"))
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", **config}, f)
    return d


@functools.lru_cache(maxsize=None)
def family(name):
    """(directory, tokenizers' Tokenizer, numpyllm's HFTokenizer), built once."""
    tok, config = FAMILIES[name]()
    d = _write_dir(tok, config)
    return d, Tokenizer.from_file(os.path.join(d, "tokenizer.json")), load_hf_tokenizer(d)


@functools.lru_cache(maxsize=None)
def real_gpt2(enc, bpe):
    d = tempfile.mkdtemp(prefix="numpyllm-gpt2-")
    tok = Tokenizer(models.BPE.from_file(enc, bpe))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens(["<|endoftext|>"])
    tok.save(os.path.join(d, "tokenizer.json"))
    pair = os.path.join(d, "pair")        # the older vocab.json + merges.txt directory
    os.makedirs(pair)
    shutil.copy(enc, os.path.join(pair, "vocab.json"))
    shutil.copy(bpe, os.path.join(pair, "merges.txt"))
    with open(os.path.join(pair, "tokenizer_config.json"), "w") as f:
        json.dump({"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>",
                   "unk_token": "<|endoftext|>", "add_prefix_space": False}, f)
    return tok, load_hf_tokenizer(d), load_hf_tokenizer(pair)


def _same(ours, ref, text):
    expected = ref.encode(text).ids
    got = ours.encode(text, allowed_special="all")
    assert got == expected, (text, got, expected)
    for skip in (False, True):
        assert ours.decode(got, skip_special_tokens=skip) == ref.decode(
            expected, skip_special_tokens=skip), (text, skip)


# ------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("name", sorted(FAMILIES))
@settings(max_examples=60)
@given(text=texts)
def test_ids_equal_tokenizers_on_generated_text(name, text):
    _, ref, ours = family(name)
    _same(ours, ref, text)


@pytest.mark.parametrize("name", sorted(FAMILIES))
@settings(max_examples=30)
@given(text=texts)
def test_special_tokens_as_text_equal_encode_special_tokens(name, text):
    _, ref, ours = family(name)
    ref.encode_special_tokens = True
    try:
        expected = ref.encode(text).ids
    finally:
        ref.encode_special_tokens = False
    assert ours.encode(text, disallowed_special=()) == expected


@pytest.mark.parametrize("name", sorted(FAMILIES))
@settings(max_examples=40)
@given(data=st.data())
def test_decoding_any_ids_equals_tokenizers(name, data):
    # Ids no encoding gives: byte tokens that are not UTF-8, "▁" first, specials anywhere.
    _, ref, ours = family(name)
    ids = data.draw(st.lists(st.integers(0, ours.vocab_size - 1), max_size=12))
    for skip in (False, True):
        assert ours.decode(ids, skip_special_tokens=skip) == ref.decode(
            ids, skip_special_tokens=skip), (ids, skip)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_fixed_texts(name):
    _, ref, ours = family(name)
    for text in ["", " ", "  ", "\n", "<s>", "<s>hello", "hello<s>", " <s> x </s> ", SP,
                 SP + "a", "a" + SP + SP + "b", "[MASK]", " [MASK] x", "a<tool>b", "a <tool> b",
                 "<tool>", "fox", "afoxb", " <|im_start|>user\nHi<|im_end|>\n", "𝔘𝔫𝔦", "\x00",
                 "Hello world", "ＡＢＣ", "ℌ𝔢𝔩𝔩𝔬", "e\u0301\u0327"]:
        _same(ours, ref, text)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_ids_equal_tokenizers_on_tiny_shakespeare(name, shakespeare_path):
    _, ref, ours = family(name)
    text = shakespeare_path.read_text(encoding="utf-8")[:200_000]
    _same(ours, ref, text)


def test_real_gpt2_vocabulary(gpt2_files, shakespeare_path):
    ref, ours, pair = real_gpt2(*map(os.fspath, gpt2_files))
    text = shakespeare_path.read_text(encoding="utf-8")
    expected = ref.encode(text).ids
    assert ours.encode(text) == expected
    assert pair.encode(text) == expected
    assert ours.decode(expected) == text
    assert ours.encode("Hello world") == [15496, 995]
    assert pair.eos_token_id == 50256 and pair.special_tokens == {"<|endoftext|>": 50256}


@shared_fixture
@given(text=texts)
def test_real_gpt2_vocabulary_on_generated_text(gpt2_files, text):
    ref, ours, pair = real_gpt2(*map(os.fspath, gpt2_files))
    _same(ours, ref, text)
    assert pair.encode(text, allowed_special="all") == ref.encode(text).ids


# ----------------------------------------------------------------------------- saving
def _loaded_elsewhere(d):
    return (Tokenizer.from_file(os.path.join(d, "tokenizer.json")),
            transformers.AutoTokenizer.from_pretrained(d))


SAMPLES = ["", "Hello world", "  spaces\n\nand lines\t", "naïve 日本語 😀", "it's <|endoftext|>!",
           "<s>x</s>", "<|im_start|>user\nHi<|im_end|>", "a [MASK] b <tool> fox", SP + "x"]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_saved_directory_loads_to_the_same_ids(name, tmp_path):
    _, ref, ours = family(name)
    save_hf_tokenizer(ours, tmp_path)
    again = load_hf_tokenizer(tmp_path)
    tk, tf = _loaded_elsewhere(tmp_path)
    for text in SAMPLES + CORPUS[:5]:
        expected = ref.encode(text).ids
        assert ours.encode(text, allowed_special="all") == expected
        assert again.encode(text, allowed_special="all") == expected
        assert tk.encode(text).ids == expected
        assert tf(text)["input_ids"] == expected, (name, text)
        assert tf.decode(expected) == ours.decode(expected)


def _numpyllm_bpe(pattern):
    tok = BPETokenizer(pattern=pattern, special_tokens=["<|endoftext|>", "<|im_end|>"])
    return tok.train(CORPUS, vocab_size=400)


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4", "o200k"])
def test_numpyllm_bpe_saved_loads_to_the_same_ids(pattern, tmp_path):
    tok = _numpyllm_bpe(pattern)
    save_hf_tokenizer(tok, tmp_path)
    tk, tf = _loaded_elsewhere(tmp_path)
    ours = load_hf_tokenizer(tmp_path)
    for text in SAMPLES + CORPUS[:5]:
        expected = tok.encode(text, allowed_special="all")
        assert tk.encode(text).ids == expected, text
        assert tf(text)["input_ids"] == expected, text
        assert ours.encode(text, allowed_special="all") == expected
        assert tf.decode(expected) == tok.decode(expected)


def test_a_token_no_merge_reaches_keeps_its_id(tmp_path):
    # "abcd" is a token, but merging its bytes stops at [a, bc, d]: numpyllm (as tiktoken)
    # takes a chunk that is a token whole, so the export must set ignore_merges.
    ranks = {bytes([b]): b for b in range(256)} | {b"bc": 256, b"ab": 257, b"cd": 258,
                                                   b"abcd": 259}
    tok = BPETokenizer(ranks)
    assert tok.encode("abcd") == [259] and tok.encode("abcde")[:3] == [97, 256, 100]
    save_hf_tokenizer(tok, tmp_path)
    tk, tf = _loaded_elsewhere(tmp_path)
    for text in ["abcd", "abcde", " abcd"]:
        assert tk.encode(text).ids == tf(text)["input_ids"] == tok.encode(text)


@settings(max_examples=40)
@given(text=texts)
def test_numpyllm_bpe_saved_on_generated_text(text):
    tok, tk = _saved_numpyllm_bpe()
    assert tk.encode(text).ids == tok.encode(text, allowed_special="all")


@functools.lru_cache(maxsize=None)
def _saved_numpyllm_bpe():
    tok = _numpyllm_bpe("gpt4")
    d = tempfile.mkdtemp(prefix="numpyllm-bpe-")
    save_hf_tokenizer(tok, d)
    return tok, Tokenizer.from_file(os.path.join(d, "tokenizer.json"))


def test_gpt2_from_published_files_saved_loads_to_the_same_ids(gpt2_files, tmp_path,
                                                               shakespeare_path):
    tok = BPETokenizer.from_gpt2(*gpt2_files)
    save_hf_tokenizer(tok, tmp_path)
    tk, tf = _loaded_elsewhere(tmp_path)
    text = shakespeare_path.read_text(encoding="utf-8")[:100_000] + "<|endoftext|>"
    expected = tok.encode(text, allowed_special="all")
    assert tk.encode(text).ids == expected
    assert tf(text)["input_ids"] == expected
    assert tf.eos_token_id == 50256


# ------------------------------------------------------------------------ chat template
MESSAGES = [{"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Hi! <|im_end|> is text here"},
            {"role": "assistant", "content": "Hello.\n\nHow can I help?"}]


@pytest.mark.parametrize("template", [CHATML, (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] "
    "| trim }} [/INST]{% elif m['role'] == 'system' %}<<SYS>>{{ m['content'] }}<</SYS>>"
    "{% else %} {{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"), (
    "{%- for m in messages %}\n  {%- if loop.first %}{{ m | tojson }}{% endif %}\n"
    "  {{- m.role | upper }}: {{ m.content }}\n{%- endfor %}\n"
    "{%- if add_generation_prompt %}ASSISTANT:{% endif %}"), (
    "{% for m in messages %}\n    {% if m.role == 'user' %}\n<user>{{ m.content }}\n"
    "    {% else %}\n<{{ m.role }}>{{ m.content }}\n    {% endif %}\n{% endfor %}\n"
    "{% if add_generation_prompt %}\n<assistant>\n{% endif %}")])
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_chat_template_renders_as_transformers(template, add_generation_prompt, tmp_path):
    d, _, _ = family("qwen2")
    shutil.copytree(d, tmp_path, dirs_exist_ok=True)
    config_path = tmp_path / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.update(chat_template=template, bos_token="<|endoftext|>")
    config_path.write_text(json.dumps(config))
    ours = load_hf_tokenizer(tmp_path)
    tf = transformers.AutoTokenizer.from_pretrained(tmp_path)
    for messages in (MESSAGES, MESSAGES[1:2]):
        kw = dict(add_generation_prompt=add_generation_prompt)
        text = tf.apply_chat_template(messages, tokenize=False, **kw)
        assert ours.apply_chat_template(messages, **kw) == text
        assert ours.apply_chat_template(messages, tokenize=True, **kw) == tf.encode(
            text, add_special_tokens=False)
