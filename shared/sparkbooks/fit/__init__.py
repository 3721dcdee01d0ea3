"""Will it fit: serving and training memory on a Spark or a Station, frontier architectures, published-claim verdicts.

- :mod:`.memory` — GPU memory vs offload tier, the decode-speed bound, BF16-kept layers (serving);
- :mod:`.architecture` — a model's architecture numbers with their source, or read from a GGUF header;
- :mod:`.machines` — the machines (Spark, Station) and their memory tiers and bandwidths;
- :mod:`.models` — frontier architectures with their sources, machine peaks;
- :mod:`.verdicts` — NVIDIA's published claims (fit, NVFP4 intelligence) checked against the planner and the run;
- :mod:`.training` — the planner extended to training (full, LoRA, QLoRA; optimizer states, activations).
"""

from ..lazy import attach

SUBMODULES = ("architecture", "machines", "memory", "models", "training", "verdicts")
__all__ = list(SUBMODULES)
__getattr__, __dir__ = attach(__name__, SUBMODULES, namespace=globals())
