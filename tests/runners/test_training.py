"""The shared training loop on tiny models: masking, packing, accumulation, schedule, checkpoints, adapters, QLoRA."""
from __future__ import annotations

import random

import pytest
import torch

from base.plan import FullFTSettings, IA3Settings, LoraSettings, PromptTuningSettings, QLoraSettings
from runners import training
from runners.full_ft import all_trainable
from runners.ia3 import ia3_model
from runners.lora import lora_model
from runners.models import is_prompt_learning
from runners.prompt_tuning import prompt_tuning_model

END = "<|im_end|>"
TOY = [
    ("<|im_start|>user\nthe movie was great<|im_end|>\n<|im_start|>assistant\n", f"positive{END}"),
    ("<|im_start|>user\na terrible boring film<|im_end|>\n<|im_start|>assistant\n", f"negative{END}"),
    ("<|im_start|>user\nwhat is the capital of france?<|im_end|>\n<|im_start|>assistant\n", f"paris{END}"),
    ("<|im_start|>user\nwater boils at one hundred degrees<|im_end|>\n<|im_start|>assistant\n", f"celsius{END}"),
]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def build_tiny_model(tiny_model_dir):
    """Identical fresh copies of the tiny model (same weights every call)."""
    from transformers import AutoModelForCausalLM

    return lambda _tokenizer=None: AutoModelForCausalLM.from_pretrained(tiny_model_dir)


def settings_for(cls, **overrides):
    base = dict(batch_size=2, max_length=64, warmup_ratio=0.0, eval_fraction=0.0)
    if cls in (LoraSettings, QLoraSettings):
        base["dropout"] = 0.0
    return cls(**{**base, **overrides})


def mean_loss(model, tokenizer, pairs):
    sequences = training.encode_pairs(tokenizer, pairs, 64)
    return training.eval_loss(model, sequences, 8, 64, True, tokenizer.pad_token_id, "cpu")


def test_labels_cover_only_completion_tokens(tiny_tokenizer):
    prompt, completion = TOY[0]
    (sequence,) = training.encode_pairs(tiny_tokenizer, [(prompt, completion)], 64)
    prompt_ids = tiny_tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tiny_tokenizer(completion, add_special_tokens=False)["input_ids"]
    assert sequence.input_ids == prompt_ids + completion_ids
    assert sequence.labels == [-100] * len(prompt_ids) + completion_ids


def test_loss_on_prompt_trains_every_token_and_windows_long_text(tiny_tokenizer):
    text = " ".join(["water boils at one hundred degrees celsius"] * 12)
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    sequences = training.encode_pairs(tiny_tokenizer, [(text, "")], 16, loss_on_prompt=True)
    assert [t for s in sequences for t in s.input_ids] == ids[: sum(len(s.input_ids) for s in sequences)]
    assert len(ids) - sum(len(s.input_ids) for s in sequences) <= 1  # only a 1-token tail (nothing to predict) is dropped
    assert all(len(s.input_ids) <= 16 and s.labels[0] == -100 and s.labels[1:] == s.input_ids[1:] for s in sequences)


def test_long_prompt_is_cut_from_the_left_keeping_the_answer(tiny_tokenizer):
    prompt = "the movie was great and the acting was wonderful " * 10
    (sequence,) = training.encode_pairs(tiny_tokenizer, [(prompt, f"positive{END}")], 12)
    completion_ids = tiny_tokenizer(f"positive{END}", add_special_tokens=False)["input_ids"]
    assert len(sequence.input_ids) == 12
    assert sequence.input_ids[-len(completion_ids):] == completion_ids
    assert sequence.labels[-len(completion_ids):] == completion_ids


def test_packing_keeps_every_token_within_max_length(tiny_tokenizer):
    rng = random.Random(0)
    words = "the movie was great and the acting was wonderful a terrible boring film".split()
    pairs = [(" ".join(rng.choices(words, k=rng.randint(1, 20))), " ".join(rng.choices(words, k=rng.randint(1, 5))) + END)
             for _ in range(60)]
    sequences = training.encode_pairs(tiny_tokenizer, pairs, 48)
    rows = training.pack([len(s.input_ids) for s in sequences], 48)
    assert sorted(i for row in rows for i in row) == list(range(len(sequences)))
    assert all(sum(len(sequences[i].input_ids) for i in row) <= 48 for row in rows)
    total = sum(len(s.input_ids) for s in sequences)
    assert total / (len(rows) * 48) > 0.85  # rows are nearly full: little padding left
    assert len(rows) < len(sequences) * 0.75  # short examples really share rows
    batch = training.collate(sequences, rows, tiny_tokenizer.pad_token_id, packed=True)
    assert batch["real_tokens"] == sum(len(s.input_ids) for s in sequences)
    assert int((batch["labels"] != -100).sum()) == sum(sum(t != -100 for t in s.labels) for s in sequences)


