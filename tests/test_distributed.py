"""torchrun launch helper, all-reduce sweep and the training memory planner: arithmetic, real launches, real faults."""

import shlex
import time

import pytest

import sparkbooks as sb
from sparkbooks.training import collectives
from sparkbooks.training import distributed
from sparkbooks.fit import training as tm


def test_launch_refuses_what_cannot_work():
    with pytest.raises(sb.InputError, match="endpoint='HOST:PORT'"):
        distributed.Launch(nproc_per_node=1, nnodes=2)
    with pytest.raises(sb.InputError, match="backend"):
        distributed.Launch(backend="mpi")
    with pytest.raises(sb.InputError, match="HOST:PORT"):
        distributed.Launch(endpoint="nohost")
    with pytest.raises(sb.InputError, match="node_rank"):
        distributed.Launch(nnodes=2, node_rank=2, endpoint="10.0.0.1:29500")


def test_second_node_command_is_the_same_job_with_its_own_rank():
    launch = distributed.Launch(nproc_per_node=1, nnodes=2, endpoint="10.0.0.1:29500", backend="nccl")
    here = launch.command("sparkbooks.training.collectives", ["--out", "x.json"])
    there = launch.command_for_node(1, "sparkbooks.training.collectives", ["--out", "x.json"])
    assert "--node-rank=0" in here and "--node-rank=1" in there
    for part in ("--nnodes=2", "--rdzv-endpoint=10.0.0.1:29500", f"--rdzv-id={launch.run_id}", "-m sparkbooks.training.collectives"):
        assert part in there
    assert there.startswith("SPARKBOOKS_DIST_BACKEND=nccl torchrun ")
    # torchrun's own argument parser accepts it and reads what node 1 must get
    from torch.distributed.run import get_args_parser

    words = shlex.split(there)
    args = get_args_parser().parse_args(words[words.index("torchrun") + 1:])
    assert (args.nnodes, args.node_rank, args.rdzv_endpoint, args.module) == ("2", 1, "10.0.0.1:29500", True)
    assert args.training_script == "sparkbooks.training.collectives" and args.training_script_args == ["--out", "x.json"]


def test_unreachable_rendezvous_fails_fast_naming_host_and_port():
    port = sb.services.free_port()  # free now: nothing listens there
    launch = distributed.Launch(nproc_per_node=1, nnodes=2, node_rank=1, endpoint=f"127.0.0.1:{port}",
                                rendezvous_timeout=5)
    started = time.perf_counter()
    with pytest.raises(sb.RendezvousError) as caught:
        distributed.run(launch, "sparkbooks.training.collectives", ["--out", "unused.json", "--sizes", "1024"], timeout=120)
    assert time.perf_counter() - started < 60
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and f"TCP port {port}" in message and "GLOO_SOCKET_IFNAME" in message


def test_bus_bandwidth_is_nccl_tests_arithmetic():
    rate = collectives.bus_bandwidth(1e9, 0.5, 2)
    assert rate.algbw == 2e9 and rate.busbw == 2e9  # 2(n-1)/n = 1 for two ranks
    assert collectives.bus_bandwidth(1e9, 1.0, 8).busbw == pytest.approx(1.75e9)
    with pytest.raises(sb.InputError):
        collectives.bus_bandwidth(1e9, 0.0, 2)


def test_link_check_names_the_fixes_only_when_slow():
    import pandas as pd

    slow = pd.DataFrame({"bytes": [2**20, 2**30], "busbw_GBps": [1.0, 3.0]})
    check = collectives.check_link(slow, limit_bytes_per_s=25e9)
    assert not check.healthy and check.share == pytest.approx(0.12) and any("MTU 9000" in a for a in check.advice)
    assert "NCCL_IB_HCA" in str(check)
    fast = pd.DataFrame({"bytes": [2**30], "busbw_GBps": [23.7]})
    assert collectives.check_link(fast, limit_bytes_per_s=25e9).healthy


