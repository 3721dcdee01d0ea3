import json

from sparkbooks.cli import main


def test_list_shows_every_playbook(capsys):
    assert main(["list"]) == 0
    assert "start-here" in capsys.readouterr().out


def test_show_prints_parameters_and_profiles(capsys):
    assert main(["show", "start-here"]) == 0
    out = capsys.readouterr().out
    assert "n_rows" in out and "an int in [1000, 2000000000]" in out and "spark    n_rows=50000000" in out


def test_doctor_reports_the_machine_as_json(capsys):
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["hardware"]["cpu_cores"] >= 1 and "gpu_probe" in report


def test_run_needs_a_slug_or_all(capsys):
    assert main(["run"]) == 2
    assert "Name one playbook" in capsys.readouterr().err


def test_clean_refuses_a_missing_run(tmp_path, capsys):
    assert main(["clean", "start-here", "--from-run", "--out", str(tmp_path)]) == 2
    assert "sparkbooks run start-here --profile cpu" in capsys.readouterr().err


def test_show_lists_list_parameters_with_their_element_constraints(capsys):
    assert main(["show", "nemotron-nano"]) == 0
    out = capsys.readouterr().out
    assert "concurrency" in out and "list[int]" in out and "a list of ints in [1, 1024]" in out
