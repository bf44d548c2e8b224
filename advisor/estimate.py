"""Estimates before running: peak memory, training time and dollars per strategy, from a model's shape alone.

Memory = weights + what training keeps per trainable parameter (grads, AdamW moments) + activations + logits.
Time = tokens x FLOPs per token (6N full, 4N frozen base, +2N with gradient checkpointing) / (peak x MFU).
Queries pay for their extra prompt tokens (few-shot demos, retrieved passages); adapters pay none.
Pure arithmetic, no torch: `adapt advise` runs it before anything is downloaded. Which formula sizes a strategy
is its registry entry's `estimate` kind (prompt, demos, passages, lora, qlora, ia3, soft_prompt, full), so a
newly registered strategy is estimated like its kind; defaults (LoRA rank and targets, virtual tokens,
double quantisation) are read from the settings classes rather than repeated here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from base.errors import AdaptError
from advisor.hardware import GIB, Device
from base import registry
from base.plan import LoraSettings, PromptTuningSettings, QLoraSettings

LOGIT_BYTES = 12  # per logit: the logits, their fp32 log-softmax and its gradient
NF4_BYTES = 0.5 + 1 / 64  # 4-bit weights + absmax per 64-block, itself 8-bit with double quant
NF4_BYTES_SINGLE_QUANT = 0.5 + 4 / 64
ALLOCATOR_OVERHEAD = 1.05  # GPU caching-allocator fragmentation on top of what tensors hold
# On a CPU host peak memory is process RSS: malloc arenas keep freed mid-size blocks and the optimizer makes
# per-parameter temporaries. Fitted to SmolLM2-135M fp32 runs on the build machine (full FT b1x64: RSS 2971 MB,
# LoRA b2x128: 1856 MB, runtime baseline subtracted).
HOST_STATE_FACTOR = 1.3
HOST_ACTIVATION_FACTOR = 1.75


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
    double_quant: bool = _default(QLoraSettings, "double_quant")
    host: bool = False  # training on a CPU host (peak is RSS) rather than a GPU

    @property
    def compute_bytes(self) -> int:
        return 4 if self.precision == "fp32" else 2


@dataclass
class Memory:
    """Peak memory broken down, in bytes (GiB for display)."""

    weights: float
    training_state: float = 0.0  # grads + optimizer moments (+ fp32 master copy)
    activations: float = 0.0
    logits: float = 0.0
    host: bool = False

    @property
    def total(self) -> float:
        if self.host:
            return (self.weights + self.training_state * HOST_STATE_FACTOR
                    + (self.activations + self.logits) * HOST_ACTIVATION_FACTOR)
        return (self.weights + self.training_state + self.activations + self.logits) * ALLOCATOR_OVERHEAD

    @property
    def total_gib(self) -> float:
        return self.total / GIB


def trainable_params(shape: ModelShape, setup: TrainSetup) -> int:
    formula = kind(setup.strategy)
    if formula == "full":
        return shape.params
    if formula in ("lora", "qlora"):
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
    return shape.params * (4 if setup.precision in ("fp32", "mixed") else 2)


def training_state_bytes(shape: ModelShape, setup: TrainSetup) -> float:
    """Gradients and AdamW moments. Adapters are kept in fp32 by PEFT, so they cost 16 bytes each."""
    n = trainable_params(shape, setup)
    if kind(setup.strategy) != "full":
        return n * 16.0
    moments = {"adamw": 2 * (4 if setup.precision in ("fp32", "mixed") else 2), "adamw_8bit": 2, "paged_adamw_8bit": 0}
    if setup.optimizer not in moments:
        raise AdaptError(f"unknown optimizer {setup.optimizer!r}", field="optimizer", hint=f"choose from {list(moments)}")
    grad = 4 if setup.precision in ("fp32", "mixed") else 2
    biggest = max(shape.vocab * shape.hidden, max(a * b for a, b in shape.linears().values()))
    grads = biggest * grad if setup.optimizer_in_backward else n * grad
    return grads + n * moments[setup.optimizer]


def activation_bytes_per_token_layer(shape: ModelShape, setup: TrainSetup) -> float:
    """What autograd keeps per token in one decoder layer (SDPA attention: no seq x seq score matrix)."""
    h, q, kv, i, a = shape.hidden, shape.q_dim, shape.kv_dim, shape.intermediate, setup.compute_bytes
    kept = a * (4 * h + 3 * q + 3 * kv + 4 * i) + 8 * h  # residuals, q/k/v (+RoPE copies), MLP, fp32 norm inputs
    if kind(setup.strategy) in ("lora", "qlora"):  # dropout on each adapter's input keeps a copy
        kept += a * sum(shape.linears()[t][0] for t in setup.targets)
    if kind(setup.strategy) != "full" and "down_proj" not in setup.targets:
        kept -= a * i  # a frozen down-projection needs no copy of its input for a weight gradient
    return kept


def training_memory(shape: ModelShape, setup: TrainSetup) -> Memory:
    tokens = setup.seq_len * setup.batch
    per_layer = activation_bytes_per_token_layer(shape, setup)
    if setup.grad_checkpointing:  # layer inputs only, and one layer recomputed at a time
        activations = tokens * (shape.layers * shape.hidden * setup.compute_bytes + per_layer)
    else:
        activations = tokens * shape.layers * per_layer
    return Memory(weights=weight_bytes(shape, setup), training_state=training_state_bytes(shape, setup),
                  activations=activations, logits=tokens * shape.vocab * LOGIT_BYTES, host=setup.host)


def inference_memory(shape: ModelShape, precision: str = "bf16", seq_len: int = 1024, batch: int = 1,
                     quantised: bool = False, host: bool = False) -> Memory:
    """Serving: weights, KV cache for the whole prompt, one layer's prefill activations, last-token logits."""
    setup = TrainSetup(strategy="qlora" if quantised else "zero_shot", precision=precision)
    a, tokens = setup.compute_bytes, seq_len * batch
    kv_cache = 2 * shape.layers * shape.kv_dim * a * tokens
    prefill = tokens * a * (2 * shape.hidden + 3 * shape.intermediate)
    return Memory(weights=weight_bytes(shape, setup), activations=kv_cache + prefill, logits=batch * shape.vocab * 4,
                  host=host)


