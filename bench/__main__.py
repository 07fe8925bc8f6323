"""Run every benchmark: each `bench/*.py` module that defines `main(argv=None)` (except report and __main__),
in file-name order, each in its own subprocess (`python -m bench.<name>`). Exits non-zero if any of them fails.

    python -m bench                      # all of them
    python -m bench image_transport ...  # only the named ones
    python -m bench --list
"""
from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SKIP = {"__init__", "__main__", "report"}


def _has_main(path: Path) -> bool:
    """Module-level `def main(...)`, found by parsing, not importing (benchmarks set env vars at import)."""
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError:
        return True  # let it run and fail loudly rather than skip it silently
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == "main" for n in tree.body)


def discover() -> list[str]:
    return [p.stem for p in sorted(HERE.glob("*.py")) if p.stem not in SKIP and _has_main(p)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Run the robot_rl benchmarks (each rewrites its docs/benchmarks.md section).")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    available = discover()
    if args.list:
        print("\n".join(available))
        return 0
    unknown = [n for n in args.names if n not in available]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {available}")
    names = args.names or available
    results = []
    for name in names:
        print(f"=== bench.{name} ===", flush=True)
        start = time.monotonic()
        try:
            rc = subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=ROOT).returncode
        except KeyboardInterrupt:
            print(f"bench.{name}: interrupted", file=sys.stderr)
            return 130
        results.append((name, rc, time.monotonic() - start))
    print("\n=== summary ===")
    for name, rc, dt in results:
        print(f"{'ok  ' if rc == 0 else 'FAIL'} bench.{name} ({dt:.0f} s){'' if rc == 0 else f' exit {rc}'}")
    return 0 if all(rc == 0 for _, rc, _ in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
