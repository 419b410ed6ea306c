"""Pure functions between the teacher interface and the OpenAI wire format (no I/O, no client).

Conventions shared with the local backend, so both backends fill the cache with the same kind of answer:
- `GenResult.text` is what follows the answer prefix (the prefix itself is never part of it);
- a score is log P(option | prefix + text), summed over the option's tokens, when the server gives prompt
  log-probs (`echo`); the first answer token's log-prob (`top_logprobs`); or, with no log-probs at all
  (`answer`), 0.0 for the option the reply names and UNKNOWN for the others.
Off-format replies raise `OffFormat(reason)` (retried, then rejected and counted per reason); replies that
show the server lacks a feature raise `Unsupported` (the scorer falls back to the next method).
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from typing import Any, Callable, Iterable, Mapping, TypeVar
from urllib.parse import urlsplit

from distill.teachers.base import GenRequest, GenResult

T = TypeVar("T")
UNKNOWN = -1e9  # log-prob of an option the server says nothing about (`answer` scoring): probability ~0
MAX_DELAY_S = 60.0


class OffFormat(Exception):
    """A reply that does not have the promised shape; `reason` names it in the rejection counters."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Unsupported(Exception):
    """A well-formed reply that lacks a feature (e.g. no prompt log-probs): try the next scoring method."""


# -- requests ------------------------------------------------------------------------------------------------


def api_host(base_url: str) -> str:
    """host[:port]/path of an API root: never a user name, password or query string, which can hold credentials."""
    u = urlsplit(base_url)
    return (u.hostname or "") + (f":{u.port}" if u.port else "") + u.path.rstrip("/")


def endpoint_id(base_url: str, model: str, *settings: str) -> str:
    """Cache identity of an API teacher: where, which model, and the settings that shape its prompts."""
    return "|".join([f"openai:{api_host(base_url)}/{model}", *settings])


def plain_prompt(req: GenRequest) -> str:
    """The completions prompt: the same plain layout the local backend uses for models without a chat template."""
    return "\n\n".join(c for _, c in req.messages) + "\n\n" + req.prefix


