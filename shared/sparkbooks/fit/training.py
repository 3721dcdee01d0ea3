"""Will fine-tuning fit? The serving planner (:mod:`sparkbooks.fit.memory`) extended to training.

Per rank, in bytes, every term a reader can redo by hand:

* **weights** = parameters × bytes (BF16 2, FP32 4; QLoRA's NF4 with double quantisation
  ≈ 4.127 bits for every decoder linear layer; peft's ``prepare_model_for_kbit_training`` casts
  every other parameter — embeddings, head, norms — to FP32, 4 B);
* **trainable** parameters: all of them (full fine-tuning) or the LoRA adapters,
  r × (d_in + d_out) per adapted matrix per layer, kept in FP32 (peft's ``autocast_adapter_dtype``);
* **gradients + optimizer** per trainable parameter: torch's AdamW keeps its two moments in the
  *parameter's* dtype, so a model loaded in BF16 and trained with ``adamw_torch`` — NVIDIA's
  recipes — costs 2 + 2 + 2 + 2 = **8 B** per parameter, with no FP32 master copy;
  ``master_weights=True`` is mixed precision (FP32 master + FP32 moments beside the BF16 weight
  and gradient: ZeRO's 2 + 2 + 12 = 16 B); FP32 training needs 4 + 4 + 8; 8-bit AdamW keeps 2 B of moments;
* **activations** per token per layer — the tensors autograd keeps for a Llama block in transformers
  with SDPA attention, counted with ``torch.autograd.graph.saved_tensors_hooks`` on tiny Llamas in
  FP32 and BF16, LoRA (all seven targets and q/v only) and full (``tests/test_fit.py``):
  (4·h + 3·I)·a for q, the head-repeated k and v, the attention output, gate, up and SiLU(gate)
  in the activation dtype (a bytes); each RMSNorm's input upcast to FP32 (2·h·4, transformers
  upcasts before the variance); plus what the *trained* weights need. Full fine-tuning keeps the
  inputs of its linears, the two normed states and down's input, (2·h + I)·a (o_proj's input is
  the attention output), and each norm's normalised output for its weight, 2·h·a. LoRA keeps each
  adapted matrix's input for its A matrix: in FP32 training the very tensor the base layer sees
  (counted once per distinct input); in BF16 peft casts it to the adapter's FP32
  (``autocast_adapter_dtype=True``; ``lora/layer.py``: ``x = self._cast_input_dtype(x, lora_A.weight.dtype)``),
  a new copy **per adapted matrix**: Σ d_in·4 bytes (1.57× the old count for Llama 3.1 8B, all seven targets)
  — or Σ d_in·a under BF16 autocast (Trainer/TRL with ``bf16=True``, NVIDIA's path), which casts
  that copy back down (and keeps its BF16 casts of the adapters' weights, once per step); plus r per
  adapted matrix (A's output) in the adapter's compute dtype; and one k/v-sized tensor (kv·d_head·a)
  once v is trained. Counted on the CPU path, where SDPA with a padding mask repeats k and v per
  head; a GPU kernel that takes grouped k/v keeps kv·d_head each (the plan then runs ≈ 5 % high for
  Llama 3.1 8B), and ``torch.compile`` (NVIDIA's 8B script) may fuse some tensors away: checks pending.
  With **gradient checkpointing** only each layer's input (h·a) stays, plus one layer's full set
  during its recomputation. QLoRA through ``prepare_model_for_kbit_training`` always checkpoints
  (its ``use_gradient_checkpointing`` defaults to True, and NVIDIA's 70B script calls it with the default),
  and its residual stream is **FP32**: the preparation casts the embeddings to FP32, so every layer input
  (FP32 + BF16 sums stay FP32) costs h·4, not h·a — 2× the BF16 term (review 46 finding 2; tiny Llama with the
  cast emulated, ``tests/test_fit.py``: +20 GiB for NVIDIA's 70B QLoRA at 8 × 2,048 tokens);
* **logits** = tokens whose loss is taken × vocabulary × 4 B × 3 (FP32 logits, their log-softmax
  kept for the backward pass, and its gradient): the full-vocabulary loss of TRL 0.25.1 up to 1.6
  (``loss`` = ``"full-vocabulary"``, the only one modelled). TRL ≥ 1.7 defaults to ``loss_type="chunked_nll"``,
  which computes logits a chunk at a time: there the term is far smaller and this plan an upper bound;
* **FSDP** (``FULL_SHARD`` over N ranks) divides weights, gradients and optimizer state by N and
  gathers one layer's full weights at a time; activations are per rank (its own micro-batch). Full
  fine-tuning over N > 1 ranks is accelerate's FSDP2 (NVIDIA's two-Spark ``config_finetuning.yaml``:
  ``fsdp_version: 2``, ``mixed_precision: bf16``): ``fsdp2_prepare_model`` upcasts every trainable
  parameter to FP32 (the compute is cast back to BF16 per layer), so weights, gradients and AdamW's
  moments are FP32: 4 + 4 + 8 = **16 B** per parameter, not the one-Spark recipe's 8.

A fixed allowance covers the CUDA context and allocator slack on a GPU (none on a CPU). A plan *fits* at
or below :data:`FIT_GATE` (0.9) of the memory a rank has — the gate ``check_fits`` refuses launches by, and the
table's ✓ (⚠ between the gate and all of it: DGX OS and the container share what CUDA reports).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..exceptions import InputError
from .memory import DGX_SPARK, DGX_STATION_HBM, TWO_SPARKS, Device, GiB

__all__ = ["FIT_GATE", "GPU_OVERHEAD_BYTES", "LLAMA_3_1_70B", "LLAMA_3_1_8B", "LLAMA_3_2_3B", "LOSSES", "OFFICIAL_RECIPES", "SMOLLM2_135M", "TRL_MODELLED", "TrainMemory", "TrainRecipe", "TransformerShape", "lora_params", "recipe_table", "training_memory"]

#: CUDA context, cuBLAS workspaces and caching-allocator slack: an allowance, not a measurement.
GPU_OVERHEAD_BYTES = 3 * GiB
#: Share of a rank's memory a plan may take: the launcher's gate (``check_fits``) and the fit table's ✓.
FIT_GATE = 0.9
LOSSES = ("full-vocabulary",)  # modelled; TRL ≥ 1.7's default "chunked_nll" is not (the plan bounds it from above)
TRL_MODELLED = "TRL 0.25.1–1.6 (full-vocabulary FP32 logits; TRL ≥ 1.7 defaults to loss_type='chunked_nll')"
NF4_BITS = 4.127  # NF4 blocks of 64 with FP8 block scales quantised again in blocks of 256 (QLoRA paper)
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class TransformerShape:
    """A Llama-style decoder's shape (what training memory depends on), with its source."""

    name: str
    params: float
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    tied_embeddings: bool
    source: str

    @classmethod
    def from_config(cls, path, name: str | None = None) -> TransformerShape:
        """The shape of a Llama-style model from its transformers ``config.json`` (parameters counted from it)."""
        import json  # noqa: PLC0415
        from pathlib import Path  # noqa: PLC0415

        try:
            c = json.loads(Path(path).read_text())
            h, i, layers, heads = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["num_attention_heads"]
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"{path} is not a Llama-style config.json ({exc}).") from exc
        kv, vocab, tied = c.get("num_key_value_heads", heads), c["vocab_size"], bool(c.get("tie_word_embeddings"))
        head_dim = c.get("head_dim") or h // heads
        per_layer = 2 * h * heads * head_dim + 2 * h * kv * head_dim + 3 * h * i + 2 * h
        params = vocab * h * (1 if tied else 2) + layers * per_layer + h
        return cls(name or str(c.get("_name_or_path") or Path(path).parent.name), float(params), layers, h, i, heads,
                   kv, vocab, tied, f"{path}")

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def matrix_shapes(self) -> dict[str, tuple[int, int]]:
        """(d_in, d_out) of each linear layer in one block."""
        h, i, kv = self.hidden, self.intermediate, self.kv_heads * self.head_dim
        return {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    @property
    def embedding_params(self) -> float:
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)


