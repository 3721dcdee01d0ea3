"""Fine-tune a chat model with LoRA on 1…N ranks (torchrun), score it on held-out data, serve what you trained.

The pieces, each a short call in the ``fine-tune`` playbook, in modules named by their job:

* :mod:`.finetune_data` — :func:`base_model`, the model to tune as a transformers folder (the stand-in,
  SmolLM2-135M-Instruct from the shipped Q4_1 GGUF, or a local folder: Llama 3.1 8B on a Spark);
  :func:`birth_task`, text → JSON extraction with an exact answer key and a held-out split whose every
  sentence is about a person of its own, in held-out cities and years; :func:`tokenise`;
* :mod:`.finetune_launch` — :func:`train`, LoRA training launched by :func:`sparkbooks.training.distributed.run`
  (the worker is :mod:`sparkbooks.training.finetune_worker`): the loss per step, tokens/s, each rank's peak
  memory; :func:`node_commands`, what node 1 types; :func:`scaling` over the same steps;
* :mod:`.finetune_memory` — :func:`check_fits` before launching, :func:`planned_vs_measured` after;
* :mod:`.finetune_scoring` — :func:`evaluate`, greedy answers in torch scored by :func:`sparkbooks.llm.score_answers`,
  :func:`clustered_sign_flip`, the paired test with whole countries as the unit, :func:`stricter_p`, which
  decides the claim by the more conservative of it and McNemar's, and :func:`claim_sentences`, whose wording
  the unseen-template test decides;
* :mod:`.finetune_export` — :func:`merge` and :func:`to_gguf`: the adapter merged into the base, converted by
  llama.cpp's own ``convert_hf_to_gguf.py``, ready for :class:`sparkbooks.llm.LlamaServer`.
"""

from __future__ import annotations

from .finetune_data import STAND_IN, Task, base_model, birth_task, invented_names, overlap, tokenise
from .finetune_export import merge, merge_to_gguf, to_gguf
from .finetune_launch import (LINEAR_TARGETS, SWEEP_ID, TRAIN_ID, WORKER, TrainRun, default_backend, node_commands,
                              prepare, run_dir, scaling, train)
from .finetune_memory import available_bytes, check_fits, planned_vs_measured, release_memory
from .finetune_scoring import claim_sentences, clustered_sign_flip, evaluate, load, stricter_p

__all__ = ["LINEAR_TARGETS", "STAND_IN", "SWEEP_ID", "TRAIN_ID", "Task", "TrainRun", "WORKER", "available_bytes",
           "base_model", "birth_task", "check_fits", "claim_sentences", "clustered_sign_flip", "default_backend",
           "evaluate", "invented_names", "load", "merge", "merge_to_gguf", "node_commands", "overlap",
           "planned_vs_measured", "prepare", "release_memory", "run_dir", "scaling", "stricter_p", "to_gguf", "tokenise",
           "train"]
