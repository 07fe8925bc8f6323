"""`robot-rl` command line: one module per group of subcommands, each defining `register(subparsers)`.

Commands only parse arguments, call the library and print; heavy imports (torch, rclpy, mujoco) stay inside the
command functions, so `robot-rl --help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES: list[str] = [
    "robot_rl.commands.demo",      # demo, sim-check
    "robot_rl.commands.record",    # record
    "robot_rl.commands.train",     # pretrain, finetune-gym
    "robot_rl.commands.rft",       # sft, rft
    "robot_rl.commands.reward",    # deg train|eval, reward train-classifier
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="robot-rl")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
