"""Probes against exact linear algebra (dense Hessians on tiny float64 models) and state-restoration rules."""
import re

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from ltlab.models import PromptedViT
from ltlab.probes import (ProbeResult, gaussian_sharpness, hessian_ratio_along, hessian_trace, interpolate, per_class,
                          spectral_density, surface_1d, surface_2d, top_eigenvalues, trajectory_pca,
                          worst_case_sharpness)


def tiny_problem(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x, y = torch.randn(40, 4, dtype=torch.float64), torch.randint(0, 3, (40,))
    return model, nn.CrossEntropyLoss(), (x, y)


def dense_hessian(model, loss_fn, batch):
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    shapes = [p.shape for n, p in model.named_parameters() if p.requires_grad]
    flat = torch.cat([p.detach().reshape(-1) for n, p in model.named_parameters() if p.requires_grad])

    def f(v):
        params, i = {}, 0
        for n, s in zip(names, shapes):
            k = int(np.prod(s))
            params[n] = v[i:i + k].view(s)
            i += k
        return loss_fn(functional_call(model, params, (batch[0],)), batch[1])

    H = torch.autograd.functional.hessian(f, flat)
    return H.numpy()


@pytest.fixture
def problem():
    model, loss_fn, batch = tiny_problem()
    H = dense_hessian(model, loss_fn, batch)
    return model, loss_fn, batch, np.linalg.eigvalsh(H)


@pytest.mark.parametrize("which", ["largest", "smallest"])
def test_lanczos_top_k_matches_dense(problem, which):
    model, loss_fn, batch, evals = problem
    r = top_eigenvalues(model, loss_fn, batch, k=3, which=which, tol=1e-9, max_iter=200)
    want = evals[::-1][:3] if which == "largest" else evals[:3]
    assert np.allclose(r.eigenvalues, want, rtol=1e-6, atol=1e-10), (r.eigenvalues, want)
    assert r.converged and r.hvps <= len(evals)
    assert r.eigenvectors.shape == (len(evals), 3)


def test_k_beyond_the_dimension_gives_every_distinct_eigenvalue_and_k_below_one_is_refused(problem):
    model, loss_fn, batch, evals = problem
    # a Krylov space holds each distinct eigenvalue once: the softmax's null directions (several exact zeros)
    # come back as one zero, every other eigenvalue of the dense Hessian as itself
    r = top_eigenvalues(model, loss_fn, batch, k=np.int64(len(evals) + 5), tol=1e-9, max_iter=200)
    distinct = np.unique(np.round(evals, 8))
    assert len(r.eigenvalues) == len(distinct) < len(evals)
    assert np.allclose(np.sort(r.eigenvalues), distinct, atol=1e-7)
    for k in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=r"k=.*must be a whole number >= 1"):
            top_eigenvalues(model, loss_fn, batch, k=k)


def test_power_method_matches_dense_top1(problem):
    model, loss_fn, batch, evals = problem
    r = top_eigenvalues(model, loss_fn, batch, k=1, method="power", tol=1e-8, max_iter=500)
    assert r.eigenvalues[0] == pytest.approx(evals[-1], rel=1e-4)


def test_residuals_are_true_residuals(problem):
    model, loss_fn, batch, evals = problem
    H = dense_hessian(model, loss_fn, batch)
    r = top_eigenvalues(model, loss_fn, batch, k=2, tol=1e-4)
    for i in range(2):
        v = r.eigenvectors[:, i]
        true = np.linalg.norm(H @ v - r.eigenvalues[i] * v) / abs(r.eigenvalues[i])
        assert true == pytest.approx(r.residuals[i], rel=1e-3, abs=1e-9)


@pytest.mark.parametrize("method", ["hutch++", "hutchinson", "xtrace"])
def test_trace_within_three_standard_errors(problem, method):
    model, loss_fn, batch, evals = problem
    r = hessian_trace(model, loss_fn, batch, method=method, num_hvps=45, seed=3)
    assert r.stderr > 0
    assert abs(r.estimate - evals.sum()) < 3 * r.stderr, (r.estimate, evals.sum(), r.stderr)