# --- time and money --------------------------------------------------------------------------------------


def train_flops_per_token(shape: ModelShape, strategy: str, seq_len: int, grad_checkpointing: bool) -> float:
    """6N for full training (forward 2N, backward 4N); a frozen base skips weight gradients: 4N. +2N to recompute."""
    n = shape.compute_params
    attention = 6 * shape.layers * shape.q_dim * seq_len  # causal score and value matmuls, fwd + bwd
    passes = 6 if kind(strategy) == "full" else 4
    if grad_checkpointing:
        passes += 2
    return passes * n + attention


QLORA_SLOWDOWN = 1.3  # dequantising nf4 weights on every matmul


def train_seconds(shape: ModelShape, setup: TrainSetup, tokens: float, device: Device) -> float:
    flops = tokens * train_flops_per_token(shape, setup.strategy, setup.seq_len, setup.grad_checkpointing)
    seconds = flops / device.train_flops_per_s
    return seconds * (QLORA_SLOWDOWN if kind(setup.strategy) == "qlora" else 1.0)


def fits_on(memory: Memory, devices: list[Device], headroom: float = 0.95) -> list[str]:
    return [d.name for d in devices if memory.total_gib <= d.memory_gib * headroom]


@dataclass
class Workload:
    """What the user's task costs in tokens: training data, corpus, and the shape of a served query."""

    train_tokens: float = 0.0  # labelled examples x tokens each x epochs
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

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def peak_memory(strategy: str, shape: ModelShape, setup: TrainSetup, workload: Workload) -> Memory:
    """The heaviest part of a strategy (rag+lora: LoRA training outweighs serving with passages)."""
    peaks = []
    for part in strategy.split("+"):
        if trains(part):
            peaks.append(training_memory(shape, replace(setup, strategy=part)))
        else:
            prompt = workload.query_tokens + workload.extra_prompt_tokens(part) + workload.output_tokens
            peaks.append(inference_memory(shape, setup.precision, seq_len=prompt, batch=setup.batch, host=setup.host))
    return max(peaks, key=lambda m: m.total)


def estimate_strategy(strategy: str, shape: ModelShape, setup: TrainSetup, workload: Workload,
                      device: Device, candidates: list[Device]) -> StrategyEstimate:
    """One strategy on `device` (a combination sums its training runs); GPU fits are judged in bf16 on a GPU
    even when `device` is the CPU."""
    seconds, trainable = 0.0, 0
    for part in strategy.split("+"):
        part_setup = replace(setup, strategy=part)
        if trains(part):  # continued pre-training reads the corpus; the rest train on labelled examples
            tokens = workload.corpus_tokens if "corpus" in registry.get(part).needs else workload.train_tokens
            seconds += train_seconds(shape, part_setup, tokens, device)
            trainable = max(trainable, trainable_params(shape, part_setup))
    peak = peak_memory(strategy, shape, setup, workload)
    on_gpu = peak_memory(strategy, shape, replace(setup, precision="bf16", host=False), workload)
    fits = fits_on(on_gpu, [d for d in candidates if d.is_gpu]) + fits_on(peak, [d for d in candidates if not d.is_gpu])
    hours = seconds / 3600
    return StrategyEstimate(
        strategy=strategy, peak_memory_gib=peak.total_gib, train_hours=hours, usd_train=hours * device.usd_per_hour,
        usd_per_1m_queries=workload.usd_per_1m_queries(strategy), extra_prompt_tokens=workload.extra_prompt_tokens(strategy),
        trainable_params=trainable, fits=fits, device=device.name,
    )
