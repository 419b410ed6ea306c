"""A key pasted into params.yaml is taken out again before anything keeps it.

`dvc exp run -S teacher.api_key_env=sk-...` writes the key into params.yaml, and DVC stashes that file as a git
blob before the first stage runs. The `check_task` stage always runs (dvc.yaml: always_changed), so the params
check fails there before DVC commits an experiment; this module then removes what is left: the value in
params.yaml (so neither `dvc exp show` nor a later commit shows it) and the loose git objects that hold it and
that nothing references (DVC's popped stash). Reachable objects are never touched: a key that was committed on
purpose stays the user's business, and the message says so.
"""

from __future__ import annotations

import subprocess
import zlib
from pathlib import Path

from distill.core.io import atomic_path

# Tokens that are also valid variable names (hf_..., ghp_..., gsk_...): refused as api_key_env, never echoed.
KEY_PREFIXES = (
    "hf_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "gsk_",
    "sk_",
    "xai_",
    "glpat_",
    "akia",
    "aiza",
    "pplx_",
    "r8_",
)


def looks_like_key(name: str) -> bool:
    """A secret rather than a variable name: a known token prefix, or long and mixed-case with digits."""
    lower = name.lower()
    if lower.startswith(KEY_PREFIXES) and len(name) >= 16:
        return True
    mixed = any(c.islower() for c in name) and any(c.isupper() for c in name) and any(c.isdigit() for c in name)
    return len(name) > 64 or (len(name) >= 24 and mixed)


def scrub(params_path: str | Path, secret: str) -> str:
    """Remove `secret` from the params file and from unreferenced loose git objects -> what was done, in words."""
    path = Path(params_path)
    done = []
    text = path.read_text(encoding="utf-8")
    if secret in text:
        with atomic_path(path) as tmp:
            # `key: <secret>  # comment` becomes `key:  # comment`, i.e. null: the file stays valid YAML
            tmp.write_text(text.replace(secret, ""), encoding="utf-8")
        done.append(f"removed from {path.name}")
    else:  # written with YAML escapes or quotes split across lines: not safe to edit by pattern
        done.append(f"not found verbatim in {path.name}: remove it by hand")
    removed, kept = scrub_git(path.resolve(), secret.encode())
    if removed:
        done.append(f"{removed} unreferenced git object(s) holding it deleted")
    if kept:
        done.append(f"{kept} committed git object(s) still hold it: rewrite that history and revoke the key")
    return "; ".join(done)


def scrub_git(params: Path, secret: bytes) -> tuple[int, int]:
    """(deleted, still referenced): loose objects holding `secret`, deleted when no ref, reflog or the index
    reaches them (as `git prune` decides, DVC's run-scoped executor refs aside). `params` is the scrubbed file:
    where the index holds its keyed version (DVC stages it for the run), the scrubbed one is staged instead.
    Outside a git repository: (0, 0)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=params.parent, capture_output=True, text=True, timeout=120).stdout

    try:
        git_dir = git("rev-parse", "--absolute-git-dir").strip()
        if not git_dir:
            return 0, 0
        staged = git("ls-files", "--stage", "--", params.name).split()  # mode, blob, stage, path
        if (
            staged
            and secret
            in subprocess.run(
                ["git", "cat-file", "blob", staged[1]], cwd=params.parent, capture_output=True, timeout=60
            ).stdout
        ):
            git("add", "--", params.name)
        # What stays referenced: every ref and reflog and the index, except DVC's executor refs (refs/exps/exec/*:
        # EXEC_MERGE holds the stashed params.yaml while the stage runs; DVC deletes them when the run ends).
        listed = git("rev-list", "--objects", "--exclude=refs/exps/exec/*", "--all", "--reflog", "--indexed-objects")
        if not listed:
            return 0, 0  # git said nothing (or failed): delete nothing
        referenced = {line.split()[0] for line in listed.splitlines() if line}
    except (OSError, subprocess.SubprocessError):
        return 0, 0
    deleted = kept = 0
    for obj in (Path(git_dir) / "objects").glob("[0-9a-f][0-9a-f]/*"):
        try:
            holds = secret in zlib.decompress(obj.read_bytes())
        except (OSError, zlib.error):
            continue
        if not holds:
            continue
        sha = obj.parent.name + obj.name
        if sha not in referenced:
            obj.unlink()
            deleted += 1
        else:
            kept += 1
    return deleted, kept
