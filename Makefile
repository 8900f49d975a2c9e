# Two commands do all the set-up: `make demo` and `make test`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PINNED := torch==2.14.1 torchvision==0.29.1
# extras of ltlab to install: dev (the test tools) and peers (pyhessian, GPL-3.0, the probes' cross-check); .ci/run
# adds mlflow. One stamp per set of extras, so a venv set up without an extra gets it when a later make asks for it
EXTRAS ?= dev,peers
comma := ,
STAMP := $(VENV)/.ltlab-installed-$(subst $(comma),-,$(EXTRAS))
# make test's pytest processes (pytest-xdist): the notebooks, which share their smoke runs directory, run one after
# another in one of them (the xdist_group in tests/conftest.py) while the other takes the tests; 1 thread each
TEST_WORKERS ?= 2

.PHONY: setup demo probes family study study-gcl study-gcl-confirm study-confirm docs test test-full test-fast test-regime test-long lab figures report bench tensorboard clean

# uv (from PyPI) installs in parallel, with the sources pip is configured with (.ci/uv_flags.py); pip is the
# fallback. torch/torchvision are pinned to a tested pair where a package index offers it, unpinned otherwise.
# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set, every import would compile from source
# otherwise (a notebook kernel took 330 s instead of 30 under nbmake).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	($(BIN)/pip install -q uv && $(BIN)/uv pip install -q --python $(BIN)/python --compile-bytecode \
		$$($(BIN)/python .ci/uv_flags.py $(BIN)/pip) $(PINNED) -e '.[$(EXTRAS)]') \
		|| $(BIN)/pip install -q $(PINNED) -e '.[$(EXTRAS)]' \
		|| $(BIN)/pip install -q torch torchvision -e '.[$(EXTRAS)]'
	@touch $(STAMP)

setup: $(STAMP)

# The quick look (5-10 min on 2 cores: docs/tests.md): the base (SGD) and SAM / RSAM / GNM, each at its validation-selected setting
# (the preset synthetic_tuned, made by make study's tuning step), on 3 fresh seeds (100-102: not the tuning seeds,
# the preset's task sample), plus the linear-probe reference, two runs at a time; ends with the report tables.
# Three seeds resolve only large effects: the project's result is make study's report (studies/synthetic/study.md).
DEMO := --config synthetic_tuned --optimizers sgd,sam,rsam,gnm --reference linear --seeds 3 -j 2 \
	--out runs/demo seed=100
demo: $(STAMP)
	$(BIN)/python -m ltlab compare $(DEMO) --overwrite

# lambda_max / lambda_min / trace / Gaussian sharpness / per-group lambda_max of the demo runs (saved in each
# run's probes/, so notebooks 02-04 and `ltlab figures` re-plot them), paired like accuracy; 4-5 min.
# --resume keeps the demo's finished runs (a run of another config would be trained again, never mixed in).
probes: $(STAMP)
	$(BIN)/python -m ltlab compare $(DEMO) --resume --probe

# the long-tailed flatness family under one protocol: base, SAM, RSAM, GNM, ImbSAM, CC-SAM, Focal-SAM,
# 3 paired seeds each, with lambda_max / trace / Gaussian sharpness probes (about 35 minutes on 2 cores)
family: $(STAMP)
	$(BIN)/python -m ltlab compare --optimizers sgd,sam,rsam,gnm,imbsam,ccsam,focalsam --reference linear --seeds 3 -j 2 \
		--probe --overwrite --out runs/family

# the fair study (studies/synthetic.yaml): every method tuned on validation with the same budget (4 configurations
# x 3 tuning seeds; test split withheld), then evaluated at its selected setting on 12 fresh seeds that each draw
# their own task sample, beside the linear probe and the equal-compute base; probes on every prompted run; the
# report runs/study/study.md with its figures, copied to studies/synthetic/ (the committed result). Resumable: a rerun
# trains only what is missing. 50 min on a fresh clone on 2 cores, set-up included (Intel Xeon: tuning 895 s,
# evaluation and probes 2,069 s, about 50,000 steps of bench/optimizer_cost.py's SGD step, 0.060 s there). The
# committed report is that run's; the same study on an AMD EPYC agreed within 0.03 points in every mean and interval
# end, with the same selections and verdicts (the CPUs' vector kernels differ in the last digits).
# $(call run_study,NAME,OUT): the study file studies/NAME.yaml into OUT, its report and figures copied to studies/NAME/
define run_study
	$(BIN)/python -m ltlab study studies/$(1).yaml --out $(2) -j 2 --resume
	mkdir -p studies/$(1)/tune studies/$(1)/figures
	cp $(2)/study.md studies/$(1)/ && cp $(2)/tune/tune.md $(2)/tune/tune.json $(2)/tune/tuned.yaml studies/$(1)/ \
		&& cp $(2)/tune/tune.png studies/$(1)/tune/ && cp $(2)/figures/study_*.png studies/$(1)/figures/