SMOLLM2_135M = TransformerShape("SmolLM2-135M-Instruct", 134.5e6, 30, 576, 1536, 9, 3, 49_152, True,
                                "config.json of HuggingFaceTB/SmolLM2-135M-Instruct (as read from the shipped GGUF)")
LLAMA_3_2_3B = TransformerShape("Llama 3.2 3B", 3.21e9, 28, 3072, 8192, 24, 8, 128_256, True,
                                "meta-llama/Llama-3.2-3B config.json (3.21B parameters, tied embeddings)")
LLAMA_3_1_8B = TransformerShape("Llama 3.1 8B", 8.03e9, 32, 4096, 14_336, 32, 8, 128_256, False,
                                "meta-llama/Llama-3.1-8B config.json (8.03B parameters)")
LLAMA_3_1_70B = TransformerShape("Llama 3.1 70B", 70.6e9, 80, 8192, 28_672, 64, 8, 128_256, False,
                                 "meta-llama/Llama-3.1-70B config.json (70.6B parameters)")


def lora_params(shape: TransformerShape, rank: int, targets: Sequence[str] = TARGETS) -> float:
    """Adapter parameters: r × (d_in + d_out) for every targeted matrix in every layer."""
    matrices = shape.matrix_shapes()
    unknown = set(targets) - set(matrices)
    if unknown:
        raise InputError(f"Unknown LoRA targets {sorted(unknown)}; choose from {sorted(matrices)}.")
    return shape.layers * sum(rank * sum(matrices[t]) for t in targets)


