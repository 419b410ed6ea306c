"""Shared fixtures: a fake LLM keyed by prompt, tiny random models, a scratch task folder, `distill serve` on one.

The fake teacher makes stage tests deterministic and offline; the tiny models make them fast. The real
embedded teacher and MiniLM are exercised by test_local_fast.py and the e2e tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TQDM_DISABLE", "1")
# Under `pytest -n N` (make test) the workers share the cores: each takes its share of torch threads, and so do the
# pipelines its end-to-end tests start (they inherit the environment). Oversubscribed torch threads slow everyone.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ.setdefault(
        "OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    )

REPO = Path(__file__).resolve().parents[1]

from distill.core import devices  # noqa: E402
from distill.teachers.base import Decoding, GenRequest, GenResult  # noqa: E402

# In-process tests compare the teacher's fast paths with reference ones to float32 rounding: `dtype: auto` stays
# float32 in this process whatever the CPU (test_devices tests the choice and the probe). Pipelines the e2e tests
# start in subprocesses get the machine's real choice, as a user does.
CPU_BF16_PROBE = devices.cpu_bf16_native
devices.cpu_bf16_native = lambda: False

POSITIVE = ["wonderful", "great", "moving", "brilliant", "delightful", "superb"]
NEGATIVE = ["dull", "awful", "boring", "tedious", "clumsy", "lifeless"]


class FakeBackend:
    """A deterministic 'LLM': writes a review whose words match the label named in the prompt and
    scores labels by counting cue words. `calls` counts every uncached request it answers."""

    model_id = "fake-llm@0"

    def __init__(self, fail_after: int | None = None):
        self.calls = 0
        self.fail_after = fail_after

    def _count(self, n: int) -> None:
        self.calls += n
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("simulated kill")

    def generate(self, requests, decoding: Decoding):
        self._count(len(requests))
        out = []
        for r in requests:
            prompt = " ".join(c for _, c in r.messages)
            rng = random.Random(r.seed)
            if "Equation:" in prompt:  # a seq2seq (arithmetic) task: write or solve a word problem
                out.append(
                    GenResult(
                        arithmetic(prompt, r.prefix, rng, decoding.temperature > 0), len(prompt.split()), 16, "stop"
                    )
                )
                continue
            words = NEGATIVE if "negative" in prompt else POSITIVE
            text = f"the film is {rng.choice(words)} and {rng.choice(words)} , truly {rng.choice(words)} number {rng.randint(0, 10**6)}"
            out.append(
                GenResult(text + '" and more', prompt_tokens=len(prompt.split()), completion_tokens=12, finish="stop")
            )
        return out

    def score(self, requests):
        self._count(len(requests))
        out = []
        for r in requests:
            text = r.text.lower()
            pos = sum(w in text for w in POSITIVE) + 0.1
            neg = sum(w in text for w in NEGATIVE) + 0.1
            out.append([-1.0 / neg if "neg" in o else -1.0 / pos for o in r.options])
        return out


def arithmetic(prompt: str, prefix: str, rng: random.Random, sampled: bool = False) -> str:
    """The fake LLM on a word-problem prompt: solves the last problem (adds its numbers) when the answer starts at the
    equation (sampled: a third of its solutions add one too many, varying with the problem and the seed), else writes
    a new problem (one in five with an answer that disagrees with its equation)."""
    import re

    if prefix.startswith("Equation"):
        a, b = (int(x) for x in re.findall(r"\d+", prompt.rsplit("Problem:", 1)[-1])[:2])
        if sampled and random.Random(f"{rng.random()}-{a}-{b}").random() < 1 / 3:
            return f" ( {a} + {b} + 1 )\nAnswer: {a + b + 1}"
        return f" ( {a} + {b} )\nAnswer: {a + b}\n\nProblem: more"
    a, b = rng.randint(2, 60), rng.randint(2, 60)
    answer = a + b + (1 if rng.random() < 0.2 else 0)
    return f" Tom has {a} apples and finds {b} more . How many apples does he have now ?\nEquation: ( {a} + {b} )\nAnswer: {answer}"


@pytest.fixture
def fake_backend(monkeypatch):
    backend = FakeBackend()
    monkeypatch.setattr("distill.teachers.build_backend", lambda params: backend)
    return backend


def write_jsonl(path: Path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_task(root: Path, spec_from: str, row, sizes: dict[str, int]) -> Path:
    """A task folder: `spec_from`'s task.yaml and one JSONL file per split, rows from row(i, labelled). i runs on
    across the splits, so no split repeats a test row (check_task would warn, assemble would drop it)."""
    root.mkdir(parents=True)
    shutil.copy(REPO / "data/tasks" / spec_from / "task.yaml", root / "task.yaml")
    start = 0
    for split, n in sizes.items():
        write_jsonl(root / f"{split}.jsonl", [row(i, split != "unlabeled") for i in range(start, start + n)])
        start += n
    return root


def make_toy_task(parent: Path) -> Path:
    """A small sentiment task folder in the standard format (no code knows its name): `parent`/tasks/toy."""
    rng = random.Random(0)

    def row(i, labelled):
        label = ["negative", "positive"][i % 2]
        words = NEGATIVE if label == "negative" else POSITIVE
        return {
            "text": f"a {rng.choice(words)} and {rng.choice(words)} movie {i}",
            **({"label": label} if labelled else {}),
        }

    return write_task(
        parent / "tasks" / "toy", "sst2", row, {"test": 40, "validation": 20, "fewshot": 8, "unlabeled": 30}
    )


def make_toy_seq2seq(parent: Path) -> Path:
    """A small word-problem task (seq2seq, numeric answers, worked equations) with SVAMP's task.yaml: `parent`/tasks/sums."""
    rng = random.Random(1)

    def row(i, labelled):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        answer = {"target": str(a + b), "equation": f"( {a} + {b} )"} if labelled else {}
        return {"input": f"Ann has {a} pens and buys {b} more . How many pens does she have ?", **answer}

    return write_task(
        parent / "tasks" / "sums", "svamp", row, {"test": 12, "validation": 8, "fewshot": 4, "unlabeled": 10}
    )


