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


def _judged(seed: int, steps: int, controllers=("trained", "untrained", "rest", "linear IK", "IK + integral")) -> dict:
    return {"seed": seed, "iterations": steps // 6144, "steps": steps, "train_s": 100.0, "n_envs": 256, "device": "cpu",
            "episodes": 2, "target_seed": 90_000 + seed, "ki": 0.1, "median": {k: 0.1 for k in controllers},
            "scores": {k: [0.1, 0.1] for k in controllers}, "load_avg": [1.0, 1.0, 1.0], "finished": "2026-12-07"}


def test_the_head_record_refuses_seeds_trained_unequal_steps(tmp_path, monkeypatch):
    """Review finding (issue 51): under a time budget the record's seeds trained 49k–172k steps (the machine's load
    decided), so they were not replicates. The report now refuses seeds of unequal training, and old records."""
    import argparse
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("reachy_bench", task.RESULT.parents[1] / "robot_reachy_head.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(bench, "RESULT", tmp_path / "result.json")
    args = argparse.Namespace(out=str(tmp_path), seeds=[0, 1])
    for seed, steps in ((0, 61_440), (1, 172_032)):
        (tmp_path / f"judged_seed{seed}.json").write_text(json.dumps(_judged(seed, steps)))
    with pytest.raises(SystemExit, match="unequal steps"):
        bench.report(args)
    (tmp_path / "judged_seed1.json").write_text(json.dumps(_judged(1, 61_440, ("trained", "untrained", "rest", "linear IK"))))
    with pytest.raises(SystemExit, match="judged without"):
        bench.report(args)
    (tmp_path / "judged_seed1.json").write_text(json.dumps(_judged(1, 61_440)))
    result = bench.report(args)
    assert result["steps"] == 61_440 and "trained_minus_integral_ik_rad" in result and bench.RESULT.exists()


def test_integral_action_is_linear_ik_at_zero_gain_and_starts_from_zero_each_time(model):
    """The closed-loop classical baseline (review finding, issue 51: IK + integral ties the trained policy)."""
    obs = np.random.default_rng(0).normal(0, 1, (3, task.N_OBS)).astype(np.float32)
    gains = task._ik_gains(model)
    assert np.allclose(task.IntegralIK(0.0, gains)(obs), task.linear_ik(model)(obs))
    integral = task.IntegralIK(0.3, gains)
    first, second = integral(obs), integral(obs)
    assert not np.allclose(first, second)  # the integral grows while the error stays
    assert np.allclose(integral.fresh()(obs), first)  # a fresh one starts from zero
    tuned = task.tune_integral_ik(model=model, ki_grid=(0.0, 0.3), episodes=4, seed=80_000)
    assert set(tuned.medians) == {0.0, 0.3} and tuned.controller.ki == min(tuned.medians, key=tuned.medians.get)
