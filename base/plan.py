"""The experiment plan: typed, loaded from YAML with `a.b=c` overrides, validated before any run starts.

A plan names one model, one or more tasks (the user's data) and the strategies to compare on them.
Every error names the file, the YAML line and the field.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from base import paths, registry
from base.errors import AdaptError, several
from base.io import hash_file

DEFAULT_MODEL = "smollm2-135m-instruct"
DATA_KEYS = ("eval", "train", "corpus", "preferences")  # a task's data files (paths relative to the plan)

# How each task type is scored unless the task says otherwise: classification and multiple choice rank every
# label/choice by its log-likelihood (lm-eval's convention: no parsing, no off-label answers); QA is scored on
# greedy generations (EM/F1).
DEFAULT_SCORING = {"classification": "rank", "qa": "generate", "multiple_choice": "rank"}
# Prompt format per task type, chosen on SST-2 *train* items with the embedded SmolLM2-135M-Instruct
# (bench/prompt_formats.py): completion-style blocks beat the chat template for label ranking; QA keeps the chat
# template, whose assistant turn gives the short answers EM/F1 reward.
DEFAULT_PROMPT_FORMAT = {"classification": "plain", "qa": "chat", "multiple_choice": "plain"}
DEFAULT_INPUT_NAME = {"classification": "Text", "qa": "Question", "multiple_choice": "Question"}
DEFAULT_ANSWER_NAME = {"classification": "Label", "qa": "Answer", "multiple_choice": "Answer"}


class _Strict(BaseModel):
    """No unknown fields and no coercion (`r: true` is not 1, `seed: "3"` is not 3); paths alone accept strings."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True)


def _safe_name(value: str) -> str:
    if re.fullmatch(paths.SAFE_NAME, value) is None:
        raise ValueError(f"{value!r} cannot be used as a file name: {paths.SAFE_NAME_HINT}")
    return value


# A name that becomes part of a file name (task names, strategy labels): base.paths.SAFE_NAME.
SafeName = Annotated[str, AfterValidator(_safe_name)]
# Paths come from YAML as strings: the one coercion strict mode keeps.
PathField = Annotated[Path, Field(strict=False)]


class TaskSpec(_Strict):
    """One task: the user's data files and how to score them."""

    name: SafeName
    type: Literal["classification", "qa", "multiple_choice"]
    eval: PathField
    train: PathField | None = None
    corpus: PathField | None = None  # documents for RAG retrieval and continued pre-training
    preferences: PathField | None = None  # {prompt, chosen, rejected} JSONL pairs for preference tuning (dpo)
    labels: list[str] | None = None  # classification label set; inferred from the data when omitted
    instruction: str | None = None  # one line telling the model what to do, used by every strategy
    # How predictions are scored: `rank` picks the label/choice with the highest log-likelihood; `generate`
    # parses greedy generations. Default per type: DEFAULT_SCORING. QA may use `rank` when its data has choices.
    scoring: Literal["rank", "generate"] | None = None
    # `chat`: the model's chat template; `plain`: completion-style `Text: ...\nLabel:` blocks. Training and
    # scoring always use the same format. Default per type: DEFAULT_PROMPT_FORMAT.
    prompt_format: Literal["chat", "plain"] | None = None
    input_name: str | None = Field(default=None, min_length=1)  # the word before the input, e.g. "Review"
    answer_name: str | None = Field(default=None, min_length=1)  # the word before the answer (plain), e.g. "Sentiment"
    eval_limit: int | None = Field(default=200, ge=1)  # first N eval examples (None = all)
    train_limit: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _defaults_by_type(self) -> "TaskSpec":
        """Fill the type's defaults in, so the run JSON records the scoring and format actually used."""
        for key, table in (("scoring", DEFAULT_SCORING), ("prompt_format", DEFAULT_PROMPT_FORMAT),
                           ("input_name", DEFAULT_INPUT_NAME), ("answer_name", DEFAULT_ANSWER_NAME)):
            if getattr(self, key) is None:
                object.__setattr__(self, key, table[self.type])
        return self


