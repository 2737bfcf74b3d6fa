"""Tests of ganaug.training.step: the EMA, arch-kwarg routing and GANStep (one generator step,
the non-finite tracker, state_dict round trip)."""

from __future__ import annotations

import io

import pytest
import torch

from ganaug.config import TrainConfig, resolve_config
from ganaug.errors import GanaugConfigError
from ganaug.training import GANStep, ema_decay_at, ema_update, split_arch_kwargs
from ganaug.training.step import NO_STEP

CLASSES = ["a", "b", "c"]


def tiny_cfg(**kw) -> TrainConfig:
    """A resolved 16 px RGB dcgan config of width 8 (batch 4, 2 D steps)."""
    base = {"data": "tiny", "arch": "dcgan", "arch_kwargs": {"width": 8, "embed_dim": 8},
            "z_dim": 16, "batch_size": 4, "d_steps": 2, "seed": 1, "diffaug": "translation",
            "device": "cpu"}
    base.update(kw)
    cfg, _ = resolve_config(TrainConfig(**base), num_images=24, channels=3, image_size=16,
                            device_type="cpu")
    return cfg


def reload_and_compare_next_step(a: GANStep, b: GANStep) -> None:
    """Load ``a``'s state (through ``torch.save``/``weights_only`` load) into ``b``; then the
    same next step must give both the same outputs."""
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b.load_state_dict(torch.load(buf, weights_only=True))
    out = []
    for gan in (a, b):
        torch.manual_seed(5)
        out.append(gan.step(batches(1, seed=3), step=2))
    for key in out[0]:
        assert torch.equal(out[0][key], out[1][key]), key


def batches(n: int = 2, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(4, 3, 16, 16, generator=g) * 2 - 1, torch.randint(0, 3, (4,), generator=g))
            for _ in range(n)]


def test_ema_decay_warms_up_and_caps():
    assert ema_decay_at(3, 0.999, start=5) == 0.0
    assert ema_decay_at(6, 0.999, start=5) == pytest.approx(2 / 11)
    assert ema_decay_at(10**6, 0.999, start=0) == pytest.approx(0.999)


def test_ema_update_averages_parameters_and_copies_buffers():
    model, ema = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        model.weight.fill_(2.0)
        ema.weight.fill_(1.0)
        model.running_mean.fill_(5.0)
    ema_update(ema, model, decay=0.75)
    torch.testing.assert_close(ema.weight, torch.full((3,), 1.25))
    torch.testing.assert_close(ema.running_mean, torch.full((3,), 5.0))


def test_split_arch_kwargs_routes_and_rejects_unknown():
    g_kw, d_kw = split_arch_kwargs("dcgan", {"width": 8, "embed_dim": 4, "spectral_norm": False})
    assert g_kw == {"width": 8, "embed_dim": 4}
    assert d_kw == {"width": 8, "spectral_norm": False}
    with pytest.raises(GanaugConfigError, match=r"\['widht'\].*Did you mean 'width'"):
        split_arch_kwargs("dcgan", {"widht": 8})
    # d_width: a wider discriminator than the generator
    g_kw, d_kw = split_arch_kwargs("dcgan", {"width": 8, "d_width": 16})
    assert (g_kw, d_kw) == ({"width": 8}, {"width": 16})
    with pytest.raises(GanaugConfigError, match=r"\['d_widht'\].*Did you mean 'd_width'"):
        split_arch_kwargs("dcgan", {"d_widht": 8})


def test_d_width_widens_only_the_discriminator():
    step = GANStep(tiny_cfg(arch_kwargs={"width": 8, "embed_dim": 8, "d_width": 16}), CLASSES)
    plain = GANStep(tiny_cfg(), CLASSES)
    assert step.D.net[0].weight.shape[0] == 16 and plain.D.net[0].weight.shape[0] == 8
    assert sum(p.numel() for p in step.G.parameters()) == sum(
        p.numel() for p in plain.G.parameters())


def test_unresolved_config_is_refused():
    with pytest.raises(GanaugConfigError, match=r"resolved TrainConfig; arch, arch_kwargs.*"
                                                r"resolve_config"):
        GANStep(TrainConfig(data="tiny"), CLASSES)


def test_same_seed_same_initial_weights_and_ema_starts_as_a_copy():
    a, b = GANStep(tiny_cfg(), CLASSES), GANStep(tiny_cfg(), CLASSES)
    for (name, pa), pb, pe in zip(a.G.state_dict().items(), b.G.state_dict().values(),
                                  a.G_ema.state_dict().values()):
        assert torch.equal(pa, pb) and torch.equal(pa, pe), name
    assert a.generator.classes == CLASSES and a.generator.net is a.G_ema
    assert "G 8," in a.describe() and "3 classes, 16x16x3, device cpu" in a.describe()


