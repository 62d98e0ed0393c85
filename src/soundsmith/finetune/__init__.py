"""Fine-tune a latent-diffusion model on one's own sounds (LoRA or full): ``soundsmith finetune``, docs/finetune.md.

``finetune/`` sits beside ``train/`` and ``cli/``: it uses models, the data importers, the base model's pipeline (for
prior-preservation clips) and the shared training loop.
"""

from soundsmith.finetune.run import FinetuneConfig, FinetuneResult, finetune, plan

__all__ = ["FinetuneConfig", "FinetuneResult", "finetune", "plan"]