def test_link_fixes_credit_the_nccl_release_build_for_3_to_23_gbps():
    """dgx-spark-playbooks PR #103: with MTU 9000 and NCCL_IB_HCA already set a development-branch NCCL plateaued at
    3.04 GB/s; the release tag v2.28.9-1 gave 23.74 (review 46 item 4: the fixes credited MTU + HCA alone)."""
    fixes = collectives.KNOWN_FIXES
    assert "release" in fixes[0] and "v2.28.9-1" in fixes[0] and "PR #103" in fixes[0]  # the decisive one first
    assert any("MTU 9000" in f for f in fixes) and any("both PCIe halves" in f for f in fixes)
    slow = collectives.check_link(__import__("pandas").DataFrame({"bytes": [2**30], "busbw_GBps": [3.04]}),
                                  limit_bytes_per_s=25e9)
    assert str(slow).splitlines()[1].startswith("  fix: NCCL built from a release tag")


def test_collective_timeout_outlasts_a_cold_peer_loading_weights(monkeypatch):
    """Rank 0 waits in broadcast while a cold node 1 still loads 16 GB of weights: 60 s was too short (review 46
    item 8). Ten minutes, torch's NCCL default, on both nodes: node 1's workers default to it, and its printed command
    carries any other value."""
    launch = distributed.Launch(nproc_per_node=1, nnodes=2, endpoint="10.0.0.1:29500", backend="gloo", link_env={})
    assert launch.collective_timeout == distributed.COLLECTIVE_TIMEOUT == 600
    assert launch.environment()["SPARKBOOKS_DIST_TIMEOUT"] == "600.0"
    assert "SPARKBOOKS_DIST_TIMEOUT" not in launch.command_for_node(1, "sparkbooks.training.collectives")  # the default
    longer = distributed.Launch(nproc_per_node=1, nnodes=2, endpoint="10.0.0.1:29500", link_env={}, collective_timeout=1800)
    assert "SPARKBOOKS_DIST_TIMEOUT=1800 " in longer.command_for_node(1, "sparkbooks.training.collectives")
    seen = {}
    import torch.distributed as dist

    monkeypatch.delenv("SPARKBOOKS_DIST_TIMEOUT", raising=False)
    for name, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "SPARKBOOKS_DIST_BACKEND": "gloo"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: seen.update(kw))
    monkeypatch.setattr(dist, "get_rank", lambda: 0)
    monkeypatch.setattr(dist, "get_world_size", lambda: 1)
    distributed.init_worker()
    assert seen["timeout"].total_seconds() == 600  # a worker started without the variable waits as long


def test_all_reduce_sweep_on_two_gloo_ranks():
    table = collectives.sweep(distributed.Launch(nproc_per_node=2, threads_per_rank=1), [4096, 2**20], iterations=3)
    assert list(table["bytes"]) == [4096, 2**20]
    assert (table["ranks"] == 2).all() and (table["backend"] == "gloo").all()
    assert (table["busbw_GBps"] > 0).all()
    assert table["busbw_GBps"].tolist() == pytest.approx(table["algbw_GBps"].tolist())  # n = 2


# --- the training memory planner ---------------------------------------------------------------

def test_lora_parameter_count_matches_peft():
    pytest.importorskip("peft")
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=500, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    shape = tm.TransformerShape("tiny", float(model.num_parameters()), 3, 64, 160, 4, 2, 500, True, "test")
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=list(tm.TARGETS), task_type="CAUSAL_LM"))
    assert tm.lora_params(shape, 4) == sum(p.numel() for p in peft.parameters() if p.requires_grad)
    with pytest.raises(sb.InputError, match="Unknown LoRA targets"):
        tm.lora_params(shape, 4, ("qkv",))


