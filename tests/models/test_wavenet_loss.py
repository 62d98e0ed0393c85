"""WaveNet objective and conditioning checked against answers worked out by hand.

* The loss equals a cross-entropy computed position by position: the logits that saw ``x[0..t]`` (a prefix
  forward, so the reference does not reuse the objective's slicing) scored against ``x[t + 1]``.
* Mel local conditioning: a mel with one non-zero frame ``k`` changes the upsampled conditioning on exactly the
  samples that frame covers, and the logits from exactly the first of them on (never before).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from soundsmith.audio import mu_law_encode
from soundsmith.models.wavenet import WaveNet, WaveNetConfig
from soundsmith.train.objectives.wavenet import WaveNetObjective


def tiny(seed: int = 0, **kw) -> WaveNet:
    base = dict(residual_channels=8, dilation_channels=8, skip_channels=16, stacks=1, layers_per_stack=3)
    base.update(kw)
    torch.manual_seed(seed)
    return WaveNet(WaveNetConfig(**base)).double().eval()


def _audio(batch: int = 2, length: int = 24) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return (0.6 * torch.rand(batch, length, generator=g, dtype=torch.float64) - 0.3).clamp(-1, 1)


def _reference_loss(model: WaveNet, codes: torch.Tensor, start: int = 0) -> tuple[float, float]:
    """Mean over b and t >= start of -log p(x[b, t+1] | x[b, 0..t]), and the argmax accuracy, by hand."""
    total, hits, count = 0.0, 0, 0
    with torch.no_grad():
        for t in range(start, codes.shape[1] - 1):
            logits_t = model(codes[:, : t + 1])[:, :, -1]  # [B, Q]: the prediction made after reading x[t]
            for b in range(codes.shape[0]):
                nxt = int(codes[b, t + 1])
                total -= float(torch.log_softmax(logits_t[b], dim=0)[nxt])
                hits += int(int(logits_t[b].argmax()) == nxt)
                count += 1
    return total / count, hits / count


@pytest.mark.parametrize("skip_rf", [False, True])
def test_loss_is_next_sample_cross_entropy_by_hand(skip_rf):
    model = tiny()
    obj = WaveNetObjective(model, skip_receptive_field=skip_rf)
    audio = _audio()
    codes = mu_law_encode(audio)
    out = obj.losses({"audio": audio})
    start = model.receptive_field - 1 if skip_rf else 0
    loss, acc = _reference_loss(model, codes, start)
    assert out["loss"].item() == pytest.approx(loss, rel=1e-6)  # the objective scores in float32
    assert out["accuracy"].item() == pytest.approx(acc, abs=1e-12)
    # the same logits scored against the current sample give another number (the test can tell them apart)
    with torch.no_grad():
        same_t = F.cross_entropy(model(codes[:, :-1]), codes[:, :-1]).item()
    assert abs(same_t - loss) > 1e-3


def test_loss_of_a_perfect_next_sample_predictor_is_near_zero():
    """A model whose logits at t point at x[t+1] (read from a table) scores ~0; pointing at x[t] scores high."""
    codes = mu_law_encode(_audio(1, 30))  # [1, 30]
    model = tiny()
    obj = WaveNetObjective(model)

    def oracle(shift: int):
        def forward(x, gc_ids=None, text_emb=None, mel=None):  # x [B, T-1] -> logits [B, Q, T-1]
            target = codes[:, shift : shift + x.shape[1]]
            return 30.0 * F.one_hot(target, 256).transpose(1, 2).double()

        return forward

    model.forward = oracle(shift=1)
    assert obj.losses({"codes": codes})["loss"].item() < 1e-6
    model.forward = oracle(shift=0)
    assert obj.losses({"codes": codes})["loss"].item() > 10.0


# --- mel local conditioning alignment ----------------------------------------------------------------------
HOP, FRAMES, K = 4, 8, 3  # frame K covers samples [K * HOP, (K + 1) * HOP) = [12, 16)


def _one_frame_mels(channels: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    zero = torch.zeros(1, channels, FRAMES, dtype=torch.float64)
    bump = zero.clone()
    bump[:, :, K] = torch.tensor([3.0, -2.0][:channels], dtype=torch.float64)
    return zero, bump


@pytest.mark.parametrize(
    "upsample,first,last",
    [
        ("transposed", K * HOP, (K + 1) * HOP - 1),  # kernel = stride = hop: frame k -> [k*hop, (k+1)*hop)
        (
            "repeat_conv",
            K * HOP - 1,
            (K + 1) * HOP,
        ),  # repeat, then a centred 3-tap conv: one sample each side
    ],
)
def test_one_mel_frame_moves_exactly_its_samples(upsample, first, last):
    model = tiny(lc_channels=2, hop_length=HOP, lc_upsample=upsample)
    zero, bump = _one_frame_mels()
    length = FRAMES * HOP
    with torch.no_grad():
        diff = (model.upsample_mel(bump, length) - model.upsample_mel(zero, length)).abs().amax(dim=(0, 1))
    changed = torch.nonzero(diff > 1e-12).flatten().tolist()
    assert changed == list(range(first, last + 1))


@pytest.mark.parametrize("upsample,first", [("transposed", K * HOP), ("repeat_conv", K * HOP - 1)])
def test_one_mel_frame_changes_logits_from_its_first_sample_on(upsample, first):
    model = tiny(lc_channels=2, hop_length=HOP, lc_upsample=upsample)
    zero, bump = _one_frame_mels()
    x = torch.randint(0, 256, (1, FRAMES * HOP), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        diff = (model(x, mel=bump) - model(x, mel=zero)).abs().amax(dim=(0, 1))  # [T]
    assert float(diff[:first].max()) == 0.0, "the mel frame reached logits before its samples"
    assert float(diff[first]) > 1e-3, "the mel frame does not reach the logits at its first sample"
    assert math.isfinite(float(diff.max()))