class _StrategyBase(_Strict):
    label: SafeName | None = None  # distinguishes two settings of one strategy, e.g. lora-r4 and lora-r16
    tasks: list[str] | None = None  # restrict to these task names (default: every task)
    max_new_tokens: int = Field(default=32, ge=1)

    @property
    def name(self) -> str:
        return self.label or self.strategy  # type: ignore[attr-defined]


class _PromptedSettings(_StrategyBase):
    """The in-context strategies (base model, no training)."""

    # Contextual calibration (Zhao et al. 2021, "Calibrate Before Use"): divide each label's probability by its
    # probability for a content-free input ("N/A") in the same prompt. Rank-scored tasks only.
    calibrate: bool = False


class ZeroShotSettings(_PromptedSettings):
    strategy: Literal["zero_shot"] = "zero_shot"


class FewShotSettings(_PromptedSettings):
    strategy: Literal["few_shot"] = "few_shot"
    k: int = Field(default=4, ge=1)
    selection: Literal["random", "similar"] = "random"
    balanced: bool = True  # classification: spread the k demonstrations evenly over the labels
    # Rank-scored tasks: score each query with its demonstrations in this many orders (rotations, so each
    # demonstration is last once when orderings = k) and average the label log-probabilities. Small models copy
    # the last demonstration's label (bench/few_shot_selection.py: SmolLM2-135M on SST-2 train items, 0.67 -> 0.74
    # mean of three draws, zero-shot 0.78). Serving cost grows with it: tokens and latency count every order.
    orderings: int = Field(default=4, ge=1)
    embedder: str = "all-MiniLM-L6-v2"  # used when selection is "similar"


class RagSettings(_PromptedSettings):
    strategy: Literal["rag"] = "rag"
    top_k: int = Field(default=3, ge=1)
    chunk_size: int = Field(default=120, ge=8)  # words per chunk
    chunk_overlap: int = Field(default=20, ge=0)
    index: Literal["flat", "ivf", "hnsw"] = "flat"
    embedder: str = "all-MiniLM-L6-v2"

    @model_validator(mode="after")
    def _overlap_below_size(self) -> "RagSettings":
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        return self


class TrainSettings(_StrategyBase):
    """What every weight-changing strategy shares: one training loop, differing only in the model it builds."""

    epochs: float = Field(default=1.0, gt=0)
    max_steps: int | None = Field(default=None, ge=1)
    learning_rate: float = Field(default=2e-4, gt=0)
    batch_size: int = Field(default=8, ge=1)  # examples per micro-batch over all processes (global), packed or not
    grad_accum: int = Field(default=1, ge=1)
    max_length: int = Field(default=256, ge=8)
    packing: bool = True  # concatenate short examples into full rows (no padding waste)
    warmup_ratio: float = Field(default=0.05, ge=0, lt=1)
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"  # transformers.get_scheduler
    weight_decay: float = Field(default=0.0, ge=0)
    grad_checkpointing: bool = False
    early_stop_patience: int | None = Field(default=None, ge=1)  # epochs without eval-loss gain
    eval_fraction: float = Field(default=0.1, ge=0, lt=1)  # train examples held out for eval loss


class PeftSettings(TrainSettings):
    """Settings of a peft method: `peft_config` names its peft config class and `peft_fields` maps our field names
    onto that class's (runners.adapters builds the config; a test checks every name against peft). `peft_values`
    translates a field's values where ours are words and peft's are not (LoRA's `init: default` is peft's True)."""

    peft_config: ClassVar[str]
    peft_fields: ClassVar[dict[str, str]]
    peft_values: ClassVar[dict[str, dict[Any, Any]]] = {}


# LoRA initialisations peft has (LoraConfig.init_lora_weights): `default` zero-inits B so training starts from the
# base model; pissa and olora start the adapter from the weights' principal directions (SVD / QR) and take them out
# of the base weights, which peft converts back into a plain LoRA when the adapter is saved.
LORA_INITS = ("default", "gaussian", "orthogonal", "pissa", "olora")
MUTATING_LORA_INITS = ("pissa", "olora")