@dataclass(frozen=True)
class TrainRecipe:
    """How a model is trained: method, precision, batch, sequence, checkpointing, optimizer, ranks."""

    name: str
    shape: TransformerShape
    method: str = "lora"  # "full", "lora" or "qlora"
    micro_batch: int = 8
    seq_len: int = 2048
    loss_tokens: int | None = None  # tokens per sequence whose logits are computed (None: all)
    lora_rank: int = 8
    targets: tuple[str, ...] = TARGETS
    weight_bytes: float = 2.0  # BF16; 4 for FP32 training
    activation_bytes: float = 2.0
    optimizer: str = "adamw"  # or "adamw8bit"
    checkpointing: bool = False  # QLoRA checkpoints whatever this says (peft's kbit preparation turns it on)
    autocast: bool = False  # BF16 autocast (Trainer/TRL bf16=True): FP32 adapters compute in the activation dtype
    ranks: int = 1  # FSDP FULL_SHARD over this many ranks
    master_weights: bool = False  # mixed precision: FP32 master copy + FP32 moments (16 B/param), not pure BF16 (8)
    loss: str = "full-vocabulary"  # the loss implementation whose logits are counted (LOSSES; TRL_MODELLED)
    script: str = ""  # the training script this recipe encodes
    source: str = ""

    @property
    def checkpoints(self) -> bool:
        """Whether activations are recomputed: asked for, or forced by peft's kbit preparation (QLoRA)."""
        return self.checkpointing or self.method == "qlora"

    def __post_init__(self) -> None:
        if self.method not in ("full", "lora", "qlora"):
            raise InputError(f"method must be full, lora or qlora (got {self.method!r}).")
        if self.optimizer not in ("adamw", "adamw8bit"):
            raise InputError(f"optimizer must be adamw or adamw8bit (got {self.optimizer!r}).")
        if self.loss not in LOSSES:
            raise InputError(f"loss {self.loss!r} is not modelled: the plan counts {TRL_MODELLED}. Use loss="
                             "'full-vocabulary' and read its logits term as an upper bound for a chunked loss.")
        if min(self.micro_batch, self.seq_len, self.ranks) < 1:
            raise InputError("micro_batch, seq_len and ranks must be ≥ 1.")


