"""Pretrain a small language model: corpus and tokenizer, a Llama on torchrun, throughput and MFU, NVFP4 training.

Modules: :mod:`~sparkbooks.training.pretrain.corpus` (news prose → BPE → token files),
:mod:`~sparkbooks.training.pretrain.model` (sizes, FLOPs per token, measured peak, the tokens/s claim),
:mod:`~sparkbooks.training.pretrain.fp4` (simulated NVFP4 GEMMs, the recipe's ingredients),
:mod:`~sparkbooks.training.pretrain.run` (the launch and its record), :mod:`~sparkbooks.training.pretrain.study` (the
seed-level NVFP4 ablation, forked from a trained checkpoint or from scratch), and the torchrun
:mod:`~sparkbooks.training.pretrain.worker`.
"""

from . import baselines
from .corpus import Corpus, check_fits, documents, load_tokenizer, prepare
from .fp4 import RECIPES, Recipe
from .model import (SIZES, ModelSize, claim_table, flops_per_token, headline_mfu, largest_model, matmul_peak,
                    parameter_counts, spec_peak)
from .run import PretrainRun, compare, default_precision, node_command, train, train_variants
from .study import Ablation, ablation, seed_interval

__all__ = ["Ablation", "Corpus", "ModelSize", "PretrainRun", "RECIPES", "Recipe", "SIZES", "ablation", "baselines",
           "check_fits", "claim_table", "compare", "default_precision", "documents", "flops_per_token",
           "headline_mfu", "largest_model", "load_tokenizer", "matmul_peak", "node_command", "parameter_counts",
           "prepare", "seed_interval", "spec_peak", "train", "train_variants"]
