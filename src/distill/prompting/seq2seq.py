"""seq2seq tasks (SVAMP): how an example is written in prompts and for the student, what the teacher is asked, and
how an answer is read back and checked. Pure functions of the task spec; no model.

One example is written as blocks, the same everywhere (generation demos, teacher solving, the student's text):

    Problem: <input>
    Equation: <equation>        (tasks with an equation field: the worked step, evaluated safely, never `eval`)
    Answer: <target>

The student reads `Problem: <input>` and writes the rest; its answer is the value of the equation it wrote when that
equation evaluates, else the number (or text) after `Answer:`. The teacher is read the same way, so both are held
to one checker (task.yaml `target.check`: numeric or exact).
"""

from __future__ import annotations

import random
import re
from typing import Any

from distill.prompting.arith import (
    ArithError,
    format_number,
    normalize_equation,
    numeric_match,
    parse_number,
    parse_sample,
    safe_eval,
)
from distill.prompting.generation import make_request, normalise, template_hash
from distill.core.tasks import TaskSpec

VAL_INSTRUCTION = (
    "The new problem must be significantly different from the examples above: a new situation, new numbers."
)


def source_text(spec: TaskSpec, row: dict[str, Any]) -> str:
    """What the student and the teacher read: the input line, ending where the answer starts."""
    field = spec.fields[0]
    return f"{field.display}: {' '.join(str(row[field.name]).split())}\n"


def completion_text(spec: TaskSpec, row: dict[str, Any]) -> str:
    """What the student learns to write after `source_text`: the equation (if the task has one) and the answer."""
    t = spec.target
    eq = row.get(t.equation) if t.equation else None
    answer = f"{t.display}: {row[t.name]}"
    return f"Equation: {eq}\n{answer}" if eq else answer


def example_block(spec: TaskSpec, row: dict[str, Any]) -> str:
    return source_text(spec, row) + completion_text(spec, row)


def first_block(text: str, spec: TaskSpec) -> str:
    """A model's continuation up to where it starts a new example (the next input line). Blank lines inside one
    example are kept: the small teacher often leaves one between the problem and its equation."""
    return re.split(rf"\n\s*{re.escape(spec.fields[0].display)}\s*:", text, maxsplit=1)[0].strip()


def _line(text: str, name: str) -> str | None:
    """What follows `<name>:` on its own line ('Equation', the answer's display name), or None."""
    m = re.search(rf"(?im)^\s*{re.escape(name)}\s*:\s*(.+)$", text)
    return m.group(1) if m else None


def _equation(text: str) -> tuple[str, float] | None:
    """The equation line as Python operators, and its value; None when there is none or it does not evaluate."""
    line = _line(text, "Equation")
    if line is None:
        return None
    expression = normalize_equation(line)
    try:
        return expression, safe_eval(expression)
    except ArithError:
        return None


def answer_of(spec: TaskSpec, text: str) -> str:
    """The answer a model wrote: its equation's value where it evaluates (numeric tasks), else what follows the
    answer line (or, numeric, the last number anywhere). '' when there is none."""
    text = first_block(text, spec)
    t = spec.target
    line = _line(text, t.display)
    if t.check == "numeric":
        if (eq := _equation(text)) is not None:
            return format_number(eq[1])
        n = parse_number(line if line is not None else text)
        return format_number(n) if n is not None else ""
    return " ".join((line if line is not None else text.split("\n")[-1]).split())


def is_correct(spec: TaskSpec, answer: str, target: str) -> bool:
    if spec.target.check == "numeric":
        return numeric_match(answer, target)
    return normalise(answer) == normalise(target)


def accuracy(spec: TaskSpec, answers: list[str], rows: list[dict[str, Any]]) -> float:
    return sum(is_correct(spec, a, r[spec.target.name]) for a, r in zip(answers, rows)) / max(len(rows), 1)


# -- the teacher solving (few-shot) ----------------------------------------------------------------------------------
def solve_messages(
    spec: TaskSpec, demos: list[dict[str, Any]], row: dict[str, Any]
) -> tuple[list[tuple[str, str]], str]:
    """(chat prompt, answer prefix): the task's instruction, worked demos, the problem; the answer is pre-filled
    with the first completion word so the model writes the equation (or answer) straight away."""
    blocks = "\n\n".join(example_block(spec, d) for d in demos)
    content = f"{spec.instruction}\n\n{blocks}\n\n{source_text(spec, row).strip()}"
    return [("user", content)], ("Equation:" if spec.target.equation else f"{spec.target.display}:")


def read_solution(spec: TaskSpec, text: str) -> dict[str, str] | None:
    """A worked solution a model wrote -> the task's target fields ({equation, target} or {target}), the answer read as
    `answer_of` reads it; None when there is no usable answer. An equation task needs an equation that evaluates, and
    a written answer that disagrees with its value (numeric tasks) makes the solution unusable, as generation rejects
    such samples (`answer_disagrees_with_equation`)."""
    text = first_block(text, spec)
    t = spec.target
    answer = answer_of(spec, text)
    if not answer:
        return None
    if not t.equation:
        return {t.name: answer}
    if (eq := _equation(text)) is None:
        return None
    written = _line(text, t.display)
    if t.check == "numeric" and written is not None and not numeric_match(written, format_number(eq[1])):
        return None
    return {t.equation: eq[0], t.name: answer}