class LoraSettings(PeftSettings):
    peft_config: ClassVar[str] = "LoraConfig"
    peft_fields: ClassVar[dict[str, str]] = {"r": "r", "alpha": "lora_alpha", "dropout": "lora_dropout",
                                             "target_modules": "target_modules", "use_dora": "use_dora",
                                             "use_rslora": "use_rslora", "init": "init_lora_weights"}
    peft_values: ClassVar[dict[str, dict[Any, Any]]] = {"init": {"default": True}}
    strategy: Literal["lora"] = "lora"
    r: int = Field(default=8, ge=1)
    alpha: int = Field(default=16, ge=1)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj"]
    use_dora: bool = False  # DoRA (Liu et al. 2024): a learned magnitude per output channel times a LoRA-updated direction
    use_rslora: bool = False  # rank-stabilised scaling alpha/sqrt(r) instead of alpha/r (Kalajdzievski 2023): high ranks keep learning
    init: Literal[LORA_INITS] = "default"  # type: ignore[valid-type]


class QLoraSettings(LoraSettings):
    strategy: Literal["qlora"] = "qlora"  # type: ignore[assignment]
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True


class DpoSettings(LoraSettings):
    """Direct preference optimisation (Rafailov et al. 2023) with TRL's DPOTrainer on the task's preference pairs, LoRA
    on the policy; the reference model is the base (the adapter switched off). `eval_fraction` of the pairs is held
    out for reward accuracy; `packing` and `early_stop_patience` do not apply (TRL batches pairs itself)."""

    strategy: Literal["dpo"] = "dpo"  # type: ignore[assignment]
    learning_rate: float = Field(default=5e-5, gt=0)
    beta: float = Field(default=0.1, gt=0)  # how far the policy may move from the reference (the KL penalty's weight)
    batch_size: int = Field(default=4, ge=1)  # preference pairs per micro-batch (each pair is two sequences)


class IA3Settings(PeftSettings):
    peft_config: ClassVar[str] = "IA3Config"
    peft_fields: ClassVar[dict[str, str]] = {"target_modules": "target_modules", "feedforward_modules": "feedforward_modules"}
    strategy: Literal["ia3"] = "ia3"
    learning_rate: float = Field(default=3e-3, gt=0)
    target_modules: list[str] = ["k_proj", "v_proj", "down_proj"]
    feedforward_modules: list[str] = ["down_proj"]


class PromptTuningSettings(PeftSettings):
    peft_config: ClassVar[str] = "PromptTuningConfig"
    peft_fields: ClassVar[dict[str, str]] = {"num_virtual_tokens": "num_virtual_tokens"}
    strategy: Literal["prompt_tuning"] = "prompt_tuning"
    learning_rate: float = Field(default=3e-2, gt=0)
    num_virtual_tokens: int = Field(default=16, ge=1)


class PrefixTuningSettings(PeftSettings):
    """Prefix tuning / P-tuning v2 (Li & Liang 2021; Liu et al. 2022): trained key/value prefixes in every layer."""

    peft_config: ClassVar[str] = "PrefixTuningConfig"
    peft_fields: ClassVar[dict[str, str]] = {"num_virtual_tokens": "num_virtual_tokens", "projection": "prefix_projection",
                                             "encoder_hidden_size": "encoder_hidden_size"}
    strategy: Literal["prefix_tuning"] = "prefix_tuning"
    learning_rate: float = Field(default=1e-2, gt=0)
    num_virtual_tokens: int = Field(default=16, ge=1)
    projection: bool = False  # reparameterise the prefixes through an MLP (Li & Liang) rather than train them directly (v2)
    encoder_hidden_size: int = Field(default=512, ge=1)  # the MLP's width when `projection` is on


