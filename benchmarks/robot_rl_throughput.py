"""MuJoCo steps/s against the number of environments, and PPO's time to Gymnasium's threshold over seeds.

Simulation alone: Gymnasium's synchronous vector env with random actions (500 steps per copy
after a warm-up). Simulation + PPO: Stable-Baselines3 training, two rollouts of 2,048 steps in
total split over the environments, each followed by 10 epochs of updates (the update work is equal
at every count). Time to threshold: the playbook's own ``sb.robot.train.train`` from scratch per
seed (evaluation every 4,096 steps on 10 deterministic episodes, wall time including evaluations).
The batched path: MuJoCo Warp's steps/s at each batch size on its device (an NVIDIA GPU where Warp
sees one, else Warp's CPU device; 50 steps after a compiling warm-up), and rsl_rl's PPO on a Warp
batch of ``--batched-train-envs`` copies to the same threshold per seed, scored in Gymnasium's own
environment every 5 iterations on 10 episodes.

    python benchmarks/robot_rl_throughput.py [--env InvertedPendulum-v5] [--n-envs 1 4 16 64] [--seeds 0 1 2]
        [--warp-envs 1 64 256 1024 4096] [--batched-train-envs 64]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from sparkbooks import robot
from sparkbooks.hardware import detect


SMOKE_HELP = "tiny sizes (≤ 30 s): proves the benchmark still runs end to end; its figures mean nothing"
#: `--smoke`: CI runs every benchmark this way (tests/test_benchmarks.py); `make bench` runs them full size
SMOKE = {"n_envs": [1, 2], "seeds": [0], "train_envs": 2, "max_steps": 512, "warp_envs": [1, 4], "batched_train_envs": 4,
         "batched_iterations": 2, "sim_steps": 50, "update_samples": 256, "eval_every": 512, "eval_episodes": 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default=robot.tasks.FAST_TASK)
    parser.add_argument("--n-envs", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-envs", type=int, default=4)
    parser.add_argument("--max-steps", type=int, default=200_000)
    parser.add_argument("--warp-envs", type=int, nargs="+", default=[1, 64, 256, 1024, 4096])
    parser.add_argument("--batched-train-envs", type=int, default=64)
    parser.add_argument("--batched-iterations", type=int, default=300)
    parser.add_argument("--sim-steps", type=int, default=500, help="random-action steps per copy in the simulation table")
    parser.add_argument("--update-samples", type=int, default=2048, help="steps per rollout in the PPO-update table")
    parser.add_argument("--eval-every", type=int, default=4096, help="PPO's evaluation interval in steps")
    parser.add_argument("--eval-episodes", type=int, default=10, help="episodes per evaluation (both trainers)")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:  # the same code path on tiny inputs; explicit options still win
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()

    sim = robot.tasks.throughput(args.env, args.n_envs, steps=args.sim_steps)
    update = robot.train.update_rate(args.env, args.n_envs, samples=args.update_samples)
    threshold = robot.tasks.threshold(args.env)
    times, steps = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            r = robot.train.train(args.env, out=Path(tmp), seed=seed, n_envs=args.train_envs, max_steps=args.max_steps,
                                  eval_every=args.eval_every, eval_episodes=args.eval_episodes)
            times.append(r.solved_s if r.solved else float("nan"))
            steps.append(r.solved_steps if r.solved else None)
            print(f"  seed {seed}: " + (f"solved at {r.solved_steps:,} steps, {r.solved_s:.1f} s" if r.solved
                                        else f"not solved in {r.steps:,} steps"), flush=True)
    device, why = robot.batched.choose_device("auto")
    warp = robot.batched.throughput(args.env, args.warp_envs, steps=50, device=device)
    b_times, b_steps = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            r = robot.batched.train(args.env, out=Path(tmp), seed=seed, n_envs=args.batched_train_envs,
                                    max_iterations=args.batched_iterations, eval_every=5, eval_episodes=args.eval_episodes,
                                    device=device)
            b_times.append(r.seconds if r.solved else float("nan"))
            b_steps.append(r.steps if r.solved else None)
            print(f"  rsl_rl on Warp, seed {seed}: " + (f"solved at {r.steps:,} steps, {r.seconds:.1f} s" if r.solved
                                                         else f"not solved in {r.steps:,} steps"), flush=True)
    print(f"\n{args.env} on {detect().summary()}\n")
    print("| n_envs | simulation steps/s | simulation + PPO steps/s |")
    print("|---|---|---|")
    for n in args.n_envs:
        print(f"| {n} | {sim.loc[n, 'steps_per_s']:,.0f} | {update.loc[n, 'steps_per_s']:,.0f} |")
    print(f"\n| seed | steps to {threshold:.0f} | seconds |\n|---|---|---|")
    for seed, t, s in zip(args.seeds, times, steps):
        print(f"| {seed} | {s if s is not None else 'not solved'} | {t:.1f} |")
    solved = [t for t in times if t == t]
    print(f"\ntime to threshold: median {np.median(solved):.1f} s over {len(solved)} of {len(times)} seeds" if solved else "")
    print(f"\nMuJoCo Warp on {device!r} ({why})\n\n| n_envs | Warp steps/s |\n|---|---|")
    for n in args.warp_envs:
        print(f"| {n} | {warp.loc[n, 'steps_per_s']:,.0f} |")
    print(f"\n| seed | rsl_rl on {args.batched_train_envs} Warp copies: steps to {threshold:.0f} | seconds |\n|---|---|---|")
    for seed, t, s in zip(args.seeds, b_times, b_steps):
        print(f"| {seed} | {s if s is not None else 'not solved'} | {t:.1f} |")
    print(json.dumps({"n_envs": list(args.n_envs), "steps_per_s": [round(float(sim.loc[n, "steps_per_s"])) for n in args.n_envs],
                      "train_steps_per_s": [round(float(update.loc[n, "steps_per_s"])) for n in args.n_envs],
                      "time_to_threshold_s": [round(t, 2) if t == t else None for t in times],
                      "steps_to_threshold": steps, "threshold": threshold, "env": args.env,
                      "warp_device": device, "warp_n_envs": list(args.warp_envs),
                      "warp_steps_per_s": [round(float(warp.loc[n, "steps_per_s"])) for n in args.warp_envs],
                      "batched_train_envs": args.batched_train_envs,
                      "batched_time_to_threshold_s": [round(t, 2) if t == t else None for t in b_times],
                      "batched_steps_to_threshold": b_steps}))


if __name__ == "__main__":
    main()
