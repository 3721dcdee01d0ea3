"""sparkbooks.devices: one device policy, probed once, honoured everywhere — and nothing else asks."""

import ast
import json
from pathlib import Path

import pytest

from sparkbooks import devices, settings
from sparkbooks.exceptions import AcceleratorUnavailableError, InputError

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "shared" / "sparkbooks"

GIB = 2**30
#: a DGX Spark as the probes would see it (everything works)
SPARK = devices.Devices(policy="auto", torch_cuda=1, cuda_name="NVIDIA GB10", compute_capability="12.1",
                        unified_memory=True, bf16=True, nccl=True, warp_cuda=1, cudf=True,
                        installed=("torch", "warp", "cudf", "cuml", "cupy", "rapids_singlecell", "nx_cugraph", "cuopt"),
                        available_bytes=100 * GIB)


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv("SPARKBOOKS_ACCELERATOR", raising=False)
    settings.reset()
    devices.refresh()
    yield
    settings.reset()
    devices.refresh()


# ---- the AST contract: no GPU predicate outside devices.py ----------------------------------------------------------

#: attribute-call suffixes that ask "is there a GPU" (torch, Warp, CuPy)
_PREDICATE_CALLS = ("cuda.is_available", "cuda.device_count", "cuda.mem_get_info", "cuda.get_device_properties",
                    "cuda.get_device_name", "cuda.get_device_capability", "cuda.is_bf16_supported",
                    "is_nccl_available", "is_cuda_available", "get_cuda_device_count", "get_cuda_devices",
                    "runtime.getDeviceCount")
_GPU_LIBRARIES = {"cudf", "cuml", "cupy", "rapids_singlecell", "nx_cugraph", "cuopt", "cugraph", "pylibcugraph"}
#: engine files allowed to read the hardware list (profile choice, reports); never a field folder
_HARDWARE_READERS = {"hardware.py", "catalog.py", "doctor.py", "devices.py"}


#: the device policy's own modules: the only place that measures the GPU (devices asks, device_probe measures)
_POLICY_MODULES = {"devices.py", "device_probe.py", "device_report.py"}


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    elif isinstance(node, ast.Call):
        parts.append(_dotted(node.func) + "()")
    return ".".join(reversed(parts))


def gpu_predicates(source: str, *, filename: str = "") -> list[str]:
    """Every GPU predicate in ``source``: ``"line: what"`` (empty for devices.py's own clients)."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        where = getattr(node, "lineno", 0)
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            if any(name == s or name.endswith("." + s) for s in _PREDICATE_CALLS):
                found.append(f"{where}: {name}()")
            elif name.split(".")[-1] == "probe_gpu" and filename != "accel.py":
                found.append(f"{where}: {name}() (ask sparkbooks.devices)")
            elif name.split(".")[-1] in ("find_spec", "import_module") and node.args \
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str) \
                    and node.args[0].value.split(".")[0] in _GPU_LIBRARIES:
                found.append(f"{where}: {name}({node.args[0].value!r})")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.strip().rsplit("/", 1)[-1] == "nvidia-smi":
            found.append(f"{where}: 'nvidia-smi'")
        elif isinstance(node, ast.Attribute):
            if node.attr == "has_nvidia_gpu" and filename not in _HARDWARE_READERS:
                found.append(f"{where}: .has_nvidia_gpu (ask devices.use_gpu(kind))")
            elif node.attr == "active" and _dotted(node.value).endswith("accel") \
                    and filename not in ("accel.py", "session.py"):
                found.append(f"{where}: {_dotted(node)} (ask devices.cuml_accel_active())")
    return sorted(set(found), key=lambda s: int(s.split(":")[0]))


def _notebook_cells(path: Path):
    """(cell index, code) of each code cell, IPython magics and shell lines blanked."""
    for index, cell in enumerate(json.loads(path.read_text())["cells"]):
        if cell["cell_type"] == "code":
            text = "".join(cell["source"])
            yield index, "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in text.splitlines())


def _sources():
    """(where, filename, source) for the package, the benchmarks and every notebook's code cells."""
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name not in _POLICY_MODULES or path.parent != PACKAGE:
            yield str(path.relative_to(REPO)), path.name, path.read_text()
    for path in sorted((REPO / "benchmarks").glob("*.py")):
        yield str(path.relative_to(REPO)), path.name, path.read_text()
    for path in sorted((REPO / "playbooks").glob("*/*.ipynb")):
        for index, code in _notebook_cells(path):
            yield f"{path.relative_to(REPO)} cell {index}", path.name, code


