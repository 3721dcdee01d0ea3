"""Find or build llama.cpp's ``llama-server``: the real HTTP server behind the CPU stand-in.

Lookup order: ``$SPARKBOOKS_LLAMA_SERVER``, ``llama-server`` on ``PATH`` (a user's own build),
then the cached build. :func:`build_server` compiles the llama.cpp source vendored in the
``llama-cpp-python`` sdist once (~8 min on 2 cores) and caches the binary; it is never rebuilt
when present. ``GGML_NATIVE=OFF`` matters: a native build can emit instructions (AMX, AVX-512)
that the machine running it lacks and die with ``Illegal instruction``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from . import log, sources
from .exceptions import SourceError
from .settings import settings

__all__ = ["CMAKE_FLAGS", "build_server", "cached_server", "find_server", "require_server"]

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
_BUILD_HINT = "Build it once with `sparkbooks setup llama-server` (≈8 min on 2 cores), or put your own `llama-server` on PATH."


def cached_server(cache_dir: Path | None = None) -> Path:
    """Where the cached build lives: keyed by the sdist checksum and the build flags."""
    src = sources.registry.get(SDIST)
    key = hashlib.sha256((src.sha256 or "").encode() + " ".join(CMAKE_FLAGS).encode()).hexdigest()[:12]
    return Path(cache_dir or settings.cache_dir) / "llama.cpp" / f"{src.origin.version}-{key}" / "llama-server"


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


def _run(cmd: list[str], log_file: Path, what: str) -> None:
    with open(log_file, "ab") as fh:
        done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = log_file.read_text(errors="replace").strip().splitlines()[-15:]
        raise SourceError(f"{what} failed (exit {done.returncode}); last lines of {log_file}:\n" + "\n".join(tail))


def build_server(*, jobs: int | None = None, force: bool = False) -> Path:
    """Compile ``llama-server`` from the pinned sdist and cache it; return its path.

    Raises
    ------
    SourceError
        cmake or a compiler is missing, the sdist cannot be fetched, or the build fails
        (the message carries the last lines of the build log).
    """
    target = cached_server()
    if target.is_file() and not force:
        return target
    if shutil.which("cmake") is None or shutil.which("c++") is None:
        raise SourceError("Building llama-server needs cmake and a C++ compiler: `apt-get install cmake g++` (or `pip install cmake`).")
    sdist = sources.fetch(SDIST)
    target.parent.mkdir(parents=True, exist_ok=True)
    start = log.info(f"building llama-server from {sdist.name} (once; {' '.join(CMAKE_FLAGS)})")
    with tempfile.TemporaryDirectory(prefix="sparkbooks-llama-") as work:
        work_dir = Path(work)
        with tarfile.open(sdist) as tar:
            tar.extractall(work_dir, filter="data")
        source = next(work_dir.glob("*/vendor/llama.cpp"))
        build = work_dir / "build"
        log_file = target.parent / "build.log"
        log_file.unlink(missing_ok=True)
        _run(["cmake", "-S", str(source), "-B", str(build), *CMAKE_FLAGS], log_file, "cmake configure")
        _run(["cmake", "--build", str(build), "--target", "llama-server", "-j", str(jobs or os.cpu_count() or 2)],
             log_file, "cmake build")
        built = next(build.glob("**/bin/llama-server"))
        staged = target.with_suffix(".part")
        shutil.copy2(built, staged)
        os.replace(staged, target)
    version = subprocess.run([str(target), "--version"], capture_output=True, text=True, timeout=30)
    if version.returncode != 0:
        target.unlink()
        raise SourceError(f"The freshly built llama-server does not run: {version.stderr.strip()[-300:]}")
    log.info(f"built {target} ({{time_passed}})", time=start)
    return target


def require_server() -> Path:
    """The ``llama-server`` to use; raises with the build command when there is none."""
    found = find_server()
    if found is None:
        raise SourceError(f"No llama-server found. {_BUILD_HINT}")
    return found
