"""Training on one box or two: the torchrun launcher, collectives, checkpoints, fine-tuning and pretraining.

- :mod:`.distributed` — the one torchrun launch helper (gloo on CPUs, NCCL between Sparks);
- :mod:`.worker_side` — what runs inside each worker (join, read from rank 0, progress, finish);
- :mod:`.links` — the NCCL / gloo / UCX variables for the link between the boxes;
- :mod:`.collectives` — all-reduce bandwidth sweep and link check (a torchrun worker);
- :mod:`.checkpoints` — atomic checkpoints that resume exactly;
- :mod:`.finetune` (over ``finetune_data``, ``_launch``, ``_memory``, ``_scoring``, ``_export``) and
  :mod:`.finetune_worker` — LoRA through torchrun, scored and served;
- :mod:`.pretrain` — a small Llama-style model from scratch, MFU, simulated NVFP4 training.
"""

from ..lazy import attach

SUBMODULES = ("checkpoints", "collectives", "distributed", "finetune", "finetune_data", "finetune_export", "finetune_launch",
              "finetune_memory", "finetune_scoring", "finetune_worker", "links", "pretrain", "worker_side")
__all__ = list(SUBMODULES)
__getattr__, __dir__ = attach(__name__, SUBMODULES, namespace=globals())
