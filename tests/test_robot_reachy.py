"""Reachy Mini: the wheel as a checksummed source, its MJCF in C MuJoCo and MuJoCo Warp, the head-tracking task."""

from __future__ import annotations

import math
import re
import zipfile

import numpy as np
import pytest

pytest.importorskip("mujoco")
torch = pytest.importorskip("torch")

import mujoco  # noqa: E402

from sparkbooks import sources  # noqa: E402
from sparkbooks.exceptions import InputError, SourceError  # noqa: E402
from sparkbooks.robot import head_task as task  # noqa: E402
from sparkbooks.robot import reachy  # noqa: E402


def test_the_wheel_is_a_checksummed_source_read_not_installed():
    source = sources.registry.get(reachy.SOURCE)
    assert isinstance(source.origin, sources.Wheel) and source.origin.package == "reachy-mini"
    assert re.fullmatch(r"[0-9a-f]{64}", source.sha256) and source.size == 24_287_535 and source.license == "Apache-2.0"
    with pytest.raises(ModuleNotFoundError):
        __import__("reachy_mini")  # read from the wheel, never installed (it pins an old MuJoCo)


def test_only_the_mjcf_folder_is_unpacked_and_a_wheel_without_it_is_refused(tmp_path):
    wheel = tmp_path / "w" / "reachy_mini-0-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(reachy.MJCF_FOLDER + "reachy_mini.xml", "<mujoco/>")
        z.writestr(reachy.MJCF_FOLDER + "assets/part.stl", b"solid")
        z.writestr("reachy_mini/daemon.py", "import gi")
    folder = reachy.model_dir(wheel)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == \
        ["assets/part.stl", "reachy_mini.xml"]
    assert reachy.model_dir(wheel) == folder and not list(wheel.parent.glob(".mjcf.*"))  # once, nothing half-written
    other = tmp_path / "x" / "other-0-py3-none-any.whl"
    other.parent.mkdir()
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("other/__init__.py", "")
    with pytest.raises(SourceError, match="no reachy_mini/descriptions/reachy_mini/mjcf/reachy_mini.xml"):
        reachy.model_dir(other)


def test_quaternion_helpers_agree_with_mujoco():
    rng = np.random.default_rng(0)
    r = torch.as_tensor(rng.uniform(-0.6, 0.6, (5, 3)))
    q = task.rotvec_to_quat(r)
    for row, vec in zip(q.numpy(), r.numpy()):
        want = np.zeros(4)
        mujoco.mju_axisAngle2Quat(want, vec / np.linalg.norm(vec), np.linalg.norm(vec))
        assert np.allclose(row, want, atol=1e-12)
    assert torch.allclose(task.quat_to_rotvec(q), r, atol=1e-12) and torch.allclose(task.quat_to_rotvec(-q), r, atol=1e-12)
    a, b = q[:2]
    want = np.zeros(4)
    mujoco.mju_mulQuat(want, a.numpy(), b.numpy())
    assert np.allclose(task.quat_mul(a, b).numpy(), want)
    assert float(task.error_angle(q[0], q[0])) < 1e-6
    assert math.isclose(float(task.error_angle(task.rotvec_to_quat(torch.zeros(3, dtype=torch.float64)), q[0])),
                        float(r[0].norm()), abs_tol=1e-7)


@pytest.fixture(scope="module")
def model():
    return reachy.load_model()


def test_the_shipped_model_loads_and_holds_its_rest_pose_in_c_mujoco(model):
    assert model.nu == 9 and model.opt.timestep == 0.002 and model.neq == 5
    assert [model.actuator(i).name for i in range(1, 7)] == list(reachy.STEWART)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    rest = data.xquat[model.body(reachy.HEAD_BODY).id].copy()
    for _ in range(250):  # half a second with every servo at zero
        mujoco.mj_step(model, data)
    assert np.isfinite(data.qpos).all()
    assert float(task.error_angle(torch.as_tensor(rest), torch.as_tensor(data.xquat[model.body("xl_330").id]))) < 0.01


