"""The safe arithmetic evaluator, answer parsing/checking and the generated-sample parser for SVAMP-like tasks."""

import json

import pytest

from conftest import REPO
from distill.prompting.arith import (
    ArithError,
    format_number,
    normalize_equation,
    numeric_match,
    parse_number,
    parse_sample,
    safe_eval,
)


@pytest.mark.parametrize(
    "expr, value",
    [
        ("( 7 - 2 )", 5),
        ("( ( 14 - 2 ) - 10 )", 2),
        ("32 / 2", 16),
        ("-3 + 4 * 2", 5),
        ("2.5 * 4", 10),
        ("((1))", 1),
        ("+4", 4),
    ],
)
def test_evaluates_arithmetic(expr, value):
    assert safe_eval(expr) == value


@pytest.mark.parametrize(
    "expr, reason",
    [
        ("__import__('os').system('echo pwned')", "not_arithmetic"),
        ("open('/etc/passwd')", "not_arithmetic"),
        ("2 ** 100000", "not_arithmetic"),
        ("x + 1", "not_arithmetic"),
        ("(1).real", "not_arithmetic"),
        ("[1, 2]", "not_arithmetic"),
        ("5 // 2", "not_arithmetic"),
        ("5 % 2", "not_arithmetic"),
        ("1 if 1 else 2", "not_arithmetic"),
        ("lambda: 1", "not_arithmetic"),
        ("'12'", "not_arithmetic"),
        ("True + 1", "not_arithmetic"),
        ("3 / 0", "division_by_zero"),
        ("1 +", "not_arithmetic"),
        ("1e308 * 10", "not_finite"),
        ("1 + " * 150 + "1", "too_long"),
        ("-" * 40 + "1", "too_deep"),
    ],
)
def test_refuses_everything_else(expr, reason):
    with pytest.raises(ArithError, match=reason):
        safe_eval(expr)


def test_every_svamp_equation_evaluates_to_its_target():
    """The evaluator covers the real data: every test and validation equation parses, and gives its target except for
    the dataset's own few label errors (test: '( ( 4 - 2 ) + 3 )' labelled 1; validation: '( ( 50 + 60 ) / 2 )' 54.545)."""
    folder = REPO / "data/tasks/svamp"  # shipped with the repository: this test never skips
    for split in ("test", "validation"):
        rows = [json.loads(line) for line in (folder / f"{split}.jsonl").read_text().splitlines()]
        wrong = [
            r
            for r in rows
            if not numeric_match(format_number(safe_eval(normalize_equation(r["equation"]))), r["target"])
        ]
        assert len(rows) >= 200 and len(wrong) <= 1, wrong


def test_normalize_parse_and_match():
    assert normalize_equation("12 x 3 = 36") == "12 * 3" and normalize_equation("1,200 ÷ 4") == "1200 / 4"
    assert (
        parse_number("The answer is 1,200.") == 1200
        and parse_number("-3.5 apples") == -3.5
        and parse_number("none") is None
    )
    assert numeric_match("So she has 5.0 left", "5") and not numeric_match("6", "5") and not numeric_match("", "5")
    assert format_number(5.0) == "5" and format_number(2.5) == "2.5" and format_number(1 / 3) == "0.333333"


def test_parse_generated_sample():
    ok, why = parse_sample(
        "Tom has 12 apples and gives 5 to Ann. How many apples does Tom have now?\nEquation: ( 12 - 5 )\nAnswer: 7"
    )
    assert why == "ok" and ok == {
        "input": "Tom has 12 apples and gives 5 to Ann. How many apples does Tom have now?",
        "equation": "( 12 - 5 )",
        "target": "7",
    }
    assert (
        parse_sample("Problem: A box holds 6 rows of 4 eggs. How many eggs?\nEquation: 6 x 4\nAnswer: 24 eggs")[0][
            "target"
        ]
        == "24"
    )
    assert (
        parse_sample("Problem: Tom has 12 apples and eats 5. How many are left?\nEquation: 12 - 5\nAnswer: 8")[1]
        == "answer_disagrees_with_equation"
    )
    assert (
        parse_sample(
            "Problem: Tom has 12 apples and eats 5. How many are left?\nEquation: twelve minus five\nAnswer: 7"
        )[1]
        == "equation_not_arithmetic"
    )
    assert parse_sample("Problem: Tom has 12 apples and eats 5. How many are left?\nAnswer: 7")[1] == "missing_equation"
    assert parse_sample("Problem: Short?\nEquation: 1 + 1\nAnswer: 2")[1] == "problem_length"
    assert (
        parse_sample("Problem: Tom has 12 apples and eats 5. How many are left?\nEquation: 12 / 0\nAnswer: 0")[1]
        == "equation_division_by_zero"
    )


def test_numbers_too_large_for_a_float_are_not_numbers():
    """`1e309` and a 400-digit integer once reached format_number as inf (OverflowError: a stage's traceback)."""
    from distill.prompting.seq2seq import answer_of
    from distill.core.tasks import load_task

    for text in ("1e309", "9" * 190 + " * 1e200", "1e308 * 10", "-1e309"):
        with pytest.raises(ArithError, match="not_finite"):
            safe_eval(text)
    assert parse_number("Answer: " + "9" * 400) is None and parse_number("1e999") is None
    assert parse_number("2.5e3 apples") == 2500.0 and parse_number("The answer is 1,200.") == 1200.0
    assert format_number(float("inf")) == "" and format_number(float("nan")) == ""
    spec = load_task(REPO / "data/tasks/svamp", quiet=True).spec
    assert answer_of(spec, "Equation: 1e999") == "" and answer_of(spec, "Answer: " + "9" * 400) == ""
    sample, reason = parse_sample("Problem: Ann has some pens in a box.\nEquation: 1e999 + 1\nAnswer: 5")
    assert sample is None and reason == "equation_not_finite"
