import json
import math

import pytest

import sparkbooks as sb
from sparkbooks import session


@pytest.fixture
def namespace(fixture_home, monkeypatch, tmp_path):
    monkeypatch.chdir(fixture_home / "playbooks" / "fixture-failures")
    for var in (session.ENV_PLAYBOOK, session.ENV_RESULTS, session.ENV_RESOLVED, session.ENV_PROFILE_REASON):
        monkeypatch.delenv(var, raising=False)
    return {"profile": "auto", "mode": "ok", "size": 3, "seed": 0}


def test_begin_finds_the_playbook_from_its_folder_and_prints_a_banner(namespace, capsys):
    s = sb.begin(namespace)
    out = capsys.readouterr().out
    assert s.playbook.slug == "fixture-failures" and s.profile == "cpu"
    assert "machine :" in out and "path    : CPU path" in out and "stand-in: nothing stands in" in out
    assert namespace["profile"] == "cpu"


def test_begin_applies_a_named_profile_to_defaults_only(namespace):
    namespace.update(profile="spark")
    assert sb.begin(namespace).params["size"] == 30 and namespace["size"] == 30
    namespace.update(profile="spark", size=7)
    assert sb.begin(namespace).params["size"] == 7


def test_begin_refuses_bad_or_missing_values(namespace):
    with pytest.raises(sb.ParameterError, match="The 'size' parameter of playbook 'fixture-failures'"):
        sb.begin(dict(namespace, size=1000))
    with pytest.raises(sb.ParameterError, match="not defined"):
        sb.begin({"profile": "auto"})


def test_record_writes_results_atomically_and_refuses_non_finite(namespace, monkeypatch, tmp_path):
    target = tmp_path / "results.json"
    monkeypatch.setenv(session.ENV_RESULTS, str(target))
    sb.begin(namespace)
    assert sb.record("speed", 1.5, unit="s") == 1.5
    with pytest.raises(sb.InputError, match="only finite"):
        sb.record("broken", math.nan)
    saved = json.loads(target.read_text())
    assert saved["results"] == [{"name": "speed", "value": 1.5, "unit": "s", "note": ""}]
    assert saved["profile"] == "cpu" and saved["path"] == "cpu"


def test_work_dir_sits_beside_results_or_in_the_cache_never_in_the_repository(namespace, monkeypatch, tmp_path):
    monkeypatch.setitem(sb.settings._values, "cache_dir", tmp_path / "cache")
    by_hand = sb.begin(namespace).work_dir()
    assert by_hand == tmp_path / "cache" / "work" / "fixture-failures" and by_hand.is_dir()
    monkeypatch.setenv(session.ENV_RESULTS, str(tmp_path / "run" / "results.json"))
    assert sb.begin(namespace).work_dir() == tmp_path / "run" / "work"


def test_a_spark_run_still_lists_its_stand_ins(namespace, capsys):
    """Larger profiles change sizes, not what stands in (issue 52 item 6): the results must still say so."""
    s = sb.begin(dict(namespace, profile="spark"))
    assert s.profile == "spark" and s.playbook.stand_ins
    assert s.to_dict()["stand_ins"] == list(s.playbook.stand_ins)
    assert f"stand-in: {s.playbook.stand_ins[0]}" in capsys.readouterr().out


def test_the_banner_and_results_carry_the_device_report(namespace, capsys):
    from sparkbooks import devices

    s = sb.begin(namespace)
    assert s.devices is devices.probe()
    assert f"devices : {s.devices.summary()}" in capsys.readouterr().out
    saved = s.to_dict()
    assert saved["devices"]["policy"] == s.devices.policy and "claims" in saved
