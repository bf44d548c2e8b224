"""Estimates: parameter counts against published sizes, memory against published reference points (as ranges),
orderings that must hold whatever the constants, and the cost of a query per strategy."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from advisor import estimate as est
from advisor import hardware
from base.errors import AdaptError

GB = 1e9


@pytest.mark.parametrize("name, published", [
    ("smollm2-135m-instruct", 134.5e6), ("gemma-3-270m", 268e6), ("qwen2.5-0.5b", 494e6), ("qwen2.5-7b", 7.62e9),
    ("llama-3.2-1b", 1.24e9), ("llama-3.2-3b", 3.21e9), ("llama-3.1-8b", 8.03e9), ("mistral-7b", 7.25e9),
])
def test_parameter_counts_match_published_sizes(name, published):
    assert est.KNOWN_MODELS[name].params == pytest.approx(published, rel=0.02)


def test_lora_trainable_params_match_peft_on_smollm2():
    shape = est.model_shape("smollm2-135m-instruct")
    # measured with peft 0.21 on the real model: r=8 on q_proj, v_proj
    assert est.trainable_params(shape, est.TrainSetup(r=8, targets=("q_proj", "v_proj"))) == 460_800


def test_shape_from_a_local_config_and_from_hub_ids(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
        "intermediate_size": 1536, "vocab_size": 49152, "tie_word_embeddings": True, "max_position_embeddings": 8192}))
    local = est.model_shape(str(tmp_path))
    assert replace(local, name="x") == replace(est.KNOWN_MODELS["smollm2-135m-instruct"], name="x")
    assert est.model_shape("HuggingFaceTB/SmolLM2-135M-Instruct").name == "smollm2-135m-instruct"
    assert est.model_shape("meta-llama/Llama-3.1-8B-Instruct").name == "llama-3.1-8b"
    assert est.model_shape("mistralai/Mistral-7B-v0.3").name == "mistral-7b"
    with pytest.raises(AdaptError, match="no shape known") as caught:
        est.model_shape("some/unknown-model")
    assert "smollm2-135m-instruct" in caught.value.hint


def test_config_missing_a_field_names_it(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 64}))
    with pytest.raises(AdaptError) as caught:
        est.model_shape(str(tmp_path))
    assert caught.value.field == "'num_attention_heads'"


def gib(shape, **setup) -> float:
    return est.training_memory(shape, est.TrainSetup(**setup)).total_gib


def test_torchtune_llama_8b_on_a_4090_reference_points():
    """torchtune, Llama-3.1-8B, single RTX 4090: full 18.9 GiB (paged 8-bit AdamW, optimizer in backward,
    activation checkpointing), LoRA 16.2 GiB, QLoRA 7.4 GiB."""
    shape = est.model_shape("llama-3.1-8b")
    common = dict(seq_len=512, batch=2, grad_checkpointing=True)
    full = gib(shape, strategy="full_ft", optimizer="paged_adamw_8bit", optimizer_in_backward=True, **common)
    assert 18.9 * 0.8 <= full <= 18.9 * 1.2
    assert 16.2 * 0.8 <= gib(shape, strategy="lora", **common) <= 16.2 * 1.2
    assert 7.4 * 0.8 <= gib(shape, strategy="qlora", **common) <= 7.4 * 1.2


def test_peft_llama_3b_full_versus_lora_reference_points():
    """PEFT method comparison, Llama-3.2-3B: full FT 37.2 GB vs LoRA r32 22.3 GB (bf16, batch 4)."""
    shape = est.model_shape("llama-3.2-3b")
    full = est.training_memory(shape, est.TrainSetup(strategy="full_ft", seq_len=768, batch=4)).total / GB
    lora = est.training_memory(shape, est.TrainSetup(strategy="lora", r=32, targets=("q_proj", "v_proj"),
                                                     seq_len=768, batch=4)).total / GB
    assert 37.2 * 0.75 <= full <= 37.2 * 1.25
    assert 22.3 * 0.75 <= lora <= 22.3 * 1.25
    assert 1.3 <= full / lora <= 2.2  # published ratio 1.67


@pytest.mark.parametrize("model", ["smollm2-135m-instruct", "qwen2.5-1.5b", "llama-3.1-8b"])
def test_memory_orderings(model):
    shape = est.model_shape(model)
    assert gib(shape, strategy="qlora") < gib(shape, strategy="lora") < gib(shape, strategy="full_ft")
    for strategy in ("lora", "full_ft"):
        assert gib(shape, strategy=strategy, seq_len=512) > gib(shape, strategy=strategy, seq_len=256)
        assert gib(shape, strategy=strategy, batch=16) > gib(shape, strategy=strategy, batch=8)
        plain = est.training_memory(shape, est.TrainSetup(strategy=strategy))
        checkpointed = est.training_memory(shape, est.TrainSetup(strategy=strategy, grad_checkpointing=True))
        assert checkpointed.activations < plain.activations / 3
        assert checkpointed.weights == plain.weights
    assert gib(shape, strategy="full_ft", precision="fp32") > gib(shape, strategy="full_ft", precision="bf16")
    assert gib(shape, strategy="full_ft", optimizer="adamw_8bit") < gib(shape, strategy="full_ft")


def test_qlora_weights_are_about_a_quarter_of_bf16_for_the_projections():
    shape = est.model_shape("llama-3.1-8b")
    bf16 = est.weight_bytes(shape, est.TrainSetup(strategy="lora"))
    nf4 = est.weight_bytes(shape, est.TrainSetup(strategy="qlora"))
    assert 0.3 < nf4 / bf16 < 0.4  # projections at ~0.52 byte, embeddings and head stay at 2
    single = est.weight_bytes(shape, est.TrainSetup(strategy="qlora", double_quant=False))
    assert single > nf4


def test_inference_memory_grows_with_context_and_quantisation_shrinks_it():
    shape = est.model_shape("llama-3.1-8b")
    short, long = est.inference_memory(shape, seq_len=512), est.inference_memory(shape, seq_len=32_768)
    assert long.total > short.total
    assert 14 < short.total_gib < 17  # 8.03B x 2 bytes = 15 GiB of weights
    assert est.inference_memory(shape, seq_len=512, quantised=True).total_gib < 7


def test_training_time_follows_flops_per_token():
    shape = est.model_shape("llama-3.2-1b")
    full = est.train_flops_per_token(shape, "full_ft", 256, False)
    lora = est.train_flops_per_token(shape, "lora", 256, False)
    assert full / lora == pytest.approx(1.5, rel=0.05)  # 6N vs 4N
    assert est.train_flops_per_token(shape, "full_ft", 256, True) > full
    h100 = hardware.GPUS["H100"]
    setup = est.TrainSetup(strategy="full_ft")  # 8 x 256 tokens a step
    seconds = est.train_seconds(shape, setup, 1e6, h100)
    compute = 1e6 * full / (989e12 * h100.mfu * 2048 / (2048 + est.MFU_HALF_TOKENS))
    optimizer = 1e6 / 2048 * est.optimizer_step_bytes(shape, setup) / (h100.bandwidth_gbs * 1e9)
    assert seconds == pytest.approx(compute + optimizer)
    assert est.train_seconds(shape, setup, 1e6, h100, tokens_per_step=512) > seconds  # small steps: lower MFU
    assert est.train_seconds(shape, est.TrainSetup(strategy="full_ft"), 1e6, hardware.GPUS["T4"]) > 10 * seconds
    assert est.train_seconds(shape, est.TrainSetup(strategy="qlora"), 1e6, h100) > est.train_seconds(
        shape, est.TrainSetup(strategy="lora"), 1e6, h100)


def test_queries_pay_for_extra_prompt_tokens_and_adapters_pay_none():
    load = est.Workload(query_tokens=50, output_tokens=5, few_shot_k=4, example_tokens=50, rag_top_k=3, chunk_tokens=160,
                        usd_per_1m_input_tokens=0.10, usd_per_1m_output_tokens=0.40)
    base = 50 * 0.10 + 5 * 0.40
    assert load.usd_per_1m_queries("zero_shot") == pytest.approx(base)
    assert load.usd_per_1m_queries("lora") == pytest.approx(base)
    assert load.usd_per_1m_queries("few_shot") == pytest.approx(base + 4 * 50 * 0.10)
    assert load.usd_per_1m_queries("rag") == pytest.approx(base + 3 * 160 * 0.10)
    assert load.usd_per_1m_queries("rag+lora") == load.usd_per_1m_queries("rag")


def test_strategy_estimate_lists_the_gpus_it_fits_on():
    shape = est.model_shape("llama-3.1-8b")
    gpus = list(hardware.GPUS.values())
    load = est.Workload(train_tokens=1e6)
    setup = est.TrainSetup(grad_checkpointing=True)
    qlora = est.estimate_strategy("qlora", shape, setup, load, gpus[0], gpus)
    full = est.estimate_strategy("full_ft", shape, setup, load, gpus[0], gpus)
    assert "T4" in qlora.fits and "RTX-4090" in qlora.fits
    assert "RTX-4090" not in full.fits and "A100-40GB" not in full.fits
    assert full.train_hours > qlora.train_hours / 1.3 and full.usd_train == pytest.approx(full.train_hours * 0.35)
    combo = est.estimate_strategy("cpt+lora", shape, est.TrainSetup(), est.Workload(train_tokens=1e6, corpus_tokens=1e7), gpus[-1], gpus)
    assert combo.train_hours > est.estimate_strategy("lora", shape, est.TrainSetup(), load, gpus[-1], gpus).train_hours


def test_gpu_fits_are_judged_in_bf16_even_when_training_on_the_cpu():
    shape = est.model_shape("llama-3.1-8b")
    gpus = list(hardware.GPUS.values())
    cpu = hardware.Device("CPU", 64.0, 0.05, 0.1, 0.35, is_gpu=False)
    host = est.TrainSetup(precision="fp32", host=True, grad_checkpointing=True)
    qlora = est.estimate_strategy("qlora", shape, host, est.Workload(train_tokens=1e5), cpu, gpus + [cpu])
    assert qlora.peak_memory_gib > 15  # fp32 embeddings and host allocator on the CPU
    assert "T4" in qlora.fits and "CPU" in qlora.fits  # but in bf16 it fits a 16 GB GPU


def test_cpu_benchmark_is_measured_once_and_cached(monkeypatch, fixed_cpu_benchmark):
    fixed_cpu_benchmark.unlink()
    first = hardware.cpu_gflops()
    assert first > 0.1
    readings = iter([first / 20, first * 1.1])  # a busy moment, then a quieter one
    monkeypatch.setattr(hardware, "measure_cpu_gflops", lambda: next(readings))
    assert hardware.cpu_gflops() == first  # the busy reading does not lower the figure
    assert hardware.cpu_gflops() == pytest.approx(first * 1.1)  # the best of CPU_SAMPLES readings
    monkeypatch.setattr(hardware, "measure_cpu_gflops", lambda: pytest.fail("measured more than CPU_SAMPLES times"))
    assert hardware.cpu_gflops() == pytest.approx(first * 1.1)
    cpu = hardware.local_cpu()
    assert not cpu.is_gpu and cpu.memory_gib > 0.5 and cpu.tflops == pytest.approx(first * 1.1 / 1000)


def test_gpu_lookup_ignores_case_and_punctuation():
    assert hardware.find_gpu("a100 80gb").name == "A100-80GB"
    assert hardware.find_gpu("rtx_4090").name == "RTX-4090"
    assert hardware.find_gpu("V100") is None
