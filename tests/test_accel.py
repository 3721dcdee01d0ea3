import pytest

from sparkbooks import accel, devices
from sparkbooks.exceptions import AcceleratorUnavailableError


@pytest.fixture(autouse=True)
def fresh_probe():
    devices.refresh()
    yield
    devices.refresh()


def _fake_cudf(tmp_path, monkeypatch, body: str):
    pkg = tmp_path / "fakes" / "cudf"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path / "fakes"))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "fakes"))


def _no_cudf(monkeypatch):
    """Make this process see no RAPIDS, whatever the machine has (a DGX Spark has it)."""
    real = devices.util.find_spec
    monkeypatch.setattr(devices.util, "find_spec", lambda name, *a: None if name.split(".")[0] == "cudf" else real(name, *a))


def test_without_rapids_the_probe_fails_and_says_why(monkeypatch):
    _no_cudf(monkeypatch)
    probe = accel.probe_gpu()
    assert not probe.ok and "not installed" in probe.detail


def test_importable_cudf_without_a_gpu_is_not_a_gpu(tmp_path, monkeypatch):
    # import succeeds, the first operation raises: what real cudf does on a machine without a GPU
    _fake_cudf(tmp_path, monkeypatch, (
        "class CUDARuntimeError(RuntimeError):\n    pass\n"
        "class Series:\n    def __init__(self, data):\n"
        "        raise CUDARuntimeError('cudaErrorNoDevice: no CUDA-capable device is detected')\n"))
    probe = accel.probe_gpu()
    assert not probe.ok
    assert "GPU operation failed" in probe.detail and "cudaErrorNoDevice" in probe.detail
    assert accel.enable(prefer="auto").path == "cpu"


def test_gpu_required_but_missing_raises_with_the_fix(monkeypatch):
    _no_cudf(monkeypatch)
    with pytest.raises(AcceleratorUnavailableError, match="environment.yml"):
        accel.enable(prefer="gpu")


def test_cpu_preference_never_probes(monkeypatch):
    monkeypatch.setattr(accel, "probe_gpu", lambda: pytest.fail("probed"))
    status = accel.enable(prefer="cpu")
    assert status.path == "cpu" and "CPU requested" in status.describe()


def test_accel_and_devices_share_one_cudf_probe(monkeypatch):
    _no_cudf(monkeypatch)
    assert accel.probe_gpu() is devices.probe_cudf()  # one implementation, one cached answer
    assert not devices.use_gpu("cudf") and devices.probe().reason("cudf") == "RAPIDS cudf is not installed"


def test_cuml_accel_switched_on_outside_sparkbooks_is_seen(monkeypatch):
    """``python -m cuml.accel`` and ``%load_ext cuml.accel`` switch it on without enable(): devices asks live."""
    import sys
    import types

    fake = types.ModuleType("cuml.accel")
    fake.enabled = lambda: True
    monkeypatch.setitem(sys.modules, "cuml.accel", fake)
    assert devices.cuml_accel_active() and accel._installed("cuml.accel")
    fake.enabled = lambda: False
    assert not devices.cuml_accel_active()