def test_the_judge_gives_every_policy_the_same_targets_and_rest_scores_the_target_size(model):
    scores, frames = task.judge(task.rest_policy, episodes=4, seed=7, model=model, return_frames=True)
    sizes = task.sample_targets(4, torch.Generator().manual_seed(7)).double()
    angles = task.error_angle(task.rotvec_to_quat(torch.zeros(3, dtype=torch.float64)), task.rotvec_to_quat(sizes)).numpy()
    assert frames.shape == (4, task.EPISODE_STEPS) and np.allclose(scores, angles, atol=0.03)  # holding still: error = target
    assert np.array_equal(task.judge(task.rest_policy, episodes=4, seed=7, model=model), scores)
    pushy = task.judge(lambda obs: np.ones((len(obs), 6)), episodes=4, seed=7, model=model)
    assert not np.allclose(pushy, scores)  # actions reach the legs
    ik = task.judge(task.linear_ik(model), episodes=4, seed=7, model=model)
    assert np.median(ik) < 0.5 * np.median(scores)  # the classical baseline is a real one: it turns the head


@pytest.fixture(scope="module")
def warp_ready():
    pytest.importorskip("mujoco_warp")
    pytest.importorskip("rsl_rl")
    from sparkbooks.robot import warp_batch

    return warp_batch.choose_device("auto")[0]


def test_warp_steps_the_head_like_c_and_training_resumes(tmp_path, warp_ready):
    """One control step from the rest pose with different leg commands per world: Warp (float32) vs C (float64), contacts
    off in both; then the batch randomises per world, and a 2-iteration run resumes and refuses other settings."""
    from sparkbooks.robot import head_batch

    env = head_batch.HeadBatch(4, device=warp_ready, seed=3, randomise=False)
    actions = torch.as_tensor(np.random.default_rng(1).uniform(-1, 1, (4, 6)), dtype=torch.float32, device=env.device)
    env.step(actions)
    c_model = reachy.load_model(contacts=False)
    lay = task.layout(c_model)
    for world in range(4):
        data = mujoco.MjData(c_model)
        data.ctrl[list(lay.leg_actuators)] = np.clip(task.ACTION_SCALE * actions[world].cpu().numpy(), lay.low, lay.high)
        for _ in range(task.DECIMATION):
            mujoco.mj_step(c_model, data)
        legs = env.batch.qpos[world, env.legs].cpu().numpy()
        assert np.abs(legs - data.qpos[list(lay.leg_qpos)]).max() < 2e-3, world
    dr = head_batch.HeadBatch(3, device=warp_ready, seed=3, randomise=True)
    kp = dr.fields["actuator_gainprm"][0][:, lay.leg_actuators[0], 0].cpu().numpy()
    assert len(set(kp.round(6))) == 3 and ((kp >= 8) & (kp <= 12)).all()  # one servo stiffness per world, 10 × U(0.8, 1.2)
    tiny = dict(out=tmp_path, n_envs=4, chunk=1, steps_per_env=2, device=warp_ready)
    first = head_batch.train(iterations=1, **tiny)
    more = head_batch.train(iterations=2, **tiny)
    assert (first.iterations, more.iterations, more.steps) == (1, 2, 2 * 4 * 2) and more.seconds > first.seconds
    with pytest.raises(InputError, match="other settings"):
        head_batch.train(iterations=3, **tiny | {"steps_per_env": 3})
    trained, untrained = head_batch.load_policy(more), head_batch.load_policy(None, seed=0)
    obs = np.zeros((2, task.N_OBS), np.float32)
    assert trained(obs).shape == (2, 6) and not np.allclose(trained(obs), untrained(obs))


def test_a_head_policy_exports_to_onnx_and_films(tmp_path, warp_ready):
    """The untrained head policy through rsl_rl's exporter: ONNX matches torch; the judge films it with the MJCF's camera."""
    from sparkbooks.robot import export, head_batch, video

    files = export.export(None, tmp_path, runner=head_batch.load_runner(None, seed=1))
    assert (files.n_obs, files.n_actions) == (task.N_OBS, task.N_ACTIONS)
    check = export.parity(files, np.random.default_rng(0).normal(0, 1, (16, task.N_OBS)))
    assert check["onnx_max_diff"] < 1e-5 and check["torchscript_max_diff"] < 1e-5
    clip = video.record_head(task.rest_policy, episodes=1, every=10)
    assert clip.gif is not None or clip.reason  # no OpenGL: only the video is lost, with the reason
    if clip.gif:
        assert clip.gif[:6] == b"GIF89a" and "final error" in clip.html("rest")


