"""Sampling: diffusion samplers (diffusion.py), autoregressive draws (autoregressive.py) and WaveNet generation
engines (wavenet*.py)."""

from soundsmith.sampling import numba_cache  # noqa: F401  (numba cache directory fallback, before any kernel)
