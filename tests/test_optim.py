"""Optimizers against hand-written reference update rules."""
import copy

import pytest
import torch
from torch import nn

from ltlab.optim import ASAM, GNM, OPTIMIZERS, SAM, create_optimizer, list_optimizers



@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def quadratic(seed=0, n=5):
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=g)
    a = m @ m.T + torch.eye(n)
    w = nn.Parameter(torch.randn(n, generator=g))
    return a, w


def mlp_problem(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    return model, x, y


def closure_for(opt, loss_fn, counter=None):
    def closure():
        if counter is not None:
            counter.append(1)
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss
    return closure


def reference_sam(params, loss_fn, rho, lr, adaptive=False, eta=0.01):
    """Hand-written SAM / ASAM step with plain SGD (no momentum)."""
    params = list(params)
    grads = torch.autograd.grad(loss_fn(), params)
    if adaptive:
        t = [p.detach().abs() + eta for p in params]
        norm = torch.sqrt(sum(((ti * g) ** 2).sum() for ti, g in zip(t, grads)))
        eps = [rho * ti * ti * g / norm for ti, g in zip(t, grads)]
    else:
        norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
        eps = [rho * g / norm for g in grads]
    with torch.no_grad():
        for p, e in zip(params, eps):
            p.add_(e)
    grads2 = torch.autograd.grad(loss_fn(), params)
    with torch.no_grad():
        for p, e, g in zip(params, eps, grads2):
            p.sub_(e)
            p.sub_(lr * g)


@pytest.mark.parametrize("cls,adaptive,rho", [(SAM, False, 0.05), (ASAM, True, 0.5)])
def test_sam_asam_match_reference_on_quadratic(cls, adaptive, rho):
    a, w = quadratic()
    w_ref = nn.Parameter(w.detach().clone())
    opt = cls([w], torch.optim.SGD, rho=rho, lr=0.1)
    for _ in range(5):
        opt.step(closure_for(opt, lambda: 0.5 * w @ a @ w))
        reference_sam([w_ref], lambda: 0.5 * w_ref @ a @ w_ref, rho, 0.1, adaptive)
    assert torch.allclose(w, w_ref, atol=1e-6)
    assert not torch.allclose(w, quadratic()[1])  # it moved


@pytest.mark.parametrize("cls,adaptive,rho", [(SAM, False, 0.05), (ASAM, True, 0.5)])
def test_sam_asam_match_reference_on_mlp(cls, adaptive, rho):
    model, x, y = mlp_problem()
    ref = copy.deepcopy(model)
    opt = cls(model.parameters(), torch.optim.SGD, rho=rho, lr=0.2)
    for _ in range(3):
        opt.step(closure_for(opt, lambda: nn.functional.cross_entropy(model(x), y)))
        reference_sam(ref.parameters(), lambda: nn.functional.cross_entropy(ref(x), y), rho, 0.2, adaptive)
    for p, q in zip(model.parameters(), ref.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_sam_uses_one_global_norm_across_groups():
    a, w1 = quadratic(1)
    w2 = nn.Parameter(torch.ones(3))
    opt = SAM([{"params": [w1]}, {"params": [w2], "lr": 0.05}], torch.optim.SGD, rho=0.1, lr=0.1)
    seen = []

    def closure():
        opt.zero_grad()
        loss = 0.5 * w1 @ a @ w1 + (w2 ** 2).sum()
        loss.backward()
        if len(seen) == 0:
            seen.append(torch.cat([w1.grad, w2.grad]).norm())
        else:  # at w + e: the total perturbation has norm rho
            seen.append(1)
        return loss

    w0 = torch.cat([w1.detach(), w2.detach()]).clone()
    perturbation, _ = opt.perturbation(torch.enable_grad()(closure))
    total = torch.sqrt(sum((e ** 2).sum() for e in perturbation.values()))
    assert total == pytest.approx(0.1, rel=1e-9)
    assert torch.equal(torch.cat([w1.detach(), w2.detach()]), w0)


def test_gnm_rho_zero_is_bit_identical_to_base():
    model, x, y = mlp_problem()
    ref = copy.deepcopy(model)
    opt = GNM(model.parameters(), torch.optim.SGD, rho=0.0, lr=0.1, momentum=0.9, weight_decay=1e-3)
    base = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    for _ in range(4):
        opt.step(closure_for(opt, lambda: nn.functional.cross_entropy(model(x), y)))
        base.step(closure_for(base, lambda: nn.functional.cross_entropy(ref(x), y)))
    for p, q in zip(model.parameters(), ref.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("name", ["sam", "asam", "rsam", "gnm"])
def test_lr_zero_restores_parameters_bit_exactly(name):
    model, x, y = mlp_problem()
    before = [p.detach().clone() for p in model.parameters()]
    opt = create_optimizer(name, model.parameters(), lr=0.0, momentum=0.0, weight_decay=0.0, rho=0.3)
    for _ in range(3):
        opt.step(closure_for(opt, lambda: nn.functional.cross_entropy(model(x), y)))
    for p, b in zip(model.parameters(), before):
        assert torch.equal(p, b)


def test_gnm_gradient_is_taken_at_noisy_point_with_expected_statistics():
    n = 4000
    a = torch.diag(torch.linspace(1, 3, n))
    w = nn.Parameter(torch.linspace(-1, 1, n))
    rho, sigma, trunc = 0.01, 1 / 3, 1.0
    opt = GNM([w], torch.optim.SGD, rho=rho, sigma=sigma, truncate=trunc, lr=0.0, seed=123)
    captured = {}

    def closure():
        opt.zero_grad()
        captured["w"] = w.detach().clone()
        loss = 0.5 * w @ a @ w
        loss.backward()
        captured["grad"] = w.grad.detach().clone()
        return loss

    w0 = w.detach().clone()
    opt.step(closure)
    noise = captured["w"] - w0
    assert torch.allclose(captured["grad"], a @ (w0 + noise))  # gradient at w + noise
    assert noise.abs().max() <= rho * trunc + 1e-15  # inside the bound
    # std of rho * clamp(N(0, sigma^2), -1, 1): clamping at 3 sigma removes 0.27% of mass -> std = 0.9865 rho sigma
    expected = rho * sigma * 0.98648
    se = expected / (2 * n) ** 0.5  # standard error of a sample std
    assert abs(noise.std().item() - expected) < 5 * se, (noise.std().item(), expected)
    assert abs(noise.mean().item()) < 5 * expected / n ** 0.5


@pytest.mark.parametrize("name", list_optimizers())
def test_closure_calls_per_step(name):
    model, x, y = mlp_problem()
    opt = create_optimizer(name, model.parameters(), lr=0.01)
    calls = []
    opt.step(closure_for(opt, lambda: nn.functional.cross_entropy(model(x), y), calls))
    assert len(calls) == opt.closures_per_step == OPTIMIZERS[name].closures_per_step
    assert len(calls) == (1 if name in ("sgd", "adamw", "gnm") else 2)


@pytest.mark.parametrize("name", ["gnm", "rsam"])
def test_state_dict_round_trip_resumes_identical_noise(name):
    model, x, y = mlp_problem()
    opt = create_optimizer(name, model.parameters(), lr=0.05, seed=7)
    loss_fn = lambda: nn.functional.cross_entropy(model(x), y)  # noqa: E731
    for _ in range(2):
        opt.step(closure_for(opt, loss_fn))
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    for _ in range(3):
        opt.step(closure_for(opt, loss_fn))
    after = [p.detach().clone() for p in model.parameters()]

    model.load_state_dict(saved_model)
    opt2 = create_optimizer(name, model.parameters(), lr=0.05, seed=999)  # different seed: state wins
    opt2.load_state_dict(saved_opt)
    for _ in range(3):
        opt2.step(closure_for(opt2, loss_fn))
    for p, q in zip(model.parameters(), after):
        assert torch.equal(p, q)


def test_momentum_state_is_in_state_dict():
    model, x, y = mlp_problem()
    opt = create_optimizer("sam", model.parameters(), lr=0.05, momentum=0.9)
    opt.step(closure_for(opt, lambda: nn.functional.cross_entropy(model(x), y)))
    sd = opt.state_dict()
    assert any("momentum_buffer" in s for s in sd["state"].values())
    assert sd["param_groups"][0]["rho"] == 0.05


def test_step_without_closure_explains():
    w = nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="closure"):
        GNM([w], lr=0.1).step()


@pytest.mark.parametrize("kw,arg", [({"rho": -1}, "rho"), ({"sigma": 0}, "sigma"), ({"truncate": 0}, "truncate")])
def test_invalid_arguments_name_the_argument(kw, arg):
    with pytest.raises(ValueError, match=arg):
        GNM([nn.Parameter(torch.zeros(2))], lr=0.1, **kw)
    if arg == "rho":
        with pytest.raises(ValueError, match="rho"):
            SAM([nn.Parameter(torch.zeros(2))], lr=0.1, rho=-0.1)


def test_parameters_without_grad_are_skipped():
    used, unused = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(2))
    frozen = nn.Parameter(torch.ones(2), requires_grad=False)
    for name in ["sam", "asam", "rsam", "gnm"]:
        opt = create_optimizer(name, [used, unused, frozen], lr=0.1, momentum=0.0)
        opt.step(closure_for(opt, lambda: (used ** 2).sum()))
        assert torch.equal(unused, torch.ones(2)) and torch.equal(frozen, torch.ones(2))


def test_unknown_optimizer_lists_valid_names():
    with pytest.raises(ValueError, match="sgd, adamw, sam, asam, rsam, gnm"):
        create_optimizer("adam", [nn.Parameter(torch.zeros(1))])


def test_rho_in_param_groups_drives_the_noise():
    w = nn.Parameter(torch.zeros(1000))
    opt = GNM([w], lr=0.0, seed=0)
    opt.param_groups[0]["rho"] = 0.1
    seen = {}

    def closure():
        opt.zero_grad()
        seen["max"] = w.detach().abs().max().item()
        loss = w.sum()
        loss.backward()
        return loss

    opt.step(closure)
    assert 0.05 < seen["max"] <= 0.1


def test_scheduler_on_base_optimizer_changes_lr():
    w = nn.Parameter(torch.zeros(2))
    opt = create_optimizer("sam", [w], lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt.base_optimizer, 1, gamma=0.5)
    opt.step(closure_for(opt, lambda: (w - 1).pow(2).sum()))
    sched.step()
    assert opt.param_groups[0]["lr"] == 0.5


def test_bf16_autocast_path_on_cpu():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3)).float()
    x, y = torch.randn(32, 4, dtype=torch.float32), torch.randint(0, 3, (32,))
    for name in ["sam", "gnm", "rsam"]:
        opt = create_optimizer(name, model.parameters(), lr=0.1)

        def closure():
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(x)
            loss = nn.functional.cross_entropy(out.float(), y)
            loss.backward()
            return loss

        losses = [float(opt.step(closure)) for _ in range(20)]
        assert all(p.dtype == torch.float32 for p in model.parameters())
        assert losses[-1] < losses[0]


def test_grad_scaler_pattern():
    torch.manual_seed(0)
    model = nn.Linear(4, 2).float()
    x, y = torch.randn(8, 4, dtype=torch.float32), torch.randint(0, 2, (8,))
    opt = create_optimizer("sam", model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    before = model.weight.detach().clone()

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        return loss

    opt.step(closure, grad_scaler=scaler)
    scaler.update()
    # the step used unscaled gradients: compare with the same SAM step in fp32 without a scaler
    torch.manual_seed(0)
    ref = nn.Linear(4, 2).float()
    ref_opt = create_optimizer("sam", ref.parameters(), lr=0.1)
    ref_opt.step(closure_for(ref_opt, lambda: nn.functional.cross_entropy(ref(x), y)))
    assert not torch.equal(model.weight, before)
    assert torch.allclose(model.weight, ref.weight, atol=1e-5)
