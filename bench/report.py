"""Helpers shared by the benchmarks: the machine description, markdown tables, and docs/benchmarks.md sections.

Each benchmark owns one block of docs/benchmarks.md, delimited by ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``;
`write_section` replaces that block (or appends it) and leaves the rest of the file alone, so benchmarks can be re-run
one at a time in any order.
"""
from __future__ import annotations

import datetime
import fcntl
import hashlib
import os
import platform
import re
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

ROOT = Path(__file__).resolve().parent.parent

HEADER = """# Benchmarks

Generated file: every section below is written by one benchmark module (`make bench` runs them all,
`python -m bench` does the same, `python -m bench.<name>` re-runs one and rewrites only its own section).
Edit the benchmark, not this file. Each table says the command that produced it and the machine it ran on.
"""


def _resolve(path: str | os.PathLike) -> Path:
    p = Path(path)
    return p if p.is_absolute() else ROOT / p


def write_section(name: str, markdown: str, path: str | os.PathLike = "docs/benchmarks.md") -> Path:
    """Put `markdown` between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` in `path` (relative paths are taken
    from the repository root). Replaces the existing block, or appends one; creates the file with a header if missing.
    Idempotent: writing the same text twice gives the same file. Returns the path written."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"section name must be [A-Za-z0-9_.-]+, got {name!r}")
    target = _resolve(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    # A lock file in the temp dir (not next to the target: no stray file in docs/) serialises concurrent writers.
    lock_path = Path(tempfile.gettempdir()) / f"bench_report_{hashlib.sha1(str(target).encode()).hexdigest()[:12]}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = target.read_text() if target.exists() else HEADER
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
        if pattern.search(old):
            new = pattern.sub(lambda _m: block, old, count=1)
        else:
            new = old.rstrip("\n") + "\n\n" + block + "\n"
        if not new.endswith("\n"):
            new += "\n"
        if new != old:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(new)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
    return target


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 ** 2
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine_line() -> str:
    """One sentence describing where a table was measured: CPU model, cores, RAM, Python, OS, date."""
    cores = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = cores
    core_txt = f"{usable} cores" if usable == cores else f"{usable} of {cores} cores usable"
    ram = _ram_gib()
    ram_txt = f"{ram:.1f} GiB RAM" if ram is not None else "unknown RAM"
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (f"Measured on {_cpu_model()}, {core_txt}, {ram_txt}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}, {date}.")


def _cell(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if v != v:  # NaN
            return "–"
        return f"{v:.2f}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence, rows: Iterable[Sequence]) -> str:
    """A GitHub-flavoured markdown table. Floats get 2 decimals, None/NaN print as '–'; pre-format strings for more
    control. Columns are padded so the raw text lines up too."""
    head = [_cell(h) for h in headers]
    body = [[_cell(v) for v in row] for row in rows]
    for i, row in enumerate(body):
        if len(row) != len(head):
            raise ValueError(f"row {i} has {len(row)} cells, the header has {len(head)}")
    widths = [max([len(head[c])] + [len(r[c]) for r in body] + [3]) for c in range(len(head))]

    def line(cells):
        return "| " + " | ".join(cell.ljust(w) for cell, w in zip(cells, widths)) + " |"

    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in body])


def write_results(bench: str, rows: list[dict], path: str | os.PathLike | None = None) -> Path:
    """The bench's numbers in long format, `{"bench": name, "rows": [{"method", "seed", "metric", "value", ...}]}`
    (success rates as fractions in [0, 1]), to docs/results/<bench>.json, so anyone can recompute its tables."""
    for i, row in enumerate(rows):
        if not {"method", "seed", "metric", "value"} <= set(row):
            raise ValueError(f"row {i} lacks one of method, seed, metric, value: {row}")
    target = _resolve(path or f"docs/results/{bench}.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(results_text(bench, rows))
    return target


def results_text(bench: str, rows: list[dict]) -> str:
    """The results file's JSON with one row per line: a diff shows which numbers changed, and a bench that keeps every
    evaluation episode's outcome stays readable."""
    import json

    lines = ",\n".join(json.dumps(row, ensure_ascii=False) for row in rows)
    return f'{{"bench": {json.dumps(bench)}, "rows": [\n{lines}\n]}}\n'

