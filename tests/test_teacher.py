"""The cached Teacher front and the local transformers backend (tiny random Llama + real tokenizer)."""

import pytest
import torch

from conftest import FakeBackend
from distill.teachers.base import Decoding, GenRequest, ScoreRequest, Teacher
from distill.teachers.cache import LLMCache

REQS = [
    GenRequest(messages=(("user", f"Write a {lab} review."),), prefix='"', seed=i)
    for i in range(10)
    for lab in ("positive", "negative")
]


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


def test_a_cached_rerun_reports_the_cost_of_its_data(tmp_path):
    """`dvc repro -f` of a cached stage: no call this run, but the data's first-run cost is still reported."""
    from distill.teachers.base import Budget

    first = Teacher(
        FakeBackend(), LLMCache(tmp_path / "c.sqlite"), progress=False, budget=Budget(price_per_1k_completion=1.0)
    )
    first.generate(REQS, Decoding(), batch_size=4)
    again = Teacher(
        FakeBackend(), LLMCache(tmp_path / "c.sqlite"), progress=False, budget=Budget(price_per_1k_completion=1.0)
    )
    again.generate(REQS, Decoding(), batch_size=4)
    a, b = first.stats.as_dict(), again.stats.as_dict()
    assert a["calls"] == 20 and b["calls"] == 0 and b["completion_tokens"] == 0 and b["cache_hits"] == 20
    for k in ("data_answers", "data_prompt_tokens", "data_completion_tokens", "data_cost"):
        assert b[k] == a[k] and a[k] > 0, k
    assert b["data_seconds"] == pytest.approx(a["data_seconds"], rel=1e-6) and "cost" not in b


def test_killed_run_resumes_without_repeating_calls(tmp_path):
    killed = FakeBackend(fail_after=8)  # dies inside the third batch of 4
    with pytest.raises(KeyboardInterrupt):
        Teacher(killed, LLMCache(tmp_path / "c.sqlite"), progress=False).generate(REQS, Decoding(), batch_size=4)
    resumed = FakeBackend()
    t = Teacher(resumed, LLMCache(tmp_path / "c.sqlite"), progress=False)
    out = t.generate(REQS, Decoding(), batch_size=4)
    assert t.stats.cache_hits == 8 and resumed.calls == 12  # only the unfinished batches are asked again
    clean = Teacher(FakeBackend(), LLMCache(tmp_path / "clean.sqlite"), progress=False).generate(
        REQS, Decoding(), batch_size=4
    )
    assert out == clean


def test_score_cache(tmp_path):
    backend = FakeBackend()
    reqs = [ScoreRequest("p", f"Review: a great film {i}\nSentiment:", (" negative", " positive")) for i in range(5)]
    t = Teacher(backend, LLMCache(tmp_path / "c.sqlite"), progress=False)
    a = t.score(reqs, batch_size=2)
    assert t.score(reqs, batch_size=3) == a and backend.calls == 5
    assert all(s[1] > s[0] for s in a)


# ---- the real local backend on a tiny random model ---------------------------------------------------------


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
    reqs = [
        ScoreRequest(prefix, f"Review: {t}\nSentiment:", (" negative", " positive", " Sci/Tech really"))
        for t in ["fine", "a much longer text with many more tokens in it than the others", "meh !"]
    ]
    reqs.append(ScoreRequest("Other prefix.\n\n", "Review: x\nSentiment:", (" no", " yes")))
    fast = b.score(reqs)
    for req, got in zip(reqs, fast):
        assert got == pytest.approx(naive_scores(b, req), abs=1e-4)


def test_generation_seed_is_per_row(peaked_llm):
    from distill.teachers.local import LocalBackend

    b = LocalBackend(str(peaked_llm))
    dec = Decoding(max_new_tokens=8, temperature=1.0, top_p=0.9, top_k=0)
    alone = b.generate(REQS[:1], dec)
    batched = b.generate(REQS[:5], dec)
    assert alone[0].text == batched[0].text  # same seed, same sample, whatever shares the batch
    assert len({r.text for r in batched}) > 1
    assert all(r.finish in ("stop", "length") and 0 < r.completion_tokens <= 8 for r in batched)
    assert b.model_id.startswith(peaked_llm.name + "@")


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
    from distill.core.io import DistillError
    from distill.teachers.local import LocalBackend

    with pytest.raises(DistillError, match="teacher.model: 'nope' is neither"):
        LocalBackend("nope")


# ---- accounting and budget ----------------------------------------------------------------------------------


def test_max_calls_stops_cleanly_and_keeps_answers(tmp_path):
    from distill.core.io import DistillError
    from distill.teachers.base import Budget

    backend = FakeBackend()
    t = Teacher(backend, LLMCache(tmp_path / "c.sqlite"), progress=False, budget=Budget(max_calls=6))
    with pytest.raises(
        DistillError,
        match=r"^teacher.max_calls: budget of 6 calls spent; 14 requests not asked\. Answers so far are cached",
    ):
        t.generate(REQS, Decoding(), batch_size=4)
    assert backend.calls == 6 and t.stats.calls == 6  # the last batch was cut to fit the budget exactly
    resumed = Teacher(FakeBackend(), LLMCache(tmp_path / "c.sqlite"), progress=False)
    out = resumed.generate(REQS, Decoding(), batch_size=4)
    assert resumed.stats.cache_hits == 6 and resumed.stats.calls == 14
    assert out == Teacher(FakeBackend(), LLMCache(tmp_path / "clean.sqlite"), progress=False).generate(
        REQS, Decoding(), batch_size=4
    )


def test_cost_is_reported_and_max_cost_stops(tmp_path):
    from distill.core.io import DistillError
    from distill.teachers.base import Budget

    priced = Budget(price_per_1k_prompt=1.0, price_per_1k_completion=2.0)
    t = Teacher(FakeBackend(), LLMCache(tmp_path / "a.sqlite"), progress=False, budget=priced)
    t.generate(REQS, Decoding(), batch_size=4)
    d = t.stats.as_dict()
    assert d["cost"] == pytest.approx((d["prompt_tokens"] * 1.0 + d["completion_tokens"] * 2.0) / 1000)
    assert "cost" not in Teacher(FakeBackend(), LLMCache(tmp_path / "b.sqlite"), progress=False).stats.as_dict()
    capped = Teacher(
        FakeBackend(),
        LLMCache(tmp_path / "c.sqlite"),
        progress=False,
        budget=Budget(max_cost=d["cost"] / 3, price_per_1k_prompt=1.0, price_per_1k_completion=2.0),
    )
    with pytest.raises(DistillError, match=r"^teacher.max_cost: budget .* spent"):
        capped.generate(REQS, Decoding(), batch_size=4)
    assert 0 < capped.stats.calls < len(REQS) and LLMCache(tmp_path / "c.sqlite").count() == capped.stats.calls
