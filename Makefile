# The two commands a newcomer needs: `make demo` and `make test` (both set up .venv from pyproject first).
.PHONY: venv demo test lint bench

venv:
	@scripts/ensure_venv.sh

demo: venv
	.venv/bin/msunas demo

test: venv
	@scripts/run_tests.sh

lint: venv
	.venv/bin/ruff check .
	.venv/bin/mypy supernets search acc_predictor early_exit robustness service

bench: venv
	@for b in bench/*.py; do echo "== $$b"; .venv/bin/python $$b || exit 1; done
