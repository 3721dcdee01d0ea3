"""The robot-rl playbook's machinery: MuJoCo tasks, PPO checkpoints that resume, NaN stops, refused checkpoints, video."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("mujoco")
pytest.importorskip("stable_baselines3")

import gymnasium as gym  # noqa: E402

from sparkbooks import robot  # noqa: E402
from sparkbooks.exceptions import CheckpointMismatchError, InputError, TrainingDivergedError  # noqa: E402
from sparkbooks.robot.train import PPOSettings, checkpoint_paths, load_policy, train  # noqa: E402

TINY = PPOSettings(n_steps=64, batch_size=64, n_epochs=1)  # one rollout of 64 steps per environment, one pass


def test_an_unknown_task_is_refused_with_the_ones_that_exist():
    with pytest.raises(InputError, match="Unknown environment 'Humanoid-v99'.*Hopper-v5, Humanoid-v5.*InvertedPendulum-v5"):
        robot.tasks.check_task("Humanoid-v99")
    assert robot.tasks.threshold("InvertedPendulum-v5") == 950.0 and robot.tasks.threshold("Hopper-v5") == 3800.0
    assert "Hopper-v4" not in robot.tasks.mujoco_tasks()  # only the newest version of each body is offered


def test_simulation_rate_counts_every_copy():
    table = robot.tasks.throughput("InvertedPendulum-v5", [1, 4], steps=50)
    assert list(table["env_steps"]) == [50, 200] and (table["steps_per_s"] > 0).all()
    floor = robot.tasks.random_returns("InvertedPendulum-v5", episodes=5)
    assert floor.shape == (5,) and floor.max() < 100  # random actions drop the pole within a few dozen steps


def test_training_resumes_from_its_checkpoint_and_refuses_other_settings(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where SB3's default logger makes its folders
    (tmp_path / "tmp").mkdir()
    first = train("InvertedPendulum-v5", out=tmp_path, n_envs=2, max_steps=128, eval_every=128, eval_episodes=2, settings=TINY)
    assert (first.steps, first.resumed_from, len(first.curve)) == (128, 0, 1)
    policy, record = checkpoint_paths(tmp_path, "InvertedPendulum-v5", 0)
    assert policy.is_file() and json.loads(record.read_text())["steps"] == 128
    more = train("InvertedPendulum-v5", out=tmp_path, n_envs=2, max_steps=256, eval_every=128, eval_episodes=2, settings=TINY)
    assert (more.resumed_from, more.steps, len(more.curve)) == (128, 256, 2)  # continued, not restarted
    assert more.curve[0] == first.curve[0] and more.seconds > first.seconds
    done = train("InvertedPendulum-v5", out=tmp_path, n_envs=2, max_steps=256, eval_every=128, eval_episodes=2, settings=TINY)
    assert done.steps == 256 and done.curve == more.curve  # nothing left to do: returned as saved
    with pytest.raises(InputError, match="other settings or n_envs"):
        train("InvertedPendulum-v5", out=tmp_path, n_envs=4, max_steps=512, settings=TINY)
    assert not list((tmp_path / "tmp").glob("SB3-*"))  # no empty SB3-<time> folder per learn() call


def test_a_checkpoint_for_another_body_is_refused_with_both_shapes(tmp_path):
    train("InvertedPendulum-v5", out=tmp_path, n_envs=1, max_steps=64, eval_every=64, eval_episodes=1, settings=TINY)
    policy, _ = checkpoint_paths(tmp_path, "InvertedPendulum-v5", 0)
    assert load_policy(policy, "InvertedPendulum-v5").observation_space.shape == (4,)
    with pytest.raises(CheckpointMismatchError, match=r"observations \(4,\).*InvertedDoublePendulum-v5 has observations \(9,\)"):
        load_policy(policy, "InvertedDoublePendulum-v5")


class _NaNAfter(gym.Wrapper):
    """A real InvertedPendulum whose sensor fails (returns NaN) from its ``after``-th step on."""

    def __init__(self, after: int):
        super().__init__(gym.make("InvertedPendulum-v5"))
        self.after, self.count = after, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.count += 1
        return (obs * np.nan if self.count >= self.after else obs), reward, terminated, truncated, info


def test_nan_observations_stop_training_naming_the_step_and_the_last_good_checkpoint(tmp_path):
    gym.register("SensorFailsPendulum-v0", entry_point=lambda: _NaNAfter(150), max_episode_steps=1000)
    try:
        with pytest.raises(TrainingDivergedError, match=r"stopped at step .*last good checkpoint is .*seed0.zip \(step 128\)"):
            train("SensorFailsPendulum-v0", out=tmp_path, n_envs=1, max_steps=1024, eval_every=64, eval_episodes=1,
                  threshold=950, settings=TINY)
        policy, record = checkpoint_paths(tmp_path, "SensorFailsPendulum-v0", 0)
        assert json.loads(record.read_text())["steps"] == 128 and policy.is_file()  # the last good state, whole
    finally:
        gym.registry.pop("SensorFailsPendulum-v0")


def test_a_rollout_becomes_a_gif_and_a_missing_renderer_only_loses_the_video(tmp_path):
    shot = robot.video.record("InvertedPendulum-v5", steps=20, width=96, height=72)
    assert shot.gif[:6] == b"GIF89a" and shot.steps > 0 and "data:image/gif;base64," in shot.html("random")
    # OSMesa is not installed on this machine (nor in CI): asking for it must give the reason and the fix, not a crash
    code = ("import sparkbooks.robot as r; s = r.video.record('InvertedPendulum-v5', steps=5); "
            "rate = r.tasks.simulation_rate('InvertedPendulum-v5', 2, steps=5)['steps_per_s']; "
            "print(s.gif is None, rate > 0, '|', s.reason)")
    env = dict(os.environ, MUJOCO_GL="osmesa", PYOPENGL_PLATFORM="osmesa")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    # no video, the physics still runs, and the reason names the backend and the packages to install
    assert done.stdout.startswith("True True |") and "MUJOCO_GL=osmesa" in done.stdout and "libegl1" in done.stdout


def test_the_playbook_offers_exactly_the_installed_mujoco_tasks():
    # the notebook refuses an unknown env_id before any cell runs; its list must be what Gymnasium really has
    import sparkbooks as sb

    declared = sb.catalog.get("robot-rl").parameters["env_id"].choices
    assert sorted(declared) == robot.tasks.mujoco_tasks()


# The batched path: MuJoCo Warp (Warp's CPU device here, the same kernels a GPU runs) and rsl_rl's PPO.
batched = robot.batched


@pytest.fixture(scope="module")
def warp_ready():
    pytest.importorskip("mujoco_warp")
    pytest.importorskip("rsl_rl")
    return batched.choose_device("auto")[0]


def test_warp_follows_mujocos_c_engine_step_by_step(warp_ready):
    check = batched.agreement("InvertedPendulum-v5", steps=150, seed=3, device=warp_ready)
    assert check["qpos_travel"] > 0.1  # the pole fell: a real trajectory, not a resting state
    assert check["max_qpos_diff"] < 1e-2  # float32 Warp vs float64 C, the same controls
    rates = batched.throughput("InvertedPendulum-v5", [1, 8], steps=3, device=warp_ready)
    assert list(rates["env_steps"]) == [3, 24] and (rates["steps_per_s"] > 0).all()


def test_the_batch_keeps_gymnasiums_rules(warp_ready):
    import torch

    env = batched.PendulumBatch(3, device=warp_ready, seed=1)
    start = env.get_observations()["policy"]
    assert start.shape == (3, 4) and 0 < start.abs().max() <= 0.01  # Gymnasium's reset noise
    gym_env = gym.make("InvertedPendulum-v5").unwrapped
    gym_env.reset(seed=0)
    state = start[0].double().numpy()
    gym_env.set_state(state[:2], state[2:])
    action = np.array([0.7])
    expected, reward, terminated, _, _ = gym_env.step(action)
    obs, rewards, dones, extras = env.step(torch.tensor([[0.7], [0.0], [0.0]]))
    assert np.abs(obs["policy"][0].numpy() - expected).max() < 1e-4 and rewards[0] == reward and dones[0] == terminated == 0
    env.batch.qpos[1, 1] = 0.5  # copy 1's pole beyond 0.2 rad: ended, reward 0, started again
    env.episode_length_buf[2] = 999  # copy 2 reaches the 1,000-step limit
    obs, rewards, dones, extras = env.step(torch.zeros(3, 1))
    assert rewards.tolist() == [1.0, 0.0, 1.0] and dones.tolist() == [0, 1, 1]
    assert extras["time_outs"].tolist() == [False, False, True] and env.episode_length_buf.tolist() == [2, 0, 0]
    assert obs["policy"][1].abs().max() <= 0.01  # the new episode's first observation
    with pytest.raises(TrainingDivergedError, match="non-finite actions to 1 of 3"):
        env.step(torch.tensor([[0.0], [float("nan")], [0.0]]))


def test_batched_training_resumes_refuses_and_stops_on_nan(tmp_path, warp_ready):
    import torch

    kwargs = dict(out=tmp_path, n_envs=8, eval_every=1, eval_episodes=1, device=warp_ready)
    first = batched.train("InvertedPendulum-v5", max_iterations=1, **kwargs)
    assert (first.steps, first.resumed_from, len(first.curve)) == (8 * 16, 0, 1) and os.path.isfile(first.checkpoint)
    more = batched.train("InvertedPendulum-v5", max_iterations=2, **kwargs)
    assert (more.resumed_from, more.steps, len(more.curve)) == (128, 256, 2) and more.curve[0] == first.curve[0]
    assert batched.evaluate(batched.load_policy(more), "InvertedPendulum-v5", episodes=1).shape == (1,)
    with pytest.raises(InputError, match="other settings"):
        batched.train("InvertedPendulum-v5", max_iterations=3, learning_rate=3e-4, **kwargs)
    with pytest.raises(InputError, match="rules for InvertedPendulum-v5 only"):
        batched.train("Hopper-v5", max_iterations=1, **kwargs)
    state = torch.load(more.checkpoint, weights_only=False)  # weights gone bad: NaN actions at the next rollout
    for key, value in state["actor_state_dict"].items():
        if value.is_floating_point():
            value.fill_(float("nan"))
    torch.save(state, more.checkpoint)
    with pytest.raises(TrainingDivergedError, match=r"iterations 3–3 \(after 256 steps\).*last checkpoint is .*seed0_n8\.pt"):
        batched.train("InvertedPendulum-v5", max_iterations=3, **kwargs)


def test_a_gpu_asked_for_without_one_is_refused(warp_ready):
    if warp_ready != "cpu":
        pytest.skip("this machine has a GPU Warp can use")
    with pytest.raises(InputError, match="Warp sees no CUDA device"):
        batched.choose_device("cuda")


def test_evaluation_never_moves_the_training_actor(warp_ready):
    """rsl_rl 5.5.1's get_inference_policy(device) moves the training actor itself (issue 52 item 1): on a GPU the
    next learn() fed CUDA observations to a CPU actor. The evaluation policy must be a copy; the actor stays put."""
    import contextlib
    import copy
    import io

    import torch

    _, OnPolicyRunner, TensorDict = batched._rsl()
    env = batched.PendulumBatch(2, device=warp_ready)
    with contextlib.redirect_stdout(io.StringIO()):
        runner = OnPolicyRunner(env, copy.deepcopy(batched.ppo_config()), log_dir=None, device=str(env.device))
        runner.learn(1)  # the actor now caches its last action distribution (autograd tensors)
    actor = runner.alg.get_policy()
    moves = []

    class Watched(type(actor)):
        def to(self, *args, **kwargs):
            moves.append("training actor" if self is actor else "copy")
            return super().to(*args, **kwargs)

    actor.__class__ = Watched
    before = {name: p.detach().clone() for name, p in actor.named_parameters()}
    act = batched._policy_fn(runner, TensorDict)
    assert "training actor" not in moves and "copy" in moves
    action = act(np.zeros(4))
    assert action.shape == (1,) and np.isfinite(action).all()
    with torch.no_grad():  # the copy's weights are its own
        for p in actor.parameters():
            p.add_(1.0)
    assert np.allclose(act(np.zeros(4)), action)
    for name, p in actor.named_parameters():
        assert torch.allclose(p - 1.0, before[name], atol=1e-6) and p.device == env.device
