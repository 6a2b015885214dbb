"""bench/backend.py --lifecycle: celery_sa's backend before the sent and start times and the
attempt table (commit b5b844d), as it is now, and now with ``sa_track_sent``.

Each variant's turn runs in a process of its own (``backend.py --variant NAME``), whose
environment its workers and its ``GroupResult.get()`` processes inherit: ``before`` sets
BENCH_CELERY_SA_TREE to a ``git worktree`` of b5b844d (bench/backend_tasks.py then imports
celery_sa, and only it, from there: the checkout's ``bench`` and ``tests`` stay first), so
the client that publishes, builds the tables and reads the group, and the workers, all run
that commit's celery_sa; ``+track_sent`` sets BENCH_TRACK_SENT=0 (each PENDING row written
before its message leaves), ``+batched`` BENCH_TRACK_SENT=0.05 (rows written together by a
thread, at most 50 ms later). Which file the client's and
each worker's backend class came from is checked after every turn.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from bench.backend_tasks import TRACK_SENT, TREE

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "b5b844d"
BASELINE_DIR = ROOT / "var" / "bench-baseline"
BEFORE, NOW, TRACKED, BATCHED = "before", "now", "+track_sent", "+batched"
VARIANTS = (BEFORE, NOW, TRACKED, BATCHED)
RATIOS = ((NOW, BEFORE), (TRACKED, NOW), (BATCHED, NOW))
# sa_track_sent_delay of the two variants that track sends (BENCH_TRACK_SENT).
DELAYS = {TRACKED: "0", BATCHED: "0.05"}
"""The ratios reported, numerator first."""

Values = dict[str, dict[str, list[float]]]


def git(*args: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def baseline_tree() -> Path:
    """The worktree of BASELINE, added on first use (detached) and re-used afterwards."""
    commit = git("rev-parse", "--verify", f"{BASELINE}^{{commit}}")
    if BASELINE_DIR.exists():
        head = git("rev-parse", "HEAD", cwd=BASELINE_DIR)
        if head != commit:
            raise RuntimeError(
                f"{BASELINE_DIR} is at {head[:10]}, not {BASELINE}: remove it"
                f" (git worktree remove --force {BASELINE_DIR}) and run again"
            )
        return BASELINE_DIR
    BASELINE_DIR.parent.mkdir(parents=True, exist_ok=True)
    git("worktree", "prune")  # a worktree whose directory was deleted by hand
    git("worktree", "add", "--detach", str(BASELINE_DIR), commit)
    return BASELINE_DIR


def slug(variant: str) -> str:
    return variant.strip("+")


def variant_env(variant: str, tree: Path) -> dict[str, str]:
    """The environment of ``variant``'s process, its workers' and its subprocesses'."""
    env = {key: value for key, value in os.environ.items() if key not in (TREE, TRACK_SENT)}
    if variant == BEFORE:
        env[TREE] = str(tree)
    elif variant in DELAYS:
        env[TRACK_SENT] = DELAYS[variant]
    return env


def order(number: int) -> list[str]:
    """Round ``number``'s order: each variant goes first in one round of three, so a
    machine that slows down or warms up over a round weighs on each the same."""
    shift = (number - 1) % len(VARIANTS)
    return [*VARIANTS[shift:], *VARIANTS[:shift]]


def run_variant(variant: str, tree: Path, argv: list[str], samples: Path) -> Values:
    """Run ``argv`` (``backend.py --variant …``) in ``variant``'s environment, its output
    to this one's; the samples it wrote to ``samples``."""
    process = subprocess.Popen(argv, cwd=ROOT, env=variant_env(variant, tree))
    try:
        returncode = process.wait()
    finally:
        if process.poll() is None:  # interrupted: the child stops its workers on SIGTERM
            process.terminate()
            process.wait(60)
    if returncode != 0:
        raise RuntimeError(f"the {variant} run failed ({returncode})")
    values: Values = json.loads(samples.read_text())
    return values


def check_origins(variant: str, tree: Path, origins: Path) -> str:
    """That the client's backend and every worker's came from ``variant``'s tree (the
    worktree for ``before``, the checkout otherwise): the line to print."""
    expected = (tree if variant == BEFORE else ROOT) / "celery_sa"
    files = origins.read_text().split()
    wrong = [name for name in files if not Path(name).resolve().is_relative_to(expected)]
    if len(files) < 3 or wrong:
        raise RuntimeError(f"{variant}: backends not all from {expected}: {files}")
    shown = Path(files[0]).resolve().relative_to(ROOT)
    return (
        f"  {variant:<11} backend class from {shown} (the client and its {len(files) - 1} workers)"
    )
