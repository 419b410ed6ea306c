"""The local backend's fast paths give what the plain paths give: shared-prefix scoring on the real embedded
teacher and real task rows, prefix reuse and finished-row dropping in generation, the partial top-k sampler."""

import dataclasses

import pytest
import torch

from distill.teachers.base import Decoding, GenRequest
from test_teacher import naive_scores  # the independent reference: one full forward pass per option


@pytest.fixture(scope="module")
def real_teacher():
    from distill.teachers.local import LocalBackend

    return LocalBackend("smollm2-135m-instruct")  # first load dequantises the GGUF (~20 s, cached after)


def test_real_teacher_fast_scoring_matches_naive(real_teacher):
    from distill.prompting.fewshot import pick_demos, score_requests, scoring_prefix
    from distill.core.tasks import load_task

    reqs = []
    # Short prompts keep the naive reference (a full pass per option) to ~20 s: 2 demonstrations per SST-2 label,
    # 1 per AG News label with texts clipped to 150 characters.
    for task, per_label, n, max_chars in [("sst2", 2, 3, 1500), ("ag_news", 1, 2, 150)]:
        t = load_task(f"data/tasks/{task}")
        prefix = scoring_prefix(t.spec, pick_demos(t.spec, t.load("fewshot"), per_label, seed=0), max_chars)
        reqs += score_requests(t.spec, t.load("test")[:n], prefix, max_chars)
    # Multi-token options take the text + option rows: AG News' label names (" Sci/Tech") and a longer one, so
    # the example needs two rows, whatever verbalizers task.yaml chooses.
    names = tuple(" " + l.name for l in t.spec.labels) + (" Science and technology",)
    assert sum(len(real_teacher.encode(o)) > 1 for o in names) == 2
    reqs[-1] = dataclasses.replace(reqs[-1], options=names)
    fast = real_teacher.score(reqs)  # both prefixes in one call
    for req, got in zip(reqs, fast):
        assert got == pytest.approx(naive_scores(real_teacher, req), abs=1e-4)


def _requests():
    """Chat prompts that share a long head, with two identical ones (run once, then expanded)."""
    texts = [
        "Write a positive review.",
        "Write a negative review.",
        "Write a positive review.",
        "Write a short, dull and very negative review of a film.",
    ]
    return [GenRequest(messages=(("user", t),), prefix='"', seed=i) for i, t in enumerate(texts)]


@pytest.mark.parametrize(
    "decoding",
    [
        Decoding(max_new_tokens=12, top_p=0.9),
        Decoding(max_new_tokens=12, top_p=1.0, top_k=50),
        Decoding(max_new_tokens=12, temperature=0.0),
    ],
)
def test_generation_prefix_reuse_gives_the_same_tokens(peaked_llm, decoding):
    from distill.teachers.local import LocalBackend, shared_prefix_len

    reused, full = LocalBackend(str(peaked_llm)), LocalBackend(str(peaked_llm), reuse_prefix=False)
    reqs = _requests()
    prompts = [reused.encode(reused.render(r)) for r in reqs]
    assert shared_prefix_len(prompts) > 20  # the chat header and the start of the user turn
    want = full.generate(reqs, decoding)
    if decoding.temperature > 0:  # sampling is live: the same prompt under another seed gives another text
        assert reqs[0].messages == reqs[2].messages and want[0].text != want[2].text
    assert reused.generate(reqs, decoding) == want
    assert [
        reused.generate([r], decoding)[0] for r in reqs
    ] == want  # batch 1: the whole prompt but its last token is reused


def test_no_deprecation_warning_reaches_the_user(tiny_llm):
    import warnings

    from distill.teachers.local import LocalBackend

    with warnings.catch_warnings(record=True) as seen:  # whatever filters the caller has
        LocalBackend(str(tiny_llm)).generate(_requests()[:2], Decoding(max_new_tokens=4))
    assert not [w for w in seen if issubclass(w.category, FutureWarning)], [str(w.message) for w in seen]


