"""LLKD's adaptive thresholds and selection on synthetic streams."""

import math

import pytest
import torch

from distill.methods.llkd.algorithm import (
    Selector,
    entropy,
    init_thresholds,
    pool_cut,
    select,
    sequence_uncertainty,
    update,
    weights,
)


def test_init_and_entropy():
    th = init_thresholds(4)
    assert th.tau_t == 0.25 and th.tau_s == pytest.approx(math.log(4) / 2)
    assert entropy(torch.tensor([[0.5, 0.5], [1.0, 0.0]])).tolist() == pytest.approx([math.log(2), 0.0])


def test_thresholds_track_the_stream():
    th = init_thresholds(2)
    conf = torch.full((8,), 0.9)
    ent = torch.full((8,), 0.1)
    yhat = torch.tensor([0, 1] * 4)
    for _ in range(200):
        th = update(th, conf, ent, yhat, momentum=0.9)
    assert th.tau_t == pytest.approx(0.9, abs=1e-3) and th.tau_s == pytest.approx(0.1, abs=1e-3)
    # as the student's entropy falls, its threshold falls with it
    th2 = update(th, conf, torch.full((8,), 0.01), yhat, momentum=0.9)
    assert th2.tau_s < th.tau_s


def test_low_confidence_class_is_not_starved():
    th = init_thresholds(2)
    # class 0: the teacher is always confident (0.95); class 1: it is never above 0.6
    conf = torch.tensor([0.95, 0.55] * 8)
    yhat = torch.tensor([0, 1] * 8)
    ent = torch.full((16,), 0.6)
    for _ in range(300):
        th = update(th, conf, ent, yhat, momentum=0.9)
    t_cls, _ = th.per_class()
    assert t_cls[1] < t_cls[0]
    # a global threshold (0.75) would drop every class-1 sample; the class-wise one keeps them
    keep = select(th, conf, ent, yhat, use_student=False)
    assert keep[yhat == 1].any() and keep[yhat == 0].any()


def test_select_requires_both_conditions_and_weights():
    th = init_thresholds(2)  # tau_t = 0.5, tau_s = log2/2 ~ 0.347
    conf = torch.tensor([0.9, 0.9, 0.4, 0.4])
    ent = torch.tensor([0.6, 0.1, 0.6, 0.1])
    yhat = torch.zeros(4, dtype=torch.long)
    keep = select(th, conf, ent, yhat)
    assert keep.tolist() == [True, False, False, False]  # confident teacher AND uncertain student
    assert select(th, conf, ent, yhat, use_teacher=False).tolist() == [True, False, True, False]
    w = weights(conf, ent, keep, math.log(2))
    assert w[0].item() == pytest.approx(0.9 * 0.6 / math.log(2)) and w[1:].sum() == 0


def test_a_row_at_its_batch_mean_is_kept_despite_rounding():
    conf, ent = torch.full((16,), 0.9), torch.full((16,), 0.3)
    assert float(conf.mean()) > float(conf[0])  # float32: the mean of sixteen 0.9s rounds above 0.9
    th = update(init_thresholds(2), conf, ent, torch.zeros(16, dtype=torch.long), momentum=0.0)
    assert select(th, conf, ent, torch.zeros(16, dtype=torch.long)).all()


def test_sequence_uncertainty_is_one_minus_geometric_token_probability():
    nll = torch.tensor([0.0, math.log(2), 50.0])
    assert sequence_uncertainty(nll).tolist() == pytest.approx([0.0, 0.5, 1.0])


def test_seq2seq_selector_keeps_confident_votes_the_student_has_not_learned():
    """One class; confidence = the teacher's vote share; the student's output per row is its mean token NLL."""
    rows = [{"id": str(i), "yhat": 0, "confidence": c} for i, c in enumerate([1.0, 1.0, 0.25, 0.25])]
    sel = Selector(rows, 1, "adaptive", momentum=0.0, weighting=True, fraction=0.25, seed=0, votes=4)
    assert (sel.th.tau_t, sel.th.tau_s) == (0.25, 0.5)  # the least vote share; half the largest uncertainty
    nll = torch.tensor([3.0, 0.01, 3.0, 0.01])  # unlearned, learned, unlearned, learned
    w = sel(rows, nll)
    # momentum 0: thresholds = this batch's means (confidence 0.625, uncertainty ~0.48)
    assert (w > 0).tolist() == [True, False, False, False]
    assert w[0].item() == pytest.approx(1.0 * (1 - math.exp(-3.0)))
    assert sel.epoch_stats()["selected_fraction"] == 0.25


