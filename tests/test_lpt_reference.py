"""LPT phase 2 against the authors' code, transcribed line by line.

Transcribed from DongSky/LPT at commit 6a4c7e0daf18331bdedaa32b1b7b2650f279496b:
- phase2_test/loss.py, lines 108-146: `ASLSingleLabel` (gamma_pos, gamma_neg, eps = 0.1 label smoothing);
- phase2_test/cb_loss.py, lines 112-136: `AGCL` (m_list = log n_max - log n_c, Normal(0, 1/3) noise clamped to
  [-1, 1], |noise| * noise_mul / max(m_list) * m_list off every cosine, m off the target, ASL on s * output);
- phase2_test/train_dual_dualloss.py, lines 93-94 (the two criteria: s 20, m 0.1, noise_mul 0.5, (0, 4) and
  (0.5, 8)) and lines 139-148 (the step: the class-balanced batch, the instance-balanced batch, one loss
  `criterion(cb) - 0.5 * reduced_sim + max(0, 0.5 * (E - epoch) / E) * (criterion_ibs(ibs) - 0.5 * reduced_sim_ibs)`,
  SGD); PromptModels_pool/structure.py lines 205-211 (reduced_sim = the summed top-k cosines / batch).

Both sides get the same model, the same two batches per step (ltlab's sampler: the authors' ClassAwareSampler
and per-step DataLoader shuffle are not transcribed) and the same RNG state before each step's loss (the AGCL
noise); the forward is deterministic (no dropout, no augmentation). ltlab's trainer must reach the
transcription's weights after 10 steps over 2 epochs (the instance-balanced weight changes between them).
"""
import copy

import pytest
import torch
import torch.nn as nn
from torch.distributions import normal

from ltlab.config import load_config
from ltlab.train.lpt import lpt_phases
from ltlab.train.trainer import Trainer


# -- the authors' code, transcribed (names and order kept) -----------------------------------------------------
class ASLSingleLabel(nn.Module):
    def __init__(self, gamma_pos=0, gamma_neg=4, eps: float = 0.1, reduction='mean'):
        super().__init__()
        self.eps = eps
        self.logsoftmax = nn.LogSoftmax(dim=-1)
        self.targets_classes = []
        self.gamma_pos = gamma_pos
        self.gamma_neg = gamma_neg
        self.reduction = reduction

    def forward(self, inputs, target, reduction=None):
        num_classes = inputs.size()[-1]
        log_preds = self.logsoftmax(inputs)
        with torch.no_grad():
            self.targets_classes = torch.zeros_like(inputs).scatter_(1, target.long().unsqueeze(1), 1)
            targets = self.targets_classes
            anti_targets = 1 - targets
        xs_pos = torch.exp(log_preds)
        xs_neg = torch.ones_like(xs_pos) - xs_pos
        xs_pos_new = torch.mul(xs_pos.clone(), targets.clone().detach())
        xs_neg_new = torch.mul(xs_neg.clone(), anti_targets.clone().detach())
        asymmetric_w = torch.pow(1 - xs_pos_new - xs_neg_new,
                                 self.gamma_pos * targets + self.gamma_neg * anti_targets)
        log_preds = log_preds * asymmetric_w
        if self.eps > 0:
            self.targets_classes.mul_(1 - self.eps).add_(self.eps / num_classes)
        loss = - self.targets_classes.mul(log_preds)
        loss = loss.sum(dim=-1)
        if self.reduction == 'mean':
            loss = loss.mean()
        return loss


class AGCL(nn.Module):
    def __init__(self, cls_num_list, m=0.5, weight=None, s=30, train_cls=False, noise_mul=1., gamma=0., gamma_pos=0.,
                 gamma_neg=4., dtype=torch.float32):
        super().__init__()
        cls_list = torch.tensor(cls_num_list, dtype=dtype)  # official: torch.cuda.FloatTensor
        m_list = torch.log(cls_list)
        m_list = m_list.max() - m_list
        self.m_list = m_list
        assert s > 0
        self.s = s
        self.m = m
        self.simpler = normal.Normal(0, 1 / 3)
        self.train_cls = train_cls
        self.noise_mul = noise_mul
        self.gamma = gamma
        self.loss_func = ASLSingleLabel(gamma_pos=gamma_pos, gamma_neg=gamma_neg)

    def forward(self, cosine, target):
        index = torch.zeros_like(cosine, dtype=torch.uint8)
        index.scatter_(1, target.data.view(-1, 1), 1)
        noise = self.simpler.sample(cosine.shape).clamp(-1, 1).to(cosine.device)
        cosine = cosine - self.noise_mul * noise.abs() / self.m_list.max() * self.m_list
        output = torch.where(index.bool(), cosine - self.m, cosine)  # official: a uint8 mask (deprecated)
        return self.loss_func(self.s * output, target)