class PTuningSettings(PeftSettings):
    """P-tuning (Liu et al. 2021): virtual-token embeddings produced by a small trained prompt encoder (an MLP)."""

    peft_config: ClassVar[str] = "PromptEncoderConfig"
    peft_fields: ClassVar[dict[str, str]] = {"num_virtual_tokens": "num_virtual_tokens",
                                             "encoder_hidden_size": "encoder_hidden_size"}
    strategy: Literal["p_tuning"] = "p_tuning"
    learning_rate: float = Field(default=1e-3, gt=0)
    num_virtual_tokens: int = Field(default=16, ge=1)
    encoder_hidden_size: int = Field(default=128, ge=1)


class LlamaAdapterSettings(PeftSettings):
    """LLaMA-Adapter (Zhang et al. 2023): learned adaption prompts read by the top layers' attention through a
    zero-initialised gate, so training starts from the base model. Llama/Mistral-architecture models only."""

    peft_config: ClassVar[str] = "AdaptionPromptConfig"
    peft_fields: ClassVar[dict[str, str]] = {"adapter_len": "adapter_len", "adapter_layers": "adapter_layers"}
    strategy: Literal["llama_adapter"] = "llama_adapter"
    learning_rate: float = Field(default=9e-3, gt=0)
    adapter_len: int = Field(default=10, ge=1)  # adaption-prompt tokens per adapted layer
    adapter_layers: int = Field(default=8, ge=1)  # the top layers that get one (capped at the model's depth)


class FreezeSettings(TrainSettings):
    """Train only the last `layers` transformer blocks plus the final norm and LM head; everything below is frozen
    ("last layers vs all layers"; the embeddings stay frozen even when the head shares them)."""

    strategy: Literal["freeze"] = "freeze"
    learning_rate: float = Field(default=5e-5, gt=0)
    layers: int = Field(default=2, ge=1)


class FeatureBasedSettings(_StrategyBase):
    """The frozen model as a feature extractor: one hidden state per example (mean over its tokens or the last one)
    and a logistic regression on top (scikit-learn). Classification only; nothing is generated."""

    strategy: Literal["feature_based"] = "feature_based"
    pooling: Literal["mean", "last"] = "mean"
    layer: int = -1  # which hidden state: -1 the last layer's output, 0 the embeddings
    regularisation: float = Field(default=1.0, gt=0)  # scikit-learn's C (inverse L2 strength)
    batch_size: int = Field(default=16, ge=1)
    max_length: int = Field(default=256, ge=8)


class GaloreSettings(TrainSettings):
    """Full-parameter training with GaLore (Zhao et al. 2024): each 2-D weight's gradient is projected onto a rank-`rank`
    subspace (refreshed every `update_proj_gap` steps) where Adam keeps its moments; the memory saved is the optimizer's."""

    strategy: Literal["galore"] = "galore"
    learning_rate: float = Field(default=1e-4, gt=0)
    rank: int = Field(default=128, ge=1)
    update_proj_gap: int = Field(default=200, ge=1)
    scale: float = Field(default=0.25, gt=0)
    proj_type: Literal["std", "reverse_std", "right", "left", "full"] = "std"


class FullFTSettings(TrainSettings):
    strategy: Literal["full_ft"] = "full_ft"
    learning_rate: float = Field(default=2e-5, gt=0)


class CptSettings(TrainSettings):
    """Continued pre-training on the task's corpus (next-token loss on raw text), then scored like zero-shot."""

    strategy: Literal["cpt"] = "cpt"
    learning_rate: float = Field(default=5e-5, gt=0)


# The settings of any registered strategy (base.registry), told apart by their `strategy` tag.
StrategySettings = Annotated[_StrategyBase, registry.AnyRegisteredSettings()]


class ForgettingSettings(_Strict):
    """lm-eval checks of general ability, base vs adapted, after every weight-changing run."""

    enabled: bool = True
    benchmarks: list[str] = ["arc_easy", "arc_challenge", "hellaswag", "winogrande", "piqa", "boolq", "mmlu"]
    limit: int | None = Field(default=50, ge=1)  # items per benchmark (None = the full set)
    perplexity: bool = True  # cheap proxy: perplexity on held-out general text


