"""What the guides tell a Spark user to type: serve commands that agree with the profiles, and vLLM flags that start."""

import json
import re
import shlex

import pytest

import sparkbooks as sb

PLAYBOOKS = sb.catalog.discover()


def _bash_blocks(pb) -> list[str]:
    nb = json.loads(pb.path.read_text())
    text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    return re.findall(r"```bash\n(.*?)```", text, re.S)


def _commands(pb) -> list[list[str]]:
    """Every command line in the guide's bash blocks, continuation lines joined, comments dropped, as argv."""
    commands = []
    for block in _bash_blocks(pb):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                commands.append(shlex.split(line))
    return commands


def serve_commands(pb) -> list[list[str]]:
    """Each `vllm serve …`, `docker run … vllm/vllm-openai … MODEL …` and `llama-server …` command, as argv."""
    return [argv for argv in _commands(pb) if argv[:1] == ["llama-server"] or argv[:2] == ["vllm", "serve"]
            or any(a.startswith("vllm/vllm-openai") for a in argv)]


def bench_commands(pb) -> list[list[str]]:
    """Each `vllm bench serve …` command (a client of the served model), as argv."""
    return [argv for argv in _commands(pb) if argv[:3] == ["vllm", "bench", "serve"]]


def served_name(argv: list[str]) -> str:
    """The model id the command's server lists at /v1/models."""
    for flag in ("--served-model-name", "--alias"):
        for i, arg in enumerate(argv):
            if arg == flag:
                return argv[i + 1]
            if arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
    if argv[0] == "llama-server":
        model = argv[argv.index("-m") + 1] if "-m" in argv else argv[argv.index("-hf") + 1]
        return model.rsplit("/", 1)[-1].removesuffix(".gguf")  # llama.cpp serves the file's name
    image = next(i for i, a in enumerate(argv) if a.startswith("vllm/vllm-openai") or a == "serve")
    return argv[image + 1]


WITH_COMMANDS = [pb for pb in PLAYBOOKS if serve_commands(pb)]


def test_the_vllm_bench_command_asks_for_the_served_model_with_the_sweeps_method():
    pb = next(p for p in PLAYBOOKS if p.slug == "nemotron-nano")
    (argv,) = bench_commands(pb)
    # flags with a value: a "--flag" followed by a word that is not itself a flag (boolean flags take none)
    flags = {a: b for a, b in zip(argv, argv[1:] + [""]) if a.startswith("--") and not b.startswith("--")}
    assert argv[argv.index("--served-model-name") + 1] == pb.profiles["spark"]["model"]
    assert "/" in argv[argv.index("--model") + 1]  # the HF id: `vllm bench serve` loads its tokenizer from --model
    assert "--ignore-eos" in argv and flags.get("--dataset-name") == "random"  # fixed output length, random prompts
    assert int(argv[argv.index("--random-input-len") + 1]) == pb.profiles["spark"]["input_tokens"]
    assert int(argv[argv.index("--random-output-len") + 1]) == pb.profiles["spark"]["output_tokens"]


@pytest.mark.parametrize("pb", WITH_COMMANDS, ids=lambda pb: pb.slug)
def test_every_serve_command_serves_the_name_the_spark_profile_asks_for(pb):
    names = {" ".join(argv[:3]): served_name(argv) for argv in serve_commands(pb)}
    wanted = pb.profiles["spark"].get("model")
    assert wanted, f"{pb.slug}: the spark profile should name the model its commands serve"
    assert set(names.values()) == {wanted}, names


@pytest.mark.parametrize("pb", WITH_COMMANDS, ids=lambda pb: pb.slug)
def test_vllm_commands_keep_memory_for_the_os_and_need_no_missing_plugin(pb):
    for argv in serve_commands(pb):
        if argv[0] == "llama-server":
            continue
        assert "--gpu-memory-utilization" in argv and float(argv[argv.index("--gpu-memory-utilization") + 1]) <= 0.8, argv
        assert not any(a.startswith("--reasoning-parser-plugin") for a in argv), "a plugin file nobody mounted"
        assert any(re.fullmatch(r"vllm/vllm-openai:v\d+\.\d+\.\d+", a) for a in argv), "pin the vLLM image"


def test_parallel_slots_cover_the_largest_concurrency():
    for pb in WITH_COMMANDS:
        levels = pb.profiles["spark"].get("concurrency")
        for argv in serve_commands(pb):
            if argv[0] == "llama-server" and levels:
                assert int(argv[argv.index("--parallel") + 1]) >= max(levels), (pb.slug, argv)


def test_the_parser_finds_a_mismatch():
    argv = shlex.split("llama-server -m Nemotron-3-Nano-30B-A3B-Q8_0.gguf --port 8000")
    assert served_name(argv) == "Nemotron-3-Nano-30B-A3B-Q8_0"  # llama.cpp without --alias serves the file name
    argv = shlex.split("docker run --gpus all vllm/vllm-openai:v0.20.0 org/Model --port 8000")
    assert served_name(argv) == "org/Model"