def test_finished_rows_are_dropped_without_changing_samples(peaked_llm, monkeypatch):
    from distill.teachers.local import LocalBackend

    b = LocalBackend(str(peaked_llm))
    # A random model rarely samples its end token: make a third of the vocabulary a stop token so rows
    # stop at different steps and the loop drops them from the cache mid-batch.
    monkeypatch.setattr(b, "stop_ids", lambda: set(range(0, len(b._load()[1]), 3)))
    reqs = _requests() * 2
    reqs = [GenRequest(r.messages, r.prefix, seed=i) for i, r in enumerate(reqs)]
    dec = Decoding(max_new_tokens=16)
    batched = b.generate(reqs, dec)
    assert len({r.completion_tokens for r in batched}) > 1 and any(r.finish == "stop" for r in batched)
    assert [b.generate([r], dec)[0] for r in reqs] == batched


def test_nucleus_wider_than_the_first_top_k():
    from distill.teachers.local import sample_next

    # 1000 near-equal tokens: top_p=0.9 keeps ~900 of them, more than the first partial top-k (256) holds.
    torch.manual_seed(0)
    logits = torch.randn(2, 5000) * 0.01
    logits[:, 1000:] -= 30.0
    order = torch.sort(logits[0], descending=True).indices
    probs = logits[0].softmax(-1)[order]
    nucleus = set(order[(probs.cumsum(-1) - probs) <= 0.9].tolist())
    gens = [torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)]
    seen = [int(sample_next(logits, Decoding(top_p=0.9), gens)[0]) for _ in range(300)]
    assert set(seen) <= nucleus and len(set(seen)) > 256
    # a row's draw depends on its own generator only, not on its neighbours
    alone = [int(sample_next(logits[:1], Decoding(top_p=0.9), [torch.Generator().manual_seed(0)])[0])]
    assert alone[0] == seen[0]


def test_echo_logprobs_reuse_a_shared_head(tiny_llm):
    """`distill serve`'s echo scoring: a head shared by the batch, or left by the last batch, runs once; every
    entry (log-prob and top-k alternatives, head positions included) equals the full pass."""
    from distill.teachers.local import LocalBackend

    reused, full = LocalBackend(str(tiny_llm)), LocalBackend(str(tiny_llm), reuse_prefix=False)
    head = reused.encode(
        "Review: a gentle, funny film.\nSentiment: positive\n\nReview: dull and far too long.\nSentiment: negative\n\n"
    )
    assert len(head) >= 16
    texts = [
        "Review: I loved it.\nSentiment: positive",
        "Review: I loved it.\nSentiment: negative",
        "Review: meh\nSentiment: negative",
    ]
    seqs = [head + reused.encode(t) for t in texts]

    def close(got, want):
        assert len(got) == len(want)
        for (lp, alts), (lp0, alts0) in zip(got, want):
            assert (lp is None) == (lp0 is None) and (lp is None or abs(lp - lp0) < 1e-4)
            assert [t for t, _ in alts] == [t for t, _ in alts0]
            assert [v for _, v in alts] == pytest.approx([v for _, v in alts0], abs=1e-4)

    for got, want in zip(reused.token_logprobs(seqs[:2], top_k=3), full.token_logprobs(seqs[:2], top_k=3)):
        close(got, want)
    assert reused._echo_head is not None and len(reused._echo_head[0]) > len(
        head
    )  # the batch shares "Review: I loved it..."
    # The next batch shares less with the last head: the head shrinks to what all prompts share, then stays.
    for got, want in zip(reused.token_logprobs(seqs[1:], top_k=3), full.token_logprobs(seqs[1:], top_k=3)):
        close(got, want)
    assert len(reused._echo_head[0]) >= len(head)
    kept = reused._echo_head[0]
    close(reused.token_logprobs([seqs[2]], top_k=3)[0], full.token_logprobs([seqs[2]], top_k=3)[0])
    assert reused._echo_head[0] == kept
