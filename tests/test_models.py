"""Generator and discriminator: shapes, ranges, any input size, no transposed convolutions."""

import pytest
import torch
from torch import nn

from gan_stylizer.models.discriminator import PatchDiscriminator
from gan_stylizer.models.generator import Generator


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    return Generator(channels=8, n_residual=2).eval()


@pytest.mark.parametrize("size", [(1, 1), (3, 300), (17, 23), (32, 32), (37, 53), (64, 41)])
def test_generator_keeps_any_size_and_stays_in_range(generator, size):
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        y = generator(x)
    assert y.shape == x.shape
    assert y.dtype == torch.float32
    assert 0.0 <= y.min().item() and y.max().item() <= 1.0


def test_generator_has_no_transposed_convolutions():
    g = Generator()
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in g.modules())
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in g.modules()) > 0


@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
def test_generator_norm_is_configurable(norm):
    g = Generator(channels=4, n_residual=1, norm=norm)
    assert g(torch.rand(2, 3, 16, 16)).shape == (2, 3, 16, 16)


def test_generator_rejects_bad_config_and_input():
    with pytest.raises(ValueError, match="norm"):
        Generator(norm="layer")
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        Generator(channels=4, n_residual=0)(torch.rand(1, 4, 8, 8))


def test_generator_is_translation_consistent_away_from_borders(generator):
    # Padding to a multiple of 4 happens at the borders only: the interior of a crop of an image
    # matches the interior of the full image's output (no global shift from the padding).
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        full = generator(x)
        crop = generator(x[..., :62, :62])  # 62 is not a multiple of 4: padded at the end
    # Instance norm statistics differ slightly between the two; compare loosely in the middle.
    assert (full[..., 20:40, 20:40] - crop[..., 20:40, 20:40]).abs().mean().item() < 0.05


def test_generator_border_is_not_darker_than_interior():
    # Reflection padding everywhere: a flat grey input gives a flat output, borders included.
    torch.manual_seed(1)
    g = Generator(channels=8, n_residual=2, norm="none").eval()
    with torch.no_grad():
        y = g(torch.full((1, 3, 40, 44), 0.5))
    assert (y - y[..., 20:21, 22:23]).abs().max().item() < 1e-4


@pytest.mark.parametrize("n_layers,size,expected", [(3, 128, 14), (2, 64, 14), (4, 256, 14)])
def test_patch_discriminator_output_shape(n_layers, size, expected):
    d = PatchDiscriminator(channels=8, n_layers=n_layers)
    assert d(torch.rand(2, 3, size, size)).shape == (2, 1, expected, expected)


def test_discriminator_is_spectrally_normalised():
    d = PatchDiscriminator(channels=8)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)