def test_one_update_step_by_hand():
    """EMA weights the old value by the momentum; each class moves on its own rows only; per_class scales by the top."""
    th = update(
        init_thresholds(2), torch.tensor([0.9, 0.5]), torch.tensor([0.2, 0.4]), torch.tensor([0, 1]), momentum=0.9
    )
    half_log2 = math.log(2) / 2
    assert th.tau_t == pytest.approx(0.9 * 0.5 + 0.1 * 0.7)  # 0.52: the batch mean of confidence is 0.7
    assert th.tau_s == pytest.approx(0.9 * half_log2 + 0.1 * 0.3)  # ~0.341916
    assert th.m_t == pytest.approx((0.54, 0.50))
    assert th.m_s == pytest.approx((0.9 * half_log2 + 0.02, 0.9 * half_log2 + 0.04))
    t_cls, s_cls = th.per_class()
    assert t_cls == pytest.approx([0.52, 0.52 * 0.50 / 0.54])  # class 1's teacher threshold 0.481
    assert s_cls == pytest.approx([th.tau_s * th.m_s[0] / th.m_s[1], th.tau_s])  # ~0.322485, ~0.341916
    # a batch of class 0 only leaves class 1's averages where they were
    th2 = update(th, torch.tensor([0.8]), torch.tensor([0.1]), torch.tensor([0]), momentum=0.9)
    assert (th2.m_t[1], th2.m_s[1]) == (th.m_t[1], th.m_s[1]) and th2.m_t[0] == pytest.approx(0.9 * 0.54 + 0.08)


def test_with_prior_is_a_product_of_experts():
    from distill.methods.llkd.algorithm import with_prior

    teacher = torch.tensor([[0.7, 0.3], [0.6, 0.4], [0.2, 0.8]])
    assert torch.allclose(with_prior(teacher, torch.full((3, 2), 0.5), 1.0), teacher)  # a uniform prior changes nothing
    assert torch.allclose(with_prior(teacher, torch.tensor([[0.1, 0.9]] * 3), 0.0), teacher)  # weight 0: nothing
    prior = torch.tensor([[0.7, 0.3], [0.1, 0.9], [0.5, 0.5]])
    out = with_prior(teacher, prior, 1.0)
    assert torch.allclose(out.sum(-1), torch.ones(3))
    assert out[0, 0] > teacher[0, 0]  # agreement: more confident
    assert out[1].argmax() == 1  # disagreement: the surer expert (0.9 vs 0.6) wins
    assert out[1, 1] == pytest.approx(0.4 * 0.9 / (0.6 * 0.1 + 0.4 * 0.9))
    assert with_prior(teacher, prior, 2.0)[1, 1] > out[1, 1]  # a larger weight trusts the prior more


def test_fewshot_probe_embeds_in_the_native_precision_and_fits_in_float32(
    tmp_path, toy_task, tiny_student, monkeypatch
):
    """The prior's embeddings run under the device's inference precision (bfloat16 on a CPU with bf16 instructions,
    forced here: conftest turns it off for exact comparisons): its label distribution must match a float32 probe's."""
    from conftest import write_params
    from distill.core import devices
    from distill.config import load_params
    from distill.students.prior import fewshot_probe
    from distill.students.finetune import fit_linear
    from distill.students.model import new_student
    from distill.core.tasks import load_task

    task = load_task(toy_task, quiet=True)
    params = load_params(
        write_params(tmp_path / "params.yaml", llkd={"prior_model": str(tiny_student)}, train={"device": "cpu"})
    )
    fewshot, pool = task.load("fewshot"), task.load("unlabeled")
    monkeypatch.setattr(devices, "cpu_bf16_native", lambda: True)
    probs = fewshot_probe(params, task.spec, fewshot, pool)
    assert probs.shape == (len(pool), 2) and torch.allclose(probs.sum(-1), torch.ones(len(pool)), atol=1e-5)

    probe = new_student(tiny_student, task.spec.label_names, task.spec.field_names, params.seed, "mean", normalize=True)
    y = torch.nn.functional.one_hot(torch.tensor([task.spec.label_id(r["label"]) for r in fewshot]), 2).float()
    l2 = 1.0 / (params.llkd.prior_c * len(fewshot))
    head = fit_linear(probe.embeddings(fewshot), y, torch.ones(len(fewshot)), l2)  # float32 throughout
    with torch.no_grad():
        reference = head(probe.embeddings(pool)).softmax(-1)
    assert 0 < (probs - reference).abs().max() < 0.02  # bfloat16 did run, and changed next to nothing


def test_pool_cut_stops_at_the_row_or_character_budget():
    lengths = [100, 50, 200, 10, 10]
    assert pool_cut(lengths, None, 0) == 5  # no limits: the whole pool
    assert pool_cut(lengths, 3, 0) == 3  # rows first
    assert pool_cut(lengths, None, 350) == 3  # 100 + 50 + 200 = 350 fits exactly; the 4th row would pass it
    assert pool_cut(lengths, None, 349) == 2
    assert pool_cut(lengths, 2, 10_000) == 2  # whichever limit comes first
    assert pool_cut(lengths, None, 10) == 1  # one row longer than the budget: still one row, never an empty pool
    assert pool_cut([], 2500, 300_000) == 0
