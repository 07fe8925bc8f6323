# Two set-up commands for a fresh machine: `make demo` and `make test`. Each installs what is missing first.
# The suite runs in two pytest-xdist workers, a test file to a worker: its graph tests spend much of their time
# waiting on other processes, so on 2 cores two files at a time take 2/3 of the serial time.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
RUN := source scripts/ros_env.sh &&

.PHONY: install install-test demo test bench interop clean

install:
	@VENV=$(VENV) bash scripts/install.sh

install-test:
	@VENV=$(VENV) bash scripts/install.sh --franky-sim

demo: install
	$(RUN) $(PY) -m robot_rl.commands demo

test: install-test
	$(RUN) $(PY) -m pytest -q -n 2 --dist loadfile --durations=15 test

bench: install
	$(RUN) $(PY) -m bench

interop: install
	bash scripts/lerobot_interop.sh

clean:
	rm -rf $(VENV) runs .pytest_cache