class CostSettings(_Strict):
    """Prices used to turn measured time and tokens into dollars."""

    gpu_hour_usd: float = Field(default=2.0, ge=0)
    cpu_hour_usd: float = Field(default=0.10, ge=0)
    usd_per_1m_input_tokens: float = Field(default=0.10, ge=0)  # what a served query pays per prompt token
    usd_per_1m_output_tokens: float = Field(default=0.40, ge=0)


# accelerate's distributed_type (in its config files) -> ours
ACCELERATE_DISTRIBUTED = {"NO": "none", "MULTI_GPU": "ddp", "MULTI_CPU": "ddp", "FSDP": "fsdp", "DEEPSPEED": "deepspeed"}


class LaunchSettings(_Strict):
    """How each training run's processes are started (runners/launch.py), in `accelerate launch`'s terms.

    `num_processes` counts processes over all machines (one per GPU); 1 runs a plain process. `distributed` picks
    DDP (adapters), FSDP or DeepSpeed ZeRO-3 (full fine-tuning, CPT). `config_file` is an accelerate config (a path,
    or the name of one in configs/launch/): the fields the plan leaves out are read from it, so the plan's win.
    Multi-node: the same `adapt compare` on every machine, each with its own `machine_rank`.
    """

    num_processes: int = Field(default=1, ge=1)
    distributed: Literal["none", "ddp", "fsdp", "deepspeed"] = "ddp"
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    config_file: Path | None = None
    num_machines: int = Field(default=1, ge=1)
    machine_rank: int = Field(default=0, ge=0)
    main_process_ip: str | None = None
    main_process_port: int | None = Field(default=None, ge=1, le=65535)

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _unquoted_no(cls, value: Any) -> Any:
        """YAML reads an unquoted `no` as false."""
        return "no" if value is False else value

    @model_validator(mode="before")
    @classmethod
    def _from_config_file(cls, data: Any) -> Any:
        """Fill what the plan leaves out from the accelerate config file, so the settings say what will run."""
        if not isinstance(data, dict) or data.get("config_file") is None:
            return data
        path = Path(data["config_file"])
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read the accelerate config {path}: {exc}".splitlines()[0]) from None
        if not isinstance(config, dict):
            raise ValueError(f"{path} is not an accelerate config (a YAML mapping, as `accelerate config` writes)")
        if "distributed_type" in config:
            distributed = ACCELERATE_DISTRIBUTED.get(str(config["distributed_type"]))
            if distributed is None:
                raise ValueError(f"{path}: distributed_type {config['distributed_type']!r} is not one of "
                                 f"{sorted(ACCELERATE_DISTRIBUTED)}")
            config["distributed"] = distributed
        return {**{key: config[key] for key in cls.model_fields if key in config and key != "config_file"}, **data}

    @model_validator(mode="after")
    def _consistent(self) -> "LaunchSettings":
        if self.num_processes % self.num_machines:
            raise ValueError(f"num_processes ({self.num_processes}) must be a multiple of num_machines ({self.num_machines}): "
                             "each machine runs num_processes / num_machines of them")
        if self.machine_rank >= self.num_machines:
            raise ValueError(f"machine_rank {self.machine_rank} is not below num_machines {self.num_machines}")
        if self.num_machines > 1 and not self.main_process_ip:
            raise ValueError("several machines need main_process_ip: the address of machine_rank 0")
        if self.distributed == "none" and self.num_processes > 1:
            raise ValueError("distributed: none runs one process; set num_processes: 1 or pick ddp, fsdp or deepspeed")
        return self

    @property
    def multi_process(self) -> bool:
        return self.num_processes > 1 or self.num_machines > 1