@dataclass(frozen=True)
class TrainMemory:
    """Bytes per rank by part, and their sum (``overhead`` is the GPU allowance, 0 on a CPU)."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    logits: float
    overhead: float
    trainable_params: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations + self.logits + self.overhead

    def as_dict(self, unit: float = GiB) -> dict[str, float]:
        return {"weights": self.weights / unit, "gradients": self.gradients / unit,
                "optimizer": self.optimizer / unit, "activations": self.activations / unit,
                "logits": self.logits / unit, "overhead": self.overhead / unit, "total": self.total / unit}


def training_memory(recipe: TrainRecipe, *, overhead: float = GPU_OVERHEAD_BYTES) -> TrainMemory:
    """Peak bytes per rank for ``recipe`` (see the module docstring for every term)."""
    s, r = recipe.shape, recipe
    if r.method == "full" and r.ranks > 1 and r.weight_bytes < 4:  # accelerate's FSDP2 upcast (module docstring)
        r = replace(r, weight_bytes=4.0, master_weights=False)
    norms = s.layers * 2 * s.hidden + s.hidden
    linear = s.params - s.embedding_params - norms
    if r.method == "qlora":  # NF4 linears; kbit preparation casts embeddings, head and norms to FP32
        weights = linear * NF4_BITS / 8 + (s.embedding_params + norms) * 4.0
    else:
        weights = s.params * r.weight_bytes
    trainable = s.params if r.method == "full" else lora_params(s, r.lora_rank, r.targets)
    if r.method != "full":
        weights += trainable * 4.0  # the adapters themselves, FP32
    full = r.method == "full"
    grad_bytes = r.weight_bytes if full else 4.0  # adapters train in FP32 (peft's default)
    state_dtype = 4.0 if (r.master_weights or not full) else r.weight_bytes  # AdamW's moments: the parameter's dtype
    moments = 2 * state_dtype if r.optimizer == "adamw" else 2.0
    master = 4.0 if (r.master_weights and full and r.weight_bytes < 4) else 0.0
    shard = r.ranks
    largest_layer = max(sum(a * b for a, b in s.matrix_shapes().values()), 1) * r.activation_bytes  # gathered for compute
    weights_rank = weights / shard + (largest_layer if shard > 1 else 0.0)  # one layer gathered at a time
    tokens = r.micro_batch * r.seq_len
    per_layer_bytes = _layer_activation_bytes(s, r)
    if r.checkpoints:  # each layer's input; QLoRA's is FP32 (kbit preparation's FP32 embeddings, module docstring)
        residual = 4.0 if r.method == "qlora" else r.activation_bytes
        activations = tokens * (s.layers * s.hidden * residual + per_layer_bytes)
    else:
        activations = tokens * s.layers * per_layer_bytes
    if r.autocast and r.method != "full":  # autocast keeps the BF16 casts of the FP32 adapters it multiplies with
        activations += trainable * r.activation_bytes / (s.layers if r.checkpoints else 1)
    loss_tokens = r.micro_batch * (r.loss_tokens or r.seq_len)
    return TrainMemory(weights=weights_rank, gradients=trainable * grad_bytes / shard,
                       optimizer=trainable * (moments + master) / shard,
                       activations=activations, logits=loss_tokens * s.vocab * 4 * 3,
                       overhead=overhead, trainable_params=trainable)


def _layer_activation_bytes(s: TransformerShape, r: TrainRecipe) -> float:
    """Bytes autograd keeps per token for one block (module docstring; measured in tests/test_fit.py)."""
    a = r.activation_bytes
    kept = (4 * s.hidden + 3 * s.intermediate) * a  # q, repeated k and v, attention output, gate, up, SiLU(gate)
    kept += 2 * s.hidden * 4.0 + 2 * 4.0 + s.heads * 4.0  # the norms' FP32 inputs and rsqrt, SDPA's logsumexp
    matrices = s.matrix_shapes()
    if r.method == "full":
        kept += (2 * s.hidden + s.intermediate) * a + 2 * s.hidden * a  # trained linears' inputs, norms' outputs
        trains_v = True
    else:
        compute = a if r.autocast else 4.0  # peft keeps the adapters in FP32
        if a >= 4.0:  # no cast: the adapters share the base layers' inputs (o_proj's is the attention output)
            groups = ({"q_proj", "k_proj", "v_proj"}, {"gate_proj", "up_proj"})
            kept += sum(s.hidden for g in groups if g & set(r.targets)) * a
            kept += s.intermediate * a if "down_proj" in r.targets else 0.0
        else:  # _cast_input_dtype: a new copy of the input per adapted matrix
            kept += sum(matrices[t][0] for t in r.targets) * compute
        kept += r.lora_rank * len(r.targets) * compute  # A's outputs, B's inputs
        trains_v = "v_proj" in r.targets
    return kept + (s.kv_heads * s.head_dim * a if trains_v else 0.0)


_NVIDIA = ("NVIDIA dgx-spark-playbooks nvidia/pytorch-fine-tune/assets (read at 0db7c14): Alpaca, --seq_length 2048 "
           "(the padded worst case; Alpaca samples are shorter), --dtype bfloat16, optim adamw_torch (moments in BF16, no "
           "FP32 master), TRL SFTConfig (trl>=0.25.1: bf16=True — autocast — and gradient_checkpointing=True unless the "
           f"script sets it). Planned as {TRL_MODELLED}. ")
#: NVIDIA's four scripts as they run (``script``; settings in ``source``). Two Sparks: accelerate FULL_SHARD —
#: FSDP2 with FP32 upcast for the 3B full SFT (config_finetuning.yaml), FSDP1 for LoRA (config_fsdp_lora.yaml).
OFFICIAL_RECIPES: tuple[TrainRecipe, ...] = (
    TrainRecipe("Llama 3.2 3B full SFT", LLAMA_3_2_3B, method="full", micro_batch=8, checkpointing=False, autocast=True,
                script="Llama3_3B_full_finetuning.py", source=_NVIDIA + "--batch_size 8; gradient_checkpointing="
                "args.gradient_checkpointing, a store_true flag: off. One Spark; two with run-multi-llama_3b."),
    TrainRecipe("Llama 3.1 8B LoRA r8", LLAMA_3_1_8B, method="lora", lora_rank=8, micro_batch=8, checkpointing=True,
                autocast=True, script="Llama3_8B_LoRA_finetuning.py", source=_NVIDIA + "--batch_size 8, --lora_rank 8, "
                "all seven projections; its SFTConfig dict sets no gradient_checkpointing: TRL's default, on. One Spark; "
                "two with run-multi-llama_8b."),
    TrainRecipe("Llama 3.1 70B QLoRA r8", LLAMA_3_1_70B, method="qlora", lora_rank=8, micro_batch=8, autocast=True,
                script="Llama3_70B_qLoRA_finetuning.py", source=_NVIDIA + "--batch_size 8, NF4 with double "
                "quantisation; prepare_model_for_kbit_training(model) turns checkpointing on. One Spark."),
    TrainRecipe("Llama 3.1 70B LoRA r8", LLAMA_3_1_70B, method="lora", lora_rank=8, micro_batch=4, checkpointing=True,
                autocast=True, ranks=2, script="Llama3_70B_LoRA_finetuning.py", source=_NVIDIA + "--batch_size 4, "
                "BF16 weights, --gradient_checkpointing (BooleanOptionalAction, default True). NVIDIA's two-Spark "
                "recipe: run-multi-llama_70b, config_fsdp_lora.yaml."),
)


def recipe_table(recipes: Sequence[TrainRecipe] = OFFICIAL_RECIPES,
                 devices: Sequence[tuple[Device, int]] = ((DGX_SPARK, 1), (TWO_SPARKS, 2), (DGX_STATION_HBM, 1)),
                 *, seq_lens: Sequence[int] = (2048,), checkpointing: Sequence[bool] | None = None):
    """Will each recipe fit? One row per recipe × sequence length (× checkpointing), one column per machine.

    A cell reads ``✓ 78.7 / 119.7`` (GiB needed per rank / GiB a rank has) when the plan is at or
    below :data:`FIT_GATE` of it (what ``check_fits`` lets launch), ``⚠ …`` above the gate but within
    all of it (the launcher refuses; DGX OS shares that memory), ``✗ …`` beyond it. ``checkpointing=None`` tables each recipe as its script runs; a sequence adds
    the other settings (never QLoRA without it: peft's kbit preparation always checkpoints).
    ``devices`` pairs a machine with its number of ranks: 2× DGX Spark is FSDP (FULL_SHARD) over
    2 ranks, each with one Spark's memory. ``script`` names the recipe's source file.
    """
    import pandas as pd  # noqa: PLC0415

    rows = []
    for recipe in recipes:
        settings = (recipe.checkpointing,) if checkpointing is None else tuple(checkpointing)
        for seq_len in seq_lens:
            for ckpt in sorted({replace(recipe, checkpointing=c).checkpoints for c in settings}):
                row: dict[str, object] = {"recipe": recipe.name, "seq_len": seq_len, "micro_batch": recipe.micro_batch,
                                          "checkpointing": ckpt}
                for device, ranks in devices:
                    plan = training_memory(replace(recipe, ranks=ranks, checkpointing=ckpt, seq_len=seq_len))
                    has = device.usable_bytes / ranks
                    mark = "✓" if plan.total <= FIT_GATE * has else "⚠" if plan.total <= has else "✗"
                    row[device.name] = f"{mark} {plan.total / GiB:.1f} / {has / GiB:.1f}"
                row["script"] = recipe.script
                rows.append(row)
    return pd.DataFrame(rows)
