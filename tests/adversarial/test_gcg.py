"""GCG and its random-search baseline: the batched evaluation is the model's own loss,
proposals stay inside the allowed tokens, the search never ends above its start, GCG
beats random search on a tiny trained model, seeds reproduce, bad input is one error."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from numpyllm.adversarial import (SuffixTask, allowed_tokens, gcg, gcg_candidates,
                                  random_candidates, random_search)
from numpyllm.autograd import Tensor, no_grad
from numpyllm.checks.case import perturb
from numpyllm.generate import generate
from numpyllm.nn import Llama, LlamaConfig
from numpyllm.nn.gpt import GPT, GPTConfig
from numpyllm.optim import AdamW
from numpyllm.tokenizers import CharTokenizer

V = 13


def _gpt(seed=0, dtype="float64", block=16):
    model = GPT(GPTConfig(vocab_size=V, block_size=block, n_layer=1, n_head=2, n_embd=16,
                          dtype=dtype), rng=seed)
    return perturb(model, np.random.default_rng(seed + 1), 0.2)


def _llama(seed=0):
    model = Llama(LlamaConfig(vocab_size=V, block_size=16, n_layer=1, n_head=2, n_kv_head=1,
                              n_embd=16, intermediate_size=24, dtype="float64"), rng=seed)
    return perturb(model, np.random.default_rng(seed + 1), 0.2)


@pytest.fixture(scope="module")
def toy():
    """A GPT trained 150 steps on four repeated sentences (a few seconds): a model with
    something to say, so that a suffix has real work to do."""
    rng = np.random.default_rng(0)
    words = ["the cat sat on a mat", "a dog ran to the box", "my hen ate the corn",
             "one fox hid in a den"]
    text = ". ".join(words[i] for i in rng.integers(0, 4, 400)) + "."
    tok = CharTokenizer.from_text(text)
    data = np.array(tok.encode(text))
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2,
                          n_embd=32), rng=0)
    opt = AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(150):
        at = rng.integers(0, len(data) - 33, 16)
        x = np.stack([data[j:j + 32] for j in at])                      # [16, 32]
        y = np.stack([data[j + 1:j + 33] for j in at])
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model, tok


# ---------------------------------------------------------------------- the evaluation
@pytest.mark.parametrize("family", [_gpt, _llama])
def test_batched_evaluation_is_the_models_loss_one_by_one(family):
    model = family()
    rng = np.random.default_rng(0)
    task = SuffixTask(model, prompt=[1, 2, 3], target=[4, 5, 6, 7], k=5, chunk=3)
    suffixes = rng.integers(0, V, (7, 5))                 # 7 rows in chunks of 3
    losses, success = task.evaluate(suffixes)
    for s, loss, won in zip(suffixes, losses, success):
        ids = np.concatenate([[1, 2, 3], s, [4, 5, 6, 7]])
        with no_grad():
            logits, expected = model(ids[None, :-1], targets=np.r_[[-100] * 7, [4, 5, 6, 7]])
        np.testing.assert_allclose(loss, expected.item(), rtol=1e-12)
        assert won == bool((logits.data[0, 7:].argmax(-1) == [4, 5, 6, 7]).all())


def test_success_is_greedy_generation_of_the_target():
    """The target the model writes greedily after prompt+suffix succeeds; the same with
    one token changed does not."""
    model = _gpt(3)
    prompt, suffix = np.array([1, 2]), np.array([5, 6, 7])
    said = generate(model, np.r_[prompt, suffix], 4, greedy=True)[5:]
    assert SuffixTask(model, prompt, said, 3).evaluate(suffix)[1][0]
    other = said.copy()
    other[2] = (other[2] + 1) % V
    assert not SuffixTask(model, prompt, other, 3).evaluate(suffix)[1][0]


def test_one_hot_gradient_matches_finite_differences():
    """∂L/∂onehot at the suffix positions (not the prompt's or the target's), against
    central differences of L along a random direction of the suffix's one-hot rows."""
    model = _gpt(1)
    task = SuffixTask(model, prompt=[1, 2, 3], target=[4, 5], k=3)
    suffix = np.array([7, 8, 9])
    _, G = task.one_hot_gradient(suffix)                                  # [3, V]
    E = model.wte.weight.data                                             # [V, C]
    ids = task.sequences(suffix[None])
    u = np.random.default_rng(0).standard_normal((3, V))
    def loss(h):
        onehot = np.eye(V)[ids]                                           # [1, T, V]
        onehot[0, 3:6] += h * u
        with no_grad():
            return model(inputs_embeds=Tensor(onehot @ E), targets=task.targets()[None])[1].item()
    h = 1e-5
    np.testing.assert_allclose((loss(h) - loss(-h)) / (2 * h), (G * u).sum(), rtol=1e-6)


# ---------------------------------------------------------------------- allowed tokens
@settings(max_examples=30)
@given(forbid=st.sets(st.integers(0, V - 1), max_size=V - 2), k=st.integers(1, 6),
       seed=st.integers(0, 2**16), topk=st.integers(1, 20))