def test_the_scanner_finds_every_kind_of_gpu_predicate():
    source = "\n".join([
        "import torch, shutil, subprocess, importlib.util, warp as wp",
        "a = torch.cuda.is_available()",
        "b = torch.cuda.device_count()",
        "c = subprocess.run(['nvidia-smi', '-L'])",
        "d = shutil.which('nvidia-smi')",
        "e = wp.get_cuda_device_count()",
        "f = importlib.util.find_spec('cudf')",
        "g = sb.probe_gpu().ok",
        "h = detect().has_nvidia_gpu",
        "i = 'cuml.accel' in session.accel.active",
        "j = torch.cuda.mem_get_info()[0]",
        "k = wp.is_cuda_available()",
    ])
    assert [hit.split(":")[0] for hit in gpu_predicates(source, filename="x.py")] == [str(n) for n in range(2, 13)]
    harmless = "torch.cuda.synchronize()\nx = 'run nvidia-smi to check'\nimportlib.util.find_spec('umap')\n" \
               "torch.device('cuda', 0)\nctx.device.type == 'cuda'"
    assert gpu_predicates(harmless, filename="x.py") == []


def test_no_gpu_predicate_outside_devices():
    offenders = {}
    for where, filename, source in _sources():
        hits = gpu_predicates(source, filename=filename)
        if hits:
            offenders[where] = hits
    assert not offenders, ("Ask sparkbooks.devices (use_gpu, torch_device, warp_device, dist_backend, available_bytes, "
                           f"cuml_accel_active) instead of: {json.dumps(offenders, indent=1, ensure_ascii=False)}")


# ---- the policy ------------------------------------------------------------------------------------------------------

def test_devices_imports_no_gpu_library():
    import subprocess
    import sys

    code = "import sparkbooks.devices, sys; print(sorted(m for m in ('torch', 'cudf', 'warp', 'pandas', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_this_machine_is_probed_once_and_reports_why(monkeypatch):
    first = devices.probe()
    assert devices.probe() is first  # cached
    assert first.available_bytes > 0 and first.policy == "auto"
    if not first.cuda_works:
        assert not devices.use_gpu("torch") and devices.torch_device() == "cpu"
        assert devices.probe().reason("torch") and "no GPU computes here" in first.summary()


@pytest.mark.parametrize("kind", sorted(devices.KINDS))
def test_cpu_policy_turns_every_kind_off_even_on_a_spark(kind, monkeypatch):
    devices.refresh(SPARK)
    assert devices.use_gpu(kind)
    monkeypatch.setenv("SPARKBOOKS_ACCELERATOR", "cpu")
    settings.reset()
    assert not devices.use_gpu(kind)
    assert "SPARKBOOKS_ACCELERATOR=cpu" in devices.probe().reason(kind)


def test_torch_and_warp_devices_follow_the_policy(monkeypatch):
    devices.refresh(SPARK)
    assert devices.torch_device() == "cuda" and devices.warp_device() == "cuda:0"
    assert devices.torch_device("cpu") == "cpu" and devices.torch_device("cuda:0") == "cuda:0"
    assert devices.dist_backend(1) == "nccl" and devices.dist_backend(2) == "gloo"  # one GB10: one rank per device
    settings.accelerator = "cpu"
    assert devices.torch_device() == "cpu" and devices.warp_device() == "cpu" and devices.dist_backend(1) == "gloo"
    assert devices.cuda_device_count() == 0
    with pytest.raises(AcceleratorUnavailableError, match="SPARKBOOKS_ACCELERATOR=cpu"):
        devices.torch_device("cuda")