def test_step_trains_both_networks_and_returns_device_scalars():
    gan = GANStep(tiny_cfg(ema_decay=0.5), CLASSES)
    g0 = [p.detach().clone() for p in gan.G.parameters()]
    d0 = [p.detach().clone() for p in gan.D.parameters()]
    losses = gan.step(batches(), step=1)
    assert sorted(losses) == ["d_fake", "d_real", "loss_d", "loss_g"]
    assert all(v.dim() == 0 and torch.isfinite(v) and not v.requires_grad for v in losses.values())
    assert any(not torch.equal(a, b) for a, b in zip(g0, gan.G.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, gan.D.parameters()))
    # step 1: decay min(0.5, 2/11) = 2/11, so ema = lerp(initial, G, 9/11)
    for p_ema, p0, p in zip(gan.G_ema.parameters(), g0, gan.G.parameters()):
        torch.testing.assert_close(p_ema, p0.lerp(p.detach(), 9 / 11))
    assert all(p.requires_grad for p in gan.D.parameters())  # re-enabled after the G step
    assert gan.first_bad_steps().tolist() == [NO_STEP, NO_STEP]


def test_a_non_finite_loss_records_its_first_step_without_raising():
    gan = GANStep(tiny_cfg(), CLASSES)
    gan.step(batches(), step=1)
    gan.g_loss_fn = lambda logits: logits.mean() * float("nan")
    gan.step(batches(seed=1), step=2)
    assert gan.first_bad_steps().tolist() == [NO_STEP, 2]
    gan.step(batches(seed=2), step=3)  # G's weights are NaN now, so D's loss is too
    assert gan.first_bad_steps().tolist() == [3, 2]


@pytest.mark.parametrize("loss", ["hinge", "wgan-gp"])
def test_state_dict_round_trip_continues_identically(loss):
    extra = {"ada": True, "lecam_weight": 0.3, "r1_gamma": 1.0}
    a = GANStep(tiny_cfg(loss=loss, d_steps=1, **extra), CLASSES)
    a.step(batches(1), step=1)
    b = GANStep(tiny_cfg(loss=loss, d_steps=1, seed=99, **extra), CLASSES)
    reload_and_compare_next_step(a, b)
    assert b.ada.state_dict() == a.ada.state_dict() and b.lecam.state_dict() == a.lecam.state_dict()
    for name, value in a.state_dict()["G_ema"].items():
        assert torch.equal(value, b.G_ema.state_dict()[name]), name


def test_state_dict_holds_no_ada_or_lecam_when_off():
    state = GANStep(tiny_cfg(), CLASSES).state_dict()
    assert state["ada"] is None and state["lecam"] is None
    assert set(state) == {"G", "D", "G_ema", "opt_g", "opt_d", "scaler_g", "scaler_d", "ada",
                          "lecam"}


