# Two set-up commands for a fresh machine: `make demo` and `make test`. Each installs what is missing first.
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
	$(RUN) $(PY) -m pytest -q --durations=15 test

bench: install
	$(RUN) $(PY) -m bench

interop: install
	bash scripts/lerobot_interop.sh

clean:
	rm -rf $(VENV) runs .pytest_cache