class Plan(_Strict):
    name: str = "plan"
    model: str = DEFAULT_MODEL  # a registry name (`adapt models list`), a local HF folder or a hub id
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    output_dir: PathField = Path("results")
    tasks: list[TaskSpec] = Field(min_length=1)
    strategies: list[StrategySettings] = Field(min_length=1)
    forgetting: ForgettingSettings = Field(default_factory=ForgettingSettings)
    cost: CostSettings = Field(default_factory=CostSettings)
    launch: LaunchSettings = Field(default_factory=LaunchSettings)

    @field_validator("strategies", mode="before")
    @classmethod
    def _bare_names(cls, value: Any) -> Any:
        """Allow `- zero_shot` as shorthand for `- strategy: zero_shot`."""
        if isinstance(value, list):
            return [{"strategy": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Plan":
        task_names = [t.name for t in self.tasks]
        if len(set(task_names)) != len(task_names):
            raise ValueError(f"task names must be unique, got {task_names}")
        run_names = [s.name for s in self.strategies]
        if len(set(run_names)) != len(run_names):
            raise ValueError(f"strategies repeat {run_names}: give repeated ones a distinct `label`")
        for strategy in self.strategies:
            for name in strategy.tasks or []:
                if name not in task_names:
                    raise ValueError(f"strategy {strategy.name} names unknown task {name!r} (tasks: {task_names})")
        return self

    def runs(self) -> list[tuple[TaskSpec, StrategySettings]]:
        """Every (task, strategy) pair the plan asks for, in plan order, skipping pairs that cannot run."""
        pairs = []
        for task in self.tasks:
            for strategy in self.strategies:
                if strategy.tasks is None or task.name in strategy.tasks:
                    pairs.append((task, strategy))
        return pairs

    def check_runnable(self, source: str = "plan") -> None:
        """Fail early, before loading any model, on pairs that cannot run: missing files, missing train/corpus."""
        for task in self.tasks:
            for key in DATA_KEYS:
                path = getattr(task, key)
                if path is not None and not Path(path).exists():
                    bundled = Path(path).is_relative_to(paths.data_dir())
                    hint = "run `adapt data ensure` to provision the bundled data" if bundled else None
                    raise AdaptError(f"{key} file not found: {path}", file=source, field=f"tasks.{task.name}.{key}", hint=hint)
        if self.launch.config_file is not None and not Path(self.launch.config_file).exists():
            raise AdaptError(f"launch config file not found: {self.launch.config_file}", file=source, field="launch.config_file",
                             hint=f"a path relative to the plan, or one of {sorted(p.stem for p in (paths.CONFIGS_DIR / 'launch').glob('*.yaml'))}")
        for task, strategy in self.runs():
            entry = registry.get(strategy.strategy)
            if task.type not in entry.task_types:
                raise AdaptError(f"{strategy.strategy} runs on {' or '.join(entry.task_types)} tasks; task {task.name!r} is "
                                 f"{task.type}", file=source, field=f"strategies.{strategy.name}",
                                 hint="restrict the strategy with `tasks:` to the tasks it can run on")
            needs = entry.needs
            if "train" in needs and task.train is None:
                raise AdaptError(f"{strategy.strategy} needs a train file but task {task.name!r} has none",
                                 file=source, field=f"tasks.{task.name}.train",
                                 hint="add `train:` to the task or restrict the strategy with `tasks:`")
            if "preferences" in needs and task.preferences is None:
                raise AdaptError(f"{strategy.strategy} needs preference pairs but task {task.name!r} has none",
                                 file=source, field=f"tasks.{task.name}.preferences",
                                 hint="add `preferences:` (JSONL of {prompt, chosen, rejected}) or restrict the strategy with `tasks:`")
            if "corpus" in needs and task.corpus is None:
                raise AdaptError(f"{strategy.strategy} needs a corpus but task {task.name!r} has none",
                                 file=source, field=f"tasks.{task.name}.corpus",
                                 hint="add `corpus:` (folder of .txt/.md or JSONL of documents) or restrict the strategy with `tasks:`")


# --- loading -------------------------------------------------------------------------------------------


def _line_index(text: str) -> dict[tuple, int]:
    """Map each YAML path (keys and list indices) to its 1-based line, for error messages."""
    lines: dict[tuple, int] = {}
    seen: set[int] = set()

    def walk(node: yaml.Node, path: tuple) -> None:
        if id(node) in seen:  # an alias: its anchor's lines are indexed already (and aliases can nest exponentially)
            return
        seen.add(id(node))
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                walk(value_node, path + (key_node.value,))
                lines[path + (key_node.value,)] = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, path + (index,))

    try:
        root = yaml.compose(text)
    except (yaml.YAMLError, RecursionError):
        return lines
    if root is not None:
        walk(root, ())
    return lines


def _nearest_line(lines: dict[tuple, int], loc: tuple) -> int | None:
    """The line of the deepest YAML node on the error's path (pydantic adds union tags we skip)."""
    path = tuple(part for part in loc)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise AdaptError(f"override {text!r} is not of the form key=value", field=text,
                         hint="e.g. seed=1, tasks.sst2.eval_limit=50, strategies.lora.r=16")
    key, raw = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw) if raw.strip() else None


