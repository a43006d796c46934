# Two commands do all the set-up: `make demo` and `make test`.
# Each creates .venv with Python 3.11 and installs what it needs first.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# CPU torch pin for machines without a GPU (CI, laptops); users keep pyproject's ranges.
PIP_INSTALL := $(BIN)/pip install -q -c constraints/cpu.txt
OUT    ?= out

.PHONY: demo test install train-env-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml constraints/cpu.txt | $(BIN)/python
	$(PIP_INSTALL) -e '.[render,farm,train,dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/synthgen assets builtin --out $(OUT)/catalog
	$(BIN)/synthgen assets validate $(OUT)/catalog/manifest.parquet -q
	$(BIN)/synthgen assets preview $(OUT)/catalog/manifest.parquet --out $(OUT)/catalog/preview.png
	$(BIN)/synthgen render jobs/quickstart.toml --out $(OUT)/quickstart \
		--set 'job.catalogs=["$(abspath $(OUT))/catalog/manifest.parquet"]'
	$(BIN)/synthgen inspect $(OUT)/quickstart
	$(BIN)/relight train --shards $(OUT)/quickstart --out $(OUT)/quickstart-train \
		--config jobs/relight_tiny.toml --resume
	$(BIN)/relight extract --shards $(OUT)/quickstart --split test --out $(OUT)/quickstart-relit/input.png
	$(BIN)/relight infer --model $(OUT)/quickstart-train/model --image $(OUT)/quickstart-relit/input.png \
		--env studio --env sunset --env forest --rotations 8 --out $(OUT)/quickstart-relit/relit.png
	$(BIN)/relight eval --model $(OUT)/quickstart-train/model --shards $(OUT)/quickstart \
		--out $(OUT)/quickstart-eval -q
	@echo
	@echo "Built-in catalog:   $(OUT)/catalog/manifest.parquet  (contact sheet: $(OUT)/catalog/preview.png)"
	@echo "Quickstart dataset: $(OUT)/quickstart/dataset.json   (shards in $(OUT)/quickstart/shards/)"
	@echo "Contact sheet:      $(OUT)/quickstart/preview.png"
	@echo "Trained tiny model: $(OUT)/quickstart-train/model  (loss curve: $(OUT)/quickstart-train/loss.png,"
	@echo "                    validation grids: $(OUT)/quickstart-train/validation/)"
	@echo "Relit held-out render: $(OUT)/quickstart-relit/relit.png (animated: $(OUT)/quickstart-relit/relit.gif)"
	@echo "Evaluation:            $(OUT)/quickstart-eval/metrics.md (grid: $(OUT)/quickstart-eval/grid.png)"

test: install
	$(BIN)/python -m pytest -q

# A trainer's environment has no bpy, hence numpy 2: show that `.[train]` alone
# resolves, imports relight and the shard format, and trains (2 steps on fixture shards) there.
train-env-check:
	rm -rf .venv-train
	$(PYTHON) -m venv .venv-train
	.venv-train/bin/pip install -q --upgrade pip
	.venv-train/bin/pip install -q -c constraints/cpu.txt '.[train]'
	cd /tmp && $(CURDIR)/.venv-train/bin/python -c "import numpy, relight, synthgen.shard_format as f, assets_manifest; \
assert int(numpy.__version__.split('.')[0]) >= 2, numpy.__version__; \
print('train env OK: numpy', numpy.__version__, '| shard format', f.FORMAT)"
	cd /tmp && $(CURDIR)/.venv-train/bin/relight envmap --env procedural:studio:3 --rotate 90 --out /tmp/train-env-check.png
	rm -rf /tmp/train-env-check-ds /tmp/train-env-check-run
	cd /tmp && $(CURDIR)/.venv-train/bin/python $(CURDIR)/tests/relight_fixtures.py /tmp/train-env-check-ds 8 32
	cd /tmp && $(CURDIR)/.venv-train/bin/relight train --shards /tmp/train-env-check-ds --out /tmp/train-env-check-run \
		--max-steps 2 --set train.validate_every=0 --set data.resolution=32 --set 'data.env_size=[32, 32]'

clean:
	rm -rf $(VENV) .venv-train $(OUT)
