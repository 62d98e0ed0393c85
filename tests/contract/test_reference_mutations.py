"""The reference losses catch the bugs they are there for (issue 17): each test breaks one family's objective the way
a plausible bug would (a target shifted by one, a loss term dropped, the wrong temperature, noise off its seed),
inside this test session with ``monkeypatch``, and asserts that its loss no longer equals the family's
``contract_reference_loss``, i.e. that ``test_loss_equals_the_reference_by_hand`` would fail on it.

Every setup first checks that the unbroken objective does equal the reference, so a broken reference cannot pass
these tests by differing from everything. The mutations touch the objective's code path only (its module's
functions, its methods, or model methods the references do not call), never what the reference itself runs.

The last section does the same for the ``contract_conditioning`` probes: each passes on the unbroken model and
fails once the model ignores the probed input (or lets it leak where it must not).
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from contract_checks import batch_of, build

from soundsmith import families
from soundsmith.models.codec import Codec
from soundsmith.models.token_lm import TokenLM
from soundsmith.train.objectives import clap as clap_objective
from soundsmith.train.objectives import codec as codec_objective
from soundsmith.train.objectives import ganmix as ganmix_objective
from soundsmith.train.objectives import get_objective
from soundsmith.train.objectives import token_lm as token_lm_objective
from soundsmith.train.objectives.codec import CodecObjective
from soundsmith.train.objectives.ganmix import GANmixObjective


def _close(got: float, want: float) -> bool:
    """The tolerance of ``test_loss_equals_the_reference_by_hand``."""
    return got == pytest.approx(want, rel=1e-5, abs=1e-6)


class Setup:
    """A family's tiny model (eval mode), its objective (eval mode), a prepared batch and the reference loss."""

    def __init__(self, name: str, captions: list[str] | None = None) -> None:
        self.family = families.get(name)
        run, self.model = build(self.family)
        self.model.eval()
        self.obj = get_objective(name)(
            self.model
        ).eval()  # right after build (ganmix: its discriminator's seed)
        self.raw = batch_of(run, self.model, n=len(captions) if captions else 2)
        if captions:
            self.raw["caption"] = list(captions)
        self.batch = self.prepare()
        self.want = self.reference(self.batch)
        got = self.loss()
        assert _close(got, self.want), (
            f"{name}: the unbroken objective gives {got}, the reference {self.want}"
        )

    def prepare(self) -> dict[str, Any]:
        return self.obj.prepare_batch(dict(self.raw))

    def reference(self, batch: dict[str, Any]) -> float:
        with torch.no_grad():
            return float(self.family.contract_reference_loss(self.model, batch))

    def loss(self, batch: dict[str, Any] | None = None) -> float:
        with torch.no_grad():
            return float(self.obj.losses(self.batch if batch is None else batch, 0)["loss"])

    def assert_caught(self, what: str, batch: dict[str, Any] | None = None) -> None:
        got = self.loss(batch)
        assert not _close(got, self.want), f"{self.family.name}: {what} is not caught ({got} vs {self.want})"


_SETUPS: dict[tuple[str, tuple[str, ...]], Setup] = {}


def setup_of(name: str, captions: list[str] | None = None) -> Setup:
    """Built once per family (and captions) for the whole module: the mutations patch classes and modules, which
    the already built objective looks up at call time."""
    key = (name, tuple(captions or ()))
    if key not in _SETUPS:
        _SETUPS[key] = Setup(name, captions)
    return _SETUPS[key]


# --- clap -----------------------------------------------------------------------------------------------------
def _one_direction(a, t, scale, targets=None):
    return F.cross_entropy(scale * a @ t.T, targets)  # audio -> text only


def _inverted_temperature(a, t, scale, targets=None, _loss=clap_objective.clap_loss):
    return _loss(a, t, 1.0 / scale, targets)


def _unclamped_scale(a, t, scale, targets=None, _loss=clap_objective.clap_loss):
    return _loss(a, t, scale * 1.5, targets)  # e.g. exp of the raw log-scale past max_logit_scale


@pytest.mark.parametrize(
    "name,bug",
    [
        ("one direction of the symmetric loss", _one_direction),
        ("temperature instead of its inverse", _inverted_temperature),
        ("a scale off by half", _unclamped_scale),
    ],
)
def test_clap_reference_catches(monkeypatch, name, bug):
    s = setup_of("clap")
    monkeypatch.setattr(clap_objective, "clap_loss", bug)
    s.assert_caught(name)