def apply_override(data: dict, override: str) -> None:
    """Set `a.b=c` in the raw plan dict; list items are addressed by index or by their name/label/strategy."""
    keys, value = _parse_override(override)
    node: Any = data
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        if isinstance(node, list):
            node = _list_item(node, key, override)
            if last:
                raise AdaptError(f"override {override!r} must name a field inside the list item", field=override)
            continue
        if not isinstance(node, dict):
            raise AdaptError(f"override {override!r}: {'.'.join(keys[:depth])} is not a mapping", field=override)
        if last:
            node[key] = value
        else:
            node = node.setdefault(key, {})


def _list_item(items: list, key: str, override: str) -> Any:
    if key.isdigit() and int(key) < len(items):
        return items[int(key)]
    for index, item in enumerate(items):
        if isinstance(item, str) and item == key:
            items[index] = {"strategy": item}
            return items[index]
        if isinstance(item, dict) and key in (item.get("label"), item.get("name"), item.get("strategy")):
            return item
    raise AdaptError(f"override {override!r}: no list item named {key!r}", field=override)


def _expand(value: Any, base: Path) -> Any:
    """Resolve `{data}` (the provisioned data cache) and paths relative to the plan file."""
    text = str(value).replace("{data}", str(paths.data_dir()))
    path = Path(text).expanduser()
    return path if path.is_absolute() else (base / path)


def _launch_config(value: Any, base: Path) -> Path:
    """A launch config path relative to the plan, or the name of one shipped in configs/launch/ (e.g. 8gpu-fsdp)."""
    shipped = paths.CONFIGS_DIR / "launch" / Path(str(value)).with_suffix(".yaml").name
    path = _expand(value, base)
    return shipped if not path.exists() and "/" not in str(value) and shipped.exists() else path


def parse_plan(text: str, *, source: str = "plan", base_dir: Path | None = None, overrides: list[str] = ()) -> Plan:
    """Parse and validate a plan's YAML text; every error is an AdaptError naming source, line and field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise AdaptError(f"not valid YAML: {getattr(exc, 'problem', exc)}", file=source,
                         line=mark.line + 1 if mark else None) from None
    except RecursionError:
        raise AdaptError("not valid YAML: nested too deeply", file=source) from None
    if not isinstance(data, dict):
        raise AdaptError("a plan must be a YAML mapping with at least `tasks:` and `strategies:`", file=source, line=1)
    for override in overrides:
        apply_override(data, override)
    base = base_dir or Path.cwd()
    for task in data["tasks"] if isinstance(data.get("tasks"), list) else []:
        if isinstance(task, dict):
            for key in DATA_KEYS:
                if task.get(key) is not None:
                    task[key] = _expand(task[key], base)
    if data.get("output_dir") is not None:
        data["output_dir"] = _expand(data["output_dir"], base)
    launch = data.get("launch")
    if isinstance(launch, dict) and launch.get("config_file") is not None:
        launch["config_file"] = _launch_config(launch["config_file"], base)
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        raise _as_adapt_error(exc, text, source) from None


def _as_adapt_error(exc: ValidationError, text: str, source: str) -> AdaptError:
    """Every problem pydantic found, each with its line and field (one error when there is one)."""
    lines = _line_index(text)
    problems = []
    for error in exc.errors():
        loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and registry.known(part)))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field (check its spelling; `adapt compare --help` lists the plan format)"
        problems.append(AdaptError(message, file=source, line=_nearest_line(lines, loc),
                                   field=".".join(str(part) for part in loc) or None))
    return several(problems)


def load_plan(path: str | Path, overrides: list[str] = ()) -> Plan:
    """Load a plan file; relative data paths resolve against the plan's own folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AdaptError("plan file not found", file=path) from None
    except UnicodeDecodeError as exc:
        raise AdaptError(f"plan file is not UTF-8 text (byte {exc.start})", file=path) from None
    return parse_plan(text, source=str(path), base_dir=path.resolve().parent, overrides=list(overrides))


