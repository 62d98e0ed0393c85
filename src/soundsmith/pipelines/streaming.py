"""Streaming output shared by the families that generate audio in chunks (``generate(..., on_chunk=...)``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class StreamWriter:
    """An ``on_chunk`` callback that appends each candidate's chunks to its WAV file as they arrive.

    ``path`` for one candidate; ``stem-0.wav``, ``stem-1.wav``... for several (as ``GeneratedAudio.save``). Use as a
    context manager (files are closed, hence complete, on exit)::

        with StreamWriter("out.wav", pipe.sample_rate) as writer:  # pipe: a pipeline whose generate takes on_chunk
            pipe("rain", duration=8, on_chunk=writer)
    """

    def __init__(self, path: str | Path, sample_rate: int, num_candidates: int = 1) -> None:
        import soundfile as sf

        path = Path(path)
        self.paths = [
            path if num_candidates == 1 else path.with_name(f"{path.stem}-{i}{path.suffix}")
            for i in range(num_candidates)
        ]
        self._files = [
            sf.SoundFile(p, "w", samplerate=sample_rate, channels=1, subtype="FLOAT") for p in self.paths
        ]

    def __call__(self, index: int, samples: np.ndarray) -> None:
        self._files[index].write(samples)
        self._files[index].flush()

    def close(self) -> None:
        for f in self._files:
            f.close()

    def __enter__(self) -> StreamWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
