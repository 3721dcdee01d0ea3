import json
import shutil

import pytest

import sparkbooks as sb
from sparkbooks import catalog
from sparkbooks.exceptions import MetadataError, PlaybookNotFoundError
from sparkbooks.hardware import GPU, Hardware


def _hw(*gpus: GPU, memory: float = 120.0) -> Hardware:
    return Hardware("h", "Linux", "aarch64", "cpu", 20, memory, gpus=gpus)


def test_repository_playbooks_are_discovered():
    slugs = [pb.slug for pb in catalog.discover()]
    assert "start-here" in slugs
    pb = catalog.get("start-here")
    assert pb.parameters["profile"].choices == ("auto", "cpu", "spark", "station")


def test_start_here_is_listed_first():
    assert catalog.discover()[0].slug == "start-here"


def test_unknown_slug_lists_the_playbooks():
    with pytest.raises(PlaybookNotFoundError, match="Playbooks: .*start-here"):
        catalog.get("no-such-book")


@pytest.mark.parametrize(("gpus", "expected"), [
    ((), "cpu"),
    ((GPU(0, "NVIDIA GB10", None, True, "580", "12.1"),), "spark"),
    ((GPU(0, "NVIDIA GB300", 288 * 1024 / 1024, True, "580", "10.3"),), "station"),
    ((GPU(0, "NVIDIA H200", 141.0, False, "570", "9.0"),), "spark"),
])
def test_auto_profile_follows_the_hardware(gpus, expected):
    choice = catalog.get("start-here").resolve_profile("auto", _hw(*gpus), accelerator="auto")
    profile, reason = choice.profile, choice.reason
    assert profile == expected and reason.startswith("auto")


def test_accelerator_cpu_forces_the_cpu_profile():
    gb10 = GPU(0, "NVIDIA GB10", None, True, "580", "12.1")
    assert catalog.get("start-here").resolve_profile("auto", _hw(gb10), accelerator="cpu").profile == "cpu"


def _broken_copy(tmp_path, edit):
    src = catalog.get("start-here").path
    dest = tmp_path / "start-here" / "start-here.ipynb"
    dest.parent.mkdir()
    nb = json.loads(src.read_text())
    edit(nb)
    dest.write_text(json.dumps(nb))
    return dest


@pytest.mark.parametrize(("edit", "message"), [
    (lambda nb: nb["metadata"].pop("playbook"), "no `playbook` block"),
    (lambda nb: nb["metadata"]["playbook"]["profiles"].pop("spark"), "must define 'spark'"),
    (lambda nb: nb["metadata"]["playbook"]["profiles"]["spark"].update(n_rows=-5), "profile 'spark' is invalid"),
    (lambda nb: nb["metadata"]["playbook"]["profiles"]["spark"].update(bogus=1), "Unknown parameter 'bogus'"),
    (lambda nb: nb["metadata"]["playbook"]["hardware"].update(gpu="maybe"), "hardware.gpu"),
    (lambda nb: [c["metadata"].pop("tags", None) for c in nb["cells"]], "exactly one cell tagged 'parameters'"),
])
def test_contract_violations_are_named(tmp_path, edit, message):
    with pytest.raises(MetadataError, match=message):
        catalog.load(_broken_copy(tmp_path, edit))


def test_slug_must_match_its_folder(tmp_path):
    dest = tmp_path / "other" / "Start_Here.ipynb"
    dest.parent.mkdir()
    shutil.copy(catalog.get("start-here").path, dest)
    with pytest.raises(MetadataError, match="lowercase-hyphen slug"):
        catalog.load(dest)


def test_settings_reject_unknown_accelerator():
    with pytest.raises(sb.ParameterError, match="'accelerator' setting must be one of"):
        sb.settings.accelerator = "tpu"
