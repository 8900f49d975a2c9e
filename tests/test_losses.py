"""Each loss against a direct computation on a small example."""
import math

import pytest

import torch
import torch.nn.functional as F

from ltlab.losses import build_loss, class_balanced_weights

COUNTS = [100, 20, 5]
LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-0.5, 1.5, 0.0], [1.0, 1.0, 1.0]])
TARGET = torch.tensor([0, 2, 1, 2])


def manual_ce(z, t, w=None):
    losses = [-(z[i, t[i]] - torch.logsumexp(z[i], 0)) for i in range(len(t))]
    if w is None:
        return sum(losses) / len(t)
    return sum(w[t[i]] * losses[i] for i in range(len(t))) / sum(w[t[i]] for i in range(len(t)))


def test_ce_and_drw():
    loss = build_loss("ce", COUNTS, drw_epoch=2, beta=0.99)
    loss.set_epoch(1)
    assert torch.allclose(loss(LOGITS, TARGET), manual_ce(LOGITS, TARGET))
    loss.set_epoch(2)
    w = [(1 - 0.99) / (1 - 0.99 ** n) for n in COUNTS]
    w = [x / sum(w) * 3 for x in w]
    assert torch.allclose(loss(LOGITS, TARGET), manual_ce(LOGITS, TARGET, w))


def test_class_balanced_weights_sum_to_c():
    w = class_balanced_weights(COUNTS, 0.999)
    assert abs(w.sum().item() - 3) < 1e-5 and w[2] > w[1] > w[0]


def test_ldam():
    loss = build_loss("ldam", COUNTS, max_m=0.5, scale=30.0)
    m = [n ** -0.25 for n in COUNTS]
    m = [0.5 * x / max(m) for x in m]
    z = LOGITS.clone()
    for i, t in enumerate(TARGET):
        z[i, t] -= 30.0 * m[t]
    assert torch.allclose(loss(LOGITS, TARGET), manual_ce(z, TARGET))


def test_gcl_eval_is_margin_only_and_train_adds_bounded_cloud():
    loss = build_loss("gcl", COUNTS, m=0.1, noise_mul=1.0, scale=25.0).eval()
    z = LOGITS.clone()
    for i, t in enumerate(TARGET):
        z[i, t] -= 25.0 * 0.1
    assert torch.allclose(loss(LOGITS, TARGET), manual_ce(z, TARGET))
    loss.train()
    torch.manual_seed(0)
    vals = torch.stack([loss(LOGITS, TARGET) for _ in range(200)])
    # per sample, the cloud lowers logit j by up to s * m_j / max(m): the loss is lowest when only the
    # non-target logits drop fully, highest when only the target logit drops
    cloud = torch.tensor([math.log(100) - math.log(n) for n in COUNTS])
    drop = 25.0 * cloud / cloud.max()
    onehot = F.one_hot(TARGET, 3).float()
    low = manual_ce(z - drop * (1 - onehot), TARGET).item()
    high = manual_ce(z - drop * onehot, TARGET).item()
    assert vals.std() > 0
    assert low - 1e-5 <= vals.min().item() and vals.max().item() <= high + 1e-5


def test_logit_adjusted_and_balanced_softmax():
    prior = torch.tensor(COUNTS, dtype=torch.float) / sum(COUNTS)
    la = build_loss("logit_adjusted", COUNTS, tau=1.5)
    assert torch.allclose(la(LOGITS, TARGET), manual_ce(LOGITS + 1.5 * prior.log(), TARGET))
    bs = build_loss("balanced_softmax", COUNTS)
    assert torch.allclose(bs(LOGITS, TARGET), manual_ce(LOGITS + torch.tensor(COUNTS).float().log(), TARGET))
    assert torch.allclose(bs(LOGITS, TARGET), F.cross_entropy(LOGITS + torch.tensor(COUNTS).float().log(), TARGET))


def test_a_loss_option_the_loss_does_not_read_is_a_warning():
    """loss.tau with loss.name=ce trained plain CE without a word; the presets set only what their loss reads."""
    from ltlab.config import list_presets, load_config
    from ltlab.losses import loss_from_config, unused_loss_options

    assert all(unused_loss_options(load_config(n)) == [] for n in list_presets())
    cfg = load_config("synthetic", ["loss.tau=2", "loss.gamma_pos=1"])
    assert unused_loss_options(cfg) == ["loss.tau=2.0 has no effect with loss.name=ce; it is read by logit_adjusted",
                                        "loss.gamma_pos=1.0 has no effect with loss.name=ce; it is read by agcl"]
    with pytest.warns(UserWarning) as caught:
        loss_from_config(cfg, [5, 3, 1])
    assert [str(w.message) for w in caught] == unused_loss_options(cfg)
    assert unused_loss_options(load_config("synthetic", ["loss.name=logit_adjusted", "loss.tau=2"])) == []