@pytest.fixture
def toy_task(tmp_path) -> Path:
    return make_toy_task(tmp_path)


@pytest.fixture(scope="session")
def tiny_student(tmp_path_factory) -> Path:
    """A 2 M-parameter random BERT encoder with the real MiniLM tokenizer: trains in seconds. Seeded, so every worker
    builds the same one: unseeded, its weights came from whatever the worker's tests had drawn before, which changes
    from run to run under `pytest -n` (the dvc.yaml contract test, whose stages branch on the student's predictions,
    failed once in six such runs, never alone)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from distill.students.model import resolve_student

    path = tmp_path_factory.mktemp("tiny-bert")
    tok = AutoTokenizer.from_pretrained(resolve_student("minilm-l6"))
    cfg = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _tiny_llama(tmp_path_factory, name: str, head_scale: float = 1.0) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from distill.core.weights import hf_folder

    # the real tokenizer + chat template, from the teacher's dequantised folder (built once, shared with the e2e
    # tests' teacher): 0.5 s, where parsing the GGUF file took 7 s per fixture per worker
    tok = AutoTokenizer.from_pretrained(hf_folder("smollm2-135m-instruct"))
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        model.lm_head.weight.mul_(head_scale)
    path = tmp_path_factory.mktemp(name)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory) -> Path:
    """A random 2-layer Llama with the embedded teacher's real tokenizer and chat template."""
    return _tiny_llama(tmp_path_factory, "tiny-llama")


@pytest.fixture(scope="session")
def peaked_llm(tmp_path_factory) -> Path:
    """tiny_llm with its output layer scaled up (logit std ~9, not ~0.1), for tests that compare samples across
    batch compositions (alone vs batched, prefix reuse, a server's batches, a resumed run). A random model's
    next-token distribution is near-uniform over 49k tokens, so the ~1e-6 float differences between batch shapes
    (padding, a reused prefix) reorder near-tied tokens and flip samples (CI saw it on another CPU); a peaked one,
    like a trained model's, keeps them (measured: 0/16 rows flip under 1e-5 relative noise, 3/16 under 1e-6
    unscaled) while same-prompt rows with other seeds still differ."""
    return _tiny_llama(tmp_path_factory, "peaked-llama", head_scale=80.0)


@contextlib.contextmanager
def serve_in_thread(app):
    """Run an ASGI app under uvicorn on a free loopback port in a thread; yields its /v1 base URL."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(10)


# `distill serve` (test_serve.py, test_serve_errors.py): the embedded backend served on a tiny model, and requests to it
REQS = [
    GenRequest(messages=(("user", f"Write a {lab} review."),), prefix='"', seed=i)
    for i in range(4)
    for lab in ("positive", "negative")
]
DEC = Decoding(max_new_tokens=8, temperature=1.0, top_p=0.9)
ECHO = dict(echo=True, logprobs=1, max_tokens=1, temperature=0)  # what label scoring sends


@contextlib.contextmanager
def serving(llm):
    """`distill serve`'s app on `llm` in a thread: (its /v1 URL, the app, a local backend on the same model)."""
    from distill.teachers.local import LocalBackend
    from distill.teachers.serve import create_app

    app = create_app(LocalBackend(str(llm)), "tiny", window_s=0.02)
    with serve_in_thread(app) as url:
        yield url, app, LocalBackend(str(llm))


@pytest.fixture(scope="module")
def served(tiny_llm):
    with serving(tiny_llm) as s:
        yield s


def post(url: str, route: str, payload, timeout: float = 30) -> tuple[int, dict]:
    """(HTTP status, JSON body) of one request, errors included."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url + route, data, {"Content-Type": "application/json"}), timeout=timeout
        ) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def completion(**kw) -> dict:
    return {"model": "tiny", "prompt": "hello", "max_tokens": 2, **kw}


def chat(**kw) -> dict:
    return {"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2, **kw}


def write_params(path: Path, **sections) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(sections))
    return path


@pytest.fixture(autouse=True)
def _isolated_mlflow():
    """mlflow.set_tracking_uri() also exports MLFLOW_TRACKING_URI and keeps the URI in a module global; don't let one
    test's store leak into the next (under `pytest -n` a worker's e2e test comes before its unit tests)."""
    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    if saved is not None:
        os.environ["MLFLOW_TRACKING_URI"] = saved
    import sys

    if "mlflow" in sys.modules:  # only where a test used it: importing mlflow costs seconds
        from mlflow.tracking._tracking_service import utils

        utils._tracking_uri = None


def pytest_collection_modifyitems(config, items):
    """End-to-end tests first, in file order (the longest first): under `pytest -n` every worker starts on one while
    the unit tests fill the gaps, instead of one worker running them all at the end."""
    items[:] = [i for i in items if i.get_closest_marker("e2e")] + [i for i in items if not i.get_closest_marker("e2e")]