# -- balanced consistency regularisation (bCR) ------------------------------------------------
def _d_step_by_hand(gan: GANStep, real, labels, *, cr_weight: float):
    """The D step written out: the pre-bCR step (one D forward on [T1(real); T1(fake)], hinge)
    plus, when ``cr_weight > 0``, ``cr_weight * (consistency(real) + consistency(fake))`` over
    a second view ``T(T1(x)) = cr_shift(T1(x))`` of the view D scores. Returns
    (loss, D's weights)."""
    from ganaug.diffaug import cr_shift
    from ganaug.losses import consistency_reg, hinge_d

    n = real.shape[0]
    z, fake_labels = gan.noise(n)
    with torch.no_grad():
        fake = gan.G(z, fake_labels)
    views = [gan.augment(real), gan.augment(fake)]
    if cr_weight > 0:
        views += [cr_shift(views[0]), cr_shift(views[1])]
    logits = gan.D(torch.cat(views), torch.cat([labels, fake_labels] * (len(views) // 2))).float()
    loss = hinge_d(logits[:n], logits[n:2 * n])
    if cr_weight > 0:
        loss = loss + cr_weight * (consistency_reg(logits[:n], logits[2 * n:3 * n])
                                   + consistency_reg(logits[n:2 * n], logits[3 * n:]))
    gan.opt_d.zero_grad(set_to_none=True)
    loss.backward()
    gan.opt_d.step()
    return loss.detach(), [p.detach().clone() for p in gan.D.parameters()]


@pytest.mark.parametrize("cr_weight", [0.0, 10.0])
def test_d_step_is_the_written_out_formula_bit_for_bit(cr_weight):
    import copy

    gan = GANStep(tiny_cfg(cr_weight=cr_weight), CLASSES)
    twin = copy.deepcopy(gan)
    (real, labels), = batches(1)
    torch.manual_seed(7)
    loss, _, _ = gan.d_step(real, labels, step=1)
    after_step = torch.rand(3)
    torch.manual_seed(7)
    loss_by_hand, d_by_hand = _d_step_by_hand(twin, real, labels, cr_weight=cr_weight)
    assert torch.equal(loss, loss_by_hand)
    assert all(torch.equal(p, q) for p, q in zip(gan.D.parameters(), d_by_hand))
    assert torch.equal(after_step, torch.rand(3))  # the same random draws, no more


def test_cr_weight_zero_leaves_the_step_and_the_rng_untouched(monkeypatch):
    """cr_weight=0: T is never drawn, so the D step and the RNG stream are those of before."""
    def never(x):
        raise AssertionError("bCR's T was drawn with cr_weight=0")

    gan = GANStep(tiny_cfg(), CLASSES)
    assert gan.cfg.cr_weight == 0.0  # the preset's default: off
    monkeypatch.setattr(GANStep, "cr_augment", staticmethod(never))
    torch.manual_seed(3)
    gan.step(batches(), step=1)
    after_off = torch.rand(4)

    on = GANStep(tiny_cfg(cr_weight=1.0), CLASSES)
    monkeypatch.undo()
    torch.manual_seed(3)
    on.step(batches(), step=1)
    assert not torch.equal(torch.rand(4), after_off)  # bCR draws T: the stream moves on


def test_cr_term_is_positive_and_grows_the_d_loss():
    base, reg = GANStep(tiny_cfg(), CLASSES), GANStep(tiny_cfg(cr_weight=10.0), CLASSES)
    (real, labels), = batches(1)
    torch.manual_seed(0)
    loss_base, _, _ = base.d_step(real, labels, step=1)
    torch.manual_seed(0)
    loss_reg, _, _ = reg.d_step(real, labels, step=1)
    # Same weights, same fakes and same first views: the difference is the bCR term (> 0:
    # an untrained D does not give an image and its shifted copy equal logits).
    assert loss_reg > loss_base


def test_cr_second_view_is_a_shift_of_the_view_d_scores(monkeypatch):
    """bCR pairs D(T1(x)) with D(T(T1(x))): the consistency asks D to ignore a shift only, not
    a second, independent DiffAugment cutout that can hide what makes a digit its class (with
    an independent view and cutout in T, cr_weight 10 drew every class as the same 3/5 shape:
    CAS ratio 0.44, recall 0.007 on mnist5k; docs/results.md)."""
    scored, shifted = [], []
    augment, cr_augment = GANStep.augment, GANStep.cr_augment

    def record_augment(self, x):
        scored.append(augment(self, x).detach())
        return scored[-1]

    def record_cr(x):
        shifted.append(x.detach().clone())
        return cr_augment(x)

    monkeypatch.setattr(GANStep, "augment", record_augment)
    monkeypatch.setattr(GANStep, "cr_augment", staticmethod(record_cr))
    gan = GANStep(tiny_cfg(cr_weight=10.0, diffaug="translation,cutout"), CLASSES)
    (real, labels), = batches(1)
    gan.d_step(real, labels, step=1)
    assert len(scored) == len(shifted) == 2
    assert all(torch.equal(a, b) for a, b in zip(scored, shifted))


def test_cr_view_keeps_the_image_content():
    """T moves the image by at most 1/8 of its size, cuts nothing out and brings in no value the
    image lacks: a zero (grey) border let G draw a grey frame round every digit, which D,
    taught to ignore the frame, never penalised (precision 0.03 on mnist5k; docs/results.md)."""
    x = torch.full((64, 1, 32, 32), -1.0)
    x[:, :, 8:24, 8:24] = 1.0  # a white square on black
    view = GANStep.cr_augment(x)
    assert set(view.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(view[:, :, 12:20, 12:20], torch.ones(64, 1, 8, 8))
    assert not torch.equal(view, x)  # it does move the images


def test_cr_weight_state_round_trip_continues_identically():
    a = GANStep(tiny_cfg(cr_weight=10.0, r1_gamma=1.0, d_steps=1), CLASSES)
    a.step(batches(1), step=1)
    b = GANStep(tiny_cfg(cr_weight=10.0, r1_gamma=1.0, d_steps=1, seed=99), CLASSES)
    reload_and_compare_next_step(a, b)
