"""Sampling: autoregressive draws (autoregressive.py) and WaveNet generation engines (wavenet*.py)."""