def test_packed_row_matches_separate_examples(tiny_model, tiny_tokenizer):
    """Restarting position ids block attention across packed examples (sdpa on CPU): logits equal unpacked ones."""
    sequences = training.encode_pairs(tiny_tokenizer, TOY, 64)
    batch = training.collate(sequences, [[0, 1, 2]], tiny_tokenizer.pad_token_id, packed=True)
    tiny_model.eval()
    with torch.no_grad():
        packed = tiny_model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        offset = 0
        for sequence in sequences[:3]:
            alone = tiny_model(input_ids=torch.tensor([sequence.input_ids]), use_cache=False).logits[0]
            assert torch.allclose(packed[offset:offset + len(sequence.input_ids)], alone, atol=1e-5)
            offset += len(sequence.input_ids)


@pytest.mark.parametrize("build, cls, lr, ratio", [(lora_model, LoraSettings, 3e-2, 0.93), (all_trainable, FullFTSettings, 3e-3, 0.6)])
def test_loss_decreases_on_repetitive_task(tiny_model, tiny_tokenizer, build, cls, lr, ratio):
    """Rank-8 attention adapters on a random 64-wide model move the loss less than training every weight."""
    model = build(tiny_model, settings_for(cls))
    before = mean_loss(model, tiny_tokenizer, TOY)
    stats = training.train(model, tiny_tokenizer, TOY * 4, settings_for(cls, epochs=10, max_steps=25, learning_rate=lr))
    after = mean_loss(model, tiny_tokenizer, TOY)
    assert stats.steps == 25
    assert after < before * ratio
    assert stats.train_loss[-1][1] < stats.train_loss[0][1]
    assert stats.tokens_per_s > 0 and stats.examples_per_s > 0


def test_trainable_parameter_counts_follow_each_method(tiny_tokenizer, build_tiny_model):

    total = sum(p.numel() for p in build_tiny_model(tiny_tokenizer).parameters())
    hidden, inter, layers, kv = 64, 128, 2, 2 * 16  # 2 kv heads x head dim 16

    def trainable(model):
        return sum(p.numel() for p in model.parameters() if p.requires_grad)

    lora = lora_model(build_tiny_model(tiny_tokenizer), LoraSettings(r=4, target_modules=["q_proj", "v_proj"]))
    assert trainable(lora) == layers * (4 * (hidden + hidden) + 4 * (hidden + kv))
    ia3 = ia3_model(build_tiny_model(tiny_tokenizer), IA3Settings())
    assert trainable(ia3) == layers * (kv + kv + inter)  # k, v scale outputs; down_proj (feed-forward) scales its input
    prompt = prompt_tuning_model(build_tiny_model(tiny_tokenizer), PromptTuningSettings(num_virtual_tokens=5))
    assert trainable(prompt) == 5 * hidden
    assert trainable(all_trainable(build_tiny_model(tiny_tokenizer))) == total


def test_grad_accumulation_matches_larger_batch(tiny_tokenizer, build_tiny_model):

    pairs = TOY * 4
    runs = {}
    for batch, accum in ((8, 1), (4, 2)):
        model = build_tiny_model(tiny_tokenizer)
        settings = settings_for(FullFTSettings, batch_size=batch, grad_accum=accum, max_length=20, max_steps=3, epochs=3,
                                learning_rate=1e-3)
        stats = training.train(model, tiny_tokenizer, pairs, settings)
        runs[(batch, accum)] = (stats, torch.cat([p.detach().flatten() for p in model.parameters()]))
    (big, big_params), (small, small_params) = runs[(8, 1)], runs[(4, 2)]
    assert big.steps == small.steps == 3
    assert [loss for _, loss in big.train_loss] == pytest.approx([loss for _, loss in small.train_loss], rel=1e-4)
    assert torch.allclose(big_params, small_params, atol=1e-5)


def test_cosine_schedule_warms_up_then_decays(tiny_model, tiny_tokenizer):
    model = lora_model(tiny_model, settings_for(LoraSettings))
    settings = settings_for(LoraSettings, batch_size=1, max_length=20, max_steps=20, epochs=20, warmup_ratio=0.2,
                            learning_rate=1e-3)
    rates = training.train(model, tiny_tokenizer, TOY, settings).learning_rate
    assert len(rates) == 20
    assert rates[0] == 0.0 and rates[4] == pytest.approx(1e-3)  # 4 warmup steps, linear
    assert rates[2] == pytest.approx(0.5e-3)
    assert all(a > b for a, b in zip(rates[4:], rates[5:]))  # then strictly decreasing
    assert rates[12] == pytest.approx(1e-3 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * 8 / 16)).item()))


