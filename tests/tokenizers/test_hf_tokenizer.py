"""numpyllm.tokenizers.hf without the reference libraries: the interface, round trips through
numpyllm's own files, and hostile directories (each one clear line naming file and field).
The comparison with `tokenizers` and `transformers` is tests/oracle/test_hf_tokenizers.py."""
import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm.tokenizers import (BPETokenizer, CharTokenizer, DisallowedSpecialTokenError,
                                 HFTokenizer, TokenizerError, UnknownTokenIdError,
                                 UnsupportedTokenizerError, VocabularyFileError,
                                 load_hf_tokenizer, save_hf_tokenizer)
from numpyllm.tokenizers.chat_template import ChatTemplateError

SP = "\u2581"
BYTES = {f"<0x{b:02X}>": 3 + b for b in range(256)}


def llama_json():
    """A tiny tokenizer.json with Llama 2's structure, written by hand."""
    words = ["▁", "l", "o", "w", "e", "r", "lo", "▁lo", "▁low", "er", "▁lower", "H", "i", "▁H",
             "▁Hi"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **BYTES}
    vocab.update({w: 259 + i for i, w in enumerate(words)})
    special = dict(single_word=False, lstrip=False, rstrip=False, normalized=False, special=True)
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": c, **special}
                         for i, c in enumerate(["<unk>", "<s>", "</s>"])],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": SP},
            {"type": "Replace", "pattern": {"String": " "}, "content": SP}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [], "special_tokens": {
                               "<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SP}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab,
                  "merges": ["l o", "▁ lo", "▁lo w", "e r", "▁low er", "▁ H", "▁H i"]},
    }


CONFIG = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": None,
          "chat_template": "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}"
                           "{{ eos_token }}{% endfor %}"}


def write(d, tokenizer=None, config=None, **files):
    d.mkdir(exist_ok=True)
    if tokenizer is not None:
        (d / "tokenizer.json").write_text(tokenizer if isinstance(tokenizer, str)
                                          else json.dumps(tokenizer), encoding="utf-8")
    if config is not None:
        (d / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    for name, text in files.items():
        (d / name.replace("_", ".", 1)).write_text(text, encoding="utf-8")
    return d


@pytest.fixture
def llama(tmp_path):
    return load_hf_tokenizer(write(tmp_path / "llama", llama_json(), CONFIG))


# ------------------------------------------------------------------------ the interface
def test_llama_style_encoding_and_decoding(llama):
    assert llama.vocab_size == 274
    assert (llama.bos_token_id, llama.eos_token_id, llama.unk_token_id,
            llama.pad_token_id) == (1, 2, 0, None)
    assert llama.add_bos and not llama.add_eos
    assert llama.special_tokens == {"<unk>": 0, "<s>": 1, "</s>": 2}
    ids = llama.encode("Hi lower")
    assert [llama.id_to_token(i) for i in ids] == ["<s>", "▁Hi", "▁lower"]
    assert llama.decode(ids) == "<s> Hi lower"
    assert llama.decode(ids, skip_special_tokens=True) == "Hi lower"
    # "é" has no token: its two UTF-8 bytes; "!" none either
    ids = llama.encode("lé!", add_special_tokens=False)
    assert [llama.id_to_token(i) for i in ids] == ["▁", "l", "<0xC3>", "<0xA9>", "<0x21>"]
    assert llama.decode(ids) == "lé!"
    assert llama.decode_bytes(ids) == " lé!".encode()


def test_special_tokens_follow_numpyllms_rule(llama):
    with pytest.raises(DisallowedSpecialTokenError, match="'</s>'"):
        llama.encode("low</s>")
    assert llama.encode("low</s>", allowed_special="all")[-1] == 2
    as_text = llama.encode("low</s>", disallowed_special=())
    assert 2 not in as_text and llama.decode(as_text) == "<s> low</s>"
    assert llama.encode_ordinary("low") == llama.encode("low")[1:]


def test_unknown_ids_and_types_are_errors(llama):
    with pytest.raises(UnknownTokenIdError, match="token id 9999 at position 1"):
        llama.decode([1, 9999])
    with pytest.raises(TypeError):
        llama.encode(b"bytes")
    with pytest.raises(TokenizerError, match="not a token"):
        llama.token_to_id("nope")


def test_chat_template(llama):
    pytest.importorskip("jinja2", reason="chat templates need the chat extra (jinja2)")
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "low"}]
    assert llama.apply_chat_template(msgs) == "[user] Hi</s>[assistant] low</s>"
    ids = llama.apply_chat_template(msgs, tokenize=True)
    assert ids.count(2) == 2 and ids[0] != 1        # no <s> added: the template decides


