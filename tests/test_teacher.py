"""The cached Teacher front and the local transformers backend (tiny random Llama + real tokenizer)."""
import copy

import pytest
import torch

from conftest import FakeBackend
from distill.teachers.base import Decoding, GenRequest, ScoreRequest, Teacher
from distill.teachers.cache import LLMCache

REQS = [GenRequest(messages=(("user", f"Write a {lab} review."),), prefix='"', seed=i) for i in range(10) for lab in ("positive", "negative")]


def test_cache_makes_reruns_free(tmp_path):
    backend = FakeBackend()
    first = Teacher(backend, LLMCache(tmp_path / "c.sqlite"), progress=False).generate(REQS, Decoding(), batch_size=4)
    assert backend.calls == 20
    again = Teacher(backend, LLMCache(tmp_path / "c.sqlite"), progress=False)
    assert again.generate(REQS, Decoding(), batch_size=4) == first
    assert backend.calls == 20 and again.stats.cache_hits == 20
    # a different decoding or seed is a different question
    again.generate(REQS[:2], Decoding(temperature=0.5), batch_size=4)
    assert backend.calls == 22


def test_killed_run_resumes_without_repeating_calls(tmp_path):
    killed = FakeBackend(fail_after=8)  # dies inside the third batch of 4
    with pytest.raises(KeyboardInterrupt):
        Teacher(killed, LLMCache(tmp_path / "c.sqlite"), progress=False).generate(REQS, Decoding(), batch_size=4)
    resumed = FakeBackend()
    t = Teacher(resumed, LLMCache(tmp_path / "c.sqlite"), progress=False)
    out = t.generate(REQS, Decoding(), batch_size=4)
    assert t.stats.cache_hits == 8 and resumed.calls == 12  # only the unfinished batches are asked again
    clean = Teacher(FakeBackend(), LLMCache(tmp_path / "clean.sqlite"), progress=False).generate(REQS, Decoding(), batch_size=4)
    assert out == clean


def test_score_cache(tmp_path):
    backend = FakeBackend()
    reqs = [ScoreRequest("p", f"Review: a great film {i}\nSentiment:", (" negative", " positive")) for i in range(5)]
    t = Teacher(backend, LLMCache(tmp_path / "c.sqlite"), progress=False)
    a = t.score(reqs, batch_size=2)
    assert t.score(reqs, batch_size=3) == a and backend.calls == 5
    assert all(s[1] > s[0] for s in a)


# ---- the real local backend on a tiny random model ---------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from distill.teachers.local import resolve_model

    gguf = resolve_model("smollm2-135m-instruct")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)  # real tokenizer + chat template
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def naive_scores(backend, req):
    """One full forward pass of prefix + text + option per option: the reference the fast path must match."""
    model = backend._load()[0]
    out = []
    for o in req.options:
        p, t, oi = backend.encode(req.prefix), backend.encode(req.text), backend.encode(o)
        with torch.no_grad():
            lp = torch.log_softmax(model(input_ids=torch.tensor([p + t + oi])).logits[0].float(), -1)
        out.append(sum(float(lp[len(p) + len(t) + j - 1, tok]) for j, tok in enumerate(oi)))
    return out


def test_fast_scoring_matches_naive(tiny_llm):
    from distill.teachers.local import LocalBackend

    b = LocalBackend(str(tiny_llm))
    prefix = "Classify.\n\nReview: good\nSentiment: positive\n\n"
    reqs = [ScoreRequest(prefix, f"Review: {t}\nSentiment:", (" negative", " positive", " Sci/Tech really"))
            for t in ["fine", "a much longer text with many more tokens in it than the others", "meh !"]]
    reqs.append(ScoreRequest("Other prefix.\n\n", "Review: x\nSentiment:", (" no", " yes")))
    fast = b.score(reqs)
    for req, got in zip(reqs, fast):
        assert got == pytest.approx(naive_scores(b, req), abs=1e-4)


def test_generation_seed_is_per_row(tiny_llm):
    from distill.teachers.local import LocalBackend

    b = LocalBackend(str(tiny_llm))
    dec = Decoding(max_new_tokens=8, temperature=1.0, top_p=0.9, top_k=0)
    alone = b.generate(REQS[:1], dec)
    batched = b.generate(REQS[:5], dec)
    assert alone[0].text == batched[0].text  # same seed, same sample, whatever shares the batch
    assert len({r.text for r in batched}) > 1
    assert all(r.finish in ("stop", "length") and 0 < r.completion_tokens <= 8 for r in batched)
    assert b.model_id.startswith(tiny_llm.name + "@")


def test_sampling_filters():
    from distill.teachers.local import sample_next

    logits = torch.tensor([[0.0, 1.0, 5.0, 2.0]])
    gens = [torch.Generator().manual_seed(0)]
    assert int(sample_next(logits, Decoding(temperature=0.0), gens)[0]) == 2  # greedy
    for _ in range(20):  # top_k=1 and tiny top_p both leave only the best token
        assert int(sample_next(logits, Decoding(top_k=1, top_p=1.0), gens)[0]) == 2
        assert int(sample_next(logits, Decoding(top_k=0, top_p=0.01), gens)[0]) == 2
    seen = {int(sample_next(logits, Decoding(top_k=2, top_p=1.0), gens)[0]) for _ in range(50)}
    assert seen == {2, 3}


def test_unknown_teacher_model_is_one_line():
    from distill.io import DistillError
    from distill.teachers.local import LocalBackend

    with pytest.raises(DistillError, match="teacher.model: 'nope' is neither"):
        LocalBackend("nope")
