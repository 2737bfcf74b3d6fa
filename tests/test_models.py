"""Tests of the registered GAN architectures (every arch x size x channel count)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from ganaug.errors import GanaugConfigError
from ganaug.models import arch_defaults, build_discriminator, build_generator, list_archs
from ganaug.models.layers import (
    ConditionalBatchNorm2d,
    count_parameters,
    projection_logits,
    to_channels_last,
)

SIZES = (16, 28, 32, 64)
Z_DIM = 8


def _pair(arch: str, size: int, channels: int) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    g = build_generator(arch, num_classes=3, channels=channels, image_size=size, z_dim=Z_DIM,
                        width=8)
    d = build_discriminator(arch, num_classes=3, channels=channels, image_size=size, width=8)
    return g, d


def _inputs(n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(n, Z_DIM, generator=gen), torch.tensor([0, 2, 1, 0][:n])


def test_builtin_archs_registered():
    assert {"dcgan", "resnet"} <= set(list_archs())


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("arch", list_archs())
def test_shapes_range_and_gradients(arch, size, channels):
    g, d = _pair(arch, size, channels)
    z, labels = _inputs()
    fake = g(z, labels)
    assert fake.shape == (2, channels, size, size)
    assert fake.dtype == torch.float32
    assert fake.min() >= -1.0 and fake.max() <= 1.0
    logits = d(fake, labels)
    assert logits.shape == (2,)
    logits.sum().backward()
    for name, param in [*g.named_parameters(), *d.named_parameters()]:
        assert param.grad is not None, name
    assert any(p.grad.abs().sum() > 0 for p in g.parameters())


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("arch", list_archs())
def test_rebuild_from_config_gives_identical_outputs(arch, size):
    g, d = _pair(arch, size, 3)
    z, labels = _inputs()
    with torch.no_grad():
        g(z, labels)  # a train-mode step moves BN running stats away from their init
    json.dumps(g.config), json.dumps(d.config)  # JSON-serialisable
    g2, d2 = type(g)(**g.config), type(d)(**d.config)
    g2.load_state_dict(g.state_dict())
    d2.load_state_dict(d.state_dict())
    for m in (g, d, g2, d2):
        m.eval()
    with torch.no_grad():
        fake = g(z, labels)
        torch.testing.assert_close(g2(z, labels), fake, rtol=0, atol=0)
        torch.testing.assert_close(d2(fake, labels), d(fake, labels), rtol=0, atol=0)
        # Eval mode is deterministic.
        torch.testing.assert_close(g(z, labels), fake, rtol=0, atol=0)
    assert (g.num_classes, g.channels, g.image_size, g.z_dim) == (3, 3, size, Z_DIM)


@pytest.mark.parametrize("arch", list_archs())
def test_class_conditioning_changes_outputs(arch):
    g, d = _pair(arch, 16, 3)
    g.eval(), d.eval()
    z = _inputs(1)[0].repeat(2, 1)
    labels = torch.tensor([0, 1])
    with torch.no_grad():
        fake = g(z, labels)
        assert not torch.allclose(fake[0], fake[1])
        logits = d(fake[:1].repeat(2, 1, 1, 1), labels)
    assert not torch.allclose(logits[0], logits[1])


@pytest.mark.parametrize("arch", list_archs())
def test_classes_expose_contract_attributes(arch):
    g, d = _pair(arch, 16, 1)
    for cls in (type(g), type(d)):
        assert cls.SUPPORTED_SIZES == SIZES
        assert isinstance(cls.DEFAULTS, dict) and "width" in cls.DEFAULTS
    assert arch_defaults(arch) == type(g).DEFAULTS
    assert g.config == {"num_classes": 3, "channels": 1, "image_size": 16, "z_dim": Z_DIM,
                        **type(g).DEFAULTS, "width": 8}


def test_resnet_defaults_match_sngan_cifar_scale():
    # SNGAN's CIFAR-10 ResNet: G about 4.3M parameters (256 ch), D about 1.0M (128 ch).
    g = build_generator("resnet", num_classes=10, channels=3, image_size=32)
    d = build_discriminator("resnet", num_classes=10, channels=3, image_size=32)
    assert g.config["width"] == 256 and d.config["width"] == 128
    assert 4.0e6 < count_parameters(g) < 5.0e6
    assert 0.9e6 < count_parameters(d) < 1.2e6


def test_unsupported_size_raises():
    with pytest.raises(GanaugConfigError, match=r"cannot make 48x48 images; it supports sizes 16"):
        build_generator("dcgan", num_classes=3, image_size=48)
    g_cls = type(build_generator("resnet", num_classes=3, image_size=16, width=8, z_dim=4))
    with pytest.raises(GanaugConfigError, match=r"cannot make 20x20"):
        g_cls(num_classes=3, image_size=20)


def test_unknown_arch_suggests_closest():
    with pytest.raises(GanaugConfigError, match=r"arch must be one of .*, got 'dcgann'.*Did you mean 'dcgan'\?"):
        build_generator("dcgann", num_classes=3)


@pytest.mark.parametrize("arch", list_archs())
def test_invalid_arch_kwargs_raise(arch):
    with pytest.raises(GanaugConfigError, match=r"width must be an integer >= 1, got 0"):
        build_generator(arch, num_classes=3, image_size=16, width=0)
    with pytest.raises(GanaugConfigError, match=r"width must be an integer >= 1, got 2.5"):
        build_discriminator(arch, num_classes=3, image_size=16, width=2.5)
    with pytest.raises(GanaugConfigError, match=r"unknown argument\(s\) widht.*Did you mean 'width'"):
        build_generator(arch, num_classes=3, image_size=16, widht=8)
    with pytest.raises(GanaugConfigError, match=r"channels must be 1 or 3, got 2"):
        build_discriminator(arch, num_classes=3, channels=2, image_size=16)


def test_count_parameters_counts_shared_once():
    lin = nn.Linear(3, 2)
    assert count_parameters(lin) == 8
    assert count_parameters(nn.Sequential(lin, lin)) == 8
    lin.bias.requires_grad_(False)
    assert count_parameters(lin, trainable_only=True) == 6


def test_conditional_batchnorm_starts_as_plain_batchnorm():
    cbn = ConditionalBatchNorm2d(4, embed_dim=5)
    nn.init.zeros_(cbn.gain.weight), nn.init.zeros_(cbn.bias.weight)
    x = torch.randn(6, 4, 3, 3)
    torch.testing.assert_close(cbn(x, torch.randn(6, 5)), nn.BatchNorm2d(4, affine=False)(x))


@pytest.mark.parametrize("arch", list_archs())
def test_arch_of_names_the_registered_arch(arch):
    from ganaug.models import arch_of

    g, d = _pair(arch, 16, 3)
    assert arch_of(g) == arch and arch_of(d) == arch
    assert arch_of(nn.Linear(2, 2)) is None


def test_arguments_are_checked_once_per_build(monkeypatch):
    from ganaug.models import layers

    calls = []
    real = layers.check_common
    monkeypatch.setattr(layers, "check_common", lambda *a: calls.append(a) or real(*a))
    build_generator("dcgan", num_classes=3, image_size=16, width=8)
    assert calls == [("dcgan", 3, 3)]


@pytest.mark.parametrize("kwargs, message", [
    ({"num_classes": 1}, (r"Arch 'dcgan': num_classes must be an integer >= 2, got 1\. A "
                          r"class-conditional GAN needs at least 2 classes\.")),
    ({"num_classes": "3"}, r"num_classes must be an integer >= 2, got '3'"),
    ({"num_classes": 3, "channels": 4}, (r"Arch 'dcgan': channels must be 1 or 3, got 4\. Use 1 "
                                         r"for grey or 3 for RGB")),
    ({"num_classes": 3, "image_size": True}, r"cannot make Truex"),
    ({"num_classes": 3, "width": 0}, (r"Arch 'dcgan': width must be an integer >= 1, got 0\. "
                                      r"Pass width=8 or larger")),
])
def test_direct_construction_is_checked_like_a_build(kwargs, message):
    from ganaug.models.dcgan import DCGANGenerator

    with pytest.raises(GanaugConfigError, match=message):
        DCGANGenerator(**kwargs)
    with pytest.raises(GanaugConfigError, match=message):
        build_generator("dcgan", **kwargs)


def test_numpy_ints_are_accepted_and_stored_as_int():
    import numpy as np

    g = build_generator("dcgan", num_classes=np.int64(3), channels=np.int64(1), image_size=16,
                        width=np.int32(8), z_dim=4)
    assert json.loads(json.dumps(g.config))["width"] == 8
    assert all(type(v) is int for k, v in g.config.items() if k not in ("cbn", "hier_z"))
    assert g.config["cbn"] is False and g.config["hier_z"] is False


@pytest.mark.parametrize("arch", list_archs())
def test_argument_kinds_follow_the_parameter_not_the_value(arch):
    """A bool where a width is expected, or a non-bool switch, is refused by name, not passed on
    to torch (``width=True`` used to reach ``nn.Conv2d`` and fail there with a TypeError)."""
    with pytest.raises(GanaugConfigError, match=r"width must be an integer >= 1, got True"):
        build_discriminator(arch, num_classes=3, image_size=16, width=True)
    with pytest.raises(GanaugConfigError, match=r"embed_dim must be an integer >= 1, got False"):
        build_generator(arch, num_classes=3, image_size=16, embed_dim=False)


def test_switches_must_be_bools():
    import numpy as np

    for value in ("no", 0, None):
        with pytest.raises(GanaugConfigError, match=r"spectral_norm must be true or false, got"):
            build_discriminator("dcgan", num_classes=3, image_size=16, spectral_norm=value)
    d = build_discriminator("dcgan", num_classes=3, image_size=16, width=8,
                            spectral_norm=np.bool_(False))
    assert d.config["spectral_norm"] is False


@pytest.mark.parametrize("arch", list_archs())
@pytest.mark.parametrize("kwargs", [{"z_dim": 10**30}, {"width": 10**30}, {"embed_dim": 10**30},
                                    {"d_width": 10**30}])
def test_estimate_refuses_sizes_beyond_int64_as_a_config_error(arch, kwargs):
    """Widths torch cannot even unpack (above 2**63) were a raw TypeError from torch.empty."""
    from ganaug.models import estimate_parameters

    kwargs = dict(kwargs)  # shared by the arch parametrisation
    z_dim = kwargs.pop("z_dim", 16)
    d_kw = {"width": kwargs.pop("d_width")} if "d_width" in kwargs else {}
    with pytest.raises(GanaugConfigError, match=r"cannot be built.*too large"):
        estimate_parameters(arch, num_classes=3, channels=1, image_size=16, z_dim=z_dim,
                            disc_kwargs=d_kw or {}, where="this run", **kwargs)


@pytest.mark.parametrize("size, nearest", [(8, 16), (20, 28), (30, 32), (48, 64), (100000, 64)])
def test_an_unsupported_size_names_the_nearest_size_the_arch_makes(size, nearest):
    with pytest.raises(GanaugConfigError, match=rf"cannot make {size}x{size} images.*"
                                                rf"image_size={nearest}\b"):
        build_generator("dcgan", num_classes=3, image_size=size)


@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
def test_to_channels_last_keeps_projections_from_1x1_contiguous_and_the_outputs(arch):
    # A stride-1, padding-0 transposed conv (DCGAN's "project and reshape" of a 1x1 input) ran
    # 5x slower on the CPU with NHWC weights; every other conv weight goes channels_last.
    g, d = _pair(arch, 28, 1)
    z, y = _inputs()
    g.eval()
    with torch.no_grad():
        before = g(z, y)
    to_channels_last(g)
    to_channels_last(d)
    convs = [m for m in [*g.modules(), *d.modules()] if isinstance(m, nn.modules.conv._ConvNd)]
    projections = [m for m in convs if isinstance(m, nn.ConvTranspose2d)
                   and m.stride == (1, 1) and m.padding == (0, 0)]
    assert len(projections) == (1 if arch == "dcgan" else 0)
    for m in convs:
        weight = m.weight
        if m in projections:
            assert weight.is_contiguous()
        elif weight.shape[-1] > 1:
            assert weight.is_contiguous(memory_format=torch.channels_last), m
    with torch.no_grad():
        assert torch.allclose(g(z, y), before, atol=1e-6)


def test_dcgan_discriminator_applies_its_last_activation_to_the_flat_features():
    # The same function as conv -> LeakyReLU -> flatten (an elementwise op commutes with a
    # reshape), but with channels_last features the LeakyReLU backward no longer mixes a
    # contiguous gradient with an NHWC output (4x slower on the CPU); the weights' names stay.
    _, d = _pair("dcgan", 28, 1)
    kinds = [type(m).__name__ for m in d.net]
    assert kinds[-2:] == ["Flatten", "LeakyReLU"]
    assert [k for k in d.state_dict() if k.startswith("net.")] == [
        k for k in d.state_dict() if k.startswith(("net.0.", "net.2."))]
    x, y = torch.rand(2, 1, 28, 28) * 2 - 1, torch.tensor([0, 2])
    d.eval()
    h = x
    for m in d.net[:-2]:
        h = m(h)
    expected = projection_logits(nn.functional.leaky_relu(h, 0.2).flatten(1), y, d.linear,
                                 d.embed)
    assert torch.allclose(d(x, y), expected, atol=1e-6)


def _generator_with_a_blind_input(cbn: bool) -> nn.Module:
    """A dcgan G whose first layer ignores the class embedding concatenated to ``z``."""
    torch.manual_seed(0)
    g = build_generator("dcgan", num_classes=3, channels=1, image_size=16, z_dim=Z_DIM, width=8,
                        cbn=cbn)
    with torch.no_grad():
        g.net[0].weight[Z_DIM:] = 0
        for m in g.modules():
            if isinstance(m, ConditionalBatchNorm2d):  # a trained CBN, not the identity of init
                m.gain.weight.normal_(0, 0.5)
                m.bias.weight.normal_(0, 0.5)
    with torch.no_grad():
        g(torch.randn(8, Z_DIM), torch.arange(8) % 3)  # running stats away from their init
    return g.eval()


@pytest.mark.parametrize("cbn", [False, True])
def test_dcgan_cbn_lets_the_class_steer_every_batchnorm(cbn):
    # With the input's class channels silenced, only class-conditional BatchNorm still carries
    # the label; plain DCGAN's generator then draws the same image for every class.
    g = _generator_with_a_blind_input(cbn)
    z = _inputs(1)[0].repeat(2, 1)
    with torch.no_grad():
        fake = g(z, torch.tensor([0, 2]))
    assert torch.allclose(fake[0], fake[1]) is not cbn
    norms = [type(m).__name__ for m in g.net if "BatchNorm" in type(m).__name__]
    assert norms == ["ConditionalBatchNorm2d" if cbn else "BatchNorm2d"] * 2
    assert g.config["cbn"] is cbn


def test_dcgan_without_cbn_keeps_the_weight_names_of_earlier_model_files():
    g = build_generator("dcgan", num_classes=3, channels=1, image_size=16, width=8)
    assert [k for k in g.state_dict() if k.startswith("net.1.")] == [
        "net.1.weight", "net.1.bias", "net.1.running_mean", "net.1.running_var",
        "net.1.num_batches_tracked"]
    del g.config["cbn"]  # a config written before the switch existed
    type(g)(**g.config).load_state_dict(g.state_dict())


def test_dcgan_cbn_generator_survives_a_model_file(tmp_path):
    from ganaug.generator import Generator
    from ganaug.io import load, save

    net = build_generator("dcgan", num_classes=3, channels=1, image_size=16, z_dim=Z_DIM,
                          width=8, cbn=True)
    with torch.no_grad():
        net(*_inputs(4))
    path = save(Generator(net, classes=["a", "b", "c"]), tmp_path / "g.safetensors")
    loaded = load(path)
    assert loaded.net.config["cbn"] is True
    z, y = _inputs(2)
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.net(z, y), net(z, y), rtol=0, atol=0)
    with pytest.raises(GanaugConfigError, match="cbn must be true or false"):
        build_generator("dcgan", num_classes=3, image_size=16, cbn=1)


def test_dcgan_hier_z_feeds_a_chunk_of_z_to_each_batchnorm():
    # BigGAN's hierarchical z: the input layer sees only the first chunk, so changing the last
    # chunk alone must still change the image (through the last conditional BatchNorm).
    torch.manual_seed(0)
    g = build_generator("dcgan", num_classes=3, channels=1, image_size=28, z_dim=30, width=8,
                        cbn=True, hier_z=True)
    assert g.z_chunks == [10, 10, 10] and g.net[0].in_channels == 10 + 64
    with torch.no_grad():
        g(torch.randn(8, 30), torch.arange(8) % 3)
        g.eval()
        z = torch.randn(1, 30).repeat(2, 1)
        z[1, 20:] = torch.randn(10)
        fake = g(z, torch.tensor([1, 1]))
    assert not torch.allclose(fake[0], fake[1])
    rebuilt = type(g)(**g.config)
    rebuilt.load_state_dict(g.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(z, torch.tensor([1, 1])), fake)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"hier_z": True}, "set cbn: true as well"),
    ({"hier_z": True, "cbn": True, "z_dim": 2}, "z_dim is 2; use z_dim >= 3"),
])
def test_dcgan_hier_z_refusals_name_the_fix(kwargs, message):
    with pytest.raises(GanaugConfigError, match=message):
        build_generator("dcgan", num_classes=3, channels=1, image_size=28, **kwargs)
