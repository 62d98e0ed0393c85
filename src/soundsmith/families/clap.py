"""CLAP-style audio-text model: the evaluation suite's text-audio similarity and re-ranker."""

from soundsmith.families import ConditioningProbe, Family


def _forward(model, b):
    import torch

    audio, text, _ = model(b["mel"], b["text_pooled"])
    return torch.cat([audio, text], dim=-1)


def reference_loss(model, batch) -> float:
    """The symmetric InfoNCE recomputed by hand in float64 (for ``contract_reference_loss``), from the batch's audio
    and captions: log-mel of the audio with the model's own front end, pooled captions from a freshly built text
    encoder, each tower's projection L2-normalised here, the scale ``exp(min(logit_scale, log max_logit_scale))``,
    logits ``scale a_i . t_j``; clips with the same caption (or, without one, the same labels) are all positives,
    weighted equally. Loss = mean over the clips of the audio->text and the text->audio cross-entropies, halved."""
    import math

    import numpy as np
    import torch

    from soundsmith.audio import mel_spectrogram
    from soundsmith.text import build_text_encoder

    cfg = model.config
    captions = [
        c if c else (", ".join(batch["labels"][i]) or "a sound") for i, c in enumerate(batch["caption"])
    ]
    with torch.no_grad():
        mel = mel_spectrogram(batch["audio"], cfg.mel)
        pooled = build_text_encoder(cfg.text_encoder).encode(captions).pooled.float()
        a = model.audio_proj(model.audio_encoder(mel)).double().numpy()  # [B, P] before normalising
        t = model.text_proj(pooled).double().numpy()
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    scale = math.exp(min(float(model.logit_scale), math.log(cfg.max_logit_scale)))
    n = len(captions)
    total = 0.0
    for i in range(n):
        positives = [j for j in range(n) if captions[j] == captions[i]]
        for logits in (scale * a[i] @ t.T, scale * t[i] @ a.T):  # audio i -> texts, text i -> audios
            top = logits.max()
            log_z = top + math.log(sum(math.exp(x - top) for x in logits))
            total += sum(log_z - logits[j] for j in positives) / len(positives)
    return total / (2 * n)


def _bump(key: str):
    """A probe's ``vary``: add 1 to the first clip's ``batch[key]`` (its mel, or its pooled caption)."""

    def vary(b):
        b[key][0] += 1.0
        return b

    return vary


FAMILY = Family(
    name="clap",
    config="soundsmith.models.clap:ClapConfig",
    model="soundsmith.models.clap:AudioTextContrastive",
    objective="soundsmith.train.objectives.clap:ClapObjective",
    kind="evaluator",
    description="contrastive audio-text embedding (CNN audio tower + frozen MiniLM); CLAP score, re-ranking",
    contract_forward=_forward,
    contract_shape=lambda cfg, B, T: (B, 2 * cfg.proj_dim),
    contract_overrides={"text_encoder": "hashed:32", "text_dim": 32},
    contract_reference_loss=reference_loss,
    # the output is [audio embedding | text embedding]: each tower reads its own input and nothing else
    contract_conditioning=(
        ConditioningProbe("mel", vary=_bump("mel"), expect=lambda c, T: (0, c.proj_dim - 1)),
        ConditioningProbe(
            "text_pooled", vary=_bump("text_pooled"), expect=lambda c, T: (c.proj_dim, 2 * c.proj_dim - 1)
        ),
    ),
)
