"""Layers shared by model families (a family never imports another family's module): import from the
submodules, e.g. ``from soundsmith.nn.conv import ConvAudioEncoder``."""
