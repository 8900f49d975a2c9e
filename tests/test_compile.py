"""compile=true: the compiled training forward gives the eager run's weights (float tolerance) for every optimizer
of the family, resumes exactly, is probed with the eager module, and falls back to eager where Inductor cannot build.

Small and fast: one batch per epoch (batch_size covers the training set, so one input shape), no dropout (compiled
graphs draw dropout masks from their own generator, so only a deterministic forward compares bit-near)."""
import pytest
import torch

from ltlab.config import load_config
from ltlab.optim import OPTIMIZERS
from ltlab.train import Trainer, fit

# one xdist worker compiles them one after another: they share one Inductor cache, and concurrent compiles of the
# same graphs in two processes gain nothing on 2 cores
pytestmark = pytest.mark.xdist_group("compile")

DET = ["epochs=2", "batch_size=128", "data.num_classes=5", "data.n_max=24", "data.imbalance_ratio=4",
       "data.val_per_class=2", "data.test_per_class=2", "eval.train_images=8", "model.prompt_length=2",
       "model.dropout=0", "data.augment=false", "save_every=0", "log=jsonl", "eval.diagnostics_every=1"]


def weights(path):
    return torch.load(path / "checkpoints" / "last.pt", weights_only=False)["model"]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_compiled_run_equals_eager(tmp_path, name):
    runs = {}
    for c in ("false", "true"):
        fit(load_config("synthetic", DET + [f"optimizer.name={name}", f"compile={c}"]), out=tmp_path / c,
            progress=False)
        runs[c] = weights(tmp_path / c)
    for k in runs["false"]:
        assert torch.allclose(runs["false"][k], runs["true"][k], rtol=1e-4, atol=1e-5), k


def test_compiled_run_resumes_exactly_and_is_probed_eagerly(tmp_path, monkeypatch):
    from ltlab.results.probing import flatness_scalars

    cfg = load_config("synthetic", DET + ["optimizer.name=sam", "compile=true", "epochs=3"])
    fit(cfg, out=tmp_path / "full", progress=False)
    original = Trainer.train_step

    def interrupting(self, x, y):
        if self.state.global_step == 1:
            raise KeyboardInterrupt
        return original(self, x, y)

    monkeypatch.setattr(Trainer, "train_step", interrupting)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, out=tmp_path / "cut", progress=False)
    monkeypatch.setattr(Trainer, "train_step", original)
    fit(cfg, out=tmp_path / "cut", resume=True, progress=False)
    a, b = weights(tmp_path / "full"), weights(tmp_path / "cut")
    assert all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6) for k in a)
    s = flatness_scalars(tmp_path / "cut", num_images=8, save=False)  # double backward: the eager module
    assert s["lambda_max"] > 0


def test_no_inductor_falls_back_to_eager_with_a_note(tmp_path, monkeypatch, capsys):
    import ltlab.train.compiled as trainer

    monkeypatch.setitem(trainer._INDUCTOR, "why", "InvalidCxxCompiler: No working C++ compiler found")
    t = Trainer(load_config("synthetic", DET + ["compile=true"]), out=tmp_path / "r", progress=False)
    assert t.forward is t.model
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "training eagerly" in err and "C++ compiler" in err
