"""The plan's `launch:` section, the shipped accelerate configs and the command each run is started with."""
from __future__ import annotations

import sys

import pytest

from base import paths
from base.errors import AdaptError
from base.plan import parse_plan, run_specs
from runners.launch import check_launchable, command, exit_reason

PLAN = """\
model: some/model
device: {device}
tasks:
  - {{name: t, type: classification, train: train.jsonl, eval: eval.jsonl}}
strategies:
  - lora
  - full_ft
  - zero_shot
  - feature_based
{launch}
"""
SHIPPED = sorted((paths.CONFIGS_DIR / "launch").glob("*.yaml"))


def specs(tmp_path, launch: str = "", overrides=(), device: str = "cuda"):
    for name in ("train.jsonl", "eval.jsonl"):
        (tmp_path / name).write_text('{"text": "a", "label": "b"}\n')
    plan = parse_plan(PLAN.format(device=device, launch=launch), source="plan.yaml", base_dir=tmp_path,
                      overrides=list(overrides))
    return {spec.strategy.name: spec for spec in run_specs(plan)}


def launched(spec):
    return command(spec, spec.run_dir / "spec.json", spec.run_dir / "result.json")


def option(cmd, name):
    return cmd[cmd.index(name) + 1]


def test_one_process_runs_plain_python(tmp_path):
    for spec in specs(tmp_path).values():
        cmd = launched(spec)
        assert cmd[:3] == [sys.executable, "-m", "runners.launch"] and cmd[3].endswith("spec.json")


def test_override_sets_processes_for_training_and_scoring_only_runs(tmp_path):
    runs = specs(tmp_path, overrides=["launch.num_processes=4", "launch.mixed_precision=bf16"])
    lora = launched(runs["lora"])
    assert lora[1:3] == ["-m", "accelerate.commands.launch"] and "--multi_gpu" in lora
    assert option(lora, "--num_processes") == "4" and option(lora, "--mixed_precision") == "bf16"
    assert lora[lora.index("--module") + 1] == "runners.launch"
    zero_shot = launched(runs["zero_shot"])  # scoring only: its eval items split between the processes
    assert zero_shot[1:3] == ["-m", "accelerate.commands.launch"] and option(zero_shot, "--num_processes") == "4"
    assert launched(runs["feature_based"])[2] == "runners.launch"  # one classifier on every feature: one plain process
    assert runs["lora"].config_hash != specs(tmp_path)["lora"].config_hash  # bf16 changes the numbers
    assert specs(tmp_path, overrides=["launch.num_processes=4"])["lora"].config_hash == specs(tmp_path)["lora"].config_hash


def test_cpu_processes_go_through_torchrun(tmp_path):
    cmd = launched(specs(tmp_path, "launch: {num_processes: 2}", device="cpu")["lora"])
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert cmd[5:7] == ["-m", "runners.launch"]


def test_fsdp_without_config_uses_the_shipped_one_with_the_plans_process_count(tmp_path):
    cmd = launched(specs(tmp_path, "launch: {num_processes: 4, distributed: fsdp}")["full_ft"])
    assert option(cmd, "--config_file") == str(paths.CONFIGS_DIR / "launch" / "8gpu-fsdp.yaml")
    assert "--use_fsdp" in cmd and option(cmd, "--num_processes") == "4"


@pytest.mark.parametrize("config", SHIPPED, ids=lambda p: p.stem)
def test_shipped_configs_load_in_accelerate_and_in_a_plan(config, tmp_path):
    """Each shipped config is one accelerate reads, a plan can name, and that yields a launch accelerate accepts."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    loaded = load_config_from_file(str(config))
    launch = specs(tmp_path, f"launch: {{config_file: {config.stem}}}")["full_ft"].launch
    assert launch.config_file == config
    assert launch.num_processes == loaded.num_processes and launch.num_machines == loaded.num_machines
    assert launch.mixed_precision == loaded.mixed_precision
    assert launch.distributed == {"NO": "none", "MULTI_GPU": "ddp", "FSDP": "fsdp", "DEEPSPEED": "deepspeed"}[loaded.distributed_type.value]
    spec = specs(tmp_path, f"launch: {{config_file: {config.stem}}}")["full_ft"]
    cmd = launched(spec)
    if launch.num_processes == 1:
        assert cmd[2] == "runners.launch"
        return
    args = launch_command_parser().parse_args(cmd[3:])  # accelerate's own parser takes our options
    assert args.config_file == str(config) and args.module and args.training_script == "runners.launch"
    assert args.num_processes == loaded.num_processes and args.num_machines == loaded.num_machines


def test_two_nodes_pass_rank_and_address(tmp_path):
    overrides = ["launch.config_file=2node-ddp", "launch.machine_rank=1", "launch.main_process_ip=192.168.1.7"]
    cmd = launched(specs(tmp_path, overrides=overrides)["lora"])
    assert option(cmd, "--num_machines") == "2" and option(cmd, "--num_processes") == "16"
    assert option(cmd, "--machine_rank") == "1" and option(cmd, "--main_process_ip") == "192.168.1.7"
    assert option(cmd, "--main_process_port") == "29500"  # from the config file
    cpu = launched(specs(tmp_path, overrides=overrides, device="cpu")["lora"])
    assert "--nproc_per_node=8" in cpu and "--node_rank=1" in cpu and "--master_addr=192.168.1.7" in cpu


@pytest.mark.parametrize("launch, field, words", [
    ("launch: {num_processes: 3, num_machines: 2, main_process_ip: h}", "launch", "multiple of num_machines"),
    ("launch: {num_processes: 2, num_machines: 2}", "launch", "main_process_ip"),
    ("launch: {machine_rank: 1}", "launch", "not below num_machines"),
    ("launch: {num_processes: 2, distributed: none}", "launch", "distributed: none"),
    ("launch: {distributed: megatron}", "launch.distributed", "Input should be"),
    ("launch: {config_file: nowhere.yaml}", "launch", "cannot read the accelerate config"),
])
def test_bad_launch_settings_name_the_field_and_line(tmp_path, launch, field, words):
    with pytest.raises(AdaptError) as caught:
        specs(tmp_path, launch)
    assert caught.value.field == field and words in str(caught.value)
    assert caught.value.line == 10


def test_exit_reasons_name_the_signal():
    assert exit_reason(-9) == "process killed by SIGKILL (the kernel's out-of-memory killer sends SIGKILL)"
    assert exit_reason(-15) == "process killed by SIGTERM"
    assert exit_reason(3) == "process exited with code 3 without writing a result"


def test_fsdp_on_cpu_is_refused_before_anything_runs(tmp_path):
    """accelerate 1.15 enables FSDP/DeepSpeed only on GPUs; CPU processes would silently run DDP over gloo."""
    runs = specs(tmp_path, "launch: {num_processes: 2, distributed: fsdp}", device="cpu")
    with pytest.raises(AdaptError, match="needs GPUs") as caught:
        check_launchable(list(runs.values()))
    assert caught.value.field == "launch.distributed"
    check_launchable(list(specs(tmp_path, "launch: {num_processes: 2, distributed: fsdp}").values()))  # CUDA: fine
    check_launchable(list(specs(tmp_path, "launch: {num_processes: 2}", device="cpu").values()))  # DDP on CPU: fine
