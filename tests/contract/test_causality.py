"""The token LM's conditioning, checked on the logits of the training path (issue 17, item 2).

``contract_conditioning`` compares the audio that ``contract_forward`` decodes from the greedy codes, which is
discrete and spread in time by the codec's decoder: it cannot say "the prediction of step k does not read step k".
These tests read the network as the objective does (``model.inputs_for(seq)``, the tiny contract model, a prepared
contract batch): the logits of step ``s`` (column ``s``, the prediction of ``seq[..., s]``) must not change when any
step ``>= s`` changes, and must change when an earlier step or the text changes.
"""

from __future__ import annotations

import pytest
import torch
from contract_checks import batch_of, build

from soundsmith import families
from soundsmith.models.token_lm import TokenLM
from soundsmith.nn import relative_attention
from soundsmith.train.objectives import get_objective


@pytest.fixture(scope="module")
def lm():
    run, model = build(families.get("token_lm"))
    model.eval()
    batch = get_objective("token_lm")(model).prepare_batch(batch_of(run, model, n=2))
    return model, batch


def _logits(model, batch, seq=None, text=None, drop=None):
    seq = batch["seq"] if seq is None else seq
    text = batch["text_tokens"] if text is None else text
    with torch.no_grad():
        return model(model.inputs_for(seq), text, batch["text_mask"], drop)  # [B, K, S, V]


def _changed_steps(a, b):
    """Per step (column), whether any logit of any clip or codebook changed: bool ``[S]``."""
    return (a != b).flatten(3).any(-1).any(1).any(0)


def _changes_of_step(model, batch, k: int):
    """Which steps' predictions change when every slot of step ``k`` of the sequence changes: bool ``[S]``."""
    varied = batch["seq"].clone()
    varied[..., k] = (varied[..., k] + 1) % (model.config.special + 1)  # a code, or the pattern's padding
    return _changed_steps(_logits(model, batch), _logits(model, batch, seq=varied))


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_changed_step_changes_no_earlier_prediction(lm, where):
    """Changing step k leaves the predictions of steps 0..k bit-identical (they may not read step k: it is what
    step k predicts) and changes step k + 1's."""
    model, batch = lm
    S = batch["seq"].shape[-1]
    k = {"first": 0, "middle": S // 2, "last": S - 2}[where]
    changed = _changes_of_step(model, batch, k)
    assert not changed[: k + 1].any(), (
        f"token_lm: changing step {k} changed the prediction of step {int(torch.nonzero(changed)[0, 0])} "
        "(a prediction reads the step it predicts, or a later one)"
    )
    assert changed[k + 1], f"token_lm: changing step {k} did not change the prediction of step {k + 1}"


def _peek_one_ahead(Lq, Lk, device, _mask=relative_attention.causal_mask):
    mask = _mask(Lq, Lk, device).clone()
    mask[:, 1:] |= mask[:, :-1].clone()  # each query also sees the key one step after its own
    return mask


@pytest.mark.parametrize(
    "name,patch",
    [
        (
            "teacher forcing without the shift",
            lambda mp: mp.setattr(TokenLM, "inputs_for", lambda self, seq: seq),
        ),
        (
            "a causal mask one step too wide",
            lambda mp: mp.setattr(relative_attention, "causal_mask", _peek_one_ahead),
        ),
    ],
)
def test_the_causality_check_catches(lm, monkeypatch, name, patch):
    """The check above, on a network broken on purpose (in this session only): it must see the leak."""
    model, batch = lm
    k = batch["seq"].shape[-1] // 2
    patch(monkeypatch)
    assert _changes_of_step(model, batch, k)[: k + 1].any(), f"the causality check misses {name}"


def test_the_text_changes_every_steps_prediction(lm):
    model, batch = lm
    text = batch["text_tokens"].clone()
    text[:, 0] += 1.0  # the first word of each caption
    changed = _changed_steps(_logits(model, batch), _logits(model, batch, text=text))
    assert changed.all(), f"token_lm: the text did not reach steps {torch.nonzero(~changed)[:5, 0].tolist()}"


def test_a_dropped_caption_changes_only_its_own_clip(lm):
    """Classifier-free guidance's null text: dropping clip 0's caption changes all of clip 0's predictions and
    none of clip 1's."""
    model, batch = lm
    a = _logits(model, batch)
    b = _logits(model, batch, drop=torch.tensor([True, False]))
    assert (a[0] != b[0]).flatten(2).any(-1).any(0).all(), "token_lm: the null text did not reach every step"
    assert torch.equal(a[1], b[1]), "token_lm: dropping clip 0's caption changed clip 1's predictions"
