"""Vocoder: log-mel -> waveform (Vocos-style ConvNeXt backbone + inverse-STFT head, or HiFi-GAN's generator with
``generator: hifigan``), trained as a GAN."""

from soundsmith.families import Family


def reference_loss(model, batch) -> float:
    """The generator-only loss recomputed in float64 with librosa (for ``contract_reference_loss``):
    45 x mean |log-mel(y_hat) - log-mel(y)| + 2.5 x mean over resolutions of (batch spectral convergence over
    the larger norm + mean |log S - log S_hat|)."""
    import librosa
    import numpy as np
    import torch

    with torch.no_grad():
        y = batch["audio"].double().numpy()
        y_hat = model(batch["mel"])[:, : y.shape[1]].double().numpy()
    cfg = model.config
    mel = {
        k: np.log(np.maximum(librosa.feature.melspectrogram(
            y=x, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length,
            n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax, power=1.0, pad_mode="reflect"), 1e-5))
        for k, x in (("y", y), ("y_hat", y_hat))
    }  # fmt: skip
    stft_loss = 0.0
    for n_fft, hop, win in ((512, 128, 512), (1024, 256, 1024), (256, 64, 256)):
        s, s_hat = (np.maximum(np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop, win_length=win,
                                                   pad_mode="reflect")), 1e-7) for x in (y, y_hat))  # fmt: skip
        sc = np.linalg.norm(s - s_hat) / max(np.linalg.norm(s), np.linalg.norm(s_hat))
        stft_loss += sc + np.mean(np.abs(np.log(s) - np.log(s_hat)))
    return float(45 * np.mean(np.abs(mel["y_hat"] - mel["y"])) + 2.5 * stft_loss / 3)


FAMILY = Family(
    name="vocoder",
    config="soundsmith.models.vocoder:VocoderConfig",
    model="soundsmith.models.vocoder:Vocoder",
    objective="soundsmith.train.objectives.vocoder:VocoderObjective",
    pipeline=None,
    kind="vocoder",
    description="neural vocoder, log-mel -> waveform (Vocos-style ConvNeXt + iSTFT, or HiFi-GAN; GAN-trained)",
    contract_forward=lambda model, b: model(b["mel"]),
    contract_shape=lambda cfg, B, T: (B, (T // cfg.hop_length + 1) * cfg.hop_length),
    contract_reference_loss=reference_loss,
)