# --- identity of a run -----------------------------------------------------------------------------------


def file_digest(path: Path | None) -> str | None:
    """sha256 of a file, or of a folder's files in sorted order, so a run changes identity when its data does."""
    if path is None:
        return None
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        hash_file(file, digest)
    return digest.hexdigest()


class RunSpec(_Strict):
    """Everything one run needs, fully resolved: what `run(cfg)` receives."""

    plan_name: str
    model: str
    seed: int
    device: str
    dtype: str
    task: TaskSpec
    strategy: StrategySettings
    forgetting: ForgettingSettings
    cost: CostSettings
    launch: LaunchSettings = Field(default_factory=LaunchSettings)
    data_hashes: dict[str, str | None]
    run_dir: PathField  # where this run keeps its artifacts (adapters, checkpoints, predictions)

    def identity(self) -> dict[str, Any]:
        """The settings that define the result; output locations and the plan's name are left out."""
        identity = {
            "model": self.model,
            "seed": self.seed,
            "device": self.device,
            "dtype": self.dtype,
            "task": self.task.model_dump(mode="json", exclude=set(DATA_KEYS)),
            "strategy": self.strategy.model_dump(mode="json", exclude={"tasks", "label"}),
            "data": self.data_hashes,
        }
        if self.launch.mixed_precision != "no":  # changes the numbers; process counts and addresses do not
            identity["mixed_precision"] = self.launch.mixed_precision
        return identity

    @property
    def config_hash(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:10]

    @property
    def run_id(self) -> str:
        return f"{self.task.name}__{self.strategy.name}__{self.config_hash}"


def resolve_device(requested: str) -> str:
    """`auto` means CUDA when present; torch is imported only here, at run time."""
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run_specs(plan: Plan, device: str | None = None) -> list[RunSpec]:
    """Resolve a plan into one RunSpec per (task, strategy) pair."""
    device = device or resolve_device(plan.device)
    digests: dict[Path, str | None] = {}

    def digest(path: Path | None) -> str | None:
        if path is None:
            return None
        if path not in digests:
            digests[path] = file_digest(path)
        return digests[path]

    specs = []
    for task, strategy in plan.runs():
        hashes = {key: digest(getattr(task, key)) for key in DATA_KEYS if key != "preferences" or task.preferences}
        spec = RunSpec(
            plan_name=plan.name, model=plan.model, seed=plan.seed, device=device, dtype=plan.dtype,
            task=task, strategy=strategy, forgetting=plan.forgetting, cost=plan.cost, launch=plan.launch,
            data_hashes=hashes, run_dir=Path(plan.output_dir),
        )
        spec.run_dir = paths.inside(plan.output_dir, "artifacts", paths.check_name(spec.run_id, field="run id",
                                                                                   pattern=paths.SAFE_RUN_ID))
        specs.append(spec)
    return specs


def _rebuild_schemas() -> None:
    """A strategy registered after import joins the union: the models that hold settings rebuild their schema."""
    for model in (Plan, RunSpec):
        model.model_rebuild(force=True)


registry.on_change(_rebuild_schemas)