endef
study: $(STAMP)
	$(call run_study,synthetic,runs/study)

# the same protocol in the paper's headline setting (studies/synthetic_gcl.yaml: GCL + DRW, a cosine head; sgd, sam,
# gnm), report in studies/synthetic_gcl/; resumable like make study.
study-gcl: $(STAMP)
	$(call run_study,synthetic_gcl,runs/study_gcl)

# a declared confirmation of study-gcl's exploratory tail result (studies/synthetic_gcl_confirm.yaml: gnm - sgd on
# few-class accuracy, 24 fresh seeds, the same tuning), report in studies/synthetic_gcl_confirm/; resumable.
# 1,357 s on an Intel Xeon with study-gcl's 24 sgd and gnm tuning runs copied into runs/study_gcl_confirm/tune
# (kept as finished runs of the same config); from scratch it trains them first (about 6 more minutes).
study-gcl-confirm: $(STAMP)
	$(call run_study,synthetic_gcl_confirm,runs/study_gcl_confirm)

# a declared confirmation of make study's GNM result (studies/synthetic_confirm.yaml: gnm - sgd on overall
# accuracy, 48 fresh seeds, the same tuning), report in studies/synthetic_confirm/; resumable.
# 3,038 s on an Intel Xeon (2 cores) with make study's 24 sgd and gnm tuning runs copied into runs/study_confirm/tune
# (kept as finished runs of the same config); from scratch it trains them first (about 6 more minutes).
study-confirm: $(STAMP)
	$(call run_study,synthetic_confirm,runs/study_confirm)

# make test: every module and every notebook (nbmake, headless, smoke mode: small grids, few epochs), a few minutes.
# What is long moves to make test-long / make test-full, each with a fast version left here: the real-browser
# notebook test (JupyterLab + chromium), all 9 optimizers through the 10-point interrupt test, the 10-moment
# kill -9 test, trainer-level DDP, torchrun probes, papermill on notebook 02, the long bench runs, the regime guard.
test: $(STAMP)
	LTLAB_SMOKE=1 $(BIN)/python -m pytest -q tests -m "not regime and not full" --nbmake notebooks --nbmake-timeout=300 \
		-n $(TEST_WORKERS) --dist loadgroup --durations=15

test-regime: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_regime.py

# what make test leaves out (marked full or regime), notebooks in smoke mode: .ci/run runs it after make test
test-long: $(STAMP)
	LTLAB_SMOKE=1 $(BIN)/python -m pytest -q tests -m "regime or full" --durations=10

# everything, with the notebooks at full size (trains the demo's runs into runs/demo when they are missing)

test-full: $(STAMP)
	LTLAB_SMOKE=0 $(BIN)/python -m pytest -q tests --nbmake notebooks --nbmake-timeout=900 --durations=15

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not notebook and not regime and not full"

# the documentation site (site/index.html): the README as its first page, docs/*.md after it; --strict fails on a
# broken page or link
docs: $(STAMP)
	$(BIN)/python .ci/docs_index.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

# every run under runs/ (scalars per epoch, probes, the HParams view of each comparison); http://localhost:6006
tensorboard: $(STAMP)
	$(BIN)/tensorboard --logdir runs --port 6006

figures: $(STAMP)
	$(BIN)/python -m ltlab figures

report: $(STAMP)
	$(BIN)/python -m ltlab report runs/demo

bench: $(STAMP)
	$(BIN)/python bench/optimizer_cost.py
	$(BIN)/python bench/probes_vs_peers.py

clean:
	rm -rf runs .pytest_cache
