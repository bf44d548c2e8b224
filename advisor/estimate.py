"""Estimates before running: peak memory, training time and dollars per strategy, from a model's shape alone.

Memory = weights + optimizer moments + the larger of (activations + logits) during backward and the gradients at
the optimizer step (both at once with gradient accumulation), times the caching allocator's reserve on a GPU.
Time = tokens x FLOPs per token (6N full, 4N frozen base, +2N with gradient checkpointing) / (peak x MFU), with
the MFU of the GPU's class falling off for small micro-batches, plus the optimizer step's memory traffic.
Queries pay for their extra prompt tokens (few-shot demos, retrieved passages); adapters pay none.
Several GPUs: memory is one GPU's (DDP: a whole replica; FSDP/ZeRO-3: 1/N of the state plus the gathered layers),
time is N GPUs' at a stated scaling efficiency rather than one GPU N times as large.
Pure arithmetic, no torch: `adapt advise` runs it before anything is downloaded. Which formula sizes a strategy
is its registry entry's `estimate` kind (base.registry.ESTIMATES), so a
newly registered strategy is estimated like its kind; defaults (LoRA rank and targets, virtual tokens,
double quantisation) are read from the settings classes rather than repeated here.

The GPU constants below were checked against published peaks and throughputs (bench/data/published_training_peaks.csv,
bench/estimate_vs_published.py); the rows marked `fit` there set them, the `holdout` rows test them.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from base.errors import AdaptError
from advisor.hardware import CPU_INFERENCE_MFU, GIB, Device
from base import registry
from base.plan import (FeatureBasedSettings, FreezeSettings, GaloreSettings, LlamaAdapterSettings, LoraSettings, PromptTuningSettings, PTuningSettings,
                       QLoraSettings)

# Fitted to the `fit:memory` rows of bench/data/published_training_peaks.csv (torchtune Llama-3.2-3B on an A100, the
# rows where only that setting changes); bench/estimate_vs_published.py --fit re-derives them.
LOGIT_BYTES = 12.5  # per logit, plain cross-entropy: bf16 logits, their fp32 upcast and log-softmax, the gradient
LOGIT_BYTES_CHUNKED = 1.25  # per logit, chunked cross-entropy (torchtune CEWithChunkedOutputLoss, compiled): an
# effective figure below the bf16 logits' own 2 bytes, fitted over the full-FT and the LoRA row (see the bench)
COMPILE_ACTIVATION_FACTOR = 0.7  # torch.compile fuses norms and SiLU*up, so fewer intermediates are kept for backward
LOGIT_BYTES_HOST = 12  # fp32 on a CPU host: logits, log-softmax, gradient (with HOST_ACTIVATION_FACTOR)
NF4_BYTES = 0.5 + 1 / 64  # 4-bit weights + absmax per 64-block, itself 8-bit with double quant
NF4_BYTES_SINGLE_QUANT = 0.5 + 4 / 64
ALLOCATOR_OVERHEAD = 1.05  # GPU: what the caching allocator reserves (nvidia-smi, OOM) over what tensors hold (a prior)
# On a CPU host peak memory is process RSS: malloc arenas keep freed mid-size blocks, so the activations of the
# largest micro-batch cost more than the tensors hold. HOST_ACTIVATION_FACTOR was fitted to a LoRA run of the demo
# plan (2543 MiB RSS) before runs recorded their micro-batches; the LoRA, QLoRA and feature-based runs of
# bench/data/cpu_runs, which do, are held out (-2% to +4%). Optimizer state and gradients count as they are (a 1.3
# factor on them, fitted earlier, put the full-FT run there at +15%; without it, 0%).
HOST_ACTIVATION_FACTOR = 1.53
HOST_RUNTIME_BYTES = 435 * 2**20  # the Python + torch + transformers + peft runtime inside a CPU run's RSS
# Tokens a training example carries besides its text and answer, per prompt format (SmolLM2 tokenizer, SST-2, 540
# examples): the chat template and instruction 50 (75.3 a pair vs 24.4 of text + label), plain "Text: ...\nLabel: ..."
# blocks 6 (30.2 a pair).
TEMPLATE_TOKENS = {"chat": 50, "plain": 6}
CORPUS_ROW_TOKENS = 512  # continued pre-training: the corpus cut into full rows of this many tokens


@dataclass(frozen=True)
class ModelShape:
    """What the estimates need from a model's config.json."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied: bool
    head_dim: int | None = None
    context: int = 4096

    @property
    def q_dim(self) -> int:
        return self.heads * (self.head_dim or self.hidden // self.heads)

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * (self.head_dim or self.hidden // self.heads)

    def linears(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each projection in one decoder layer, by the names PEFT targets."""
        h, i = self.hidden, self.intermediate
        return {"q_proj": (h, self.q_dim), "k_proj": (h, self.kv_dim), "v_proj": (h, self.kv_dim),
                "o_proj": (self.q_dim, h), "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    @property
    def layer_linear_params(self) -> int:
        return sum(a * b for a, b in self.linears().values())

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied else 2)

    @property
    def params(self) -> int:
        norms = self.layers * 2 * self.hidden + self.hidden
        return self.layers * self.layer_linear_params + self.embedding_params + norms

    @property
    def compute_params(self) -> int:
        """Parameters that cost FLOPs per token: the embedding lookup is free, the LM head is a matmul."""
        return self.layers * self.layer_linear_params + self.vocab * self.hidden


KNOWN_MODELS: dict[str, ModelShape] = {s.name: s for s in (
    ModelShape("smollm2-135m-instruct", 576, 30, 9, 3, 1536, 49152, True, context=8192),
    ModelShape("gemma-3-270m", 640, 18, 4, 1, 2048, 262144, True, head_dim=256, context=32768),
    ModelShape("qwen2.5-0.5b", 896, 24, 14, 2, 4864, 151936, True, context=32768),
    ModelShape("qwen2.5-1.5b", 1536, 28, 12, 2, 8960, 151936, True, context=32768),
    ModelShape("qwen2.5-7b", 3584, 28, 28, 4, 18944, 152064, False, context=32768),
    ModelShape("llama-3.2-1b", 2048, 16, 32, 8, 8192, 128256, True, context=131072),
    ModelShape("llama-3.2-3b", 3072, 28, 24, 8, 8192, 128256, True, context=131072),
    ModelShape("llama-3.1-8b", 4096, 32, 32, 8, 14336, 128256, False, context=131072),
    ModelShape("mistral-7b", 4096, 32, 32, 8, 14336, 32768, False, context=32768),
)}


def _from_config(name: str, config: dict) -> ModelShape:
    text = config.get("text_config") or config  # multimodal configs nest the language model
    try:
        heads = text["num_attention_heads"]
        return ModelShape(
            name=name, hidden=text["hidden_size"], layers=text["num_hidden_layers"], heads=heads,
            kv_heads=text.get("num_key_value_heads") or heads, intermediate=text["intermediate_size"],
            vocab=text["vocab_size"], tied=bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", True))),
            head_dim=text.get("head_dim"), context=text.get("max_position_embeddings") or 4096,
        )
    except KeyError as missing:
        raise AdaptError(f"config.json lacks {missing} needed for estimates", file=name, field=str(missing)) from None


def model_shape(name_or_path: str) -> ModelShape:
    """A local folder's config.json, else the built-in table (matching hub ids and names case-insensitively)."""
    folder = Path(name_or_path).expanduser()
    if (folder / "config.json").exists():
        return _from_config(str(folder), json.loads((folder / "config.json").read_text(encoding="utf-8")))
    key = name_or_path.lower().rsplit("/", 1)[-1].removesuffix("-instruct")
    for known, shape in KNOWN_MODELS.items():
        base = known.removesuffix("-instruct")
        if key == base or key.startswith(base + "-"):
            return shape
    raise AdaptError(f"no shape known for model {name_or_path!r}", field="model",
                     hint=f"give a local folder with config.json, or one of: {', '.join(KNOWN_MODELS)}")


# --- which formula ---------------------------------------------------------------------------------------


def kind(strategy: str) -> str:
    """The estimator formula of one registered strategy (not a combination)."""
    return registry.get(strategy).estimate


def trains(strategy: str) -> bool:
    """Whether a strategy (or any part of a combination like rag+lora) runs training."""
    return any(registry.get(part).trains for part in strategy.split("+"))


def _default(settings: type, field_name: str):
    return settings.model_fields[field_name].default


# Kinds that train the base model's own weights (in their precision, moments and gradients alike), not added ones.
WHOLE_WEIGHTS = ("full", "freeze", "galore")
LORA_KINDS = ("lora", "qlora", "dpo")  # dpo trains a LoRA policy
DPO_PASSES = 1.5  # DPO: the policy's forward + backward (4N a token) plus the reference model's forward (2N)
# Kinds whose virtual tokens lengthen every row (prefix tuning puts its prefix in the keys and values instead).
ROW_PREFIX = ("soft_prompt", "p_tuning")


def whole_weights(strategy: str) -> bool:
    return kind(strategy) in WHOLE_WEIGHTS


# --- memory ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainSetup:
    """The settings that move memory and time (a subset of plan.TrainSettings plus precision)."""

    strategy: str = "lora"
    seq_len: int = 256
    batch: int = 8
    grad_checkpointing: bool = False
    precision: str = "bf16"  # bf16 (weights and AdamW states in bf16) | mixed (fp32 master) | fp32 (CPU)
    optimizer: str = "adamw"  # adamw | adamw_8bit | paged_adamw_8bit (moments paged to host RAM)
    optimizer_in_backward: bool = False  # step each parameter as its gradient arrives: no full gradient set
    r: int = _default(LoraSettings, "r")
    targets: tuple[str, ...] = tuple(_default(LoraSettings, "target_modules"))
    num_virtual_tokens: int = _default(PromptTuningSettings, "num_virtual_tokens")
    encoder_hidden: int = _default(PTuningSettings, "encoder_hidden_size")
    adapter_len: int = _default(LlamaAdapterSettings, "adapter_len")
    adapter_layers: int = _default(LlamaAdapterSettings, "adapter_layers")
    freeze_layers: int = _default(FreezeSettings, "layers")
    galore_rank: int = _default(GaloreSettings, "rank")
    double_quant: bool = _default(QLoraSettings, "double_quant")
    host: bool = False  # training on a CPU host (peak is RSS) rather than a GPU
    lora_dropout: bool = True  # a dropout on each adapter input keeps a copy of it (adaptlab's default 0.05)
    compile: bool = False  # torch.compile
    loss: str = "full"  # full | chunked (cross-entropy over vocabulary chunks, never the whole fp32 logits)
    activation_offloading: bool = False  # checkpointed layer inputs kept in host RAM
    grad_accum: int = 1  # gradients live through the next micro-batch's forward and backward when > 1
    adapter_precision: str = "fp32"  # PEFT upcasts adapters to fp32; torchtune and LitGPT keep them in bf16
    packing: bool = True  # examples concatenated into rows (runners/training.py); off: a row per example, padded
    example_tokens: float = 0.0  # mean tokens of a training example: micro-batches of `batch` examples packed into
    # rows of at most seq_len, as runners/training.py lays them out; 0: `batch` full rows (corpus windows, the published runs)
    processes: int = 1  # GPUs training together, one process each: `batch` is the global micro-batch they split
    distributed: str = "ddp"  # how several processes hold the model: ddp (each a replica) | fsdp | deepspeed (sharded)

    @property
    def compute_bytes(self) -> int:
        return 4 if self.precision == "fp32" else 2

    @property
    def param_bytes(self) -> int:
        """Bytes of a base weight (and of its gradient): fp32 on a CPU and with an fp32 master copy, else bf16."""
        return 4 if self.precision in ("fp32", "mixed") else 2


@dataclass
class Memory:
    """Peak memory broken down, in bytes (GiB for display)."""

    weights: float
    training_state: float = 0.0  # optimizer moments (+ fp32 master copy): resident all along
    activations: float = 0.0
    logits: float = 0.0
    host: bool = False
    gradients: float = 0.0  # the full set exists at the optimizer step, after activations are freed
    gradients_with_activations: bool = False  # gradient accumulation (or adapters): both at once
    runtime: float = 0.0  # process baseline counted in a host's RSS

    @property
    def allocated(self) -> float:
        """What tensors hold at the peak: backward (activations + logits) or the optimizer step (gradients)."""
        transient = self.activations + self.logits
        working = transient + self.gradients if self.gradients_with_activations else max(transient, self.gradients)
        return self.weights + self.training_state + working

    @property
    def total(self) -> float:
        if self.host:
            return (self.runtime + self.weights + self.training_state + self.gradients
                    + (self.activations + self.logits) * HOST_ACTIVATION_FACTOR)
        return self.allocated * ALLOCATOR_OVERHEAD

    @property
    def total_gib(self) -> float:
        return self.total / GIB


def trainable_params(shape: ModelShape, setup: TrainSetup) -> int:
    """What each method trains, as peft counts it (tests/advisor/test_estimate_new_methods.py checks against peft)."""
    formula = kind(setup.strategy)
    if formula in ("full", "galore"):
        return shape.params
    if formula == "freeze":  # the last blocks (linears + 2 norms), the final norm and the head (shared when tied)
        return (min(setup.freeze_layers, shape.layers) * (shape.layer_linear_params + 2 * shape.hidden) + shape.hidden
                + shape.vocab * shape.hidden)
    if formula == "prefix":  # a key and a value prefix per layer
        return setup.num_virtual_tokens * shape.layers * 2 * shape.kv_dim
    if formula == "p_tuning":  # virtual-token embeddings + peft's prompt encoder MLP (hidden -> e -> e -> hidden)
        h, e = shape.hidden, setup.encoder_hidden
        return setup.num_virtual_tokens * h + (h * e + e) + (e * e + e) + (e * h + h)
    if formula == "llama_adapter":  # adaption prompts + one gate per adapted layer
        return min(setup.adapter_layers, shape.layers) * (setup.adapter_len * shape.hidden + 1)
    if formula == "features":  # the logistic regression over one hidden state (two labels)
        return shape.hidden + 1
    if formula in LORA_KINDS:
        dims = shape.linears()
        unknown = [t for t in setup.targets if t not in dims]
        if unknown:
            raise AdaptError(f"unknown LoRA target module(s) {unknown}", field="target_modules", hint=f"choose from {list(dims)}")
        return shape.layers * sum(setup.r * (dims[t][0] + dims[t][1]) for t in setup.targets)
    if formula == "ia3":  # scales k and v outputs and the down-projection input
        return shape.layers * (2 * shape.kv_dim + shape.intermediate)
    if formula == "soft_prompt":
        return setup.num_virtual_tokens * shape.hidden
    return 0


def weight_bytes(shape: ModelShape, setup: TrainSetup) -> float:
    """Base weights: nf4 projections for QLoRA (embeddings and norms stay in compute precision)."""
    if kind(setup.strategy) == "qlora":
        per_param = NF4_BYTES if setup.double_quant else NF4_BYTES_SINGLE_QUANT
        quantised = shape.layers * shape.layer_linear_params
        return quantised * per_param + (shape.params - quantised) * setup.compute_bytes
    return shape.params * setup.param_bytes


MOMENT_BYTES = {"adamw": None, "adamw_8bit": 2, "paged_adamw_8bit": 0}  # None: two moments in the weights' precision


def optimizer_state_bytes(shape: ModelShape, setup: TrainSetup) -> float:
    """AdamW moments (+ the fp32 master copy in mixed precision). Adapters are kept in fp32 by PEFT: 8 bytes each.
    Paged 8-bit moments live in CUDA unified memory, paged to host RAM under pressure: not on the device's count.
    Adapters keep their moments in their own precision (fp32 in PEFT: 8 bytes each)."""
    n = trainable_params(shape, setup)
    if not whole_weights(setup.strategy):
        return n * 2 * _adapter_bytes(setup)
    if kind(setup.strategy) == "galore":
        n = galore_state_params(shape, setup)
    if setup.optimizer not in MOMENT_BYTES:
        raise AdaptError(f"unknown optimizer {setup.optimizer!r}", field="optimizer", hint=f"choose from {list(MOMENT_BYTES)}")
    moment = MOMENT_BYTES[setup.optimizer]
    if moment is None:
        moment = 2 * setup.param_bytes
    master = 4 if setup.precision == "mixed" else 0
    return n * (moment + master)


def galore_state_params(shape: ModelShape, setup: TrainSetup) -> int:
    """Parameters' worth of AdamW state under GaLore: each block matrix keeps its moments in rank r along its smaller side
    (r x larger side) plus the projection (smaller side x r); embeddings, head and norms keep full moments."""
    projected = sum(setup.galore_rank * max(a, b) + min(a, b) * setup.galore_rank if min(a, b) > setup.galore_rank else a * b
                    for a, b in shape.linears().values())
    return shape.layers * projected + shape.params - shape.layers * shape.layer_linear_params


def _adapter_bytes(setup: TrainSetup) -> int:
    return 4 if setup.adapter_precision == "fp32" else 2


def gradient_bytes(shape: ModelShape, setup: TrainSetup) -> float:
    """The full gradient set, or only the largest tensor's when each parameter steps as its gradient arrives."""
    n = trainable_params(shape, setup)
    if not whole_weights(setup.strategy):
        return n * 2 * _adapter_bytes(setup)  # adapter gradients + the adapter weights (not counted in the base)
    grad = setup.param_bytes
    if setup.optimizer_in_backward:
        return max(shape.vocab * shape.hidden, max(a * b for a, b in shape.linears().values())) * grad
    return n * grad


def training_state_bytes(shape: ModelShape, setup: TrainSetup) -> float:
    """Gradients and optimizer moments together."""
    return optimizer_state_bytes(shape, setup) + gradient_bytes(shape, setup)


def activation_bytes_per_token_layer(shape: ModelShape, setup: TrainSetup) -> float:
    """What autograd keeps per token in one decoder layer (SDPA attention: no seq x seq score matrix)."""
    h, q, kv, i, a = shape.hidden, shape.q_dim, shape.kv_dim, shape.intermediate, setup.compute_bytes
    kept = a * (4 * h + 3 * q + 3 * kv + 4 * i) + 8 * h  # residuals, q/k/v (+RoPE copies), MLP, fp32 norm inputs
    if kind(setup.strategy) in LORA_KINDS and setup.lora_dropout:  # dropout on each adapter's input keeps a copy
        kept += a * sum(shape.linears()[t][0] for t in setup.targets)
    if not whole_weights(setup.strategy) and kind(setup.strategy) != "ia3" and "down_proj" not in setup.targets:
        kept -= a * i  # a frozen down-projection needs no copy of its input for a weight gradient
    return kept * (COMPILE_ACTIVATION_FACTOR if setup.compile else 1.0)


# TrainSetup field <- the plan settings field that sizes it, where a strategy's settings have one
SETUP_FIELDS = {"seq_len": "max_length", "batch": "batch_size", "grad_checkpointing": "grad_checkpointing",
                "grad_accum": "grad_accum", "packing": "packing", "r": "r", "double_quant": "double_quant",
                "num_virtual_tokens": "num_virtual_tokens", "encoder_hidden": "encoder_hidden_size",
                "adapter_len": "adapter_len", "adapter_layers": "adapter_layers", "freeze_layers": "layers",
                "galore_rank": "rank"}


def setup_for(settings: dict, *, host: bool, precision: str, example_tokens: float = 0.0) -> TrainSetup:
    """The setup of a plan's strategy settings (plan.TrainSettings dumped, or the config a RunResult carries)."""
    sized = {key: settings[name] for key, name in SETUP_FIELDS.items() if settings.get(name) is not None}
    if settings.get("target_modules"):
        sized["targets"] = tuple(settings["target_modules"])
    return TrainSetup(strategy=settings["strategy"], precision=precision, host=host, example_tokens=example_tokens, **sized)


# Micro-batches of `batch` examples drawn at random vary in total length: sd = example x LENGTH_CV x sqrt(batch).
# Activations peak with the largest micro-batch of a run, PEAK_SD sd above the mean (the largest of ~200 draws).
# Measured on 144 SST-2 pairs over 3 epochs (SmolLM2 tokenizer, plain prompts: 31.1 tokens, sd 10.3): 8 a batch
# 248 tokens mean / 330 largest, 4 a batch 124 / 183.
LENGTH_CV = 0.33
PEAK_SD = 2.8


def longest_example(example_tokens: float) -> float:
    """The longest example of a run whose examples average `example_tokens` (the same spread, one example a draw)."""
    return example_tokens * (1 + PEAK_SD * LENGTH_CV)


def tokens_per_batch(setup: TrainSetup, peak: bool = False) -> float:
    """Token positions the model computes in one micro-batch (padding and virtual tokens included), the mean one or
    (`peak`) the largest of a run. Packed (runners.training.pack spreads a micro-batch evenly over the rows it needs):
    its tokens, with next to no padding. Prompt learning and unpacked runs: a row per example, padded to the longest
    of its length group. Without `example_tokens`: `batch` full rows."""
    extra = setup.num_virtual_tokens if kind(setup.strategy) in ROW_PREFIX else 0
    if not setup.example_tokens:
        return setup.batch * (setup.seq_len + extra)
    if extra or not setup.packing:
        return setup.batch * (min(longest_example(setup.example_tokens) if peak else setup.example_tokens, setup.seq_len) + extra)
    spread = PEAK_SD * setup.example_tokens * LENGTH_CV * math.sqrt(setup.batch) if peak else 0.0
    return setup.batch * setup.example_tokens + spread


def row_width(setup: TrainSetup) -> float:
    """The sequence length attention spans in a (mean) micro-batch."""
    return min(setup.seq_len, tokens_per_batch(setup)) if setup.example_tokens else setup.seq_len


def computed_tokens(setup: TrainSetup, tokens: float) -> float:
    """Positions the model computes over to train on `tokens` tokens of examples: padding and virtual tokens too."""
    if setup.example_tokens:
        return tokens * tokens_per_batch(setup) / (setup.batch * setup.example_tokens)
    if kind(setup.strategy) in ROW_PREFIX:
        return tokens * (setup.seq_len + setup.num_virtual_tokens) / setup.seq_len
    return tokens


def training_memory(shape: ModelShape, setup: TrainSetup) -> Memory:
    tokens = tokens_per_batch(setup, peak=True)
    per_layer = activation_bytes_per_token_layer(shape, setup)
    if setup.grad_checkpointing:  # layer inputs (unless offloaded to host RAM), and one layer recomputed at a time
        kept = 0 if setup.activation_offloading else shape.layers * shape.hidden * setup.compute_bytes
        activations = tokens * (kept + per_layer)
    else:  # freeze: the frozen blocks below get no gradient, so autograd keeps nothing for them
        activations = tokens * backward_layers(shape, setup) * per_layer
    logit_bytes = LOGIT_BYTES_HOST if setup.host else LOGIT_BYTES_CHUNKED if setup.loss == "chunked" else LOGIT_BYTES
    if setup.host and kind(setup.strategy) == "qlora":  # bitsandbytes on CPU: each layer's weights dequantized for its matmuls
        activations += shape.layers * shape.layer_linear_params * setup.compute_bytes
    adapters = not whole_weights(setup.strategy)
    return Memory(weights=weight_bytes(shape, setup), training_state=optimizer_state_bytes(shape, setup),
                  activations=activations, logits=tokens * shape.vocab * logit_bytes, host=setup.host,
                  gradients=gradient_bytes(shape, setup), gradients_with_activations=adapters or setup.grad_accum > 1,
                  runtime=HOST_RUNTIME_BYTES if setup.host else 0.0)


def inference_memory(shape: ModelShape, precision: str = "bf16", seq_len: int = 1024, batch: int = 1,
                     quantised: bool = False, host: bool = False) -> Memory:
    """Serving: weights, KV cache for the whole prompt, one layer's prefill activations, last-token logits."""
    setup = TrainSetup(strategy="qlora" if quantised else "zero_shot", precision=precision)
    a, tokens = setup.compute_bytes, seq_len * batch
    kv_cache = 2 * shape.layers * shape.kv_dim * a * tokens
    prefill = tokens * a * (2 * shape.hidden + 3 * shape.intermediate)
    return Memory(weights=weight_bytes(shape, setup), activations=kv_cache + prefill, logits=batch * shape.vocab * 4,
                  host=host, runtime=HOST_RUNTIME_BYTES if host else 0.0)


SKLEARN_RUNTIME_BYTES = 108 * 2**20  # scikit-learn's import in a run's RSS, beside torch + transformers + peft (443 -> 551 MB)


def feature_memory(shape: ModelShape, precision: str, example_tokens: float, host: bool = False) -> Memory:
    """feature_based: a no-grad forward of its settings' batch of padded rows (the longest of a run, as for training)
    keeping every layer's hidden state, with logits at every position (a causal LM's forward computes them all);
    scikit-learn's logistic regression lives in the same process."""
    setup = TrainSetup(strategy="zero_shot", precision=precision)
    rows = _default(FeatureBasedSettings, "batch_size")
    width = min(longest_example(example_tokens), _default(FeatureBasedSettings, "max_length"))
    tokens = rows * width
    hidden_states = (shape.layers + 1) * shape.hidden * setup.compute_bytes * tokens
    return Memory(weights=weight_bytes(shape, setup), activations=hidden_states, logits=tokens * shape.vocab * 4,
                  host=host, runtime=HOST_RUNTIME_BYTES + SKLEARN_RUNTIME_BYTES if host else 0.0)


# --- time and money --------------------------------------------------------------------------------------


def backward_layers(shape: ModelShape, setup: TrainSetup) -> int:
    """Decoder layers the backward pass goes through: the trained tail for freeze, every layer otherwise."""
    return min(setup.freeze_layers, shape.layers) if kind(setup.strategy) == "freeze" else shape.layers


def train_flops_per_token(shape: ModelShape, strategy: str, seq_len: int, grad_checkpointing: bool,
                          freeze_layers: int = _default(FreezeSettings, "layers")) -> float:
    """6N for full training (forward 2N, backward 4N); a frozen base skips weight gradients: 4N. +2N to recompute.
    freeze: the forward over everything, the backward (4 per weight) over the head and the trained blocks only."""
    n = shape.compute_params
    attention = 6 * shape.layers * shape.q_dim * seq_len  # causal score and value matmuls, fwd + bwd
    if kind(strategy) == "freeze":
        tail = min(freeze_layers, shape.layers) * shape.layer_linear_params + shape.vocab * shape.hidden
        return 2 * n + 4 * tail + attention * min(freeze_layers, shape.layers) / shape.layers
    passes = 6 if whole_weights(strategy) else 4
    if grad_checkpointing:
        passes += 2
    return passes * n + attention


QLORA_SLOWDOWN = 1.3  # dequantising nf4 weights on every matmul
HOST_QLORA_SLOWDOWN = 1.15  # on a CPU (bitsandbytes' CPU kernels): QLoRA over LoRA's train time, 1.06 on the demo plan
# and 1.21 on the advised plan (bench/data/cpu_runs; over LoRA's typical 78 s there, see hardware.CPU_MFU)
MFU_HALF_TOKENS = 256  # micro-batch (tokens) at which a GPU step reaches half its large-batch MFU: a prior, not fitted (the table has one micro-batch size per GPU)


def gpu_mfu(device: Device, tokens_per_step: float) -> float:
    """Small micro-batches leave a GPU's tensor cores idle between kernels: MFU x T / (T + T_half)."""
    if not device.is_gpu:
        return device.mfu
    return device.mfu * tokens_per_step / (tokens_per_step + MFU_HALF_TOKENS)


OPTIMIZER_ACCESSES = 23  # tensor reads + writes per parameter of a foreach AdamW step (lerp, mul, addcmul, sqrt, div,
# add eps, addcdiv, weight decay) and gradient-norm clipping (norm, scale), each over the parameter's precision


def optimizer_step_bytes(shape: ModelShape, setup: TrainSetup) -> float:
    """Memory traffic of one optimizer step (memory-bound: it reads and writes every trainable parameter's state)."""
    n = trainable_params(shape, setup)
    if not whole_weights(setup.strategy):
        return n * OPTIMIZER_ACCESSES * _adapter_bytes(setup)
    return n * OPTIMIZER_ACCESSES * setup.param_bytes


def train_seconds(shape: ModelShape, setup: TrainSetup, tokens: float, device: Device,
                  tokens_per_step: float | None = None) -> float:
    """Compute at the device's MFU for this micro-batch, plus one optimizer step per micro-batch x accumulation.
    `tokens` are the examples' own; `tokens_per_step` (positions a micro-batch computes) defaults to the setup's layout."""
    per_step = tokens_per_step or tokens_per_batch(setup)
    positions = computed_tokens(setup, tokens)
    flops = positions * train_flops_per_token(shape, setup.strategy, row_width(setup), setup.grad_checkpointing,
                                              setup.freeze_layers)
    seconds = flops / (device.tflops * 1e12 * gpu_mfu(device, per_step))
    if device.bandwidth_gbs:
        steps = positions / per_step / max(setup.grad_accum, 1)
        seconds += steps * optimizer_step_bytes(shape, setup) / (device.bandwidth_gbs * 1e9)
    slowdown = {"qlora": HOST_QLORA_SLOWDOWN if setup.host else QLORA_SLOWDOWN, "dpo": DPO_PASSES}
    return seconds * slowdown.get(kind(setup.strategy), 1.0)


CHECKPOINT_BYTES_PER_S = 400e6  # writing an epoch checkpoint (trainable weights + optimizer state) to local disk


def epoch_overhead_seconds(shape: ModelShape, setup: TrainSetup, workload: "Workload", device: Device) -> float:
    """What the training loop adds to its optimizer steps: the held-out eval loss (a forward pass, 2N a token) and
    an epoch checkpoint of the trainable weights and their two moments (fp32)."""
    eval_flops = computed_tokens(setup, workload.held_out_tokens) * 2 * shape.compute_params
    eval_seconds = eval_flops / (device.tflops * 1e12 * gpu_mfu(device, tokens_per_batch(setup)))
    checkpoint = trainable_params(shape, setup) * 12 * max(1.0, workload.epochs) / CHECKPOINT_BYTES_PER_S
    return eval_seconds + checkpoint


FEATURE_PADDING = 1 + 1.77 * LENGTH_CV  # feature_based pads each batch of 16 to its longest (1.77 sd over the mean:
# the expected largest of 16 normal draws)


def feature_seconds(shape: ModelShape, tokens: float, device: Device) -> float:
    """feature_based: one no-grad forward pass (2N a token) over `tokens`, in batches of its settings' batch_size rows
    padded to their longest, at the device's inference throughput."""
    batch = _default(FeatureBasedSettings, "batch_size") * _default(FeatureBasedSettings, "max_length")
    mfu = gpu_mfu(device, batch) if device.is_gpu else CPU_INFERENCE_MFU
    return tokens * FEATURE_PADDING * 2 * shape.compute_params / (device.tflops * 1e12 * mfu)


# --- several GPUs ------------------------------------------------------------------------------------------
# A run over N GPUs (runners.training under `accelerate launch`) splits every global micro-batch between its processes.
# DDP keeps a whole replica on each GPU; FSDP full shard and DeepSpeed ZeRO-3 split weights, gradients and optimizer
# state 1/N and gather one decoder layer at a time (configs/launch/8gpu-fsdp.yaml: transformer-layer wrapping).

SHARDED = ("fsdp", "deepspeed")
# Kinds compare can shard. FSDP flattens each wrapped layer into one tensor of one dtype, so PEFT adapters (kept in
# fp32 beside bf16 base weights: "Must flatten tensors with uniform dtype"), QLoRA's uint8 4-bit weights and the
# prompt-learning kinds cannot be wrapped as runners build them; GaLore projects 2-D gradients, which FSDP flattens.
SHARDABLE_KINDS = ("full", "freeze")
SCALING_EFFICIENCY = {"ddp": 0.9, "fsdp": 0.8, "deepspeed": 0.8}  # a prior, not fitted: the share of N x one GPU's
# throughput left after communication. DDP all-reduces the gradients once a step, overlapped with backward; FSDP and
# ZeRO-3 all-gather every layer in forward and again in backward and reduce-scatter its gradient (~1.5x DDP's traffic).


def shardable(strategy: str) -> bool:
    """Whether every trained part of a strategy can run under FSDP / ZeRO-3 (see SHARDABLE_KINDS)."""
    return all(kind(part) in SHARDABLE_KINDS for part in strategy.split("+") if trains(part))


def device_share(setup: TrainSetup) -> TrainSetup:
    """One process's part of a multi-GPU run: its share of the global micro-batch, alone on its GPU."""
    return replace(setup, batch=math.ceil(setup.batch / setup.processes), processes=1)


def ddp_bucket_bytes(shape: ModelShape, setup: TrainSetup) -> float:
    """DDP all-reduces through flat gradient buckets of its own (accelerate leaves gradient_as_bucket_view off): a
    second copy of every trainable parameter's gradient, resident from the first backward on."""
    per_gradient = setup.param_bytes if whole_weights(setup.strategy) else _adapter_bytes(setup)
    return trainable_params(shape, setup) * per_gradient


def gathered_bytes(shape: ModelShape, setup: TrainSetup) -> float:
    """What FSDP holds unsharded, in compute precision: the root unit (embeddings, head, final norm), which stays
    gathered from forward to backward; the decoder layer being computed and the next one, prefetched
    (backward_prefetch BACKWARD_PRE); and that layer's whole gradient before its reduce-scatter."""
    layer = shape.layer_linear_params + 2 * shape.hidden
    root = shape.params - shape.layers * layer
    return (root + 3 * layer) * setup.compute_bytes


def sharded_memory(shape: ModelShape, setup: TrainSetup) -> Memory:
    """One GPU of an FSDP full-shard (or ZeRO-3) run. With mixed precision on, accelerate upcasts the trainable
    shards to fp32 (Accelerator.prepare_model, after ZeRO-3's fp32 partitions), so a trained weight costs 4 bytes +
    its fp32 moments + a 4-byte gradient, over N; a frozen one its own precision over N."""
    if not shardable(setup.strategy):
        raise AdaptError(f"{setup.strategy} cannot be sharded with {setup.distributed}", field="launch.distributed",
                         hint=f"only {', '.join(n for n in registry.names() if trains(n) and shardable(n))} shard; adapters run with ddp")
    own = training_memory(shape, device_share(setup))  # activations and logits of this GPU's rows
    upcast = replace(setup, precision="fp32")
    trained = trainable_params(shape, setup)
    weights = (shape.params - trained) * setup.param_bytes + trained * upcast.param_bytes
    n = setup.processes
    return replace(own, weights=weights / n + gathered_bytes(shape, setup),
                   training_state=optimizer_state_bytes(shape, upcast) / n, gradients=gradient_bytes(shape, upcast) / n)


def device_training_memory(shape: ModelShape, setup: TrainSetup) -> Memory:
    """One GPU's peak when `setup.processes` GPUs train together; training_memory itself for one."""
    if setup.processes == 1:
        return training_memory(shape, setup)
    if setup.distributed in SHARDED:
        return sharded_memory(shape, setup)
    own = training_memory(shape, device_share(setup))
    return replace(own, training_state=own.training_state + ddp_bucket_bytes(shape, setup))


def parallel_train_seconds(shape: ModelShape, setup: TrainSetup, tokens: float, device: Device,
                           tokens_per_step: float | None = None) -> float:
    """train_seconds over `setup.processes` GPUs: each trains on its share of every micro-batch (a smaller micro-batch
    runs at a lower MFU) and steps the optimizer as often as one GPU would, at SCALING_EFFICIENCY. The optimizer
    step is counted whole on every GPU, an overestimate under sharding (each steps 1/N), small beside the matmuls.
    `tokens_per_step`: the global micro-batch's tokens, as train_seconds takes them."""
    if setup.processes == 1:
        return train_seconds(shape, setup, tokens, device, tokens_per_step)
    share = device_share(setup)
    per_step = (tokens_per_step or tokens_per_batch(setup)) * tokens_per_batch(share) / tokens_per_batch(setup)
    seconds = train_seconds(shape, share, tokens / setup.processes, device, tokens_per_step=per_step)
    return seconds / SCALING_EFFICIENCY[setup.distributed]


def fits_on(memory: Memory, devices: list[Device], headroom: float = 0.95) -> list[str]:
    return [d.name for d in devices if memory.total_gib <= d.memory_gib * headroom]


@dataclass
class Workload:
    """What the user's task costs in tokens: training data, corpus, and the shape of a served query."""

    train_tokens: float = 0.0  # labelled examples trained on x tokens each x epochs
    held_out_tokens: float = 0.0  # examples held out for the per-epoch eval loss x tokens each x epochs
    epochs: float = 1.0
    corpus_tokens: float = 0.0  # continued pre-training reads the corpus once
    query_tokens: int = 60  # the task prompt itself, paid by every strategy
    output_tokens: int = 8
    few_shot_k: int = 4
    example_tokens: int = 60
    rag_top_k: int = 3
    chunk_tokens: int = 160  # 120 words at ~1.33 tokens a word
    usd_per_1m_input_tokens: float = 0.10
    usd_per_1m_output_tokens: float = 0.40

    def extra_prompt_tokens(self, strategy: str) -> int:
        """Tokens a query pays on top of the bare prompt: demos for ICL, passages for RAG, none for adapters."""
        extra = 0
        for part in strategy.split("+"):
            if kind(part) == "demos":
                extra += self.few_shot_k * self.example_tokens
            if kind(part) == "passages":
                extra += self.rag_top_k * self.chunk_tokens
        return extra

    def usd_per_1m_queries(self, strategy: str) -> float:
        prompt = self.query_tokens + self.extra_prompt_tokens(strategy)
        return prompt * self.usd_per_1m_input_tokens + self.output_tokens * self.usd_per_1m_output_tokens


# Expected error of the estimates: the |relative error| 80% of the reference rows stay within, for GPUs over the
# published runs (bench/estimate_vs_published.py), for a CPU host over the demo's runs (bench/estimate_vs_measured.py).
# tests/advisor/test_estimate_vs_published.py re-derives the GPU figures from the table and fails if they drift.
# On a CPU: the stored runs of bench/data/cpu_runs (p80: memory 2.9%, time 12.4%), and what `advise` showed before
# the plans it wrote ran (memory +3% to +11%: the example length is the user's answer; time -8% to +12%).
ERROR_BANDS = {"gpu": {"memory": 9.0, "time": 15.0}, "cpu": {"memory": 12.0, "time": 13.0}}
UNCHECKED_BAND_FACTOR = 2.0  # a GPU with no published row in the table: twice the band


def error_band(device: Device, quantity: str) -> float:
    """± percent to show beside a memory or time estimate on `device`."""
    from advisor.hardware import checked_gpus

    if not device.is_gpu:
        return ERROR_BANDS["cpu"][quantity]
    checked = checked_gpus()["memory" if quantity == "memory" else "time"]
    gpu_name = device.name.split("x ", 1)[-1]  # "1x RTX-4090" -> "RTX-4090"
    band = ERROR_BANDS["gpu"][quantity]
    return band if gpu_name in checked else band * UNCHECKED_BAND_FACTOR


@dataclass
class StrategyEstimate:
    strategy: str
    peak_memory_gib: float
    train_hours: float
    usd_train: float
    usd_per_1m_queries: float
    extra_prompt_tokens: int
    trainable_params: int
    fits: list[str] = field(default_factory=list)
    device: str = ""
    memory_band_pct: float = 0.0  # expected |error| of peak_memory_gib (see ERROR_BANDS)
    time_band_pct: float = 0.0
    processes: int = 1  # GPUs its training runs on; peak_memory_gib is one GPU's
    distributed: str = ""  # ddp | fsdp when those GPUs are several and it trains

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def part_setup(setup: TrainSetup, part: str) -> TrainSetup:
    """The setup of one part of a strategy: continued pre-training reads the corpus in full rows."""
    if "corpus" in registry.get(part).needs:
        return replace(setup, strategy=part, seq_len=CORPUS_ROW_TOKENS, example_tokens=0.0)
    return replace(setup, strategy=part)


def peak_memory(strategy: str, shape: ModelShape, setup: TrainSetup, workload: Workload) -> Memory:
    """The heaviest part of a strategy (rag+lora: LoRA training outweighs serving with passages)."""
    peaks = []
    for part in strategy.split("+"):
        if trains(part):
            peaks.append(device_training_memory(shape, part_setup(setup, part)))
        elif kind(part) == "features":
            peaks.append(feature_memory(shape, setup.precision, workload.query_tokens, setup.host))
        else:
            prompt = workload.query_tokens + workload.extra_prompt_tokens(part) + workload.output_tokens
            peaks.append(inference_memory(shape, setup.precision, seq_len=prompt, batch=setup.batch, host=setup.host))
    return max(peaks, key=lambda m: m.total)


def estimate_strategy(strategy: str, shape: ModelShape, setup: TrainSetup, workload: Workload,
                      device: Device, candidates: list[Device]) -> StrategyEstimate:
    """One strategy on `device` (a combination sums its training runs); GPU fits are judged in bf16 on a GPU
    even when `device` is the CPU. With `setup.processes` GPUs the peak is one GPU's and the time theirs together."""
    seconds, trainable = 0.0, 0
    for part in strategy.split("+"):
        this = part_setup(setup, part)
        if trains(part):  # continued pre-training reads the corpus; the rest train on labelled examples
            corpus = "corpus" in registry.get(part).needs
            seconds += parallel_train_seconds(shape, this, workload.corpus_tokens if corpus else workload.train_tokens, device)
            if not corpus:
                seconds += epoch_overhead_seconds(shape, this, workload, device)
            trainable = max(trainable, trainable_params(shape, this))
        elif kind(part) == "features":  # one forward pass over the train set; the classifier's fit is negligible
            seconds += feature_seconds(shape, workload.train_tokens / max(workload.epochs, 1e-9), device)
            trainable = trainable_params(shape, this)
    peak = peak_memory(strategy, shape, setup, workload)
    on_gpu = peak_memory(strategy, shape, replace(setup, precision="bf16", host=False), workload)
    fits = fits_on(on_gpu, [d for d in candidates if d.is_gpu]) + fits_on(peak, [d for d in candidates if not d.is_gpu])
    hours = seconds / 3600
    spread = setup.processes > 1 and trains(strategy)  # runs that do not train take one process
    return StrategyEstimate(
        strategy=strategy, peak_memory_gib=peak.total_gib, train_hours=hours, usd_train=hours * device.usd_per_hour,
        usd_per_1m_queries=workload.usd_per_1m_queries(strategy), extra_prompt_tokens=workload.extra_prompt_tokens(strategy),
        trainable_params=trainable, fits=fits, device=device.name,
        memory_band_pct=error_band(device, "memory"), time_band_pct=error_band(device, "time"),
        processes=setup.processes if spread else 1, distributed=setup.distributed if spread else "",
    )