def test_clap_reference_catches_labels_read_instead_of_the_caption(monkeypatch):
    """The caption fallback inverted: the labels as text although the clip has a caption (the reference reads the
    captions; duplicate captions are no test here: equal captions give equal text embeddings, and then the soft
    targets give the same loss as the identity, an equivalent mutant)."""
    s = setup_of("clap")
    monkeypatch.setattr(clap_objective, "caption_of", lambda batch, i: ", ".join(batch["labels"][i]))
    s.assert_caught("labels read instead of the caption", s.prepare())


# --- codec ----------------------------------------------------------------------------------------------------
def _drop_commit(self, y_hat, y, commit, _orig=CodecObjective.reconstruction_losses):
    return {**_orig(self, y_hat, y, commit), "commit": torch.zeros(())}


def _drop_mel(self, y_hat, y, commit, _orig=CodecObjective.reconstruction_losses):
    return {**_orig(self, y_hat, y, commit), "mel": torch.zeros(())}


def _l1_as_mse(self, y_hat, y, commit, _orig=CodecObjective.reconstruction_losses):
    return {**_orig(self, y_hat, y, commit), "l1": torch.mean((y_hat - y) ** 2)}


@pytest.mark.parametrize(
    "name,patch",
    [
        (
            "the commitment term dropped",
            lambda mp: mp.setattr(CodecObjective, "reconstruction_losses", _drop_commit),
        ),
        (
            "L1 computed as a squared error",
            lambda mp: mp.setattr(CodecObjective, "reconstruction_losses", _l1_as_mse),
        ),
        (
            "the log-mel term dropped",
            lambda mp: mp.setattr(CodecObjective, "reconstruction_losses", _drop_mel),
        ),
        (
            "one STFT resolution of three",
            lambda mp: mp.setattr(
                codec_objective,
                "multi_resolution_stft_loss",
                functools.partial(codec_objective.multi_resolution_stft_loss, resolutions=((512, 128, 512),)),
            ),
        ),
        (
            "eval through all codebooks but the last",
            lambda mp: mp.setattr(
                Codec, "forward", lambda self, audio, n_q=None, _f=Codec.forward: _f(self, audio, n_q or 3)
            ),
        ),
    ],
)
def test_codec_reference_catches(monkeypatch, name, patch):
    s = setup_of("codec")
    patch(monkeypatch)
    s.assert_caught(name)


# --- token_lm -------------------------------------------------------------------------------------------------
def _no_shift(self, seq):
    return seq  # column s reads the code it predicts


def _late_shift(self, seq):
    start = torch.full_like(seq[..., :2], self.config.special)
    return torch.cat([start, seq[..., :-2]], -1)  # predicts step s from steps < s - 1


def _zero_start(self, seq):
    start = torch.zeros_like(seq[..., :1])  # the start column holds code 0, not the special token
    return torch.cat([start, seq[..., :-1]], -1)


def _last_step_unscored(pattern, K, T, device=None, _mask=token_lm_objective.valid_mask):
    mask = _mask(pattern, K, T, device).clone()
    mask[:, -1] = False  # an off-by-one in the scored span: the last step's code is never a target
    return mask


@pytest.mark.parametrize(
    "name,patch",
    [
        (
            "targets not shifted (the model reads its answer)",
            lambda mp: mp.setattr(TokenLM, "inputs_for", _no_shift),
        ),
        ("inputs shifted by two steps", lambda mp: mp.setattr(TokenLM, "inputs_for", _late_shift)),
        ("a start column of code 0", lambda mp: mp.setattr(TokenLM, "inputs_for", _zero_start)),
        (
            "the last step left unscored",
            lambda mp: mp.setattr(token_lm_objective, "valid_mask", _last_step_unscored),
        ),
    ],
)
def test_token_lm_reference_catches(monkeypatch, name, patch):
    s = setup_of("token_lm")
    patch(monkeypatch)
    s.assert_caught(name)


def test_token_lm_reference_catches_a_delay_off_by_one(monkeypatch):
    """The pattern built with codebook k delayed by k + 1 steps (the objective's seq, and its valid slots)."""
    from soundsmith.models import token_lm as model_module

    s = setup_of("token_lm")

    def positions(pattern, K, T, device=None):
        return torch.arange(T, device=device)[None] + torch.arange(K, device=device)[:, None] + 1

    monkeypatch.setattr(model_module, "pattern_positions", positions)
    monkeypatch.setattr(model_module, "pattern_steps", lambda pattern, K, T: T + K)
    s.assert_caught("a delay of k + 1 steps", s.prepare())


