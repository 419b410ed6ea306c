"""The student's training loop on a tiny random BERT (seconds)."""
import torch

from conftest import NEGATIVE, POSITIVE
from distill.config import TrainParams
from distill.students.classifier import cross_entropy, load_student, predict_proba, train_classifier


def rows(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        label = ["negative", "positive"][i % 2]
        words = NEGATIVE if label == "negative" else POSITIVE
        a, b = (words[int(j)] for j in torch.randint(0, len(words), (2,), generator=g))
        out.append({"text": f"it was {a} and {b}", "label": label})
    return out


def test_tiny_student_learns_and_round_trips(tiny_student, tmp_path):
    labels = ["negative", "positive"]
    model, tok = load_student(tiny_student, labels)
    cfg = TrainParams(epochs=6, lr=1e-3, batch_size=16, patience=6)
    logs = []
    model, history = train_classifier(model, tok, rows(96), rows(20, seed=1), ["text"], labels, cfg, seed=0, log=logs.append)
    assert len(history) == 6 and len(logs) == 6
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert max(h["select_accuracy"] for h in history) == 1.0
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again, tok2 = load_student(tmp_path)
    assert again.config.id2label == {0: "negative", 1: "positive"}
    test = rows(20, seed=2)
    probs = predict_proba(again, tok2, test, ["text"])
    assert probs.shape == (20, 2) and torch.allclose(probs.sum(-1), torch.ones(20))
    assert [labels[i] for i in probs.argmax(-1)] == [r["label"] for r in test]


def test_weighted_cross_entropy():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    targets = torch.tensor([0, 0])
    plain = torch.nn.functional.cross_entropy(logits, targets)
    assert torch.isclose(cross_entropy(logits, targets, torch.ones(2)), plain)
    # weight 0 on the second row: only the first row's loss counts
    only_first = torch.nn.functional.cross_entropy(logits[:1], targets[:1])
    assert torch.isclose(cross_entropy(logits, targets, torch.tensor([1.0, 0.0])), only_first)
