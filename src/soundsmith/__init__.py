"""soundsmith: train, run and evaluate text-to-audio generative models."""

__version__ = "0.1.0"

from soundsmith.errors import SoundsmithError  # noqa: E402


def load(name_or_path, device="cpu"):
    """Load a model by shipped name, model directory or run directory.

    Families that generate audio come back wrapped in their pipeline (``soundsmith.load(run_dir)("a bell")``);
    evaluator families (tagger, clap) come back as the bare ``nn.Module``.
    """
    from soundsmith.models.registry import load_model, read_model_config, resolve_model_dir
    from soundsmith.pipelines import has_pipeline, pipeline_for

    directory = resolve_model_dir(name_or_path)
    family = read_model_config(directory)["family"]
    model = load_model(directory, device=device)
    return pipeline_for(model, family, device=device) if has_pipeline(family) else model


__all__ = ["SoundsmithError", "__version__", "load"]