def test_gpu_policy_refuses_to_fall_back():
    devices.refresh(devices.Devices(policy="gpu", reasons=(("torch", "torch 2.13.0+cpu is a CPU build"),)))
    settings.accelerator = "gpu"
    with pytest.raises(AcceleratorUnavailableError, match="CPU build.*environment.yml"):
        devices.torch_device()
    with pytest.raises(AcceleratorUnavailableError):
        devices.require("cudf")
    with pytest.raises(InputError, match="use one of"):
        devices.use_gpu("tpu")


def test_libraries_need_to_be_installed_and_cuda_to_work():
    bare = devices.Devices(torch_cuda=1, cuda_name="NVIDIA H200", nccl=True, installed=("torch",))
    assert bare.can("torch") and bare.can("nccl") and not bare.can("cugraph") and not bare.can("cudf")
    assert bare.reason("cugraph") == "nx_cugraph is not installed"
    no_cuda = devices.Devices(installed=("nx_cugraph",), reasons=(("torch", "no NVIDIA driver"),))
    assert not no_cuda.can("cugraph") and "no NVIDIA driver" in no_cuda.reason("cugraph")


def test_rapids_singlecell_needs_the_cupy_it_imports():
    """rapids-singlecell imports cupy without requiring it: installed alone, the GPU single-cell path dies on import."""
    without = devices.Devices(torch_cuda=1, cudf=True, installed=("cudf", "rapids_singlecell"))
    assert not without.can("rapids_singlecell") and without.reason("rapids_singlecell") == "cupy is not installed"
    assert devices.Devices(torch_cuda=1, cudf=True, installed=("cudf", "rapids_singlecell", "cupy")).can("rapids_singlecell")
    assert devices.Devices(cudf=True).reason("rapids_singlecell") == "rapids_singlecell and cupy are not installed"


def test_summary_names_the_gpu_never_a_product():
    line = devices.Devices(torch_cuda=1, cuda_name="NVIDIA H200", compute_capability="9.0", nccl=True,
                           available_bytes=139 * GIB).summary()
    assert "NVIDIA H200" in line and "Spark" not in line and "139 GiB" in line


def test_unified_memory_reads_memavailable_not_cudamemgetinfo(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(f"MemTotal: {128 * 2**20} kB\nMemFree: {8 * 2**20} kB\nMemAvailable: {100 * 2**20} kB\n")
    monkeypatch.setattr(devices, "_MEMINFO", meminfo)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (8 * GIB, 119 * GIB))
    devices.refresh(SPARK)
    assert devices.available_bytes("cuda") == 100 * GIB
    devices.refresh(devices.Devices(torch_cuda=1, cuda_name="NVIDIA H200"))
    assert devices.available_bytes("cuda") == 8 * GIB  # its own memory: the driver's free bytes


def test_nvidia_smi_list_marks_gb10_unified(tmp_path):
    script = tmp_path / "nvidia-smi"
    script.write_text("#!/bin/sh\necho '0, NVIDIA GB10, [N/A], 580.95.05, 12.1'\n")
    script.chmod(0o755)
    gpu, = devices._query_gpus(str(script))
    assert gpu == devices.GPU(0, "NVIDIA GB10", None, True, "580.95.05", "12.1")
    assert devices._shares_os_memory(gpu, None)
    assert not devices._shares_os_memory(devices.GPU(0, "NVIDIA H200", 140.0, False, "570", "9.0"), "NVIDIA H200")


# ---- the probe itself, end to end, on a faked machine: nvidia-smi and torch stand-ins the child processes run ------

