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
    assert not list((tmp_path / "tmp").iterdir())  # no empty SB3-<time> folder per learn() call


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
