# Two commands do all the set-up: `make demo` and `make test`.
# Each creates .venv with Python 3.13 (bpy 5.2 is cp313 only) and installs
# what it needs first. scripts/find-python finds 3.13 (PATH, pyenv, uv, ...)
# or stops with a one-line message saying what to install; PYTHON=... overrides.
# The trainer-only check runs on the oldest Python the package supports and on 3.13.
TRAIN_PYTHON_VERSIONS := 3.11 3.13
PYTHON ?=
VENV   := .venv
BIN    := $(VENV)/bin
# The torch version make and CI test with; users keep pyproject's ranges.
PIP_INSTALL := $(BIN)/pip install -q -c constraints/ci.txt
OUT    ?= out

.PHONY: demo test install train-env-check clean

$(BIN)/python:
	@py="$(PYTHON)"; [ -n "$$py" ] || py=$$(scripts/find-python 3.13) || exit 1; \
		echo "$$py -m venv $(VENV)"; "$$py" -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml constraints/ci.txt | $(BIN)/python
	$(PIP_INSTALL) -e '.[render,farm,train,dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/synthgen assets builtin --out $(OUT)/catalog
	$(BIN)/synthgen assets validate $(OUT)/catalog/manifest.parquet -q
	$(BIN)/synthgen assets preview $(OUT)/catalog/manifest.parquet --out $(OUT)/catalog/preview.png
	$(BIN)/synthgen render jobs/demo.toml --out $(OUT)/demo \
		--set 'job.catalogs=["$(abspath $(OUT))/catalog/manifest.parquet"]'
	$(BIN)/synthgen inspect $(OUT)/demo
	$(BIN)/relight train --shards $(OUT)/demo --out $(OUT)/demo-train \
		--config jobs/relight_tiny.toml --resume
	$(BIN)/relight extract --shards $(OUT)/demo --split test --lighting front \
		--out $(OUT)/demo-relit/input.png
	$(BIN)/relight infer --model $(OUT)/demo-train/model --image $(OUT)/demo-relit/input.png \
		--catalog $(OUT)/catalog/manifest.parquet --env studio_0010 --env clear_sky_0003 --env sunrise \
		--rotations 8 --out $(OUT)/demo-relit/relit.png
	$(BIN)/relight eval --model $(OUT)/demo-train/model --shards $(OUT)/demo \
		--out $(OUT)/demo-eval --seeds 3 -q
	@echo
	@echo "Built-in catalog:   $(OUT)/catalog/manifest.parquet  (contact sheet: $(OUT)/catalog/preview.png)"
	@echo "Demo dataset:       $(OUT)/demo/dataset.json   (shards in $(OUT)/demo/shards/)"
	@echo "Contact sheet:      $(OUT)/demo/preview.png"
	@echo "Trained tiny model: $(OUT)/demo-train/model  (loss curve: $(OUT)/demo-train/loss.png,"
	@echo "                    validation grids: $(OUT)/demo-train/validation/)"
	@echo "Relit held-out render: $(OUT)/demo-relit/relit.png (animated: $(OUT)/demo-relit/relit.gif)"
	@echo "Evaluation:            $(OUT)/demo-eval/metrics.md (grid: $(OUT)/demo-eval/grid.png)"

test: install
	$(BIN)/python -m pytest -q

# A trainer's environment has no bpy and may be on an older Python: show that
# `.[train]` alone resolves on the oldest supported Python and on 3.13, imports
# relight and the shard format, refuses `synthgen render` in one line, and
# trains (2 steps on fixture shards) there.
train-env-check: $(foreach v,$(TRAIN_PYTHON_VERSIONS),train-env-check-$(v))

train-env-check-%: TV = .venv-train-$*
train-env-check-%: TT = /tmp/train-env-check-$*
train-env-check-%:
	rm -rf $(TV) $(TT) && mkdir -p $(TT)
	@py=$$(scripts/find-python $*) || exit 1; echo "$$py -m venv $(TV)"; "$$py" -m venv $(TV)
	$(TV)/bin/pip install -q --upgrade pip
	$(TV)/bin/pip install -q -c constraints/ci.txt '.[train]'
	cd $(TT) && $(CURDIR)/$(TV)/bin/python -c "import sys, numpy, relight, synthgen.format.shard as f, assets_manifest; \
assert int(numpy.__version__.split('.')[0]) >= 2, numpy.__version__; \
print('train env OK: Python', sys.version.split()[0], '| numpy', numpy.__version__, '| shard format', f.FORMAT)"
	cd $(TT) && $(CURDIR)/$(TV)/bin/relight envmap --env procedural:studio:3 --rotate 90 --out $(TT)/envmap.png
	@# no bpy here: synthgen render stops with one line naming what to install, and writes nothing
	cd $(TT) && ! $(CURDIR)/$(TV)/bin/synthgen render $(CURDIR)/jobs/demo.toml --local --out $(TT)/render 2>$(TT)/render.err
	grep -q "pip install '.\[render\]'" $(TT)/render.err && test "$$(wc -l <$(TT)/render.err)" -eq 1 \
		&& test ! -e $(TT)/render && cat $(TT)/render.err
	cd $(TT) && $(CURDIR)/$(TV)/bin/python $(CURDIR)/tests/relight_fixtures.py $(TT)/ds 8 32
	cd $(TT) && $(CURDIR)/$(TV)/bin/relight train --shards $(TT)/ds --out $(TT)/run \
		--max-steps 2 --set train.validate_every=0 --set data.resolution=32 --set 'data.env_size=[32, 32]'

clean:
	rm -rf $(VENV) .venv-train-* $(OUT)