def test_shape_from_config_counts_the_parameters(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=500, tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    shape = tm.TransformerShape.from_config(tmp_path / "config.json")
    assert shape.params == LlamaForCausalLM(config).num_parameters()
    with pytest.raises(sb.InputError, match="config.json"):
        tm.TransformerShape.from_config(tmp_path / "missing.json")


def test_full_fine_tuning_costs_eight_bytes_per_bf16_parameter_sixteen_mixed_and_fsdp_shards_it():
    recipe = tm.TrainRecipe("3B", tm.LLAMA_3_2_3B, method="full", micro_batch=1, seq_len=1)
    one = tm.training_memory(recipe, overhead=0)
    states = one.weights + one.gradients + one.optimizer
    assert states / tm.LLAMA_3_2_3B.params == pytest.approx(8.0)  # BF16 weight, grad and both adamw_torch moments
    mixed = tm.training_memory(tm.TrainRecipe("3B", tm.LLAMA_3_2_3B, method="full", micro_batch=1, seq_len=1,
                                              master_weights=True), overhead=0)
    assert (mixed.weights + mixed.gradients + mixed.optimizer) / tm.LLAMA_3_2_3B.params == pytest.approx(16.0)
    fp32 = tm.training_memory(tm.TrainRecipe("3B", tm.LLAMA_3_2_3B, method="full", micro_batch=1, seq_len=1,
                                             weight_bytes=4.0), overhead=0)
    assert (fp32.weights + fp32.gradients + fp32.optimizer) / tm.LLAMA_3_2_3B.params == pytest.approx(16.0)
    two = tm.training_memory(tm.TrainRecipe("3B", tm.LLAMA_3_2_3B, method="full", micro_batch=1, seq_len=1, ranks=2,
                                            weight_bytes=4.0), overhead=0)
    assert two.optimizer == pytest.approx(fp32.optimizer / 2) and two.gradients == pytest.approx(fp32.gradients / 2)
    assert two.activations == fp32.activations  # sharding does not split a rank's micro-batch


def test_two_spark_full_sft_pays_fsdp2s_fp32_upcast():
    """NVIDIA's two-Spark 3B full SFT is accelerate FSDP2 with mixed_precision bf16 (config_finetuning.yaml), and
    accelerate's fsdp2_prepare_model upcasts trainable parameters to FP32: 16 B/param sharded over 2, not 8 (review 46
    item 5). The one-Spark recipe (plain Trainer, BF16 adamw_torch) stays at 8."""
    recipe = tm.TrainRecipe("3B", tm.LLAMA_3_2_3B, method="full", micro_batch=1, seq_len=1, ranks=2)
    two = tm.training_memory(recipe, overhead=0)
    assert (two.gradients + two.optimizer) * 2 / tm.LLAMA_3_2_3B.params == pytest.approx(12.0)  # FP32 grad + 2 moments
    assert two.weights * 2 / tm.LLAMA_3_2_3B.params == pytest.approx(4.0, rel=0.05)  # FP32 shard + one BF16 layer
    table = tm.recipe_table(seq_lens=(2048,))
    full = table.query("recipe == 'Llama 3.2 3B full SFT' and not checkpointing").iloc[0]
    assert float(full["2× DGX Spark"].split()[1]) >= 104  # was 92.9 at 8 B/param
    assert full["2× DGX Spark"].startswith("⚠")  # 111.0 of 119.7 GiB: above check_fits' 0.9 gate (review 46 item 3)
    lora_one, lora_two = (tm.training_memory(tm.TrainRecipe(**{**tm.OFFICIAL_RECIPES[1].__dict__, "ranks": n}))
                          for n in (1, 2))
    assert lora_two.optimizer == pytest.approx(lora_one.optimizer / 2)  # LoRA adapters: FP32 already, FSDP1 shards


def test_checkpointing_and_qlora_cut_what_they_should():
    lora = tm.OFFICIAL_RECIPES[1]
    plain, ckpt = tm.training_memory(tm.TrainRecipe(**{**lora.__dict__, "checkpointing": False})), tm.training_memory(lora)
    assert ckpt.activations < plain.activations / 10 and ckpt.weights == plain.weights
    q = tm.training_memory(tm.OFFICIAL_RECIPES[2])
    assert q.weights < tm.LLAMA_3_1_70B.params * 0.7  # ~4.1 bits + FP32 embeddings/head/norms (8.4 GB), not 16 bits
    # peft's prepare_model_for_kbit_training checkpoints by default: QLoRA "without checkpointing" is not a run
    no_ckpt = tm.training_memory(tm.TrainRecipe(**{**tm.OFFICIAL_RECIPES[2].__dict__, "checkpointing": False}))
    assert no_ckpt.activations == q.activations
    table = tm.recipe_table(seq_lens=(2048,))
    rows = table.query("recipe == 'Llama 3.1 70B QLoRA r8'")
    assert rows["checkpointing"].tolist() == [True]
    assert rows.iloc[0]["DGX Spark"].startswith("⚠") and rows.iloc[0]["DGX Station (HBM)"].startswith("✓")  # FP32 residual: 115.8 GiB
    # NVIDIA's 3B full SFT (BF16, adamw_torch, 8 x 2,048 tokens, no checkpointing) fits one Spark: 8 B/param, not 16
    full = table.query("recipe == 'Llama 3.2 3B full SFT' and not checkpointing").iloc[0]
    assert not full["DGX Spark"].startswith("✗")  # 110.8 GiB: within 119.7, above the 0.9 gate


# ---- the device policy decides the backend, and NCCL gets one CUDA device per rank (issue 52 item 2) -----------------

from sparkbooks import devices, settings  # noqa: E402

_ONE_GPU = devices.Devices(policy="auto", torch_cuda=1, cuda_name="NVIDIA GB10", compute_capability="12.1",
                           unified_memory=True, nccl=True, installed=("torch",))


@pytest.fixture
def one_gpu(monkeypatch):
    """This node as a DGX Spark: one CUDA device torch computes on, NCCL available."""
    monkeypatch.delenv("SPARKBOOKS_ACCELERATOR", raising=False)
    settings.reset()
    devices.refresh(_ONE_GPU)
    yield
    settings.reset()
    devices.refresh()


def test_auto_backend_follows_the_device_policy(one_gpu):
    assert distributed.Launch(nproc_per_node=1, backend="auto").backend == "nccl"
    assert distributed.Launch(nproc_per_node=2, backend="auto").backend == "gloo"  # two ranks, one GPU
    settings.accelerator = "cpu"
    assert distributed.Launch(nproc_per_node=1, backend="auto").backend == "gloo"


def test_nccl_with_more_ranks_than_gpus_is_refused_before_torchrun_starts(one_gpu):
    launch = distributed.Launch(nproc_per_node=2, backend="nccl")
    with pytest.raises(sb.InputError, match=r"one CUDA device per rank: 2 ranks per node.*1 CUDA device"):
        distributed.run(launch, "sparkbooks.training.collectives", timeout=60)
    distributed.Launch(nproc_per_node=1, backend="nccl").check_devices()  # one rank, one GPU: fine
    settings.accelerator = "cpu"  # the cpu policy lends torch no GPU at all
    with pytest.raises(sb.InputError, match=r"0 CUDA device.*SPARKBOOKS_ACCELERATOR=cpu"):
        distributed.Launch(nproc_per_node=1, backend="nccl").check_devices()
    # a launch only printed for another node (the second Spark's command) is never checked here
    assert "--node-rank=1" in distributed.Launch(nproc_per_node=4, nnodes=2, endpoint="10.0.0.1:29500",
                                                 backend="nccl").command_for_node(1, "m")


def test_default_backend_asks_the_policy_not_torch(one_gpu, monkeypatch):
    torch = pytest.importorskip("torch")
    from sparkbooks.training import finetune

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # torch sees a GPU …
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert finetune.default_backend() == "nccl" and finetune.default_backend(ranks_per_node=2) == "gloo"
    settings.accelerator = "cpu"  # … but the policy is cpu (make test on a Spark)
    assert finetune.default_backend() == "gloo"


def test_node_zero_waiting_for_its_peer_prints_the_peers_command_with_a_heartbeat(capsys):
    """Issue 46 item 5: the terminal showed only "running fine-tune" for the whole join timeout."""
    port = sb.services.free_port()
    launch = distributed.Launch(nproc_per_node=1, nnodes=2, node_rank=0, endpoint=f"127.0.0.1:{port}",
                                rendezvous_timeout=6)
    with pytest.raises(sb.RendezvousError) as caught:
        distributed.run(launch, "sparkbooks.training.collectives", ["--out", "unused.json", "--sizes", "1024"],
                        timeout=120, every=1.0)
    printed = capsys.readouterr().out
    peer = launch.command_for_node(1, "sparkbooks.training.collectives", ["--out", "unused.json", "--sizes", "1024"])
    assert printed.count("waiting for node(s) 1") >= 3 and printed.count(peer) >= 3  # at once, then every second
    assert "--node-rank=1" in peer and "--rdzv-backend=static" in peer
    assert "did not join" in str(caught.value) and peer in str(caught.value)


def test_sweep_times_back_to_back_calls_like_nccl_tests(tmp_path, monkeypatch):
    """all_reduce_perf: 20 timed calls after 5 warm-ups, no barrier between them (issue 46 item 1)."""
    import json

    import torch.distributed as dist

    calls = {"barrier": 0, "all_reduce": 0}
    real_barrier, real_all_reduce = dist.barrier, dist.all_reduce

    def barrier(*a, **k):
        calls["barrier"] += 1
        return real_barrier(*a, **k)

    def all_reduce(*a, **k):
        calls["all_reduce"] += 1
        return real_all_reduce(*a, **k)

    monkeypatch.setattr(dist, "barrier", barrier)
    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(sb.services.free_port()), "SPARKBOOKS_DIST_BACKEND": "gloo"}.items():
        monkeypatch.setenv(key, value)
    # the worker ends in finish_worker(), whose os._exit(0) would end pytest itself with status 0, silently
    monkeypatch.setattr(distributed, "finish_worker", lambda: dist.destroy_process_group())
    collectives._worker(["--out", str(tmp_path / "s.json"), "--sizes", "4096"])
    assert calls["barrier"] <= 1  # one before the timed loop, none per call
    assert calls["all_reduce"] == 5 + 20 + 1  # warm-up, timed, the max-reduce of the time
    assert json.loads((tmp_path / "s.json").read_text())[0]["bytes"] == 4096