def test_token_lm_reference_catches_a_causal_mask_one_step_too_wide(monkeypatch):
    """The reference predicts each step from its prefix alone, so attention that peeks one step ahead in the
    objective's full pass scores differently."""
    from soundsmith.nn import relative_attention

    s = setup_of("token_lm")

    def peek(Lq, Lk, device, _mask=relative_attention.causal_mask):
        mask = _mask(Lq, Lk, device).clone()
        mask[:, 1:] |= mask[:, :-1].clone()
        return mask

    monkeypatch.setattr(relative_attention, "causal_mask", peek)
    s.assert_caught("attention one step into the future")


# --- ganmix ---------------------------------------------------------------------------------------------------
def _toward_fake(fake, loss, tanh=False, tanh_as="probability"):
    return ganmix_objective._bce(fake, 0.0, tanh, tanh_as)  # the generator trained toward the "fake" label


def _unseeded_noise(self, n, frames, salt):
    return torch.randn(
        (n, *self.model.generator.noise_shape(frames))
    )  # the global RNG, not the step's generator


def _other_salt(self, n, frames, salt, _noise=GANmixObjective.noise):
    return _noise(self, n, frames, "diversity")


def _tanh_as_logit(self, _kw=GANmixObjective._loss_kwargs):
    return {**_kw(self), "tanh_as": "logit"}


@pytest.mark.parametrize(
    "name,patch",
    [
        (
            "the generator's target 0 instead of 1",
            lambda mp: mp.setattr(ganmix_objective, "generator_loss", _toward_fake),
        ),
        ("noise from the global RNG", lambda mp: mp.setattr(GANmixObjective, "noise", _unseeded_noise)),
        (
            "noise from the diversity draw's generator",
            lambda mp: mp.setattr(GANmixObjective, "noise", _other_salt),
        ),
        (
            "the tanh output read as a logit",
            lambda mp: mp.setattr(GANmixObjective, "_loss_kwargs", _tanh_as_logit),
        ),
    ],
)
def test_ganmix_reference_catches(monkeypatch, name, patch):
    s = setup_of("ganmix")
    torch.manual_seed(1)  # the global RNG now differs from the one the objective's own generator replays
    patch(monkeypatch)
    s.assert_caught(name)


# --- the conditioning probes fail too ---------------------------------------------------------------------------
def _text_ignored_by_the_generator(mp):
    from soundsmith.models.ganmix import Generator

    mp.setattr(
        Generator,
        "forward",
        lambda self, noise, pooled, frames=None, tokens=None, mask=None, _f=Generator.forward: _f(
            self, noise, torch.zeros_like(pooled), frames, tokens, mask
        ),
    )


def _text_ignored_by_the_lm(mp):
    from soundsmith.models.token_lm import TokenLMNet

    def condition(self, text, mask, drop, _f=TokenLMNet.condition):
        return _f(self, text, mask, torch.ones(len(text), dtype=torch.bool))  # always the null text

    mp.setattr(TokenLMNet, "condition", condition)


def _text_leaks_into_the_audio_embedding(mp):
    from soundsmith.models.clap import AudioTextContrastive

    def forward(self, mel, text_pooled):
        text = self.encode_text(text_pooled)
        return F.normalize(self.encode_audio(mel) + 0.1 * text, dim=-1), text, self.scale()

    mp.setattr(AudioTextContrastive, "forward", forward)


@pytest.mark.parametrize(
    "family,probe,patch",
    [
        ("ganmix", "text_pooled", _text_ignored_by_the_generator),
        ("token_lm", "text_tokens", _text_ignored_by_the_lm),
        ("clap", "text_pooled", _text_leaks_into_the_audio_embedding),
    ],
)
def test_conditioning_probe_catches(monkeypatch, family, probe, patch):
    from test_contract_growth import check_conditioning_probe

    declared = families.get(family)
    (chosen,) = [p for p in declared.contract_conditioning if p.name == probe]
    check_conditioning_probe(declared, chosen)  # passes unbroken
    patch(monkeypatch)
    with pytest.raises(AssertionError, match=f"{family}/{probe}"):
        check_conditioning_probe(declared, chosen)
