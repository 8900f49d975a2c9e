"""Run tracking: TensorBoard event files hold exactly metrics.jsonl's numbers, a resume adds no duplicate steps,
probes and hparams land beside them, MLflow (optional extra) logs the same rows to a local file store."""
import json

import numpy as np
import pytest

from ltlab.config import load_config
from ltlab.train import Trainer, fit
from ltlab.train.runs import TIMING_FIELDS
from ltlab.train.tracking import flat_scalars

TINY = ["epochs=3", "batch_size=16", "data.num_classes=6", "data.n_max=30", "data.imbalance_ratio=10",
        "data.val_per_class=3", "data.test_per_class=4", "data.many=20", "data.few=6", "model.prompt_length=2",
        "optimizer.name=rsam", "model.dropout=0.0"]


def scalars(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(run / "tb"))
    ea.Reload()
    return {t: [(e.step, e.value) for e in ea.Scalars(t)] for t in ea.Tags()["scalars"]}


def jsonl(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_event_files_hold_every_number_of_metrics_jsonl(tmp_path):
    fit(load_config("synthetic", TINY), out=tmp_path / "run", progress=False)
    rows, tb = jsonl(tmp_path / "run"), scalars(tmp_path / "run")
    want: dict[str, list] = {}
    for r in rows:
        for tag, v in flat_scalars(r).items():
            want.setdefault(tag, []).append((r["epoch"], v))
    assert set(tb) == set(want)
    assert {"val/overall", "val/few", "val/ece", "train_ce_at_w", "lr", "rho", "sigma", "sec_per_step"} <= set(tb)
    for tag, points in want.items():
        assert [s for s, _ in tb[tag]] == [s for s, _ in points], tag
        assert np.allclose([v for _, v in tb[tag]], [v for _, v in points], rtol=1e-6), tag  # float32 in the file
    assert all(r["rho"] > 0 and r["sigma"] > 0 and r["sec_per_step"] > 0 for r in rows)  # RSAM: both apply
    assert list((tmp_path / "run" / "tb" / "hparams").glob("events.out.tfevents.*"))  # the HParams view


def test_resume_leaves_no_duplicate_steps(tmp_path, monkeypatch):
    full = tmp_path / "full"
    fit(load_config("synthetic", TINY), out=full, progress=False)
    original = Trainer.train_step

    def interrupting(self, x, y):
        if self.state.global_step == 7:  # in epoch 2, after epoch 1's row was logged
            raise KeyboardInterrupt
        return original(self, x, y)

    monkeypatch.setattr(Trainer, "train_step", interrupting)
    with pytest.raises(KeyboardInterrupt):
        fit(load_config("synthetic", TINY), out=tmp_path / "cut", progress=False)
    monkeypatch.setattr(Trainer, "train_step", original)
    fit(load_config("synthetic", TINY), out=tmp_path / "cut", resume=True, progress=False)
    a, b = scalars(full), scalars(tmp_path / "cut")
    assert set(a) == set(b) and [s for s, _ in b["train_ce_at_w"]] == [1, 2, 3]
    for tag in a:
        assert [s for s, _ in b[tag]] == [s for s, _ in a[tag]], tag  # each logged epoch once
        assert len({s for s, _ in b[tag]}) == len(b[tag])
        if tag not in TIMING_FIELDS:
            assert [v for _, v in a[tag]] == [v for _, v in b[tag]], tag


def test_probe_results_go_to_tensorboard(tmp_path):
    from ltlab.cli import main

    fit(load_config("synthetic", TINY + ["epochs=1"]), out=tmp_path / "run", progress=False)
    assert main(["probe", str(tmp_path / "run"), "--what", "eig,trace", "--images", "16", "--no-progress"]) == 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(tmp_path / "run" / "tb"))
    ea.Reload()
    assert {"probe/eig/lambda_max", "probe/trace/estimate"} <= set(ea.Tags()["scalars"])
    assert "probe/eig/eigenvalues" in ea.Tags()["histograms"]


def test_log_key_is_checked():
    from ltlab.errors import ConfigError

    assert load_config("synthetic", ["log=jsonl"]).log == ["jsonl"]
    with pytest.raises(ConfigError, match="'tensorbord' is not one of"):
        load_config("synthetic", ["log=jsonl,tensorbord"])
    with pytest.raises(ConfigError, match="keep jsonl"):
        load_config("synthetic", ["log=tensorboard"])


@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")  # inside MLflow's SQL store
def test_mlflow_logs_the_same_rows_to_a_local_store(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from ltlab.train.tracking import mlflow_uri

    run = tmp_path / "cmp" / "run"
    fit(load_config("synthetic", TINY + ["log=jsonl,mlflow", "epochs=2"]), out=run, progress=False)
    client = MlflowClient(mlflow_uri(tmp_path / "cmp"))
    got = client.get_run((run / "mlflow_run_id").read_text().strip())
    assert got.data.params["optimizer.name"] == "rsam"
    history = client.get_metric_history(got.info.run_id, "val/overall")
    assert [(m.step, m.value) for m in history] == [(r["epoch"], pytest.approx(r["val"]["overall"]))
                                                     for r in jsonl(run) if "val" in r] != []
    ce = client.get_metric_history(got.info.run_id, "train_ce_at_w")
    assert [(m.step, m.value) for m in ce] == [(r["epoch"], pytest.approx(r["train_ce_at_w"])) for r in jsonl(run)]
    assert "test/overall" in got.data.metrics and not (run / "tb").exists()
