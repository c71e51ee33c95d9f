# The two commands of the README: `make up` (install what is missing, bring a cluster up) and
# `make test` (install what is missing, run the whole test suite). Both call scripts/setup.sh,
# which is idempotent.
.PHONY: setup up test lint generate bench

setup:
	scripts/setup.sh

up: setup
	.venv/bin/pinnace up

test: setup
	scripts/test.sh

generate: setup
	.venv/bin/python -m cri.generate

bench: setup
	.venv/bin/python bench/cri_baseline.py