def official_step(model, optimizer, criterion, criterion_ibs, imgs, targets, imgs_ibs, targets_ibs, epoch, epochs, s):
    """train_dual_dualloss.py lines 139-148; the model's logits are s * cosine (ltlab's cosine head), the
    authors' model returns the cosine, so it is logits / s here; reduced_sim = summed top-k cosines / batch."""
    optimizer.zero_grad()
    outputs = model(imgs) / s
    reduced_sim = model.last_key_similarity.sum() / len(imgs)
    outputs_ibs = model(imgs_ibs) / s
    reduced_sim_ibs = model.last_key_similarity.sum() / len(imgs_ibs)
    loss = criterion(outputs, targets) - 0.5 * reduced_sim + max(0.0, (0.5 * (epochs - epoch) / epochs)) * (
        criterion_ibs(outputs_ibs, targets_ibs) - 0.5 * reduced_sim_ibs)
    loss.backward()
    optimizer.step()


# -- the comparison ----------------------------------------------------------------------------------------------
TINY = ["epochs=2", "batch_size=10", "data.num_classes=5", "data.n_max=20", "data.imbalance_ratio=5",
        "data.val_per_class=2", "data.test_per_class=2", "eval.train_images=8", "model.pool_size=3",
        "model.dropout=0", "data.augment=false", "optimizer.schedule=constant", "optimizer.lr=0.05",
        "save_every=0", "log=jsonl", "eval.diagnostics_every=0"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lpt_phase2_equals_the_authors_step(tmp_path, monkeypatch, dtype):
    _, p2 = lpt_phases(load_config("lpt_synthetic", TINY))
    t = Trainer(p2, out=tmp_path / "run", progress=False)
    assert t.steps_per_epoch == 5  # 10 steps over 2 epochs
    for module in (t.model, t.loss_fn, t.objective.loss_ibs):  # in place: the optimizer keeps its parameters
        module.to(dtype)
    model = copy.deepcopy(t.model)
    states, batches = [], []
    original = Trainer.train_step

    def recording(self, x, y):  # the RNG state the step's loss draws its noise from, and its batch
        x = x.to(dtype)
        states.append(torch.get_rng_state())
        batches.append((x.clone(), y.clone(), self.state.epoch))
        return original(self, x, y)

    monkeypatch.setattr(Trainer, "train_step", recording)

    class Bar:
        def update(self, *a, **k):
            pass

        set_postfix = update

    for _ in range(p2.epochs):  # the trainer's own epochs (its evaluation, in float32, is not part of the step)
        t.run_epoch(Bar())
        t.state.epoch, t.state.step_in_epoch = t.state.epoch + 1, 0
    assert len(batches) == 10

    counts = t.data.class_counts
    s = p2.model.head_scale
    criterion = AGCL(cls_num_list=counts, m=0.1, s=20, weight=None, train_cls=False, noise_mul=0.5, gamma=4.,
                     dtype=dtype)
    criterion_ibs = AGCL(cls_num_list=counts, m=0.1, s=20, weight=None, train_cls=False, noise_mul=0.5, gamma=4.,
                         gamma_pos=0.5, gamma_neg=8.0, dtype=dtype)
    assert s == 20
    params = [p for p in model.parameters() if p.requires_grad]
    oc = p2.optimizer
    optimizer = torch.optim.SGD(params, lr=oc.lr, weight_decay=oc.weight_decay, momentum=oc.momentum)
    model.train()
    for state, (x, y, epoch) in zip(states, batches):
        torch.set_rng_state(state)
        h = len(y) // 2
        official_step(model, optimizer, criterion, criterion_ibs, x[:h], y[:h], x[h:], y[h:], epoch, p2.epochs, s)
    mine = dict(t.model.named_parameters())
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-11)
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert torch.allclose(mine[n], p, **tol), (n, float((mine[n] - p).abs().max()))
    moved = [n for n, p in model.named_parameters() if p.requires_grad]
    assert set(moved) == {"group_prompts", "group_keys", "head.weight"}
    assert all(p.dtype == dtype for p in params)


def test_agcl_equals_the_authors_loss_and_gradient():
    torch.manual_seed(0)
    counts = [50, 20, 8, 3]
    cos = torch.randn(6, 4, dtype=torch.float64).tanh().requires_grad_()
    y = torch.tensor([0, 1, 2, 3, 3, 1])
    from ltlab.losses import build_loss

    for gp, gn in ((0.0, 4.0), (0.5, 8.0)):
        ref = AGCL(counts, m=0.1, s=20, noise_mul=0.5, gamma_pos=gp, gamma_neg=gn, dtype=torch.float64)
        mine = build_loss("agcl", counts, m=0.1, scale=20.0, noise_mul=0.5, gamma_pos=gp, gamma_neg=gn, smoothing=0.1)
        mine = mine.double().train()
        torch.manual_seed(1)
        a = ref(cos, y)
        ga, = torch.autograd.grad(a, cos)
        torch.manual_seed(1)
        b = mine(20 * cos, y)
        gb, = torch.autograd.grad(b, cos)
        assert torch.allclose(a, b, rtol=1e-12) and torch.allclose(ga, gb, rtol=1e-10, atol=1e-12)
