"""The attribute vocabulary shared by prompt parsing and adherence checks: which classes are noise or tone,
bright or dark, pitched; pitch directions; registers. Imports nothing of ``eval`` (both sides import it)."""

from __future__ import annotations

NOISE_CLASSES = ("white_noise", "pink_noise", "brown_noise", "rain", "wind")
TONE_CLASSES = ("sine_tone", "buzzer", "rising_sweep", "falling_sweep", "siren", "beeps", "bell")
BRIGHT_CLASSES = ("white_noise", "hi_hat")
DARK_CLASSES = ("brown_noise",)
PITCHED_EVENTS = ("sine_tone", "buzzer", "beeps", "bell")
NOTE_PHRASES = ("single_note", "repeated_note")
DIRECTIONS = {
    "rising_sweep": "rising",
    "falling_sweep": "falling",
    "rising_scale": "rising",
    "falling_scale": "falling",
}
EVENT_REGISTERS = {"low": (48, 59), "middle": (60, 71), "high": (72, 83)}  # as in data/synth/events.py


def register_range(register: str, instrument: str | None = None) -> tuple[int, int]:
    """MIDI range of ``register`` for ``instrument`` (a third of its range), or of the pitched events."""
    if instrument:
        from soundsmith.data.synth.instruments import INSTRUMENTS
        from soundsmith.data.synth.instruments import register_range as instrument_range

        if instrument in INSTRUMENTS:
            return instrument_range(instrument, register)
    return EVENT_REGISTERS[register]


def _is_instrument(name: str) -> bool:
    from soundsmith.data.synth.instruments import INSTRUMENTS

    return name in INSTRUMENTS
