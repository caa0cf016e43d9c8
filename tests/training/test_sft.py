"""Instruction tuning (SFT): the Alpaca format, reading instruction files strictly, and the
masking as properties: prompt and padding targets never count, the loss is the mean
cross-entropy of the response tokens alone."""
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm import no_grad
from numpyllm.data.instruction import (Instructions, alpaca_prompt, encode_instructions,
                                       read_instructions, split_examples)
from numpyllm.nn import GPT, GPTConfig
from numpyllm.tokenizers import BPETokenizer, CharTokenizer
from numpyllm.training.objectives import InstructionTuning

PAD, EOS = 17, 19


def gpt(T=24):
    return GPT(GPTConfig(vocab_size=20, block_size=T, n_layer=2, n_head=2, n_embd=8,
                         dtype="float64"), rng=0)


examples_st = st.lists(st.tuples(st.integers(1, 6), st.integers(1, 6)), min_size=1, max_size=5)


def data_of(shapes, seed=0):
    rng = np.random.default_rng(seed)
    prompts = [rng.integers(0, 16, size=p) for p, _ in shapes]
    responses = [np.append(rng.integers(0, 16, size=r - 1), EOS) for _, r in shapes]
    return Instructions(prompts, responses, [{}] * len(shapes))


@given(shapes=examples_st, train_on_prompt=st.sampled_from([0, 1]))
def test_exactly_the_response_targets_count(shapes, train_on_prompt):
    data = data_of(shapes)
    obj = InstructionTuning(pad_id=PAD, train_on_prompt=train_on_prompt)
    batch = obj.make_batch(data, np.arange(len(shapes)))
    x, y = batch["x"], batch["y"]
    for i, (p, r) in enumerate(shapes):
        row = np.concatenate([data.prompts[i], data.responses[i]])
        n = len(row) - 1                                   # real positions of x
        np.testing.assert_array_equal(x[i, :n + 1], row[:x.shape[1]][:n + 1])
        assert (x[i, n + 1:] == PAD).all()           # a shorter row: its last token, then pad
        first = 0 if train_on_prompt else p - 1            # last prompt token predicts r0
        expected = np.full(y.shape[1], -100)
        expected[first:n] = row[first + 1:]
        np.testing.assert_array_equal(y[i], expected)
        assert batch.counts[i] == n - first == (len(row) - 1 if train_on_prompt else r)


def manual_response_loss(model, data):
    """Mean cross-entropy of every response token given all before it, one example at a
    time, without padding: the definition, by hand."""
    total, count = 0.0, 0
    for p, r in zip(data.prompts, data.responses):
        row = np.concatenate([p, r])
        with no_grad():
            logits = model(row[None, :-1])[0].data[0]     # [L-1, V]
        logp = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1,
                               keepdims=True)) - logits.max(1, keepdims=True)
        for t in range(len(p) - 1, len(row) - 1):
            total -= logp[t, row[t + 1]]
            count += 1
    return total / count


@given(shapes=examples_st, pad=st.integers(0, 19))
def test_the_loss_is_the_response_cross_entropy_whatever_the_padding(shapes, pad):
    model, data = gpt(), data_of(shapes, seed=1)
    obj = InstructionTuning(pad_id=pad)
    with no_grad():
        loss = obj.loss(model, obj.make_batch(data, np.arange(len(shapes)))).item()
    assert abs(loss - manual_response_loss(model, data)) < 1e-10


def test_the_prompt_is_context_not_target():
    model, data = gpt(), data_of([(4, 3), (2, 5)])
    obj = InstructionTuning(pad_id=PAD)
    with no_grad():
        before = obj.loss(model, obj.make_batch(data, np.arange(2))).item()
        data.prompts[0][1] = (data.prompts[0][1] + 1) % 16       # other context
        after = obj.loss(model, obj.make_batch(data, np.arange(2))).item()
    assert before != after


def test_max_length_cuts_the_response_and_refuses_a_prompt_with_nothing_after_it():
    data = data_of([(3, 6)])
    obj = InstructionTuning(pad_id=PAD, max_length=5)
    batch = obj.make_batch(data, np.array([0]))
    assert batch["x"].shape == (1, 4) and batch.counts[0] == 2
    with pytest.raises(ValueError, match="example 0: its prompt is 3 tokens"):
        InstructionTuning(pad_id=PAD, max_length=3).dataset(data)
    with pytest.raises(ValueError, match="train_on_prompt must be 0 or 1"):
        InstructionTuning(train_on_prompt=2)


BOOK_PROMPT = ("Below is an instruction that describes a task. Write a response that "
               "appropriately completes the request.\n\n### Instruction:\nIdentify the "
               "correct spelling of the following word.\n\n### Input:\nOcassion\n\n"
               "### Response:\n")


def test_the_alpaca_prompt_is_the_books():
    assert alpaca_prompt({"instruction": "Identify the correct spelling of the following "
                          "word.", "input": "Ocassion"}) == BOOK_PROMPT
    assert "### Input:" not in alpaca_prompt({"instruction": "Name a color.", "input": ""})


def test_encoding_keeps_prompt_and_response_apart_and_ends_with_eos():
    tok = CharTokenizer.from_text(BOOK_PROMPT + "The correct spelling is 'Occasion.'",
                                  special_tokens=["<|endoftext|>"])
    ex = {"instruction": "Identify the correct spelling of the following word.",
          "input": "Ocassion", "output": "The correct spelling is 'Occasion.'"}
    enc = encode_instructions(tok, [ex])
    assert tok.decode(enc.prompts[0].tolist()) == BOOK_PROMPT
    assert tok.decode(enc.responses[0].tolist()) == ex["output"] + "<|endoftext|>"
    cut = encode_instructions(tok, [ex], max_length=len(BOOK_PROMPT) + 3)
    assert len(cut.responses[0]) == 3
    with pytest.raises(ValueError, match="not shorter than max_length"):
        encode_instructions(tok, [ex], max_length=len(BOOK_PROMPT))
    with pytest.raises(ValueError, match="no end token"):
        encode_instructions(CharTokenizer.from_text(BOOK_PROMPT + ex["output"]), [ex])


