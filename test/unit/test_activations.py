"""The one-exp Mish against torch's own, values and gradients, over the whole float range the networks can see."""
import pytest
import torch

from robot_rl.policies.activations import SMALL, Mish


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 2e-6), (torch.float64, 1e-12)])
def test_mish_matches_torch_in_value_and_gradient(dtype, tol):
    x = torch.cat([torch.linspace(-100, 100, 40001, dtype=dtype), torch.tensor([-1e30, 1e30, 0.0], dtype=dtype)])
    assert x.numel() >= SMALL   # the one-exp path, not torch's kernel
    ours, ref = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    y, y_ref = Mish()(ours), torch.nn.Mish()(ref)
    torch.testing.assert_close(y, y_ref, atol=tol, rtol=tol)
    weights = torch.randn_like(x)
    (grad,), (grad_ref,) = torch.autograd.grad(y, ours, weights), torch.autograd.grad(y_ref, ref, weights)
    torch.testing.assert_close(grad, grad_ref, atol=tol, rtol=tol)
    with torch.no_grad():
        torch.testing.assert_close(Mish()(x), y.detach())
    assert torch.isfinite(y).all() and torch.isfinite(grad).all()


def test_mish_gradient_passes_gradcheck():
    x = torch.randn(SMALL // 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: Mish()(v * 3.0).sum(-1), (x,), fast_mode=True)