def _judged(seed: int, steps: int, controllers=("trained", "untrained", "rest", "linear IK", "converged IK"),
            n_envs: int = 256, episodes: int = 2) -> dict:
    mismatched = ("trained", "linear IK", "converged IK")
    return {"seed": seed, "iterations": steps // (n_envs * 24), "steps": steps, "steps_per_env": 24, "train_s": 100.0,
            "n_envs": n_envs, "device": "cpu", "episodes": episodes, "target_seed": 90_000 + seed, "lead": 0.5,
            "median": {k: 0.1 for k in controllers}, "scores": {k: [0.1, 0.1] for k in controllers},
            "mismatch_median": {k: 0.2 for k in mismatched}, "mismatch_worst_corner": {k: 0.3 for k in mismatched},
            "load_avg": [1.0, 1.0, 1.0], "finished": "2026-12-07"}


def test_the_head_record_refuses_seeds_that_are_not_replicates(tmp_path, monkeypatch):
    """Review finding (issue 51): under a time budget the record's seeds trained 49k–172k steps (the machine's load
    decided), so they were not replicates. The report refuses seeds of unequal training — steps, and the batch
    that made them (60 × 128 copies is as many steps as 30 × 256) — and records judged before the baselines."""
    import argparse
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("reachy_bench", task.RESULT.parents[1] / "robot_reachy_head.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(bench, "RESULT", tmp_path / "result.json")
    args = argparse.Namespace(out=str(tmp_path), seeds=[0, 1])
    write = lambda seed, record: (tmp_path / f"judged_seed{seed}.json").write_text(json.dumps(record))  # noqa: E731
    write(0, _judged(0, 184_320))
    write(1, _judged(1, 172_032))
    with pytest.raises(SystemExit, match="differ in steps"):
        bench.report(args)
    write(1, _judged(1, 184_320, n_envs=128))
    with pytest.raises(SystemExit, match="differ in iterations|differ in n_envs"):
        bench.report(args)
    write(1, _judged(1, 184_320, episodes=8))  # judged on other targets: not the same measurement
    with pytest.raises(SystemExit, match="differ in episodes"):
        bench.report(args)
    write(1, _judged(1, 184_320, ("trained", "untrained", "rest", "linear IK")))
    with pytest.raises(SystemExit, match="judged without"):
        bench.report(args)
    write(1, _judged(1, 184_320))
    result = bench.report(args)
    assert result["steps"] == 184_320 and bench.RESULT.exists()
    assert {"trained_minus_converged_ik_rad", "trained_minus_converged_ik_mismatch_rad"} <= set(result)


def test_converged_ik_lands_closer_than_the_linear_gains_and_lead_only_speeds_it(model):
    """Review finding (issue 51): IK solved to convergence on the model, with lead, is the classical controller a
    practitioner tries first — it beat the trained policy on the nominal model (0.11° against 0.41°)."""
    solver = task.ConvergedIK(model, lead=0.0, iterations=3, settle=200)
    target = np.array([0.2, -0.15, 0.1])
    assert np.linalg.norm(solver.solve(target) - solver.gains @ target) > 0  # Newton moved off the first-order answer
    obs = np.zeros((1, task.N_OBS), dtype=np.float32)
    obs[0, 3:6] = target / task.TARGET_RAD
    settled = np.zeros((1, task.N_OBS))
    settled[0, 3:6], settled[0, 6:12] = obs[0, 3:6], task.ACTION_SCALE * solver.solve(target)
    fast = solver.with_lead(1.0)
    assert np.allclose(fast(settled), solver(settled))  # at the solution, lead adds nothing
    assert np.allclose(fast(obs), 2 * solver(obs)) and fast._solved is solver._solved  # shares the solved targets
    first = task.judge(task.linear_ik(model), episodes=4, seed=80_000, model=model)
    converged = task.judge(solver, episodes=4, seed=80_000, model=model)
    assert np.median(converged) < np.median(first)
    tuned = task.tune_converged_ik(model=model, leads=(0.0, 0.5), episodes=2, seed=80_000)
    assert set(tuned.medians) == {0.0, 0.5} and tuned.controller.lead == min(tuned.medians, key=tuned.medians.get)


def test_a_mismatched_model_has_softer_servos_and_a_heavier_head_and_leaves_the_original_alone(model):
    lay = task.layout(model)
    legs = list(lay.leg_actuators)
    other = task.mismatched(model, stiffness=0.8, head_mass=1.2)
    assert np.allclose(other.actuator_gainprm[legs, 0], 0.8 * model.actuator_gainprm[legs, 0])
    assert np.allclose(other.actuator_biasprm[legs, 1], 0.8 * model.actuator_biasprm[legs, 1])
    assert np.isclose(other.body_mass[lay.head], 1.2 * model.body_mass[lay.head])
    assert not np.allclose(other.actuator_gainprm[legs, 0], model.actuator_gainprm[legs, 0])  # a copy, not the model