def test_proposals_stay_in_the_allowed_tokens(forbid, k, seed, topk):
    allowed = allowed_tokens(V, sorted(forbid))
    rng = np.random.default_rng(seed)
    ids = np.flatnonzero(allowed)
    suffix = rng.choice(ids, k)
    grad = rng.standard_normal((k, V))
    for cands in (gcg_candidates(grad, suffix, allowed, topk, 32, rng),
                  random_candidates(suffix, ids, 32, rng)):
        assert cands.shape == (32, k) and cands.dtype == np.int64
        assert ((cands >= 0) & (cands < V)).all() and allowed[cands].all()
        assert ((cands != suffix).sum(axis=1) == 1).all()        # one real swap each
    # GCG's swap is one of the topk best allowed tokens at its position
    cands = gcg_candidates(grad, suffix, allowed, topk, 64, rng)
    for c in cands:
        i = int(np.flatnonzero(c != suffix)[0])
        others = [v for v in ids if v != suffix[i]]
        rank = sorted(others, key=lambda v: grad[i, v]).index(c[i])
        assert rank < topk


@settings(max_examples=8)
@given(forbid=st.sets(st.integers(0, V - 1), min_size=1, max_size=V - 2), seed=st.integers(0, 99))
def test_a_whole_attack_never_holds_a_forbidden_token(forbid, seed):
    model = _gpt(dtype="float32")
    allowed = allowed_tokens(V, sorted(forbid))
    seen = []
    for attack in (gcg, random_search):
        r = attack(model, [1, 2], [3, 4], 4, steps=3, batch=8, allowed=allowed, rng=seed,
                   on_step=lambda step, res: seen.append(res.suffix.copy()))
        seen.append(r.suffix)
    assert all(allowed[s].all() for s in seen)


def test_default_forbids_the_tokenizers_special_tokens_and_chars():
    tok = CharTokenizer.from_text("ab c\n!", special_tokens=["<|endoftext|>"])
    names = dict(zip(tok.chars + ("<|endoftext|>",), allowed_tokens(7, tokenizer=tok)))
    assert not names["<|endoftext|>"] and all(names[c] for c in "ab c\n!")
    printable = allowed_tokens(7, tokenizer=tok, printable=True, forbid_chars="!")
    assert [c for c, a in zip(tok.chars, printable) if a] == [" ", "a", "b", "c"]
    assert not allowed_tokens(8, tokenizer=tok)[7]       # past the tokenizer: no text


# ---------------------------------------------------------------------- the search
@pytest.mark.parametrize("accept", ["best", "improve"])
def test_gcg_lowers_the_loss_and_never_ends_above_its_start(accept):
    model = _gpt(2, dtype="float32")
    r = gcg(model, [1, 2, 3], [4, 5, 6], 4, steps=10, batch=16, topk=4, rng=0, accept=accept)
    best, current = np.array(r.history["best"]), np.array(r.history["loss"])
    assert r.loss < r.start_loss and r.loss == best[-1] == best.min()
    assert (np.diff(best) <= 0).all()
    if accept == "improve":
        np.testing.assert_array_equal(current, best)    # the current is the best so far
    assert r.evaluations == r.history["evaluations"][-1] == 1 + 16 * r.steps


def test_gcg_beats_random_search_at_equal_budget_on_a_trained_model(toy):
    """Mean final target loss over 4 targets x 8 seeds, the same 1 + 8 x 16 evaluations
    each; top-8 of 18 allowed tokens. The margin is modest at this size (about 0.15 vs
    0.27 nats per token; with top-4 the two are level): the gradient's proposals beat
    uniform ones, not by much on a 19-character vocabulary. (Seen failing with the
    gradient's sign flipped.)"""
    model, tok = toy
    cases = [("the ", "dog ran"), ("a ", "ate the"), ("cat ", "hid in"), ("the fox ", "on a mat")]
    final = {"gcg": [], "random": []}
    for prompt, target in cases:
        for seed in range(8):
            for r in (gcg(model, tok.encode(prompt), tok.encode(target), 4, steps=8, batch=16,
                          topk=8, rng=seed),
                      random_search(model, tok.encode(prompt), tok.encode(target), 4, steps=8,
                                    batch=16, rng=seed)):
                assert r.loss <= r.start_loss
                final[r.method].append(r.loss)
    assert np.mean(final["gcg"]) < np.mean(final["random"]), final


def test_stops_at_success_and_the_model_then_says_the_target(toy):
    model, tok = toy
    prompt, target = tok.encode("the "), tok.encode("dog")
    r = gcg(model, prompt, target, 4, steps=30, batch=16, topk=4, rng=0, tokenizer=tok)
    assert r.success and r.steps < 30 and r.evaluations == 1 + 16 * r.steps
    said = generate(model, np.r_[prompt, r.suffix], len(target), greedy=True)[-len(target):]
    assert tok.decode(said.tolist()) == "dog" and r.text == tok.decode(r.suffix.tolist())


def test_works_on_llama():
    r = gcg(_llama(), [1, 2], [3, 4], 3, steps=4, batch=8, topk=3, rng=0)
    assert r.loss <= r.start_loss and r.suffix.shape == (3,)


