# Two commands for a new user (see README): `make demo` and `make test`.
# `make demo` sets up .venv/ first, `make test` also node_modules/, .venv-checkov/ and .venv-sagemaker/;
# re-running is fast when nothing changed.
SHELL := /bin/bash
PY := .venv/bin/python
SAMPLE ?= ../shared/data/cxr-sample
EXPERIMENT ?= experiments/demo.json

.PHONY: setup demo demo-container image test test-fast lint synth clean

setup: .venv/.installed node_modules/.installed .venv-checkov/.installed .venv-sagemaker/.installed

.venv/.installed: requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q uv==0.13.8
	$(PY) -m uv pip install --python $(PY) -q -r requirements.txt
	$(PY) -m uv pip install --python $(PY) -q --no-deps -e .
	touch $@

# checkov pins boto3==1.35.49 (ours: 1.44.5), so it gets a venv of its own (tests/test_checkov.py runs it).
.venv-checkov/.installed: requirements-checkov.txt .venv/.installed
	test -x .venv-checkov/bin/python || python3 -m venv .venv-checkov
	$(PY) -m uv pip install --python .venv-checkov/bin/python -q -r requirements-checkov.txt
	touch $@

# The SageMaker Python SDK (its local mode judges the image in tests/test_sagemaker_local_mode.py) needs
# protobuf<7 and pyarrow 25 (ours: 7.36.2, 26.0.1): a venv of its own as well.
.venv-sagemaker/.installed: requirements-sagemaker.txt .venv/.installed
	test -x .venv-sagemaker/bin/python || python3 -m venv .venv-sagemaker
	$(PY) -m uv pip install --python .venv-sagemaker/bin/python -q -r requirements-sagemaker.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: .venv/.installed
	.venv/bin/cxr run $(EXPERIMENT) --local --data-root $(SAMPLE) $(EXTRA)

# The image on a CPU base made here (no registry needed), in a Docker engine containers/engine.sh starts
# when none answers (it keeps its layer cache in /var/tmp/cxr-docker; `containers/engine.sh stop` ends it).
BASE_IMAGE ?= cxr-base:cpu
image:
	eval "$$(containers/engine.sh start)" && containers/build-base.sh $(BASE_IMAGE) \
	  && docker build --network host --build-arg BASE_IMAGE=$(BASE_IMAGE) -f containers/Dockerfile -t cxr-pipeline:local .

demo-container: setup image
	eval "$$(containers/engine.sh start)" && CXR_BASE_IMAGE=$(BASE_IMAGE) \
	  .venv/bin/cxr run $(EXPERIMENT) --local --container --data-root $(SAMPLE) $(EXTRA)

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

synth: setup
	npx cdk synth --quiet > /dev/null
	.venv/bin/cfn-lint

test: setup lint synth
	.venv/bin/pytest -q

# The tests a developer runs often: no Spark session, no CDK synth, no container (under a minute).
test-fast: setup
	.venv/bin/pytest -q -m "not slow and not container"

clean:
	rm -rf runs cdk.out .pytest_cache
