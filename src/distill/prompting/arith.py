"""Arithmetic for math-word-problem tasks (SVAMP): a safe equation evaluator, answer parsing and checking, and the
parser of generated (problem, equation, answer) samples (methods.md §2.8). Pure functions, no model.

The evaluator walks Python's AST and allows numbers, + - * / (also written x, ×, ÷), unary minus and parentheses;
anything else (names, calls, powers, attributes, comprehensions...) is refused. `eval` is never used: generated
text is untrusted input.
"""

from __future__ import annotations

import ast
import math
import operator
import re

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
MAX_EQUATION_CHARS = 200  # SVAMP's equations are under 60 characters; a long one is not an equation
MAX_DEPTH = 32


class ArithError(ValueError):
    """Not an arithmetic expression we evaluate (the message says why, for per-reason reject counts)."""


def normalize_equation(text: str) -> str:
    """'12 x 3', '12×3', '12 ÷ 4', '1,200 - 5' -> Python operators, no thousands separators, no '= ...' tail."""
    text = text.strip().split("=")[0]
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    return text.replace("×", "*").replace("÷", "/").replace("x", "*").replace("X", "*").replace("−", "-").strip()


def safe_eval(expression: str) -> float:
    """The value of an arithmetic expression, or ArithError (never `eval`)."""
    if len(expression) > MAX_EQUATION_CHARS:
        raise ArithError("too_long")
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        raise ArithError("not_arithmetic") from None
    return _value(tree.body, 0)


def _value(node: ast.AST, depth: int) -> float:
    if depth > MAX_DEPTH:
        raise ArithError("too_deep")
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        try:  # `1e309` parses as inf, a 400-digit integer does not fit a float: neither is an answer
            value = float(node.value)
        except OverflowError:
            raise ArithError("not_finite") from None
        if not math.isfinite(value):
            raise ArithError("not_finite")
        return value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _value(node.operand, depth + 1)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _value(node.left, depth + 1), _value(node.right, depth + 1)
        if isinstance(node.op, ast.Div) and right == 0:
            raise ArithError("division_by_zero")
        out = _OPS[type(node.op)](left, right)
        if not math.isfinite(out):
            raise ArithError("not_finite")
        return out
    raise ArithError("not_arithmetic")


# an exponent is part of the number it follows: '1e999' is one (too large) number, not 999
_NUMBER = re.compile(r"(?:-?\d[\d,]*(?:\.\d+)?|-?\.\d+)(?:[eE][-+]?\d+)?")


def parse_number(text: str) -> float | None:
    """The answer a model wrote: the last number in the text ('The answer is 1,200.' -> 1200.0); None if none, or
    if it is too large for a float (400 digits read as inf: not a number either)."""
    found = _NUMBER.findall(text.replace("−", "-"))
    if not found:
        return None
    try:
        value = float(found[-1].replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def numeric_match(predicted: str, target: str, tol: float = 1e-4) -> bool:
    """SVAMP's answer check: the predicted text's number equals the target's (5 == 5.0), up to the rounding of
    targets written with 4-6 decimals (0.6667 * 0.5 = 0.33335 matches a target of 0.3333)."""
    p, t = parse_number(predicted), parse_number(target)
    return p is not None and t is not None and math.isclose(p, t, rel_tol=tol, abs_tol=tol)


def format_number(value: float) -> str:
    """5.0 -> '5', 2.5 -> '2.5' (targets are written like the dataset's: no trailing '.0', at most 6 decimals);
    '' for inf or nan (safe_eval and parse_number return neither, but a caller's own float may be one)."""
    if not math.isfinite(value):
        return ""
    return str(int(round(value))) if abs(value - round(value)) < 1e-9 else f"{value:.6f}".rstrip("0").rstrip(".")


FIELDS = ("Problem", "Equation", "Answer")


def parse_sample(raw: str, min_chars: int = 10, max_chars: int = 400) -> tuple[dict[str, str] | None, str]:
    """A generated 'Problem: ... Equation: ... Answer: ...' text -> ({input, equation, target}, 'ok'), or (None, reason).

    Filters (methods.md §2.8): every field present, the problem 10-400 characters, the equation evaluates safely,
    and the written answer equals the equation's value (the answer that is kept is the equation's value).
    """
    parts = re.split(r"(?im)^\s*(?:\d+\.\s*)?(Problem|Equation|Answer)\s*:\s*", "\n" + raw.strip())
    fields: dict[str, str] = {}
    for name, value in zip(parts[1::2], parts[2::2]):
        fields.setdefault(name.capitalize(), " ".join(value.split()))
    if "Problem" not in fields and parts[0].strip():  # the prompt ended inside the first field ("Problem:")
        fields["Problem"] = " ".join(parts[0].split())
    missing = [f for f in FIELDS if not fields.get(f)]
    if missing:
        return None, f"missing_{missing[0].lower()}"
    problem = fields["Problem"]
    if not min_chars < len(problem) < max_chars:
        return None, "problem_length"
    equation = normalize_equation(fields["Equation"])
    try:
        value = safe_eval(equation)
    except ArithError as e:
        return None, f"equation_{e}"
    answer = parse_number(fields["Answer"])
    if answer is None:
        return None, "answer_not_a_number"
    if not math.isclose(answer, value, rel_tol=1e-6, abs_tol=1e-6):
        return None, "answer_disagrees_with_equation"
    return {"input": problem, "equation": equation, "target": format_number(value)}, "ok"