def test_batched_hvps_equal_the_dense_hessian_times_v(problem):
    model, loss_fn, batch, _ = problem
    H = dense_hessian(model, loss_fn, batch)
    V = torch.randn(H.shape[0], 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    from ltlab.probes import hessian_operator
    with hessian_operator(model, loss_fn, batch) as op:
        one_by_one, batched = op.apply(V, block=1), op.apply(V, block=2)  # blocks of 2, 2 and 1
        assert op.hvps == 10
    assert np.allclose(batched.numpy(), H @ V.numpy(), rtol=1e-10, atol=1e-12)
    assert np.allclose(batched.numpy(), one_by_one.numpy(), rtol=1e-10, atol=1e-12)


def test_xtrace_equals_its_definition_on_a_dense_indefinite_matrix():
    """Algorithm 1.2 of Epperly, Tropp and Webber (2024) written out naively: Q_i = orth(A W_{-i}) from scratch,
    tr(Q_i^T A Q_i) + w_i^T (I - Q_i Q_i^T) A (I - Q_i Q_i^T) w_i, averaged; ltlab's shortcut must equal it."""
    from ltlab.probes.hessian import _rademacher, xtrace

    rng = np.random.default_rng(0)
    n = 40
    U, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = torch.as_tensor(U @ np.diag(np.r_[np.geomspace(50, 0.5, 30), -rng.uniform(0, 3, 10)]) @ U.T)
    est, se, ests = xtrace(lambda V: A @ V, n, 16, torch.Generator().manual_seed(4))
    W = _rademacher(n, 8, torch.Generator().manual_seed(4), "cpu")
    naive = []
    for i in range(8):
        Qi, _ = torch.linalg.qr(A @ W[:, [j for j in range(8) if j != i]])
        P = torch.eye(n, dtype=A.dtype) - Qi @ Qi.T
        naive.append(float(torch.trace(Qi.T @ A @ Qi) + W[:, i] @ P @ A @ P @ W[:, i]))
    assert np.allclose(ests, naive, rtol=1e-10, atol=1e-10)
    assert est == pytest.approx(np.mean(naive), rel=1e-12) and se == pytest.approx(np.std(naive, ddof=1) / np.sqrt(8))
    assert abs(est - float(torch.trace(A))) < 4 * se  # unbiased, and its error estimate is honest here


@pytest.mark.parametrize("method", ["hutch++", "hutchinson", "xtrace"])
def test_trace_is_the_same_with_batched_hvps(problem, method):
    model, loss_fn, batch, _ = problem
    a = hessian_trace(model, loss_fn, batch, method=method, num_hvps=30, seed=2)
    b = hessian_trace(model, loss_fn, batch, method=method, num_hvps=30, seed=2, block=7)
    assert (a.hvps, b.hvps) == (30, 30)
    assert b.estimate == pytest.approx(a.estimate, rel=1e-10) and b.stderr == pytest.approx(a.stderr, rel=1e-8)


def test_spectral_density_weights_and_histogram(problem):
    model, loss_fn, batch, evals = problem
    d = spectral_density(model, loss_fn, batch, runs=30, steps=len(evals))
    assert np.allclose(np.nansum(d.weights, 1), 1.0)
    # SLQ's expected CDF equals the empirical spectral CDF
    for t in np.quantile(evals, [0.25, 0.5, 0.75]):
        slq = np.mean([d.weights[r][d.nodes[r] <= t + 1e-12].sum() for r in range(len(d.nodes))])
        assert abs(slq - np.mean(evals <= t + 1e-12)) < 0.12
    assert np.trapezoid(d.density, d.grid) == pytest.approx(1.0, abs=0.05)


def test_surface_centre_is_loss_at_w(problem):
    model, loss_fn, batch, _ = problem
    s = surface_2d(model, loss_fn, batch, steps=5, span=0.5, progress=False)
    with torch.no_grad():
        l0 = float(loss_fn(model(batch[0]), batch[1]))
    assert s.x[2] == 0 and s.y[2] == 0
    assert s.loss[2, 2] == l0
    assert s.loss.shape == (5, 5) and s.accuracy.shape == (5, 5)
    s1 = surface_1d(model, loss_fn, batch, steps=7)
    assert s1.loss[3] == l0 and s1.loss.shape == (7,)


def test_interpolate_and_trajectory_pca(problem):
    model, loss_fn, batch, _ = problem
    a = {n: p.detach().clone() for n, p in model.named_parameters()}
    b = {n: v + 0.1 for n, v in a.items()}
    s = interpolate(model, loss_fn, batch, a, b, steps=5, margin=0.0)
    with torch.no_grad():
        l0 = float(loss_fn(model(batch[0]), batch[1]))
    assert s.loss[0] == pytest.approx(l0, abs=1e-12)
    traj = [{n: v + 0.01 * k for n, v in a.items()} for k in range(5)]
    pca = trajectory_pca(traj)
    assert pca.coords.shape == (5, 2) and pca.explained_variance[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least two points of the trajectory; got 1"):
        trajectory_pca(traj[:1])  # one point has no direction (none at all was an IndexError)


@pytest.mark.parametrize("probe, kwargs, text", [
    (hessian_trace, {"num_hvps": 0}, "num_hvps=0: must be a whole number >= 1"),
    (hessian_trace, {"block": 0}, "block=0"),
    (spectral_density, {"runs": 0}, "runs=0"),
    (spectral_density, {"grid_points": 1}, "grid_points=1: must be a whole number >= 2"),
    (gaussian_sharpness, {"samples": 0}, "samples=0"),
    (worst_case_sharpness, {"steps": 0}, "steps=0"),
    (surface_1d, {"steps": 1}, "steps=1: must be a whole number >= 2"),
    (surface_1d, {"span": -1.0}, "span=-1.0: must be > 0"),
    (surface_2d, {"steps": 2.5, "progress": False}, "steps=2.5"),
    (hessian_ratio_along, {"steps": 0}, "steps=0"),
])
def test_probe_arguments_that_would_return_nonsense_are_refused_by_name(problem, probe, kwargs, text):
    # each of these returned an empty, NaN or one-point result before it was checked
    model, loss_fn, batch, _ = problem
    with pytest.raises(ValueError, match=re.escape(text)):
        probe(model, loss_fn, batch, **kwargs)


def test_per_class_table(problem):
    model, loss_fn, batch, _ = problem

    class DS:
        targets = batch[1].numpy()

        def __getitem__(self, i):
            return batch[0][i], int(batch[1][i])

        def __len__(self):
            return len(batch[1])

    res = per_class(top_eigenvalues, model, loss_fn, DS(), class_counts=[50, 10, 2],
                    splits={"many": [0], "medium": [1], "few": [2]})
    assert res.groups == ["many", "medium", "few"] and res.counts == [50, 10, 2]
    x0 = batch[0][batch[1] == 0]
    direct = top_eigenvalues(model, loss_fn, (x0, torch.zeros(len(x0), dtype=torch.long)))
    assert res.values[0] == pytest.approx(direct.eigenvalues[0], rel=1e-6)


class Quadratic(nn.Module):
    def __init__(self, n=30, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        m = torch.randn(n, n, generator=g, dtype=torch.float64)
        self.register_buffer("A", m @ m.T / n)
        self.w = nn.Parameter(torch.zeros(n, dtype=torch.float64))

    def forward(self, x):
        return self.w


def quad_loss(w, y):
    return 0.5 * w @ Quadratic.A_ @ w


def test_gaussian_sharpness_matches_closed_form():
    q = Quadratic()
    Quadratic.A_ = q.A
    sigma = 0.1
    r = gaussian_sharpness(q, quad_loss, (torch.zeros(1), torch.zeros(1)), sigma=sigma, samples=400, seed=1)
    exact = 0.5 * sigma**2 * float(torch.trace(q.A))
    assert abs(r.estimate - exact) < 3 * r.stderr + 1e-12


def test_worst_case_sharpness_finds_top_eigendirection():
    q = Quadratic()
    Quadratic.A_ = q.A
    rho = 0.1
    r = worst_case_sharpness(q, quad_loss, (torch.zeros(1), torch.zeros(1)), rho=rho, steps=100)
    exact = 0.5 * rho**2 * float(torch.linalg.eigvalsh(q.A)[-1])
    assert exact * 0.95 <= r.estimate <= exact * (1 + 1e-9)


def test_unused_parameter_counts_as_zero_curvature(problem):
    model, loss_fn, batch, evals = problem
    model.extra = nn.Parameter(torch.ones(3, dtype=torch.float64))  # trainable, never used
    r = top_eigenvalues(model, loss_fn, batch, k=1, tol=1e-8, max_iter=200)
    assert r.eigenvalues[0] == pytest.approx(evals[-1], rel=1e-6)
    t = hessian_trace(model, loss_fn, batch, num_hvps=30)
    assert np.isfinite(t.estimate)


def _vit_state(m):
    return ({n: p.detach().clone() for n, p in m.named_parameters()},
            {n: p.requires_grad for n, p in m.named_parameters()},
            {n: mod.training for n, mod in m.named_modules()},
            {n: mod.fused_attn for n, mod in m.named_modules() if hasattr(mod, "fused_attn")})


def _assert_same(before, after):
    assert before[1] == after[1] and before[2] == after[2] and before[3] == after[3]
    assert all(torch.equal(before[0][n], after[0][n]) for n in before[0])


def test_probes_work_on_fused_attention_vit_and_restore_everything(tiny_vit):
    m = PromptedViT(tiny_vit, num_classes=3, prompt_length=2)
    m.train()
    assert all(blk.attn.fused_attn for blk in m.backbone.blocks)
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 3, (8,))
    before = _vit_state(m)
    rng = torch.get_rng_state()
    r = top_eigenvalues(m, nn.CrossEntropyLoss(), (x, y), k=2)
    hessian_trace(m, nn.CrossEntropyLoss(), (x, y), num_hvps=9)
    surface_2d(m, nn.CrossEntropyLoss(), (x, y), steps=3, progress=False)
    _assert_same(before, _vit_state(m))
    assert torch.equal(rng, torch.get_rng_state())
    assert r.eigenvalues.shape == (2,) and r.hvps > 0

    calls = []

    def failing_loss(logits, target):
        calls.append(1)
        if len(calls) > 2:
            raise RuntimeError("boom")
        return nn.functional.cross_entropy(logits, target)

    with pytest.raises(RuntimeError, match="boom"):
        surface_2d(m, failing_loss, (x, y), steps=3, progress=False)
    with pytest.raises(RuntimeError, match="boom"):
        calls.clear()
        hessian_ratio_along(m, failing_loss, (x, y), steps=3)
    _assert_same(before, _vit_state(m))


def test_results_round_trip(tmp_path, problem):
    model, loss_fn, batch, _ = problem
    for res in [top_eigenvalues(model, loss_fn, batch, k=2), hessian_trace(model, loss_fn, batch, num_hvps=9),
                surface_2d(model, loss_fn, batch, steps=3, progress=False)]:
        path = res.save(tmp_path / type(res).__name__)
        back = ProbeResult.load(path)
        assert type(back) is type(res)
        for f in res.__dataclass_fields__:
            a, b = getattr(res, f), getattr(back, f)
            assert np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b


def test_dataloader_mode_matches_single_batch(problem):
    model, loss_fn, batch, evals = problem
    loader = [(batch[0][:20], batch[1][:20]), (batch[0][20:], batch[1][20:])]
    r = top_eigenvalues(model, loss_fn, loader, k=1, tol=1e-9, max_iter=200)
    assert r.eigenvalues[0] == pytest.approx(evals[-1], rel=1e-6)


# PyHessian's own hvp calls backward(create_graph=True); torch warns about the cycle that makes (ltlab uses autograd.grad)
@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True:UserWarning")
def test_pyhessian_cross_check(tiny_vit):
    pyhessian = pytest.importorskip("pyhessian")
    from ltlab.models import set_fused_attention

    torch.manual_seed(0)
    m = PromptedViT(tiny_vit, num_classes=3, prompt_length=2, dropout=0.0).eval()
    x, y = torch.randn(16, 3, 16, 16), torch.randint(0, 3, (16,))
    ours = top_eigenvalues(m, nn.CrossEntropyLoss(), (x, y), k=1, tol=1e-6)
    tr = hessian_trace(m, nn.CrossEntropyLoss(), (x, y), method="hutchinson", num_hvps=200, seed=1)
    previous = set_fused_attention(m, False)
    try:
        torch.manual_seed(0)
        h = pyhessian.hessian(m, nn.CrossEntropyLoss(), data=(x, y), cuda=False)
        ev, _ = h.eigenvalues(top_n=1, tol=1e-6, maxIter=300)
        torch.manual_seed(1)
        samples = h.trace(maxIter=200, tol=0.0)
    finally:
        for mod, f in previous.items():
            mod.fused_attn = f
    assert ours.eigenvalues[0] == pytest.approx(ev[0], rel=0.01)
    se = np.hypot(tr.stderr, np.std(samples, ddof=1) / np.sqrt(len(samples)))
    assert abs(tr.estimate - np.mean(samples)) < 2 * se


def test_power_iteration_reports_not_converged_at_its_cap():
    # least squares with a designed Hessian: top two eigenvalues 1.00 and 0.97 (power iteration converges like 0.97^k)
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))
    spectrum = torch.tensor([1.0, 0.97, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05], dtype=torch.float64)
    x = (q * spectrum.sqrt()) @ q.T * np.sqrt(8 / 2)  # H = 2/N X^T X = q diag(spectrum) q^T with N = 8
    model = nn.Linear(8, 1, bias=False).double()
    loss_fn = lambda out, y: ((out.squeeze(-1) - y) ** 2).mean()  # noqa: E731
    batch = (x, torch.zeros(8, dtype=torch.float64))
    evals = np.linalg.eigvalsh(dense_hessian(model, loss_fn, batch))
    assert evals[-1] == pytest.approx(1.0) and evals[-2] == pytest.approx(0.97)
    capped = top_eigenvalues(model, loss_fn, batch, k=1, method="power", tol=1e-8, max_iter=100)
    assert not capped.converged and capped.residuals[0] >= 1e-8
    lanczos = top_eigenvalues(model, loss_fn, batch, k=1, tol=1e-8)
    assert lanczos.converged and lanczos.eigenvalues[0] == pytest.approx(1.0, rel=1e-7)
    loose = top_eigenvalues(model, loss_fn, batch, k=1, method="power", tol=1e-8, max_iter=3000)
    assert loose.converged == bool(loose.residuals[0] < 1e-8)  # the flag always equals the residual check
