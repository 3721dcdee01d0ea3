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


def test_build_prints_the_site_first_and_renders_each_guide_as_its_playbook_finishes(fixture_home, tmp_path, capsys,
                                                                                       monkeypatch):
    import shutil

    import nbformat

    from sparkbooks import runner

    second = fixture_home / "playbooks" / "fixture-second"
    shutil.copytree(fixture_home / "playbooks" / "fixture-failures", second)
    (second / "fixture-failures.ipynb").rename(second / "fixture-second.ipynb")
    nb = nbformat.read(second / "fixture-second.ipynb", as_version=4)
    nb.metadata["playbook"]["profiles"]["cpu"] = {"mode": "raise"}  # a failed playbook gets its page too
    nbformat.write(nb, second / "fixture-second.ipynb")
    out, site = tmp_path / "runs", tmp_path / "site"
    seen = []
    real_run = runner.run

    def run(slug, **kwargs):
        print(f"RUN {slug}")
        seen.append((slug, sorted(p.name for p in site.iterdir())))  # what a reader can open while it runs
        return real_run(slug, **kwargs)

    monkeypatch.setattr(runner, "run", run)
    assert main(["build", "--out", str(out), "--site", str(site), "--no-progress"]) == 1  # one playbook failed
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"site: {site.resolve() / 'index.html'}") and "RUN fixture-failures" in lines[1:]
    assert seen == [("fixture-failures", ["index.html"]),
                    ("fixture-second", ["fixture-failures.html", "index.html"])]
    assert sorted(p.name for p in site.iterdir()) == ["fixture-failures.html", "fixture-second.html", "index.html"]
    assert lines[-1].startswith(f"site: {site.resolve() / 'index.html'}")


def test_the_exit_codes_are_documented():
    import sparkbooks.cli as cli

    assert (cli.EXIT_INTERRUPTED, cli.EXIT_TERMINATED) == (130, 143)
    for code in ("0", "1", "2", "130", "143"):
        assert code in cli._parser().epilog and code in cli.__doc__


def test_make_guides_says_where_the_site_is_before_anything_else():
    import subprocess
    from pathlib import Path

    import os

    repo = Path(__file__).resolve().parents[1]
    # What a user at a shell sees: under `make test` the parent make's MAKELEVEL/MAKEFLAGS would add
    # "make[1]: Entering directory" lines that a user's terminal never shows.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    done = subprocess.run(["make", "-n", "guides"], cwd=repo, env=env, capture_output=True, text=True, timeout=60)
    lines = [ln for ln in done.stdout.splitlines() if ln.strip()]
    assert done.returncode == 0 and lines[0].startswith(f'echo "Guide site: file://{repo}/site/index.html'), lines
    assert lines[-1].endswith("/sparkbooks build")  # which renders each guide as its playbook finishes (test above)


def test_llama_server_builds_beside_the_install_from_the_source_tree_with_the_standard_library_only():
    """`make test`/`make guides` build llama-server while pip installs (≈ 2 min less on 2 cores): the build runs the
    source tree's CLI with the system python, before the venv has any package, so that path must import with the
    standard library alone (a third-party import there would break every fresh install)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    dry = subprocess.run(["make", "-n", "test"], cwd=repo, env=env, capture_output=True, text=True, timeout=60).stdout
    assert "-j2 .venv/.test-extras llama-server" in dry and "PYTHONPATH=shared" in dry
    probe = ("import sys; import sparkbooks.cli, sparkbooks.sources, sparkbooks.llm.llamacpp as l; l.build_flags(); "
             "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'pandas', 'httpx', 'torch', 'yaml')); "
             "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-S", "-c", probe], cwd=repo, capture_output=True, text=True, timeout=60,
                          env={**env, "PYTHONPATH": str(repo / "shared")})
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
