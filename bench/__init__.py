"""Benchmarks for robot_rl; each module writes one section of docs/benchmarks.md (see bench.report)."""