_ABORTED_RANK_LOG = """progress: step 8/8 loss 2.901 (1,234 tokens/s)
terminate called after throwing an instance of 'gloo::IoException'
  what():  [../third_party/gloo/gloo/transport/tcp/pair.cc:598] Connection closed by peer [127.0.0.1]:41234
Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/torch/distributed/run.py", line 905, in main
    run(args)
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
======================================================
Root Cause (first observed failure):
[0]:
  rank      : 1 (local_rank: 1)
  exitcode  : -6 (pid: 4272)
  traceback : Signal 6 (SIGABRT) received by PID 4272
======================================================
"""


def test_a_rank_killed_by_a_signal_is_reported_with_its_own_last_lines(tmp_path):
    # CI once saw "rank 1 exited with exit code -6" and only torchrun's traceback: the rank's own
    # "terminate called …" line, the only one that says why, sat above the 25 lines shown.
    job = distributed.Torchrun.__new__(distributed.Torchrun)
    job.launch, job.module, job.args = distributed.Launch(nproc_per_node=2).resolved(), "some.worker", []
    job.log_path = tmp_path / "torchrun.log"
    job.log_path.write_text(_ABORTED_RANK_LOG + "\n".join(f"  torchrun frame {i}" for i in range(40)) + "\n")
    error = distributed._diagnose(job, 1)
    assert isinstance(error, sb.RankFailedError) and "rank 1 exited with exit code -6" in str(error)
    assert "Connection closed by peer" in str(error) and "step 8/8" in str(error)