def chat_messages(req: GenRequest, prefix_as: str) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Chat messages and extra body fields for one request.

    hint: a final assistant message is not portable (OpenAI answers after it instead of continuing it), so
    the prefix becomes an instruction at the end of the last user message and the reply is read with
    `strip_prefix`. assistant: the prefix is a final assistant message that vLLM-style servers continue.
    """
    msgs = [{"role": r, "content": c} for r, c in req.messages]
    if not req.prefix:
        return msgs, {}
    if prefix_as == "assistant":
        return msgs + [{"role": "assistant", "content": req.prefix}], {
            "continue_final_message": True,
            "add_generation_prompt": False,
        }
    last = max(i for i, m in enumerate(msgs) if m["role"] == "user")
    msgs[last] = {**msgs[last], "content": f"{msgs[last]['content']}\n\nStart your reply with: {req.prefix}"}
    return msgs, {}


def strip_prefix(text: str, prefix: str) -> str:
    """A chat model told to start with the prefix usually repeats it; the cached text never includes it."""
    head = text.lstrip()
    if prefix.strip() and head.startswith(prefix.strip()):
        return head[len(prefix.strip()) :]
    return text


def scoring_chat(prefix: str, text: str, options: Iterable[str]) -> list[dict[str, str]]:
    """The few-shot scoring prompt as one user turn, told to answer with one option word."""
    words = ", ".join(o.strip() for o in options)
    return [{"role": "user", "content": f"{prefix}{text}\n\n(Reply with one of: {words}.)"}]


# -- replies -------------------------------------------------------------------------------------------------


def _first_choice(resp: Any) -> Any:
    choices = getattr(resp, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise OffFormat("no_choices")
    return choices[0]


def usage_tokens(resp: Any) -> tuple[int, int]:
    u = getattr(resp, "usage", None)
    return (int(getattr(u, "prompt_tokens", 0) or 0), int(getattr(u, "completion_tokens", 0) or 0))


def finish_of(choice: Any) -> str:
    """stop/length as the local backend says them; anything else (content_filter, tool_calls) is off-format."""
    reason = getattr(choice, "finish_reason", None)
    if reason in ("stop", "length"):
        return reason
    if reason == "eos":  # some servers say eos for stop
        return "stop"
    raise OffFormat(f"finish_{reason}")


def chat_text(resp: Any) -> str:
    text = getattr(getattr(_first_choice(resp), "message", None), "content", None)
    if not isinstance(text, str):
        raise OffFormat("no_content")
    return text


def parse_chat(resp: Any, prefix: str, prefix_as: str) -> GenResult:
    text = chat_text(resp)
    choice = _first_choice(resp)
    if prefix_as == "hint":
        text = strip_prefix(text, prefix)
    return GenResult(text, *usage_tokens(resp), finish_of(choice))


def parse_completion(resp: Any) -> GenResult:
    choice = _first_choice(resp)
    text = getattr(choice, "text", None)
    if not isinstance(text, str):
        raise OffFormat("no_text")
    return GenResult(text, *usage_tokens(resp), finish_of(choice))


def echo_logprob(choice: Any, start: int, end: int) -> float:
    """Sum of the log-probs of the echoed prompt tokens that cover characters [start, end) (the option).

    A token straddling `start` belongs to the option (tokenisers merge across the boundary); tokens from
    `end` on are generated ones. Servers that echo no prompt log-probs (llama.cpp, Ollama) are Unsupported.
    """
    lp = getattr(choice, "logprobs", None)
    tokens, values, offsets = (getattr(lp, k, None) for k in ("tokens", "token_logprobs", "text_offset"))
    if not (isinstance(tokens, list) and isinstance(values, list) and isinstance(offsets, list)):
        raise Unsupported("no prompt log-probs")
    if not (len(tokens) == len(values) == len(offsets)):
        raise OffFormat("logprobs_lengths")
    total, covered = 0.0, False
    for tok, val, off in zip(tokens, values, offsets):
        if off < end and off + len(tok) > start:
            if val is None:
                raise Unsupported("no prompt log-probs")
            total += float(val)
            covered = True
    if not covered:
        raise Unsupported("echo does not cover the prompt")
    return total


def _logsumexp(xs: list[float]) -> float:
    top = max(xs)
    return top + math.log(sum(math.exp(x - top) for x in xs))


def first_token_scores(resp: Any, options: tuple[str, ...]) -> list[float]:
    """Option scores from the top log-probs of the first non-blank answer token.

    A candidate token counts for an option when it is a (case-insensitive) prefix of the option word; case
    and spacing variants ("Positive", " positive") add up (logsumexp). An option among none of the returned
    candidates gets the smallest returned log-prob minus one: below everything the server listed.
    """
    content = getattr(getattr(_first_choice(resp), "logprobs", None), "content", None)
    if not isinstance(content, list):
        raise Unsupported("no token log-probs")
    words = [o.strip().lower() for o in options]
    for pos in content:
        top = [
            (getattr(t, "token", None), getattr(t, "logprob", None)) for t in (getattr(pos, "top_logprobs", None) or [])
        ]
        top = [(t, float(v)) for t, v in top if isinstance(t, str) and isinstance(v, (int, float))]
        if not top:
            raise Unsupported("no top log-probs")
        if not top[0][0].strip():
            continue  # leading whitespace token: the answer word comes next
        floor = min(v for _, v in top) - 1.0
        out = []
        for w in words:
            hits = [v for t, v in top if t.strip() and w.startswith(t.strip().lower())]
            out.append(_logsumexp(hits) if hits else floor)
        return out
    raise OffFormat("blank_answer")


def answer_scores(text: str, options: tuple[str, ...]) -> list[float] | None:
    """No log-probs at all: the option word named first in the reply gets 0.0, the others UNKNOWN; None when
    the reply names none."""
    low = text.lower()
    found = [(low.find(o.strip().lower()), j) for j, o in enumerate(options) if o.strip() and o.strip().lower() in low]
    if not found:
        return None
    best = min(found)[1]
    return [0.0 if j == best else UNKNOWN for j in range(len(options))]


def parse_safely(parse: Callable[[Any], T], resp: Any) -> T:
    """parse(resp), where any surprise in the reply's shape is an OffFormat rather than a crash."""
    try:
        return parse(resp)
    except (AttributeError, TypeError, KeyError, IndexError, ValueError):
        raise OffFormat("bad_schema") from None


# -- retries and errors --------------------------------------------------------------------------------------


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the server asks us to wait: `retry-after-ms`, `retry-after` in seconds, or an HTTP date."""
    if not headers:
        return None
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return max(0.0, float(ms) / 1000)
        raw = headers.get("retry-after")
        if raw is None:
            return None
        try:
            return max(0.0, float(raw))
        except ValueError:
            when = email.utils.parsedate_to_datetime(raw)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def backoff_s(attempt: int, base: float, retry_after: float | None, rng: random.Random) -> float:
    """Retry-After when the server sent one, else base * 2^attempt with full jitter in its upper half (so
    many clients retrying together spread out); at most MAX_DELAY_S either way."""
    if retry_after is not None:
        return min(retry_after, MAX_DELAY_S)
    return min(base * 2**attempt, MAX_DELAY_S) * rng.uniform(0.5, 1.0)


def one_line(text: Any, secret: str | None, limit: int = 200) -> str:
    """A server message fit for an error line: one line, cut, and never containing the key."""
    s = " ".join(str(text).split())
    if secret:
        s = s.replace(secret, "***")
    return s if len(s) <= limit else s[: limit - 3] + "..."


def server_message(body: Any) -> str:
    """The human part of an OpenAI-style error body ({"error": {"message": ...}}), else the body itself."""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
    return "" if body is None else str(body)