def test_a_chat_template_cannot_reach_python_internals(tmp_path):
    for template in ["{{ ''.__class__ }}", "{{ ''.__class__.__mro__[1].__subclasses__() }}",
                     "{{ messages.append(1) }}", "{{ raise_exception('no') }}",
                     "{% for %}", "{{ 1 / 0 }}"]:
        tok = load_hf_tokenizer(write(tmp_path / "t", llama_json(),
                                      dict(CONFIG, chat_template=template)))
        with pytest.raises(ChatTemplateError) as info:
            tok.apply_chat_template([{"role": "user", "content": "x"}])
        assert "\n" not in str(info.value) and "chat template" in str(info.value)


def test_chat_needs_jinja2_only_when_rendering(llama, monkeypatch):
    from numpyllm.tokenizers import chat_template
    chat_template._compile.cache_clear()
    monkeypatch.setitem(sys.modules, "jinja2", None)
    with pytest.raises(ChatTemplateError, match=r"pip install numpyllm\[chat\]"):
        llama.apply_chat_template([{"role": "user", "content": "x"}])
    chat_template._compile.cache_clear()


def test_import_numpyllm_imports_neither_jinja2_nor_tokenizers():
    code = ("import sys, numpyllm, numpyllm.tokenizers.hf; "
            "print(sorted(m for m in ('jinja2', 'tokenizers', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -------------------------------------------------------------------------- round trips
def _bpe():
    return BPETokenizer(pattern="gpt4", special_tokens=["<|endoftext|>", "<|im_end|>"]).train(
        "the cat sat on the mat; the end. 1234 naïve 😀\n\n  x" * 5, vocab_size=300)


@pytest.fixture(scope="module")
def bpe_pair(tmp_path_factory):
    tok = _bpe()
    d = tmp_path_factory.mktemp("bpe")
    save_hf_tokenizer(tok, d)
    return tok, load_hf_tokenizer(d), d


@given(st.text(max_size=40) | st.sampled_from(["<|endoftext|>x<|im_end|>", "the cat", ""]))
def test_saved_bpe_tokenizer_gives_numpyllms_ids(bpe_pair, text):
    tok, hf, _ = bpe_pair
    ids = tok.encode(text, allowed_special="all")
    assert hf.encode(text, allowed_special="all") == ids
    assert hf.decode(ids) == tok.decode(ids)
    assert hf.decode_bytes(ids) == tok.decode_bytes(ids)


def test_saved_directory_files(bpe_pair, tmp_path):
    tok, hf, d = bpe_pair
    assert sorted(p.name for p in d.iterdir()) == ["merges.txt", "tokenizer.json",
                                                   "tokenizer_config.json", "vocab.json"]
    config = json.loads((d / "tokenizer_config.json").read_text())
    assert config["eos_token"] == "<|endoftext|>" and config["add_bos_token"] is False
    # the GPT-2 pair alone gives the same ordinary ids (gpt2 pattern only: the pair has no regex)
    gpt2_style = BPETokenizer().train("the cat sat on the mat " * 5, vocab_size=270)
    save_hf_tokenizer(gpt2_style, tmp_path / "full")
    pair = tmp_path / "pair"
    pair.mkdir()
    for name in ("vocab.json", "merges.txt"):
        (pair / name).write_bytes((tmp_path / "full" / name).read_bytes())
    assert load_hf_tokenizer(pair).encode("the mat") == gpt2_style.encode("the mat")
    # saving what was loaded writes the same tokenizer.json
    save_hf_tokenizer(hf, tmp_path / "again")
    assert (json.loads((tmp_path / "again" / "tokenizer.json").read_text())
            == json.loads((d / "tokenizer.json").read_text()))


def test_llama_round_trip(llama, tmp_path):
    llama.save(tmp_path)
    again = load_hf_tokenizer(tmp_path)
    for text in ["Hi lower", "", "lé! <s>"]:
        assert again.encode(text, allowed_special="all") == llama.encode(
            text, allowed_special="all")
    assert again.chat_template == llama.chat_template and again.add_bos


def test_char_tokenizer_is_refused(tmp_path):
    with pytest.raises(TokenizerError, match="CharTokenizer"):
        save_hf_tokenizer(CharTokenizer.from_text("abc"), tmp_path)


def test_tiny_shakespeare_encodes_in_seconds(shakespeare_path, bpe_pair):
    # Not a timing assertion: it would take minutes without the word cache.
    text = shakespeare_path.read_text(encoding="utf-8")
    tok, hf, _ = bpe_pair
    assert hf.encode(text) == tok.encode(text)


# ---------------------------------------------------------------------- hostile files
def _mutate(path_and_value):
    d = llama_json()
    for path, value in path_and_value:
        node = d
        for key in path[:-1]:
            node = node[key]
        if value is KeyError:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return d


HOSTILE = [
    ('{"model": {"type": "BPE", "vocab": {"a": 0}', "tokenizer.json", "not valid JSON"),
    ('{"model": 1e999}', "tokenizer.json", "does not fit"),
    ('{"a": 1, "a": 2}', "tokenizer.json", "appears twice"),
    ("[1, 2]", "tokenizer.json", "expected object"),
    (_mutate([(("model", "type"), "WordLevel")]), "model.type", "not supported"),
    (_mutate([(("model", "vocab"), [1, 2])]), "model.vocab", "expected object"),
    (_mutate([(("model", "vocab", "l"), 10 ** 40)]), "model.vocab['l']", "expected an id"),
    (_mutate([(("model", "vocab", "l"), "3")]), "model.vocab['l']", "expected integer"),
    (_mutate([(("model", "vocab", "l"), 5)]), "model.vocab['l']", "already the id"),
    (_mutate([(("model", "vocab", "l"), True)]), "model.vocab['l']", "expected integer"),
    (_mutate([(("model", "merges"), ["l o", "x y"])]), "model", "'x' is not a token"),
    (_mutate([(("model", "merges"), ["l o z"])]), "model.merges[0]", "'left right'"),
    (_mutate([(("model", "merges"), [["l"]])]), "model.merges[0]", "pair"),
    (_mutate([(("model", "merges"), None)]), "model.merges", "expected array"),
    (_mutate([(("model", "dropout"), 0.1)]), "model.dropout", "random"),
    (_mutate([(("model", "continuing_subword_prefix"), "##")]), "continuing_subword_prefix",
     "not supported"),
    (_mutate([(("model", "unk_token"), "<nope>")]), "model", "unknown token"),
    (_mutate([(("model",), KeyError)]), "model", "missing"),
    (_mutate([(("normalizer",), {"type": "Precompiled"})]), "normalizer.type", "not supported"),
    (_mutate([(("normalizer", "normalizers", 0, "prepend"), 7)]),
     "normalizer.normalizers[0].prepend", "expected string"),
    (_mutate([(("pre_tokenizer",), {"type": "Split", "pattern": {"Regex": "(a+)+$"},
                                    "behavior": "Isolated", "invert": False})]),
     "pre_tokenizer.pattern.Regex", "refused"),
    (_mutate([(("pre_tokenizer",), {"type": "Split", "pattern": {"Regex": "(?P<x>a)(?P=x)"},
                                    "behavior": "Isolated", "invert": False})]),
     "pre_tokenizer.pattern.Regex", "refused"),
    (_mutate([(("pre_tokenizer",), {"type": "Split", "pattern": {"String": " "},
                                    "behavior": "Sideways"})]), "pre_tokenizer.behavior",
     "Isolated"),
    (_mutate([(("pre_tokenizer",), {"type": "CharDelimiterSplit"})]), "pre_tokenizer.type",
     "not supported"),
    (_mutate([(("decoder",), {"type": "CTC"})]), "decoder.type", "not supported"),
    (_mutate([(("decoder", "decoders", 3, "start"), "1")]), "decoder.decoders[3].start",
     "expected integer"),
    (_mutate([(("post_processor",), {"type": "RobertaProcessing"})]), "post_processor.type",
     "not supported"),
    (_mutate([(("post_processor", "special_tokens", "<s>", "ids"), [99999])]),
     "post_processor.special_tokens.<s>.ids[0]", "neither"),
    (_mutate([(("truncation",), {"max_length": 5})]), "truncation", "not supported"),
    (_mutate([(("added_tokens", 1, "id"), 0)]), "added_tokens '<s>'", "already the id"),
    (_mutate([(("added_tokens", 1, "id"), 300)]), "added_tokens '<s>'", "gives this token id 1"),
    (_mutate([(("added_tokens", 1, "id"), 260)]), "added_tokens '<s>'", "vocabulary token 'l'"),
    (_mutate([(("added_tokens", 1, "special"), "yes")]), "added_tokens[1].special",
     "expected boolean"),
    (_mutate([(("added_tokens", 1, "content"), "")]), "added_tokens[1].content", "1 to"),
]


@pytest.mark.parametrize("content, field, message", HOSTILE,
                         ids=[f"{i}-{h[1]}" for i, h in enumerate(HOSTILE)])
def test_hostile_tokenizer_json_is_one_clear_error(tmp_path, content, field, message):
    with pytest.raises(VocabularyFileError) as info:
        load_hf_tokenizer(write(tmp_path / "d", content))
    text = str(info.value)
    assert "\n" not in text and "tokenizer.json" in text and field in text and message in text, text


HOSTILE_CONFIG = [
    ({"bos_token": 5}, "bos_token", "expected string"),
    ({"bos_token": {"content": 5}}, "bos_token.content", "expected string"),
    ({"chat_template": 5}, "tokenizer_config.json", "chat_template"),
    ({"add_bos_token": "yes"}, "add_bos_token", "expected boolean"),
    ({"added_tokens_decoder": {"x": {"content": "a"}}}, "added_tokens_decoder['x']", "an id"),
    ({"added_tokens_decoder": {"5": {"content": "<s>"}}}, "added_tokens_decoder['5']",
     "gives it 1"),
    ({"additional_special_tokens": "<s>"}, "additional_special_tokens", "expected array"),
]


@pytest.mark.parametrize("config, field, message", HOSTILE_CONFIG)
def test_hostile_tokenizer_config_is_one_clear_error(tmp_path, config, field, message):
    with pytest.raises(VocabularyFileError) as info:
        load_hf_tokenizer(write(tmp_path / "d", llama_json(), config))
    text = str(info.value)
    assert "\n" not in text and "tokenizer_config.json" in text and field in text and \
        message in text, text


def test_hostile_directories(tmp_path, monkeypatch):
    with pytest.raises(VocabularyFileError, match="not a directory"):
        load_hf_tokenizer(tmp_path / "missing")
    with pytest.raises(VocabularyFileError, match="no tokenizer.json"):
        load_hf_tokenizer(write(tmp_path / "empty"))
    bad = write(tmp_path / "pair", vocab_json='{"a": 0, "b": 1}', merges_txt="#version: 0.2\na b c\n")
    with pytest.raises(VocabularyFileError, match=r"merges.txt:2: expected a merge"):
        load_hf_tokenizer(bad)
    bad = write(tmp_path / "pair2", vocab_json='{"a": 0, "b": 1}', merges_txt="a b\n")
    with pytest.raises(VocabularyFileError, match="'ab' is not a token"):
        load_hf_tokenizer(bad)
    bad = write(tmp_path / "utf", "{}")
    (bad / "tokenizer.json").write_bytes(b'{"model": "\xff"}')
    with pytest.raises(VocabularyFileError, match="UTF-8"):
        load_hf_tokenizer(bad)
    from numpyllm.tokenizers import hf_files
    monkeypatch.setattr(hf_files, "MAX_FILE_BYTES", 100)
    with pytest.raises(VocabularyFileError, match="larger than 100 bytes"):
        load_hf_tokenizer(write(tmp_path / "big", llama_json()))


def test_an_empty_object_is_a_missing_model(tmp_path):
    with pytest.raises(VocabularyFileError, match=r"tokenizer.json.model: missing"):
        load_hf_tokenizer(write(tmp_path / "d", "{}"))


def test_unsupported_is_a_vocabulary_file_error(tmp_path):
    with pytest.raises(UnsupportedTokenizerError):
        load_hf_tokenizer(write(tmp_path / "d", _mutate([(("model", "type"), "WordLevel")])))
    assert issubclass(UnsupportedTokenizerError, ValueError)


def test_hf_tokenizer_from_bpe_keeps_ids():
    tok = _bpe()
    hf = HFTokenizer.from_bpe(tok)
    assert hf.vocab_size == tok.vocab_size and hf.special_tokens == tok.special_tokens
    assert hf.encode("the end<|im_end|>", allowed_special="all") == tok.encode(
        "the end<|im_end|>", allowed_special="all")


@pytest.mark.parametrize("name", ["hf", "hf_files", "hf_pipeline", "added_tokens",
                                  "sentencepiece_bpe", "chat_template"])
def test_docstring_examples(name):
    if name == "chat_template":
        pytest.importorskip("jinja2", reason="chat templates need the chat extra (jinja2)")
    import doctest
    import importlib
    module = importlib.import_module(f"numpyllm.tokenizers.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and (result.attempted > 0 or name == "hf_files")


# ---------------------------------------------------------------------------------- fuzz
def _leaves(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node[:6]):
            yield from _leaves(v, path + (i,))
    yield path


_PATHS = [p for p in _leaves(llama_json()) if p]
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=False,
                                                                          allow_infinity=False)
    | st.text(max_size=6) | st.sampled_from(["BPE", "Sequence", "ByteLevel", SP, "<s>", "l o"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["type", "id", "content", "vocab", "merges", "pattern"]) | st.text(max_size=4),
        inner, max_size=3), max_leaves=6)


def _loads_or_one_line_error(d):
    try:
        tok = load_hf_tokenizer(d)
    except VocabularyFileError as exc:
        assert "\n" not in str(exc) and str(d) in str(exc), str(exc)
        return
    tok.decode(tok.encode("Hi lower lé <s>", allowed_special="all"))


@given(path=st.sampled_from(_PATHS), value=_JSON_VALUES)
def test_fuzz_a_field_of_tokenizer_json(tmp_path_factory, path, value):
    d = tmp_path_factory.mktemp("fuzz")
    _loads_or_one_line_error(write(d, _mutate([(path, value)]), CONFIG))


@given(cut=st.integers(0, len(json.dumps(llama_json())) - 1))
def test_fuzz_truncated_tokenizer_json(tmp_path_factory, cut):
    d = tmp_path_factory.mktemp("cut")
    write(d, json.dumps(llama_json())[:cut], CONFIG)
    with pytest.raises(VocabularyFileError, match="tokenizer.json"):
        load_hf_tokenizer(d)
