"""The built-in captioned corpus: synthetic sound events, instrument phrases, spoken words and scenes.

``synthesize_corpus(out_dir, clips=...)`` writes audio and a manifest; ``render_event``,
``render_instrument``, ``render_speech`` and ``render_scene`` render one described item each, returning
``(audio [T] float32, annotations)``. See docs/corpus.md for classes, captions and splits.
"""

from soundsmith.data.synth.corpus import draw_clip_spec, render_clip_spec, synthesize_corpus
from soundsmith.data.synth.events import EVENT_CLASSES, render_event
from soundsmith.data.synth.instruments import INSTRUMENTS, PHRASES, render_instrument
from soundsmith.data.synth.scenes import BACKGROUND_CLASSES, render_scene
from soundsmith.data.synth.speech import VOICES, WORDS, render_speech

__all__ = [
    "BACKGROUND_CLASSES",
    "EVENT_CLASSES",
    "INSTRUMENTS",
    "PHRASES",
    "VOICES",
    "WORDS",
    "draw_clip_spec",
    "render_clip_spec",
    "render_event",
    "render_instrument",
    "render_scene",
    "render_speech",
    "synthesize_corpus",
]
