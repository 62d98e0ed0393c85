"""Prior preservation: clips the base model generates for generic captions, mixed into the fine-tuning set.

Fine-tuning on 20-200 clips of one new sound pulls the whole model toward it; training on a few of the base
model's own outputs for ordinary captions at the same time keeps what it knew (DreamBooth's prior-preservation
loss, here as plain extra training rows at the same weight). The user has no copy of the base corpus, so the prior
comes from the base model itself: captions from ``prior_captions.txt`` in the base model's directory when it ships
one (one caption a line), else a spread of the training captions its model card stores (``card_captions.safetensors``,
docs/model_card.md), else :data:`PRIOR_CAPTIONS`, a fixed list in the
style of the built-in corpus (``soundsmith.data.synth``). Each caption is generated once with the base model's
default steps and guidance at the fine-tune's clip length (seed ``seed + i``), saved as ``RUN/prior/prior-NNN.wav``
(listen to them) and listed as training rows (``meta.source = "prior"``). Generating them costs one sampler run
each (~0.2 s for 4 s on the base model); training then sees them through the VAE like any clip.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from soundsmith.data.manifest import ManifestRow

log = logging.getLogger("soundsmith.finetune")

PRIOR_FILE = "prior_captions.txt"
# Generic captions in the style of the built-in corpus (events, instruments, speech, scenes): what the base model
# was trained to do, none of them about a user's new sound.
PRIOR_CAPTIONS = (
    "a bell rings twice",
    "rain falls steadily",
    "a cowbell clanks four times",
    "a kick drum thumps four times",
    "a siren wails",
    "wind blows through the trees",
    "a clock ticks",
    "a piano plays a rising scale",
    "a flute plays a high soft note",
    "a man says the word three",
    "a woman says the word seven",
    "an engine hums",
    "birds chirp",
    "water drips",
    "footsteps pass by",
    "a drum beat plays at a fast pace",
    "a violin plays a short melody",
    "an electric guitar plays a chord",
    "a telephone rings",
    "a crowd applauds",
    "the sea rolls in",
    "a buzzer sounds three times",
    "a trumpet plays a long note loudly",
    "over steady rain, a bell chimes once",
)


def prior_captions(base_dir: str | Path) -> tuple[list[str], str]:
    """``(captions, where they came from)``: the base's ``prior_captions.txt`` if it has one, else the built-in list."""
    path = Path(base_dir) / PRIOR_FILE
    if path.is_file():
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        captions = [line for line in lines if line and not line.startswith("#")]
        if captions:
            return captions, str(path)
    from soundsmith.models.card import CAPTIONS_FILE, read_card_captions

    if (
        Path(base_dir) / CAPTIONS_FILE
    ).is_file():  # the model card's training captions (soundsmith models card)
        captions = read_card_captions(base_dir)[0]
        if captions:
            step = max(
                1, len(captions) // len(PRIOR_CAPTIONS)
            )  # a spread: the card lists them label by label
            return captions[::step][: len(PRIOR_CAPTIONS)], str(Path(base_dir) / CAPTIONS_FILE)
    return list(PRIOR_CAPTIONS), "built-in list"


def generate_prior(
    pipe: Any, captions: list[str], count: int, seconds: float, out_dir: str | Path, seed: int = 0
) -> list[ManifestRow]:
    """``count`` clips of ``seconds`` from the base pipeline (captions cycled, clip ``i`` with seed ``seed + i``),
    written to ``out_dir/prior-NNN.wav``; returns their training rows."""
    out_dir = Path(out_dir)
    rows = []
    for i in range(count):
        caption = captions[i % len(captions)]
        result = pipe(caption, duration=seconds, seed=seed + i, progress=False)
        path = out_dir / f"prior-{i:03d}.wav"
        result.save(path)
        rows.append(
            ManifestRow(
                audio=str(path.resolve()),
                captions=[caption],
                duration=result.audio.shape[-1] / pipe.sample_rate,
                sample_rate=pipe.sample_rate,
                split="train",
                meta={"id": f"prior-{i:03d}", "source": "prior", "seed": seed + i},
            )
        )
    return rows