def vote(spec: TaskSpec, texts: list[str]) -> tuple[dict[str, str] | None, float]:
    """Self-consistency (Wang et al. 2023) as the teacher's per-sequence confidence: the answer most of the teacher's
    sampled solutions reach wins; confidence = its share of all samples (a sample with no answer votes for none).
    Returns (the first winning solution's target fields, confidence), or (None, 0.0) when no sample has an answer.
    Ties go to the answer reached first."""
    solutions = [read_solution(spec, t) for t in texts]
    groups: list[list] = []  # [answer, votes], in first-reached order
    for s in solutions:
        if s is not None:
            a = s[spec.target.name]
            group = next((g for g in groups if is_correct(spec, a, g[0])), None)
            if group is None:
                groups.append([a, 1])
            else:
                group[1] += 1
    if not groups:
        return None, 0.0
    best, n = max(groups, key=lambda g: g[1])  # max keeps the first of equal counts
    winner = next(s for s in solutions if s is not None and is_correct(spec, s[spec.target.name], best))
    return winner, n / len(texts)


# -- generation of new examples (ZeroGen-style, GOLD's iterations) ---------------------------------------------------
def generation_messages(spec: TaskSpec, demos: list[dict[str, Any]], extra: str = "") -> list[tuple[str, str]]:
    """Ask for one new example in the demos' format; the answer is pre-filled with the input's display name.

    Worded as plainly as the embedded 135M teacher needs: "Here are math word problems, each with the equation that
    solves it and its answer" kept 8/64 SVAMP samples, the task's solving instruction + "Examples:" kept ~1/64 (it
    dropped the equation line): docs/benchmarks.md "SVAMP"."""
    one = re.sub(r"^(a|an) ", "", spec.fields[0].description)
    worked = "the equation that solves it and its answer" if spec.target.equation else "its answer"
    fmt = ", ".join([spec.fields[0].display] + (["Equation"] if spec.target.equation else []) + [spec.target.display])
    blocks = "\n\n".join(example_block(spec, d) for d in demos)
    intro = f"Here are {one}s, each with {worked}.\n\n{blocks}\n\n" if demos else ""
    return [("user", f"{intro}Write one new {one} in the same format: {fmt}.{' ' + extra if extra else ''}")]


def gen_prefix(spec: TaskSpec) -> str:
    return f"{spec.fields[0].display}:"


def build_requests(
    spec: TaskSpec,
    n: int,
    fewshot: list[dict[str, Any]],
    demos_per_prompt: int,
    seed: int,
    tag: str = "",
    feedback: list[dict[str, Any]] = (),
    feedback_ratio: float = 0.0,
    extra: str = "",
    block: str = "",
) -> list[dict[str, Any]]:
    """n generation requests, each showing `demos_per_prompt` real examples (and, in a `feedback_ratio` share, the
    feedback examples after them, as GOLD appends its feedback). Stable ids and per-request seeds."""
    rng = random.Random(f"{seed}-{tag}{block}")
    rows = []
    for j in range(n):
        demos = rng.sample(fewshot, min(demos_per_prompt, len(fewshot)))
        if feedback and rng.random() < feedback_ratio:
            demos = demos + list(feedback)
        row = _request(spec, f"{tag}{block}-{j}", demos, extra if demos else "", seed)
        rows.append({**row, "block": block} if block else row)
    return rows


def extrapolation_requests(
    spec: TaskSpec,
    errors: list[dict[str, Any]],
    fewshot: list[dict[str, Any]],
    demos_per_prompt: int,
    round_: int,
    seed: int,
) -> list[dict[str, Any]]:
    """S3's T_mis for seq2seq: one request per validation problem the student got wrong; its worked solution is the
    last demo and the teacher is asked for a similar new problem (kept only if it checks, like every sample)."""
    rng = random.Random(f"{seed}-s3r{round_}")
    return [
        _request(
            spec, f"s3r{round_}-{j}", rng.sample(fewshot, min(demos_per_prompt, len(fewshot))) + [e], SIMILAR, seed
        )
        for j, e in enumerate(errors)
    ]


SIMILAR = (
    "The new problem must be similar to the last example above: the same kind of situation and steps, new numbers."
)


def _request(spec: TaskSpec, rid: str, demos: list[dict[str, Any]], extra: str, seed: int) -> dict[str, Any]:
    prefix = gen_prefix(spec)
    thash = template_hash(spec, prefix) + "s"
    return make_request(
        thash,
        f"{thash}-{rid}",
        "",
        None,
        generation_messages(spec, demos, extra),
        prefix,
        seed,
        [d[spec.fields[0].name] for d in demos],
    )


def parse_generated(spec: TaskSpec, raw: str) -> tuple[dict[str, str] | None, str]:
    """A generated example (the text after the input's display name) -> ({input field, target, equation}, 'ok') or
    (None, reject reason). Equation tasks: methods.md §2.8 (arith.parse_sample); others: the input and answer lines."""
    field, t = spec.fields[0], spec.target
    text = f"{field.display}: " + first_block(raw, spec)
    if t.equation:
        if field.display != "Problem":  # parse_sample reads Problem / Equation / Answer lines
            text = text.replace(f"{field.display}:", "Problem:", 1)
        if t.display != "Answer":
            text = re.sub(rf"(?im)^\s*{re.escape(t.display)}\s*:", "Answer:", text)
        sample, why = parse_sample(text)
        if sample is None:
            return None, why
        return {field.name: sample["input"], t.equation: sample["equation"], t.name: sample["target"]}, "ok"
    m = re.match(rf"\s*{re.escape(field.display)}\s*:\s*(.+?)\n\s*{re.escape(t.display)}\s*:\s*(.+)", text, re.S)
    if not m:
        return None, f"missing_{t.display.lower()}"
    source, answer = " ".join(m.group(1).split()), " ".join(m.group(2).split("\n")[0].split())
    if not source or not answer:
        return None, "empty"
    if t.check == "numeric" and parse_number(answer) is None:
        return None, "answer_not_a_number"
    return {field.name: source, t.name: answer}, "ok"
