"""The seed's formulas on small cases computed by hand."""

import math

import pytest
import torch

from gan_stylizer import losses


def test_gram_is_f_ft_on_a_hand_case():
    # Two channels over 2x1 positions: F = [[1, 2], [3, 4]].
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 2, 1)
    expected = torch.tensor([[1 * 1 + 2 * 2, 1 * 3 + 2 * 4], [3 * 1 + 4 * 2, 3 * 3 + 4 * 4]])
    assert torch.equal(losses.gram(f)[0], expected)


def test_gram_is_fp32_under_bf16_autocast():
    f = torch.randn(2, 4, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        g = losses.gram(f.bfloat16())
    assert g.dtype == torch.float32
    assert torch.allclose(g, losses.gram(f.bfloat16().float()))


def test_style_layer_loss_matches_seed_formula():
    # N = 2 channels, M = 2 positions.
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(1, 2, 2, 1)
    g = torch.tensor([[2.0, 0.0], [0.0, 0.0]]).view(1, 2, 2, 1)
    gs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # G(S)
    gg = torch.tensor([[4.0, 0.0], [0.0, 0.0]])  # G(G)
    n, m = 2, 2
    expected = ((gs - gg) ** 2).sum() / (4 * n**2 * m**2)  # (9 + 1) / 64
    got = losses.style_layer_loss(losses.gram(s)[0], m, g)
    assert got.shape == (1,)
    assert got.item() == pytest.approx(expected.item()) == pytest.approx(10 / 64)


def test_style_layer_loss_compares_grams_per_position_across_sizes():
    # A texture tiled twice has the same per-position statistics: zero loss at another size.
    small = torch.randn(1, 3, 4, 4)
    big = small.repeat(1, 1, 2, 2)
    assert losses.style_layer_loss(losses.gram(small)[0], 16, big).item() == pytest.approx(
        0.0, abs=1e-6
    )


def test_style_loss_weights_layers_and_averages_batch():
    target = torch.zeros(1, 1, 1, 1)
    feats = torch.tensor([1.0, 3.0]).view(2, 1, 1, 1)  # two samples, N = M = 1
    grams = {"a": (losses.gram(target)[0], 1), "b": (losses.gram(target)[0], 1)}
    # per sample and layer: (f²)² / 4 -> 1/4 and 81/4
    out = losses.style_loss(grams, {"a": feats, "b": feats}, {"a": 0.5, "b": 2.0})
    assert out.item() == pytest.approx((0.5 + 2.0) * (1 / 4 + 81 / 4) / 2)


def test_shuffled_positions_keep_the_gram():
    f = torch.randn(1, 8, 5, 7)
    perm = torch.randperm(35)
    shuffled = f.flatten(2)[..., perm].view_as(f)
    assert torch.allclose(losses.gram(f), losses.gram(shuffled), rtol=1e-5, atol=1e-4)


def test_content_loss_is_half_squared_error_sum_mean_over_batch():
    c = torch.zeros(2, 2, 1, 2)
    g = torch.tensor([1.0, 2.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0]).view(2, 2, 1, 2)
    # sample 0: ½(1 + 4) = 2.5; sample 1: ½·9 = 4.5; mean 3.5
    assert losses.content_loss(c, g).item() == pytest.approx(3.5)


def test_tv_loss_hand_case():
    img = torch.zeros(1, 3, 2, 2)
    img[0, 0, 0, 0] = 1.0  # one bright pixel in one channel: 1 horizontal + 1 vertical edge
    assert losses.tv_loss(img).item() == pytest.approx(2.0)


def test_total_loss_alpha_is_style_beta_is_content():
    assert losses.total_loss(torch.tensor(2.0), torch.tensor(3.0), 10.0, 1.0).item() == 23.0


@pytest.mark.parametrize("kind", losses.ADVERSARIAL_LOSSES)
def test_adversarial_losses_prefer_the_right_answers(kind):
    good_real, good_fake = torch.full((4,), 3.0), torch.full((4,), -3.0)
    assert losses.d_loss(kind, good_real, good_fake) < losses.d_loss(kind, good_fake, good_real)
    assert losses.g_adv_loss(kind, good_real) < losses.g_adv_loss(kind, good_fake)


def test_hinge_values():
    assert losses.d_loss("hinge", torch.tensor([0.5]), torch.tensor([0.0])).item() == 1.5
    assert losses.g_adv_loss("hinge", torch.tensor([2.0])).item() == -2.0
    assert losses.d_loss("nonsaturating", torch.zeros(1), torch.zeros(1)).item() == pytest.approx(
        2 * math.log(2)
    )


def test_unknown_adversarial_loss_is_refused():
    with pytest.raises(ValueError, match="hinge"):
        losses.d_loss("wgan", torch.zeros(1), torch.zeros(1))


def test_r1_penalty_of_a_linear_discriminator():
    w = torch.tensor([3.0, 4.0])
    real = torch.randn(5, 2, requires_grad=True)
    logits = real @ w  # gradient w.r.t. each sample is w, ‖w‖² = 25
    assert losses.r1_penalty(logits, real).item() == pytest.approx(12.5)


def test_instance_norm_statistics_stay_fp32_under_bf16_autocast():
    # Mean 100, spread 10: statistics taken in bf16 (E[x²] ≈ 10100 in steps of 64) are off by
    # 0.8 in the normalized output (measured); fp32 statistics leave about 0.04, the bf16
    # rounding of the input's deviations and of the output.
    from gan_stylizer.models.generator import Generator

    norm = next(
        m for m in Generator(channels=4, n_residual=1).modules() if "Norm" in type(m).__name__
    )
    torch.manual_seed(0)
    x = (torch.randn(2, norm.num_features, 24, 24) * 10 + 100).bfloat16()
    reference = torch.nn.functional.instance_norm(
        x.double(), weight=norm.weight.double(), bias=norm.bias.double(), eps=norm.eps
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = norm(x)
    assert (y.double() - reference).abs().max().item() < 0.1