def test_resume_after_crash_continues_from_last_epoch(tiny_tokenizer, tmp_path, build_tiny_model):

    settings = settings_for(FullFTSettings, epochs=3, batch_size=1, learning_rate=1e-3, eval_fraction=0.0)

    def params(model):
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    straight = build_tiny_model(tiny_tokenizer)
    expected = training.train(straight, tiny_tokenizer, TOY, settings, eval_pairs=TOY[:1])

    class Crash(Exception):
        pass

    steps_per_epoch = len(expected.train_loss) // 3

    def crash_in_epoch_two(_n, seen=[0], **fields):
        seen[0] += 1
        if seen[0] == steps_per_epoch + 1:
            raise Crash

    with pytest.raises(Crash):
        training.train(build_tiny_model(tiny_tokenizer), tiny_tokenizer, TOY, settings, eval_pairs=TOY[:1],
                       checkpoint_dir=tmp_path, progress=crash_in_epoch_two)
    assert training.read_marker(tmp_path)["epoch"] == 1
    resumed_model = build_tiny_model(tiny_tokenizer)
    resumed = training.train(resumed_model, tiny_tokenizer, TOY, settings, eval_pairs=TOY[:1], checkpoint_dir=tmp_path)
    assert resumed.resumed_from == 1
    assert resumed.steps == expected.steps and resumed.epochs_done == 3
    assert resumed.train_loss == expected.train_loss
    assert [e for e, _ in resumed.eval_loss] == [1, 2, 3]
    assert torch.allclose(params(resumed_model), params(straight), atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-3", "latest.json"]  # older checkpoints pruned


def test_changed_settings_do_not_resume_a_stale_checkpoint(tiny_model, tiny_tokenizer, tmp_path):
    training.train(tiny_model, tiny_tokenizer, TOY, settings_for(FullFTSettings, epochs=1), checkpoint_dir=tmp_path)
    again = training.train(tiny_model, tiny_tokenizer, TOY, settings_for(FullFTSettings, epochs=1, learning_rate=1e-4),
                           checkpoint_dir=tmp_path)
    assert again.resumed_from is None and again.train_loss[0][0] == 1  # trained from step 1 again


def test_early_stop_when_eval_loss_stops_improving(tiny_model, tiny_tokenizer):
    """A learning rate below float32 resolution leaves the weights, hence the eval loss, exactly unchanged."""
    settings = settings_for(FullFTSettings, epochs=5, learning_rate=1e-12, early_stop_patience=2)
    stats = training.train(tiny_model, tiny_tokenizer, TOY, settings, eval_pairs=TOY[:2])
    assert stats.stopped_early
    assert stats.epochs_done == 3  # epoch 1 sets the best, epochs 2 and 3 fail to beat it
    assert [epoch for epoch, _ in stats.eval_loss] == [1, 2, 3]
    patient = training.train(tiny_model, tiny_tokenizer, TOY, settings_for(FullFTSettings, epochs=5, learning_rate=1e-12),
                             eval_pairs=TOY[:2])
    assert not patient.stopped_early and patient.epochs_done == 5


def test_saved_adapter_reloads_with_identical_logits(tiny_tokenizer, tmp_path, build_tiny_model):
    from peft import PeftModel

    model = lora_model(build_tiny_model(tiny_tokenizer), settings_for(LoraSettings))
    folder = tmp_path / "model"
    training.train(model, tiny_tokenizer, TOY, settings_for(LoraSettings, max_steps=3, epochs=3, learning_rate=1e-2),
                   save_to=folder)
    assert (folder / "adapter_config.json").exists() and (folder / "adapter_model.safetensors").exists()
    reloaded = PeftModel.from_pretrained(build_tiny_model(tiny_tokenizer), folder)
    ids = torch.tensor([tiny_tokenizer(TOY[0][0])["input_ids"]])
    model.eval(), reloaded.eval()
    with torch.no_grad():
        trained_logits, reloaded_logits = model(input_ids=ids).logits, reloaded(input_ids=ids).logits
        base_logits = build_tiny_model(tiny_tokenizer)(input_ids=ids).logits
    assert torch.equal(trained_logits, reloaded_logits)
    assert not torch.allclose(trained_logits, base_logits)  # the adapter really changed the model


def test_qlora_gradients_flow_after_epoch_eval(tiny_model_dir, tiny_tokenizer):
    """CPU trap: an eval-mode no-grad forward repacks Linear4bit weights and corrupts later backward passes.

    The repack only happens on CPUs with AVX512-BF16; the flag is forced so this test exercises it on any CPU.
    """
    from runners.models import load_model
    from runners.qlora import qlora_model, quantization_config

    settings = settings_for(QLoraSettings, epochs=1, learning_rate=1e-2)
    model, _ = load_model(str(tiny_model_dir), "cpu", "float32", quantization_config=quantization_config(settings, "cpu"))
    model = qlora_model(model, settings)
    layers = [m for m in model.modules() if type(m).__name__ == "Linear4bit"]
    assert layers
    for layer in layers:
        layer.support_avx512bf16_for_cpu = True
    ids = torch.tensor([tiny_tokenizer(TOY[0][0] + TOY[0][1])["input_ids"]])

    def first_layer_grads():
        model.zero_grad()
        model.train()
        model(input_ids=ids, labels=ids).loss.backward()
        return torch.cat([p.grad.flatten() for n, p in model.named_parameters() if "layers.0." in n and "lora_B" in n])

    before = first_layer_grads()
    stats = training.train(model, tiny_tokenizer, TOY, settings, eval_pairs=TOY[:2])
    assert len(stats.eval_loss) == 1
    with training.eval_mode(model), torch.no_grad():  # what the per-epoch eval does, once more on the final weights
        model(input_ids=ids)
    after = first_layer_grads()
    assert after.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        model(input_ids=ids)  # the unguarded eval forward: repacks
    assert not torch.allclose(first_layer_grads(), after)  # control: the trap is real, so the guard above matters
    assert before.abs().sum() > 0


def test_epochs_since_best_counts_from_the_curve():
    assert training.epochs_since_best([]) == 0
    assert training.epochs_since_best([[1, 3.0], [2, 2.0]]) == 0
    assert training.epochs_since_best([[1, 3.0], [2, 2.0], [3, 2.5], [4, 2.0]]) == 2  # a tie is no improvement


def test_prompt_tuning_falls_back_to_padded_batches(tiny_model, tiny_tokenizer):
    model = prompt_tuning_model(tiny_model, PromptTuningSettings(num_virtual_tokens=4))
    assert is_prompt_learning(model) and not is_prompt_learning(tiny_model)
    stats = training.train(model, tiny_tokenizer, TOY, settings_for(PromptTuningSettings, max_steps=2, epochs=2))
    assert stats.steps == 2 and stats.examples_seen == 4  # batch 2 of single examples, not packed rows


def test_grad_checkpointing_is_switched_on_without_a_deprecation_warning(tiny_tokenizer, build_tiny_model):
    import warnings

    model = lora_model(build_tiny_model(tiny_tokenizer), settings_for(LoraSettings))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        training.train(model, tiny_tokenizer, TOY, settings_for(LoraSettings, max_steps=1, grad_checkpointing=True))
    assert model.base_model.model.is_activation_checkpointing
    assert not [w for w in caught if "gradient_checkpointing_enable" in str(w.message)]


@pytest.mark.parametrize("build, cls", [(lora_model, LoraSettings), (all_trainable, FullFTSettings)])
def test_sharded_runs_score_the_saved_model_which_reloads_exactly(build, cls, tiny_model_dir, tiny_tokenizer, tmp_path,
                                                                 build_tiny_model):
    """Under FSDP/DeepSpeed the main process scores what save_model gathered and wrote: base + adapter, or full weights."""
    from types import SimpleNamespace

    model = build(build_tiny_model(tiny_tokenizer), settings_for(cls))
    folder = tmp_path / "model"
    training.train(model, tiny_tokenizer, TOY, settings_for(cls, max_steps=2, epochs=2, learning_rate=1e-2), save_to=folder)
    reloaded = training.load_saved(SimpleNamespace(model=str(tiny_model_dir), dtype="float32"), folder, "cpu")
    ids = torch.tensor([tiny_tokenizer(TOY[0][0])["input_ids"]])
    model.eval(), reloaded.eval()
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, reloaded(input_ids=ids).logits)
        assert not torch.allclose(model(input_ids=ids).logits, build_tiny_model(tiny_tokenizer)(input_ids=ids).logits)


def test_a_micro_batch_over_one_row_is_spread_evenly_over_the_rows_it_needs():
    """Rows are padded to the widest: 270 tokens in rows of 256 take two rows of ~135, not 256 + 14 padded to 512."""
    lengths = [40, 35, 30, 30, 30, 30, 30, 45]
    rows = training.pack(lengths, 256)
    widths = [sum(lengths[i] for i in row) for row in rows]
    assert len(rows) == 2 and sorted(i for row in rows for i in row) == list(range(8))
    assert len(rows) * max(widths) <= 1.1 * sum(lengths)
    assert training.pack([250, 250, 250, 10], 256) == [[0], [1], [2], [3]]  # where spreading cannot fit, first fit stands