_FAKE_TORCH = '''
__version__ = "2.9.0+cu130"
class version:
    cuda = "13.0"
class _Scalar:
    def __init__(self, value):
        self.value = value
    def sum(self):
        return self
    def __float__(self):
        return float(self.value)
def full(shape, value, device=None):
    return _Scalar(value * shape[0])
class _Props:
    name, major, minor, is_integrated = "{name}", {major}, {minor}, {integrated}
class cuda:
    is_available = staticmethod(lambda: True)
    device_count = staticmethod(lambda: 1)
    get_device_properties = staticmethod(lambda i: _Props())
    mem_get_info = staticmethod(lambda i=0: (8 * 2**30, 119 * 2**30))
    is_bf16_supported = staticmethod(lambda: True)
'''


def _fake_machine(tmp_path, monkeypatch, *, smi_line: str, name: str, major: int, minor: int, integrated: bool):
    fakes = tmp_path / "fakes"
    (fakes / "torch").mkdir(parents=True)
    (fakes / "torch" / "__init__.py").write_text(
        _FAKE_TORCH.format(name=name, major=major, minor=minor, integrated=integrated) + "from . import distributed\n")
    (fakes / "torch" / "distributed.py").write_text("is_available = lambda: True\nis_nccl_available = lambda: True\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(f"#!/bin/sh\necho '{smi_line}'\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(f"MemTotal: {128 * 2**20} kB\nMemAvailable: {100 * 2**20} kB\n")
    monkeypatch.setenv("PYTHONPATH", str(fakes))
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    monkeypatch.setattr(devices, "_MEMINFO", meminfo)
    real = devices._installed
    monkeypatch.setattr(devices, "_installed", lambda n: n == "torch" or (n != "warp" and real(n)))
    devices.refresh()


def test_a_faked_gb10_is_probed_as_one_unified_memory_gpu(tmp_path, monkeypatch):
    _fake_machine(tmp_path, monkeypatch, smi_line="0, NVIDIA GB10, [N/A], 580.95.05, 12.1", name="NVIDIA GB10",
                  major=12, minor=1, integrated=True)
    report = devices.probe()
    assert (report.torch_cuda, report.cuda_name, report.compute_capability) == (1, "NVIDIA GB10", "12.1")
    assert report.unified_memory and report.bf16 and report.nccl and report.gpus[0].name == "NVIDIA GB10"
    assert report.available_bytes == 100 * GIB and "MemAvailable (unified memory)" in report.memory_source
    assert devices.use_gpu("torch") and devices.dist_backend(1) == "nccl" and devices.dist_backend(2) == "gloo"
    assert "NVIDIA GB10 (sm 12.1, unified memory)" in report.summary() and "Spark" not in report.summary()


def test_a_faked_discrete_gpu_reports_the_drivers_free_memory(tmp_path, monkeypatch):
    _fake_machine(tmp_path, monkeypatch, smi_line="0, NVIDIA H200, 143771, 570.1, 9.0", name="NVIDIA H200",
                  major=9, minor=0, integrated=False)
    report = devices.probe()
    assert not report.unified_memory and report.available_bytes == 8 * GIB
    assert report.memory_source == "cudaMemGetInfo free bytes"
    monkeypatch.setenv("SPARKBOOKS_ACCELERATOR", "cpu")
    settings.reset()
    devices.refresh()
    cpu = devices.probe()  # the cpu policy starts no child: torch is never asked
    assert cpu.torch_cuda == 0 and cpu.gpus and "NVIDIA H200 not used" in cpu.summary()


def test_the_policy_api_stays_at_sparkbooks_devices():
    """devices asks, device_probe measures, device_report holds the answer: callers still find every name in devices."""
    from sparkbooks import device_probe, device_report

    assert devices.GPU is device_probe.GPU and devices.CudfProbe is device_probe.CudfProbe
    assert devices.Devices is device_report.Devices and devices.KINDS is device_report.KINDS
    assert devices.probe_cudf is device_probe.probe_cudf and devices.gpus is device_probe.gpus
    assert devices._query_gpus is device_probe._query_gpus and devices._CUDF_PROBE == device_probe.CUDF_PROBE
    with pytest.raises(InputError, match="No GPU work kind 'tpu': use one of cuda, torch"):
        devices.use_gpu("tpu")
