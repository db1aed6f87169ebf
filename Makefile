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

.PHONY: setup demo test test-e2e test-unit lint dagster lock up down status parity bench-stream \
	bench-quality bench-automl bench-slo bench-slo-read bench-adapt bench-scaling bench-soak \
	check-rules k8s k8s-validate \
	features-start features-stop \
	features-status clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) -m orchestration.demo

test: setup
	$(PY) -m pytest -q -p no:cacheprovider

# The adaptive loop end to end on live traffic alone (~15 minutes on 2 cores; also in `make test`).
test-e2e: setup
	$(PY) -m pytest -q -p no:cacheprovider -m e2e -s

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

# Keep the whole platform running under supervision, with Prometheus (see README for the
# URLs); a process that dies is restarted by itself.
up: setup
	$(PY) -m orchestration.stack up

down:
	$(PY) -m orchestration.stack down

status:
	$(PY) -m orchestration.stack status

# Production manifests rendered from the settings into var/k8s/.
k8s: setup
	$(PY) -m orchestration.k8s

# Render, then check offline: Kubernetes API schemas (strict), yamllint, hadolint.
k8s-validate: setup
	$(PY) -m orchestration.k8s.validate --out var/k8s

features-start: setup
	$(PY) -m flink_jobs.features_job start $(if $(RESTORE),--restore)

features-stop:
	$(PY) -m flink_jobs.features_job stop

features-status:
	$(PY) -m flink_jobs.features_job status

# BACKEND=kafka: the Flink path reads a Kafka topic on a throwaway test broker (tansu).
parity: setup
	$(PY) -m bench.parity $(if $(BACKEND),--backend $(BACKEND)) $(if $(filter kafka,$(BACKEND)),--kafka-test-broker)

bench-stream: setup
	$(PY) -m bench.stream

bench-automl: setup
	$(PY) -m bench.automl $(if $(DATA),--data $(DATA)) $(if $(QUICK),--quick)

# The flash-sale load test of the whole stack with an SLO report (var/bench/slo/report.md):
# ~5 minutes; RAMP="10:20,100:20,1000:60" (events/s:seconds);
# FAULTS=1 kills the Flink job, the scorer and the model service and restarts Redis during
# the top stage (recovery times, reads per second around each fault, counts after catch-up).
bench-slo: setup
	$(PY) -m bench.slo $(if $(RAMP),--ramp $(RAMP)) \
		$(if $(FAULTS),--faults)

# Memory over millions of events with shoppers coming and going (var/bench/soak/report.md):
# EVENTS=4000000 RATE=1000 (~70 minutes: the first hour is warm-up, the longest feature
# window); WINDOW=120 scales every retention window.
bench-soak: setup
	$(PY) -m bench.soak $(if $(EVENTS),--events $(EVENTS)) $(if $(RATE),--rate $(RATE)) \
		$(if $(WINDOW),--window-s $(WINDOW))

# The alert rules: syntax and their unit tests (also run by `make test`).
check-rules: setup
	promtool check rules orchestration/prometheus/rules.yml
	promtool test rules orchestration/prometheus/rules_test.yml

# The read path alone (seeded Redis, no events) against the bare-ASGI ceiling.
bench-slo-read: setup
	$(PY) -m bench.slo_read --duration 15 --rounds 3 --with-default

# Predictive vs CPU-reactive autoscaling on the flash-sale trace (a simulation, ~5 s).
bench-scaling: setup
	$(PY) -m bench.scaling

# The adaptive loop on live traffic (whole stack + Dagster, ~30 min on 2 cores):
# PRESET=ci runs the small scenario the end-to-end test runs.
bench-adapt: setup
	$(PY) -m bench.adapt $(if $(PRESET),--preset $(PRESET))

bench-quality: setup
	$(PY) -m bench.quality $(if $(DATA),--data $(DATA))

clean:
	rm -rf var/lake var/landing var/artifacts var/dagster/storage var/dagster/history
