"""Codec: encoder (SEANet convs or log-mel + ConvNeXt) + residual VQ + decoder (SEANet or iSTFT / Vocos), audio
<-> discrete tokens (SoundStream / EnCodec)."""

from soundsmith.families import Family

# what the codec objective's generator loss is documented to be (train/objectives/codec.py), before the GAN starts
_WEIGHTS = {"l1": 1.0, "mel": 45.0, "stft": 2.5, "commit": 1.0}
_RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (256, 64, 256))  # (n_fft, hop, window) of the MR-STFT
# (n_fft, hop, window, mels) of the log-mel term: the project's MelConfig, 0-8 kHz
_MEL = (1024, 160, 1024, 64)


def _magnitudes(x, n_fft: int, hop: int, win: int):
    """``|STFT|`` of rows ``x [B, T]`` in float64 numpy, floored at 1e-7: reflect-padded by ``n_fft // 2`` on
    both sides (centred frames), a periodic Hann window of ``win`` centred in ``n_fft``: ``[B, frames, bins]``."""
    import numpy as np

    pad = n_fft // 2
    xp = np.pad(x, ((0, 0), (pad, pad)), mode="reflect")
    window = np.zeros(n_fft)
    left = (n_fft - win) // 2
    window[left : left + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    frames = 1 + (xp.shape[-1] - n_fft) // hop
    spans = np.stack([xp[:, f * hop : f * hop + n_fft] for f in range(frames)], axis=1)  # [B, F, n_fft]
    return np.maximum(np.abs(np.fft.rfft(spans * window, axis=-1)), 1e-7)


def _log_mel(x, sample_rate: int):
    """The log-mel term's spectrogram by hand: ``log(max(slaney mel filterbank @ |STFT|, 1e-5))``, float64."""
    import librosa
    import numpy as np

    n_fft, hop, win, mels = _MEL
    fb = librosa.filters.mel(
        sr=sample_rate,
        n_fft=n_fft,
        n_mels=mels,
        fmin=0.0,
        fmax=min(8000.0, sample_rate / 2),
        dtype=np.float64,
    )  # [M, bins]
    return np.log(np.maximum(_magnitudes(x, n_fft, hop, win) @ fb.T, 1e-5))  # [B, frames, M]


def reference_loss(model, batch) -> float:
    """The codec's generator loss in eval mode recomputed by hand in float64 (for ``contract_reference_loss``).

    The encoder's latent ``[B, T', D]`` is quantized here stage by stage (nearest code of each codebook by squared
    distance, on the residual the previous stages leave), with every codebook; the commitment term is the mean over
    the stages of ``mean((residual - code)^2)``; the decoder turns the sum of the codes back into audio. Loss =
    ``mean|y_hat - y|`` + 45 x the log-mel L1 (64 slaney mels to 8 kHz of 1024-point frames every 160 samples,
    floored at 1e-5) + 2.5 x the multi-resolution STFT loss (per resolution: spectral convergence over the whole
    batch, normalised by the larger norm, + mean log-magnitude L1; averaged over resolutions) + commitment.

    Eval mode only: in training the objective draws a quantizer-dropout prefix and the codebooks move by EMA inside
    the forward pass (state the objective's call has already changed by the time a reference runs); the contract
    test runs both in eval mode, where every codebook is used and nothing moves. No adversarial term: the
    discriminators start at step ``disc_start_step``, long after step 0.
    """
    import numpy as np
    import torch

    if model.training:
        raise ValueError("the codec reference loss is defined in eval mode (call model.eval() first)")
    y = batch["audio"]
    with torch.no_grad():
        residual = model.embed(y).double().numpy()  # [B, T', D]
    total, commits = np.zeros_like(residual), []
    for layer in model.quantizer.layers:
        codebook = layer.embed.double().numpy()  # [K, D]
        dist = ((residual[..., None, :] - codebook) ** 2).sum(-1)  # [B, T', K]
        q = codebook[dist.argmin(-1)]
        commits.append(np.mean((residual - q) ** 2))
        residual, total = residual - q, total + q
    with torch.no_grad():
        y_hat = model.decode_latent(torch.from_numpy(total).float(), y.shape[-1]).double().numpy()
    y = y.double().numpy()
    stft = 0.0
    for n_fft, hop, win in _RESOLUTIONS:
        s_hat, s = _magnitudes(y_hat, n_fft, hop, win), _magnitudes(y, n_fft, hop, win)
        norm = max(np.sqrt((s**2).sum()), np.sqrt((s_hat**2).sum()), 1e-7)
        stft += np.sqrt(((s - s_hat) ** 2).sum()) / norm + np.mean(np.abs(np.log(s) - np.log(s_hat)))
    rate = model.config.sample_rate
    parts = {
        "l1": np.mean(np.abs(y_hat - y)),
        "mel": np.mean(np.abs(_log_mel(y_hat, rate) - _log_mel(y, rate))),
        "stft": stft / len(_RESOLUTIONS),
        "commit": np.mean(commits),
    }
    return float(sum(_WEIGHTS[k] * v for k, v in parts.items()))


FAMILY = Family(
    name="codec",
    config="soundsmith.models.codec:CodecConfig",
    model="soundsmith.models.codec:Codec",
    objective="soundsmith.train.objectives.codec:CodecObjective",
    pipeline=None,
    kind="autoencoder",
    description="neural audio codec: waveform <-> RVQ tokens [n_q, T / hop] (SEANet or mel encoder, EMA codebooks, SEANet or iSTFT decoder)",
    contract_forward=lambda model, b: model(b["audio"]).audio,
    contract_shape=lambda cfg, B, T: (B, T),
    contract_reference_loss=reference_loss,
)
