"""Run a training job from files: config YAML + manifest -> run directory.

This is what ``soundsmith train`` calls; it is also the Python entry point for scripted runs. It reads and
validates the run config, builds the datasets, fills data-dependent model fields (label vocabulary, number of
categories), builds the family's model and objective, and hands them to :class:`~soundsmith.train.engine.Trainer`.
The resolved config is written to ``RUN_DIR/config.yaml`` so that ``--resume`` rebuilds exactly the same model.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import yaml

from soundsmith.errors import ConfigError
from soundsmith.fileio import write_bytes_atomic
from soundsmith.train.runconfig import Overrides, RunConfig, apply_overrides, read_yaml, run_config_from_dict

log = logging.getLogger("soundsmith.train")


def adapt_model_config(model_cfg: Any, labels: list[str]) -> Any:
    """Fill data-dependent fields left empty in a preset.

    ``labels`` (empty) becomes the dataset's label vocabulary. ``gc_cardinality`` (0) becomes the number of labels
    when the model has a global-conditioning vector (``gc_channels > 0``) and no caption conditioning
    (``text_dim == 0``). A caption model that should also see categories sets ``gc_cardinality`` itself.
    """
    names = {f.name for f in dataclasses.fields(model_cfg)}
    changes: dict[str, Any] = {}
    current = list(getattr(model_cfg, "labels", []) or [])
    if "labels" in names and not current:
        changes["labels"] = list(labels)
        current = list(labels)
    wants_categories = getattr(model_cfg, "gc_channels", 0) > 0 and getattr(model_cfg, "text_dim", 0) == 0
    if "gc_cardinality" in names and wants_categories and model_cfg.gc_cardinality == 0:
        if not current:
            raise ConfigError(
                "model.gc_channels > 0 needs category labels in the manifest (or model.gc_cardinality)"
            )
        changes["gc_cardinality"] = len(current)
    return dataclasses.replace(model_cfg, **changes) if changes else model_cfg


def init_labels(source: str) -> list[str]:
    """The label vocabulary of the model at ``source`` ([] when it has none or cannot be read: ``start_from``
    then reports what is wrong with ``source``)."""
    from soundsmith.errors import SoundsmithError
    from soundsmith.models.registry import read_model_config, resolve_model_dir

    try:
        config = read_model_config(resolve_model_dir(source)).get("config") or {}
    except SoundsmithError:
        return []
    labels = config.get("labels") if isinstance(config, dict) else None
    return [str(x) for x in labels] if isinstance(labels, list) else []


def start_from(model: Any, source: str) -> None:
    """Copy the weights of the model at ``source`` (model directory, run directory or shipped name) into
    ``model``. Both must be the same family with the same model config, so that every weight means the same
    thing (a tagger's output ``i`` is label ``i`` in both); a difference is a ConfigError naming the fields."""
    from soundsmith.errors import SoundsmithError
    from soundsmith.models.registry import load_model, resolve_model_dir

    try:
        where = resolve_model_dir(source)
        src = load_model(where)
    except SoundsmithError as e:
        raise ConfigError(f"init: {e}") from e
    if type(src) is not type(model):
        raise ConfigError(
            f"init: {where} is a {type(src).__name__}, the run trains a {type(model).__name__}; "
            "give a model of the run's family"
        )
    mine, theirs = dataclasses.asdict(model.config), dataclasses.asdict(src.config)
    differ = [k for k in mine if mine[k] != theirs.get(k)]
    if differ:
        shown = "; ".join(f"model.{k}: {theirs.get(k)!r} in {where}, {mine[k]!r} in the run" for k in differ[:3])
        raise ConfigError(
            f"init: {where} has another model config ({shown}{'; ...' if len(differ) > 3 else ''}); "
            f"set the run's model section to {where / 'config.json'}'s (--set model.KEY=VALUE)"
        )
    model.load_state_dict(src.state_dict())
    log.info("weights initialized from %s", where)


def resolve_run_config(
    config_path: str | Path | None, out_dir: Path, overrides: Overrides, resume: bool
) -> RunConfig:
    """The run config: the run's own ``config.yaml`` when resuming, else the given file; then overrides."""
    saved = out_dir / "config.yaml"
    if resume and saved.is_file():
        data = read_yaml(saved)
        if config_path is not None:
            given = read_yaml(config_path)
            if given.get("family") != data.get("family"):
                raise ConfigError(
                    f"--config {config_path} is family {given.get('family')!r} but the run in {out_dir} is "
                    f"{data.get('family')!r}; resume without --config or use another --out"
                )
        where = str(saved)
    elif config_path is None:
        raise ConfigError("--config is required (or --resume on a run directory that has config.yaml)")
    else:
        data = read_yaml(config_path)
        where = str(config_path)
    return run_config_from_dict(apply_overrides(data, overrides), where=where)


def train_run(
    run_cfg: RunConfig, manifest: str | Path, out_dir: str | Path, resume: bool = False
) -> dict[str, Any]:
    """Train ``run_cfg`` on ``manifest`` into ``out_dir``; returns the trainer's final metrics."""
    from soundsmith.data import ClipDataset, collate_clips, read_manifest
    from soundsmith.models.registry import get_family
    from soundsmith.train.checkpoint import list_checkpoints
    from soundsmith.train.engine import Trainer
    from soundsmith.train.objectives import get_objective

    out_dir = Path(out_dir)
    data_cfg = run_cfg.data
    manifest_obj = read_manifest(manifest)
    train_set = ClipDataset(manifest_obj, data_cfg, split=data_cfg.train_split, random_crop=True)
    valid_set = None
    if data_cfg.valid_split and manifest_obj.split(data_cfg.valid_split):
        valid_set = ClipDataset(manifest_obj, data_cfg, split=data_cfg.valid_split, random_crop=False)
    else:
        log.info("no %r rows in %s: training without validation", data_cfg.valid_split, manifest)

    # a run started from a model keeps that model's label vocabulary (rows with other labels: ignored)
    labels = (init_labels(run_cfg.init) if run_cfg.init else []) or list(train_set.labels)
    model_cfg = adapt_model_config(run_cfg.model, labels)
    run_cfg = dataclasses.replace(run_cfg, model=model_cfg)
    model_sr = getattr(model_cfg, "sample_rate", data_cfg.sample_rate)
    if model_sr != data_cfg.sample_rate:
        raise ConfigError(
            f"model.sample_rate {model_sr} differs from data.sample_rate {data_cfg.sample_rate}; set both to the same"
        )
    _, model_cls = get_family(run_cfg.family)
    model = model_cls(model_cfg)
    if run_cfg.init and not (resume and list_checkpoints(out_dir / "checkpoints")):
        start_from(model, run_cfg.init)  # a resumed run's weights come from its checkpoint
    objective_cls = get_objective(run_cfg.family)
    if run_cfg.objective:
        try:
            objective = objective_cls(model, **run_cfg.objective)
        except (TypeError, ValueError) as e:  # a value of the wrong type or range for the objective
            raise ConfigError(f"objective section {run_cfg.objective}: {e}") from e
    else:
        objective = objective_cls(model)
    trainer = Trainer(
        objective,
        train_set,
        valid_set,
        run_cfg.train,
        out_dir,
        run_config=run_cfg.to_dict(),
        collate_fn=collate_clips,
        num_workers=data_cfg.num_workers,
    )
    if trainer.fabric.global_rank == 0:
        write_bytes_atomic(
            out_dir / "config.yaml", yaml.safe_dump(run_cfg.to_dict(), sort_keys=False).encode()
        )
    return trainer.fit(resume=resume)


def train_from_files(
    config_path: str | Path | None,
    manifest: str | Path,
    out_dir: str | Path,
    overrides: Overrides | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """``soundsmith train``: read config (or the run's saved one on resume), apply overrides, train."""
    out_dir = Path(out_dir)
    run_cfg = resolve_run_config(config_path, out_dir, overrides or [], resume)
    return train_run(run_cfg, manifest, out_dir, resume=resume)
