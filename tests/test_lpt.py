"""LPT: two phases from one config, group prompts as an option of PromptedViT, dual sampling."""
import dataclasses

import numpy as np
import torch

from ltlab.config import load_config
from ltlab.data.samplers import class_balanced_indices
from ltlab.models import PromptedViT, build_model
from ltlab.train.lpt import lpt_phases
from ltlab.train.trainer import Trainer


def test_phase1_with_pool_off_equals_vpt_deep():
    cfg = load_config("lpt_synthetic")
    p1, _ = lpt_phases(cfg)
    vpt = dataclasses.replace(p1.model)  # phase 1 is plain VPT-deep with the same prompt length
    torch.manual_seed(0)
    a = build_model(p1.model, 5).eval()
    torch.manual_seed(0)
    b = build_model(dataclasses.replace(vpt, pool_size=0), 5).eval()
    x = torch.randn(2, 3, 32, 32)
    assert a.pool_size == 0 and torch.equal(a(x), b(x))
    assert a.mode == "deep" and a.prompt_length == load_config("synthetic").model.prompt_length


def test_query_pass_gets_no_gradient_and_phase2_trains_only_group_parts(tiny_vit):
    m = PromptedViT(tiny_vit, num_classes=3, prompt_length=2, pool_size=4, group_prompt_length=2, group_layers=2)
    m.prompts.requires_grad_(False)  # phase 2
    x = torch.randn(4, 3, 16, 16)
    out = m(x)
    assert m.last_key_similarity.shape == (4,)  # per image: the summed top-k cosines
    (out.sum() - 0.5 * m.last_key_similarity.mean()).backward()
    grads = {n for n, p in m.named_parameters() if p.grad is not None}
    assert grads == {"group_prompts", "group_keys", "head.weight"}
    # the query comes from a no-grad pass: the keys' gradient is the similarity term's only
    m.zero_grad()
    m(x).sum().backward()
    assert m.group_keys.grad is None or torch.count_nonzero(m.group_keys.grad) == 0


def test_class_balanced_sampler_proportions():
    targets = [0] * 900 + [1] * 90 + [2] * 10
    g = torch.Generator().manual_seed(0)
    idx = class_balanced_indices(targets, 30000, g)
    frac = np.bincount(np.asarray(targets)[idx], minlength=3) / 30000
    # each class 1/3; binomial std sqrt(p(1-p)/n) = 0.0027 -> 5 sigma tolerance 0.014
    assert np.all(np.abs(frac - 1 / 3) < 0.014), frac
    from ltlab.train.objective import DualSampling

    batches = DualSampling.batches(None, targets, 100, torch.Generator().manual_seed(1))
    assert len(batches) == 10 and all(len(b) == 200 for b in batches)
    for b in batches:  # the second half: a fresh random batch, no image twice within it
        assert len(set(b[100:])) == 100


def test_two_phase_run_through_cli(tmp_path):
    from ltlab.cli import main

    args = ["train", "--config", "lpt_synthetic", "--out", str(tmp_path / "lpt"), "--no-progress",
            "lpt_phase1_epochs=1", "epochs=1", "batch_size=16", "data.num_classes=5", "data.n_max=20",
            "data.imbalance_ratio=5", "data.val_per_class=2", "data.test_per_class=3", "model.pool_size=3"]
    assert main(args) == 0
    p1 = torch.load(tmp_path / "lpt/phase1/checkpoints/best.pt", weights_only=False)["model"]
    p2 = torch.load(tmp_path / "lpt/checkpoints/last.pt", weights_only=False)["model"]
    assert "group_prompts" not in p1 and "group_prompts" in p2
    assert torch.equal(p1["prompts"], p2["prompts"])  # the shared prompt stayed frozen in phase 2
    assert not torch.equal(p1["head.weight"], p2["head.weight"])
    # a finished LPT run of the same config is recognised (its directory holds phase 2's config), so compare
    # --resume and bench/lpt_vs_vpt.py keep it instead of training it again
    from ltlab.experiments.compare import finished_with

    cfg = load_config("lpt_synthetic", args[6:])
    assert finished_with(tmp_path / "lpt", cfg)
    assert not finished_with(tmp_path / "lpt", load_config("lpt_synthetic", args[6:] + ["seed=1"]))


def test_gnm_drives_lpt_phase2(tmp_path):
    cfg = load_config("lpt_synthetic", ["optimizer.name=gnm", "epochs=1", "batch_size=16", "data.num_classes=5",
                                        "data.n_max=20", "data.imbalance_ratio=5", "model.pool_size=3"])
    _, p2 = lpt_phases(cfg)
    t = Trainer(p2, out=tmp_path, progress=False)
    names = {n for n, p in t.model.named_parameters() if p.requires_grad}
    assert names == {"group_prompts", "group_keys", "head.weight"}
    assert t.optimizer.closures_per_step == 1 and type(t.optimizer).__name__ == "GNM"


def test_an_architecture_phase_2_cannot_build_is_refused_before_phase_1_trains(tmp_path):
    """model.group_layers beyond the backbone's depth trained phase 1 in full, then failed building phase 2."""
    from ltlab.cli import main

    out = tmp_path / "lpt"
    args = ["train", "--config", "lpt_synthetic", "--out", str(out), "--no-progress", "lpt_phase1_epochs=1", "epochs=1",
            "batch_size=16", "data.num_classes=5", "data.n_max=20", "data.val_per_class=2", "data.test_per_class=3",
            "model.group_layers=5"]  # the bundled backbone has 4 blocks
    assert main(args) == 2
    assert not (out / "phase1" / "checkpoints").exists()


def test_lpt_only_keys_warn_where_nothing_reads_them_and_phase_1_says_what_it_used():
    import warnings

    import pytest

    from ltlab.config import config_from_dict, to_dict

    with pytest.warns(UserWarning) as caught:
        load_config("synthetic", ["model.group_layers=3", "lpt_key_weight=0.2", "dual_ibs_weight=0.1",
                                  "lpt_phase1_epochs=3"])
    assert [str(w.message).split(" has no effect without ")[0] for w in caught] == [
        "model.group_layers=3", "lpt_key_weight=0.2", "dual_ibs_weight=0.1", "lpt_phase1_epochs=3"]
    assert "set model.pool_size" in str(caught[0].message) and "set dual_sampling=true" in str(caught[2].message)
    assert "set method=lpt" in str(caught[3].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = load_config("lpt_synthetic", ["lpt_key_weight=0.2"])  # read: the preset has a pool
        p1, p2 = lpt_phases(cfg)
        config_from_dict(to_dict(p1))  # phase 1's saved config reloads without a warning
    assert (p1.epochs, p1.lpt_phase1_epochs) == (cfg.lpt_phase1_epochs, 10)  # phase 1 is lpt_phase1_epochs long
    assert (p1.model.group_layers, p1.lpt_key_weight) == (6, 0.5) and (p2.model.group_layers, p2.lpt_key_weight) == (
        cfg.model.group_layers, 0.2)
