"""The perceptual network: real Caffe weights, the right pixel convention, frozen, never saved."""

import pytest
import torch

from gan_stylizer.models import vgg as vgg_mod
from gan_stylizer.models.vgg import (
    CAFFE_MEAN_BGR,
    LAYER_NAMES,
    VGG19Features,
    VGGWeightsError,
    caffe_weights_path,
    load_caffe_state,
)


@pytest.fixture(scope="module")
def caffe_state():
    return load_caffe_state()


def test_layer_names_cover_vgg19():
    convs = [n for n in LAYER_NAMES if n.startswith("conv")]
    assert len(convs) == 16
    assert LAYER_NAMES[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert LAYER_NAMES[-1] == "pool5" and "relu5_4" in LAYER_NAMES


def test_builds_only_up_to_the_deepest_requested_layer():
    net = VGG19Features(["relu1_1", "relu2_1"], weights="none")
    names = {n for n, _ in net.named_buffers()}
    assert "conv2_1_weight" in names and "conv2_2_weight" not in names
    out = net(torch.rand(1, 3, 32, 32))
    assert set(out) == {"relu1_1", "relu2_1"}
    assert out["relu1_1"].shape == (1, 64, 32, 32) and out["relu2_1"].shape == (1, 128, 16, 16)


def test_a_pass_until_a_layer_stops_there_with_the_same_features():
    net = VGG19Features(["relu1_1", "relu3_1", "relu4_2", "relu5_1"], weights="none")
    image = torch.rand(2, 3, 48, 40)
    full, short = net(image), net(image, until="relu4_2")
    assert set(short) == {"relu1_1", "relu3_1", "relu4_2"}
    assert all(torch.equal(short[n], full[n]) for n in short)
    with pytest.raises(ValueError, match="until='relu2_1'"):
        net(image, until="relu2_1")


def test_unknown_layer_and_source_are_refused():
    with pytest.raises(ValueError, match="relu9_9"):
        VGG19Features(["relu9_9"], weights="none")
    with pytest.raises(ValueError, match="caffe"):
        VGG19Features(["relu1_1"], weights="imagenet")


def test_frozen_and_never_in_a_state_dict():
    net = VGG19Features(["relu3_1"], weights="none")
    assert list(net.parameters()) == []
    assert net.state_dict() == {}
    net.train()
    assert not net.training
    image = torch.rand(1, 3, 16, 16, requires_grad=True)
    net(image)["relu3_1"].sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_caffe_weights_are_the_dequantized_file(caffe_state):
    raw = torch.load(caffe_weights_path(), weights_only=True)
    expected = raw["block3_conv2_W_table"][raw["block3_conv2_W_q"].long()]
    assert torch.equal(caffe_state["conv3_2.weight"], expected)
    assert torch.equal(caffe_state["conv5_4.bias"], raw["block5_conv4_b"])
    assert caffe_state["conv1_1.weight"].shape == (64, 3, 3, 3)


def test_a_different_weights_file_is_refused(tmp_path):
    fake = tmp_path / "w.bin"
    torch.save({"x": torch.zeros(1)}, fake)
    with pytest.raises(VGGWeightsError, match="sha256"):
        load_caffe_state(fake)


def _neighbour_correlation(w: torch.Tensor) -> float:
    """Mean correlation between horizontally adjacent taps of 3x3 filters."""
    a, b = w[..., :, :-1].flatten(), w[..., :, 1:].flatten()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def test_caffe_filters_are_trained_not_random(caffe_state):
    # Trained first-layer filters are smooth edge and colour detectors: neighbouring taps are
    # strongly correlated. Random filters have no such structure.
    trained = _neighbour_correlation(caffe_state["conv1_1.weight"])
    random = _neighbour_correlation(vgg_mod._random_state()["conv1_1.weight"])
    assert trained > 0.5
    assert abs(random) < 0.2
    # Colour channels of a trained filter are strongly correlated too (mostly luminance edges).
    w = caffe_state["conv1_1.weight"]
    assert _neighbour_correlation(w.transpose(1, 3)) > 0.5


def test_caffe_input_is_bgr_0_255_mean_subtracted(caffe_state):
    net = VGG19Features(["conv1_1", "relu1_1"], weights="caffe", state=caffe_state)
    # The Caffe mean colour, given in RGB [0,1], must reach the network as exactly zero...
    mean_rgb = torch.tensor(CAFFE_MEAN_BGR[::-1]).view(1, 3, 1, 1) / 255.0
    x = net.preprocess(mean_rgb.expand(1, 3, 6, 6))
    assert x.abs().max().item() < 1e-4
    # ... so that away from the zero-padded border every conv1_1 output equals its bias.
    out = net(mean_rgb.expand(1, 3, 6, 6))
    bias = caffe_state["conv1_1.bias"]
    assert torch.allclose(out["conv1_1"][0, :, 3, 3], bias, atol=1e-4)
    assert torch.allclose(out["relu1_1"][0, :, 3, 3], bias.relu(), atol=1e-4)
    # The first channel the network sees is blue.
    blue = torch.zeros(1, 3, 2, 2)
    blue[:, 2] = 1.0
    x = net.preprocess(blue)
    assert torch.allclose(
        x[0, :, 0, 0], torch.tensor([255.0, 0.0, 0.0]) - torch.tensor(CAFFE_MEAN_BGR)
    )
    # Had the channels not been swapped, the mean image would not be zero.
    swapped = net.preprocess(mean_rgb.flip(1).expand(1, 3, 2, 2))
    assert swapped.abs().max().item() > 10


def test_torchvision_weights_offline_give_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(VGGWeightsError, match="caffe"):
        VGG19Features(["relu1_1"], weights="torchvision")


def test_torchvision_convention_is_imagenet_normalisation():
    net = VGG19Features(["relu1_1"], weights="none")  # non-caffe sources share the convention
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    assert net.preprocess(mean).abs().max().item() < 1e-6


def test_pooling_choice_changes_deeper_features():
    image = torch.rand(1, 3, 16, 16)
    max_net = VGG19Features(["relu2_1"], weights="none", pooling="max")
    avg_net = VGG19Features(["relu2_1"], weights="none", pooling="avg")
    assert not torch.allclose(max_net(image)["relu2_1"], avg_net(image)["relu2_1"])