def test_same_seed_same_result_other_seed_other_path():
    model = _gpt(dtype="float32")
    for attack in (gcg, random_search):
        a, b, c = (attack(model, [1, 2], [3, 4, 5], 4, steps=5, batch=8, rng=s)
                   for s in (7, 7, 8))
        assert a.suffix.tolist() == b.suffix.tolist() and a.history == b.history
        assert a.history != c.history


def test_equal_budgets_and_the_same_start():
    model = _gpt(dtype="float32")
    g = gcg(model, [1], [2, 3, 4, 5], 5, steps=6, batch=8, rng=3)
    r = random_search(model, [1], [2, 3, 4, 5], 5, steps=6, batch=8, rng=3)
    assert not (g.success or r.success)
    assert g.evaluations == r.evaluations == 1 + 6 * 8 and g.start_loss == r.start_loss


def test_candidates_that_do_not_round_trip_are_dropped():
    """A tokenizer whose token 'ab' swallows 'a' followed by 'b' (`_Pairs`): a suffix
    [a, b] is written "ab" and read back as one token, so it is never evaluated."""
    model = GPT(GPTConfig(vocab_size=4, block_size=8, n_layer=1, n_head=1, n_embd=8), rng=0)
    tok = _Pairs()
    task_seen = []
    r = random_search(model, [3], [3, 3], 2, steps=20, batch=8, rng=0, tokenizer=tok,
                      init=[3, 3], on_step=lambda s, res: task_seen.append(res.suffix.copy()))
    assert r.evaluations < 1 + 20 * 8 or r.success          # some were dropped
    for s in task_seen:
        assert tok.encode(tok.decode(s.tolist())) == s.tolist()


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs, message", [
    (dict(target=[]), "target is empty"),
    (dict(k=0), "k must be an integer >= 1"),
    (dict(prompt=[1, 99]), "token id 99, outside the vocabulary"),
    (dict(target=[-1]), "token id -1, outside the vocabulary"),
    (dict(prompt=list(range(11)), k=5), "more than its block_size 16"),
    (dict(allowed=np.eye(V, dtype=bool)[0]), "leave 1 of 13 allowed"),
    (dict(init=[1, 2]), "must be 4 token ids"),
    (dict(init=[0, 0, 0, 0], allowed=~np.eye(V, dtype=bool)[0]),
     "token id 0, outside the vocabulary or forbidden"),
    (dict(topk=0), "topk must be an integer >= 1"),
    (dict(steps=-1), "steps must be an integer >= 0"),
    (dict(batch=0), "batch must be an integer >= 1"),
    (dict(accept="worse"), "accept must be"),
])
def test_bad_input_is_one_clear_error(kwargs, message):
    args = dict(prompt=[1, 2], target=[3, 4], k=4, steps=1, batch=2) | kwargs
    with pytest.raises(ValueError, match=message):
        gcg(_gpt(dtype="float32"), **args)


def test_a_model_that_is_not_a_language_model_is_refused():
    with pytest.raises(TypeError, match="needs a language model"):
        SuffixTask(object(), [1], [2], 3)


class _Pairs:
    """A tokenizer whose token 'ab' swallows 'a' followed by 'b' (as BPE merges do)."""
    vocab = ["a", "b", "ab", "c"]
    vocab_size = 4

    def decode(self, ids):
        return "".join(self.vocab[i] for i in ids)

    def encode(self, text):
        out = []
        while text:
            n = 2 if text.startswith("ab") else 1
            out.append(self.vocab.index(text[:n]))
            text = text[n:]
        return out


@pytest.mark.parametrize("attack", [gcg, random_search])
def test_the_random_start_round_trips_through_the_tokenizer(attack):
    """Without `init`, the start is drawn until it reads back as the same ids: a start
    that does not (a then b, written "ab") is never a suffix the attack can write down,
    and every one-token change of it that keeps the a-b pair is dropped too. Both
    attacks still start from the same suffix for the same seed."""
    model = GPT(GPTConfig(vocab_size=4, block_size=12, n_layer=1, n_head=1, n_embd=8), rng=0)
    tok = _Pairs()
    starts = {}
    for seed in range(20):
        r = attack(model, [3], [3, 3], 6, steps=0, batch=4, rng=seed, tokenizer=tok)
        assert tok.encode(tok.decode(r.suffix.tolist())) == r.suffix.tolist(), seed
        starts[seed] = r.start_loss
    for seed in (0, 1):
        other = (random_search if attack is gcg else gcg)(model, [3], [3, 3], 6, steps=0,
                                                          batch=4, rng=seed, tokenizer=tok)
        assert other.start_loss == starts[seed]


def test_a_tokenizer_no_suffix_round_trips_through_is_one_clear_error():
    class Refuses(_Pairs):
        def encode(self, text):
            raise ValueError("no")
    model = GPT(GPTConfig(vocab_size=4, block_size=12, n_layer=1, n_head=1, n_embd=8), rng=0)
    with pytest.raises(ValueError, match="reads back as the same ids"):
        random_search(model, [3], [3, 3], 3, steps=1, batch=4, rng=0, tokenizer=Refuses())
