# flashrec: the two commands a fresh machine needs are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python

export DAGSTER_HOME := $(CURDIR)/var/dagster
export DAGSTER_DISABLE_TELEMETRY := 1
export BENTOML_HOME := $(CURDIR)/var/bentoml
export BENTOML_DO_NOT_TRACK := true
export FEAST_USAGE := False
export SPARK_LOCAL_IP := 127.0.0.1
export PYTHONWARNINGS := ignore

.PHONY: setup demo test test-unit lint dagster lock up down status parity bench-stream \
	bench-quality bench-automl bench-slo bench-slo-read k8s features-start features-stop \
	features-status clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) -m orchestration.demo

test: setup
	$(PY) -m pytest -q -p no:cacheprovider

test-unit: setup
	$(PY) -m pytest -q -p no:cacheprovider tests/unit

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

dagster: setup
	set -m; $(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

# Re-resolve the pinned set after changing pyproject.toml.
lock:
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev -o constraints.txt --no-header -q

# Keep the whole platform running for a person to explore (see README for the URLs).
up: setup
	$(PY) -m orchestration.stack up

down:
	$(PY) -m orchestration.stack down

status:
	$(PY) -m orchestration.stack status

# Production manifests rendered from the settings into var/k8s/.
k8s: setup
	$(PY) -m orchestration.k8s

features-start: setup
	$(PY) -m flink_jobs.features_job start $(if $(RESTORE),--restore)

features-stop:
	$(PY) -m flink_jobs.features_job stop

features-status:
	$(PY) -m flink_jobs.features_job status

parity: setup
	$(PY) -m bench.parity

bench-stream: setup
	$(PY) -m bench.stream

bench-automl: setup
	$(PY) -m bench.automl $(if $(DATA),--data $(DATA)) $(if $(QUICK),--quick)

# The flash-sale load test of the whole stack with an SLO report (var/bench/slo/report.md):
# ~5 minutes; RAMP="10:20,100:20,1000:60" (events/s:seconds), CONNECTIONS=16.
bench-slo: setup
	$(PY) -m bench.slo $(if $(RAMP),--ramp $(RAMP)) $(if $(CONNECTIONS),--connections $(CONNECTIONS))

# The read path alone (seeded Redis, no events) against the bare-ASGI ceiling.
bench-slo-read: setup
	$(PY) -m bench.slo_read --duration 15 --rounds 3 --with-default

bench-quality: setup
	$(PY) -m bench.quality $(if $(DATA),--data $(DATA))

clean:
	rm -rf var/lake var/landing var/artifacts var/dagster/storage var/dagster/history