@pytest.mark.parametrize("content, match", [
    ("[]", "non-empty JSON list"), ('{"a": 1}', "non-empty JSON list"),
    ('[{"instruction": "x"}]', "example 0: the field 'output' is missing"),
    ('[{"instruction": "x", "output": 3}]', "example 0: output: expected a string"),
    ('[{"instruction": " ", "output": "y"}]', "example 0: instruction: empty"),
    ('[{"instruction": "x", "output": "y"}, 7]', "example 1: expected an object"),
    ('[{"instruction": "x", "output": NaN}]', "expected strict JSON"),
])
def test_a_malformed_instruction_file_is_one_clear_error(tmp_path, content, match):
    path = tmp_path / "data.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=match) as info:
        read_instructions(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@given(n=st.integers(1, 60), seed=st.integers(0, 9))
def test_splits_partition_the_examples(n, seed):
    parts = split_examples(list(range(n)), (0.85, 0.1, 0.05), seed=seed)
    assert sorted(sum(parts, [])) == list(range(n))
    assert len(parts[0]) == int(0.85 * n) and len(parts[1]) == int(0.1 * n)
    assert parts == split_examples(list(range(n)), (0.85, 0.1, 0.05), seed=seed)


def test_the_books_1100_examples_read_and_encode_with_gpt2s_vocabulary(instruction_path,
                                                                       gpt2_files):
    examples = read_instructions(instruction_path)
    assert len(examples) == 1100
    tok = BPETokenizer.from_gpt2(*gpt2_files)
    train, test, val = split_examples(examples, (0.85, 0.1, 0.05))
    assert (len(train), len(test), len(val)) == (935, 110, 55)      # the book's split sizes
    enc = encode_instructions(tok, train)
    assert all(r[-1] == 50256 for r in enc.responses)
    assert json.dumps(enc.examples[0])           # the examples ride along, unchanged


def test_an_sft_run_learns_the_task_and_writes_its_responses_beside_the_references(tmp_path):
    """A tiny GPT tuned on 'reverse these letters' answers held-out prompts exactly,
    batch-generated with the KV cache, and the JSON file holds each reference and
    response."""
    from numpyllm.generate import respond, write_responses
    from numpyllm.training import TrainConfig, Trainer
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcde"), size=rng.integers(2, 5))) for _ in range(400)]
    examples = [{"instruction": w, "input": "", "output": w[::-1]} for w in sorted(set(words))]
    tok = CharTokenizer.from_text("abcde>", special_tokens=["<|endoftext|>"])
    eos = tok.special_tokens["<|endoftext|>"]
    short = Instructions([np.array(tok.encode(ex["instruction"] + ">")) for ex in examples],
                         [np.array(tok.encode(ex["output"]) + [eos]) for ex in examples],
                         examples)                  # a short format for a tiny model: "abc>"
    train, test = split_examples(list(range(len(short))), (0.8, 0.2), seed=1)
    part = lambda idx: Instructions([short.prompts[i] for i in idx],    # noqa: E731
                                    [short.responses[i] for i in idx],
                                    [short.examples[i] for i in idx])
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=12, n_layer=2, n_head=2,
                          n_embd=32), rng=0)
    Trainer(model, part(train), part(test),
            TrainConfig(batch_size=16, max_iters=600, warmup_iters=20, lr_decay_iters=600,
                        learning_rate=3e-3, eval_interval=10_000),
            objective=InstructionTuning(pad_id=0)).fit()
    held_out = part(test)
    responses = respond(model, tok, held_out, max_new_tokens=6)
    right = sum(r == ex["output"] for r, ex in zip(responses, held_out.examples))
    assert right >= 0.8 * len(held_out), (right, len(held_out), responses[:5])
    write_responses(tmp_path / "test.json", held_out.examples, responses)
    rows = json.loads((tmp_path / "test.json").read_text())
    assert [r["model_response"] for r in rows] == responses
    assert [r["output"] for r in rows] == [ex["output"] for ex in held_out.examples]


@given(shapes=examples_st, train_on_prompt=st.sampled_from([0, 1]),
       max_length=st.integers(12, 30))
def test_packing_gives_the_loss_of_the_examples_alone(shapes, train_on_prompt, max_length):
    """Packed rows (several examples each, kept apart by segments) give the same
    per-token losses as the examples padded one per row: the same mean."""
    model, data = gpt(T=32), data_of(shapes, seed=2)
    rows = np.arange(len(shapes))
    plain = InstructionTuning(pad_id=PAD, train_on_prompt=train_on_prompt,
                              max_length=max_length)
    packed = InstructionTuning(pad_id=PAD, train_on_prompt=train_on_prompt,
                               max_length=max_length, pack=1)
    a, b = plain.make_batch(data, rows), packed.make_batch(data, rows)
    assert a.counts.sum() == b.counts.sum() and len(b) <= len(a)
    assert b["x"].shape[1] <= max_length - 1
    with no_grad():
        assert abs(plain.loss(model, a).item() - packed.loss(model, b).item()) < 1e-10
    with pytest.raises(ValueError, match="packing needs max_length"):
        InstructionTuning(pack=1)
