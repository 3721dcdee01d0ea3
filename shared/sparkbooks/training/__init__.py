"""Training on one box or two: the torchrun launcher, collectives, checkpoints, fine-tuning and pretraining.

- :mod:`.distributed` — the one torchrun launch helper (gloo on CPUs, NCCL between Sparks);
- :mod:`.collectives` — all-reduce bandwidth sweep and link check (a torchrun worker);
- :mod:`.checkpoints` — atomic checkpoints that resume exactly;
- :mod:`.finetune` and :mod:`.finetune_worker` — LoRA through torchrun, scored and served;
- :mod:`.pretrain` — a small Llama-style model from scratch, MFU, simulated NVFP4 training.
"""

from ..lazy import attach

SUBMODULES = ("checkpoints", "collectives", "distributed", "finetune", "finetune_worker", "pretrain")
__all__ = list(SUBMODULES)
__getattr__, __dir__ = attach(__name__, SUBMODULES, namespace=globals())
