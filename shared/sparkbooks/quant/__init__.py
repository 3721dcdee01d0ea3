"""Number formats: NVFP4, MXFP4, FP8, INT4 fake quantisation (:mod:`.formats`; NVFP4's arithmetic, on torch
tensors on any device, in :mod:`.nvfp4_torch`, which pretraining's GEMMs use too), recipes scored on a real
LLM (:mod:`.evaluate`) — the stand-in model it loads (:mod:`.stand_in_lm`) and the verdict on "without losing
intelligence" (:mod:`.intelligence`)."""

from __future__ import annotations

from ..lazy import attach
from .formats import (
    E2M1_VALUES,
    FORMATS,
    Format,
    NUMBER_FORMATS,
    bits_per_weight,
    fp8_e4m3,
    int4,
    int4_asym,
    mxfp4,
    nvfp4,
    nvfp4_mse,
    relative_error,
    round_to_float,
)

SUBMODULES = ("evaluate", "formats", "intelligence", "kld_crosscheck", "nvfp4_torch", "stand_in_lm")
__all__ = sorted({*SUBMODULES,
                  *(n for n in dir() if not n.startswith("_") and n not in ("annotations", "attach", "SUBMODULES"))})
__getattr__, __dir__ = attach(__name__, SUBMODULES, namespace=globals())
