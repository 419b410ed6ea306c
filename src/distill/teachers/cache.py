"""A content-addressed store of LLM answers (SQLite under `.cache/`, outside DVC's outputs).

The key is a hash of everything that determines an answer: model identity (name + weights hash),
the full prompt, decoding parameters and the per-call seed. A stage re-run with an unchanged config
therefore makes zero LLM calls, and a killed run resumes from the last stored batch.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable

from distill.core.io import sha256_text


def cache_key(**parts: Any) -> str:
    return sha256_text(json.dumps(parts, sort_keys=True, ensure_ascii=False))


class LLMCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # WAL lets several stage processes (dvc queue -j 2) read and write the same file.
        self.db = sqlite3.connect(self.path, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, kind TEXT, model TEXT, value TEXT, created REAL, seconds REAL)"
        )
        if "seconds" not in {
            row[1] for row in self.db.execute("PRAGMA table_info(answers)")
        }:  # caches written before it
            self.db.execute("ALTER TABLE answers ADD COLUMN seconds REAL")
        self.db.commit()

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        return {k: v for k, (v, _) in self.get_with_seconds(keys).items()}

    def get_with_seconds(self, keys: Iterable[str]) -> dict[str, tuple[Any, float]]:
        """Cached answers with the backend seconds it took to produce each (its share of its batch)."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, tuple[Any, float]] = {}
        for i in range(0, len(keys), 500):  # SQLite limits the number of bound variables
            chunk = keys[i : i + 500]
            q = f"SELECT key, value, seconds FROM answers WHERE key IN ({','.join('?' * len(chunk))})"
            for k, v, sec in self.db.execute(q, chunk):
                found[k] = (json.loads(v), sec or 0.0)
        return found

    def put_many(self, kind: str, model: str, items: dict[str, Any], seconds_each: float = 0.0) -> None:
        now = time.time()
        self.db.executemany(
            "INSERT OR REPLACE INTO answers (key, kind, model, value, created, seconds) VALUES (?, ?, ?, ?, ?, ?)",
            [(k, kind, model, json.dumps(v, ensure_ascii=False), now, seconds_each) for k, v in items.items()],
        )
        self.db.commit()

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        self.db.close()
