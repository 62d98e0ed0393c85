"""soundsmith: train, run and evaluate text-to-audio generative models."""

from soundsmith._version import __version__
from soundsmith.errors import SoundsmithError


def load(name_or_path, device="cpu", **kwargs):
    """Load a model by shipped name, model directory or run directory (``config.json`` is read once).

    Families that generate audio come back wrapped in their pipeline (``soundsmith.load(run_dir)("a bell")``);
    the others (evaluators such as tagger and clap) come back as the bare ``nn.Module``. Other keyword arguments
    go to :func:`soundsmith.pipelines.loader.load` (e.g. ``adapters=[...]``, ``lora_scale=0.5``).
    """
    from soundsmith.pipelines.loader import load as _load

    return _load(name_or_path, device=device, **kwargs)


__all__ = ["SoundsmithError", "__version__", "load"]
