.PHONY: test lint bench run ui
test:
	.venv/bin/pytest
lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
bench:
	.venv/bin/python bench/engine_throughput.py
run:
	.venv/bin/gradus run
ui:
	DAGSTER_HOME=$(CURDIR) .venv/bin/dagster dev
