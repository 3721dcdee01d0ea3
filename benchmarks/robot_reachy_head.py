"""Reachy Mini head tracking: rsl_rl PPO on a MuJoCo Warp batch with domain randomisation, judged in C MuJoCo over seeds.

One seed per invocation (``--seed``), resumable: training runs in chunks and saves the whole runner
after each, so a run cut short (a ``--slot-s`` slot on a shared machine) continues where it stopped.
Every seed trains the same ``--iterations`` (the same environment steps): a time budget would give a
seed on a busy machine less training than one on a quiet machine, and the seeds would not be
replicates. Its training time is recorded. A finished seed is judged in C MuJoCo (the shipped model,
contacts on, double precision) on 32 targets drawn from ``90,000 + seed``: the trained policy, the
untrained policy rsl_rl built for the same seed (its first weights), holding the rest pose, and two
classical baselines from MuJoCo's own model — inverse kinematics linearised at rest
(:func:`sparkbooks.robot.head_task.linear_ik`, feed-forward) and the same IK with integral action on the
head's error, its gain tuned on 32 other targets (``80,000 + seed``,
:func:`sparkbooks.robot.head_task.tune_integral_ik`); each seed's record is kept beside its checkpoint.
``--report`` gathers the finished seeds: per-seed median errors, their IQM with a stratified bootstrap
95 % interval (:mod:`sparkbooks.robot.stats`, the seed the unit), the per-seed ratio trained/untrained,
and writes ``benchmarks/results/robot_reachy_head.json`` with the machine, date and load.

    python benchmarks/robot_reachy_head.py --seed 0 [--iterations 30] [--n-envs 256] [--out DIR]
    python benchmarks/robot_reachy_head.py --report [--seeds 0 1 2 3 4]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from sparkbooks.fileio import write_json_atomic
from sparkbooks.hardware import detect
from sparkbooks.robot import head_batch, head_task, stats

SMOKE_HELP = "tiny sizes (≤ 30 s): proves the benchmark still runs end to end; its figures mean nothing"
SMOKE = {"n_envs": 4, "iterations": 1, "episodes": 2, "steps_per_env": 2, "ki_grid": [0.0, 0.2]}
CONTROLLERS = ("trained", "untrained", "rest", "linear IK", "IK + integral")
RESULT = Path(__file__).parent / "results" / "robot_reachy_head.json"
DEFAULT_OUT = Path.home() / ".cache" / "sparkbooks" / "robot_reachy_head"


def _judge(run: head_batch.HeadRun, episodes: int, ki_grid: list[float]) -> dict:
    """The seed's five controllers on the same C-MuJoCo targets: episode scores (rad) and their medians."""
    target_seed = 90_000 + run.seed
    tuned = head_task.tune_integral_ik(ki_grid=tuple(ki_grid), episodes=episodes, seed=80_000 + run.seed)
    integral = tuned.controller
    players = {"trained": head_batch.load_policy(run), "untrained": head_batch.load_policy(None, seed=run.seed),
               "rest": head_task.rest_policy, "linear IK": head_task.linear_ik(), "IK + integral": integral.fresh()}
    scores = {k: head_task.judge(p, episodes=episodes, seed=target_seed).tolist() for k, p in players.items()}
    return {"seed": run.seed, "iterations": run.iterations, "steps": run.steps, "ki": integral.ki,
            "ki_tuning_median_rad": {str(k): v for k, v in tuned.medians.items()},
            "train_s": run.seconds, "n_envs": run.n_envs, "device": run.device, "episodes": episodes, "target_seed": target_seed,
            "median": {k: float(np.median(v)) for k, v in scores.items()}, "scores": scores,
            "load_avg": os.getloadavg(), "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def train_seed(args) -> dict | None:
    """Train (or resume) one seed; judge it once it has trained its iterations. None while it is unfinished."""
    out = Path(args.out)
    run = head_batch.train(out=out, seed=args.seed, n_envs=args.n_envs, iterations=args.iterations,
                           max_seconds=args.slot_s, chunk=1, device=args.device, steps_per_env=args.steps_per_env)
    print(json.dumps({"seed": run.seed, "iterations": run.iterations, "train_s": round(run.seconds, 1),
                      "reward": run.reward[-3:]}), flush=True)
    if run.iterations < args.iterations:
        print(f"seed {args.seed}: {run.iterations} of {args.iterations} iterations trained; run again to continue",
              flush=True)
        return None
    record = out / f"judged_seed{args.seed}.json"
    if not record.exists():
        write_json_atomic(record, _judge(run, args.episodes, args.ki_grid))
    judged = json.loads(record.read_text())
    print(f"seed {args.seed}, {judged['episodes']} targets in C MuJoCo\n| controller | median error (°) |\n|---|---|")
    for name, value in judged["median"].items():
        print(f"| {name} | {np.degrees(value):.2f} |")
    return judged


def report(args) -> dict:
    """The finished seeds' figures, with intervals over seeds, written to ``RESULT``."""
    seeds = [json.loads((Path(args.out) / f"judged_seed{s}.json").read_text()) for s in args.seeds
             if (Path(args.out) / f"judged_seed{s}.json").exists()]
    if len(seeds) < 2:
        raise SystemExit(f"{len(seeds)} seeds judged in {args.out}: train more with --seed first.")
    old = [s["seed"] for s in seeds if set(CONTROLLERS) - set(s["median"])]
    if old:
        raise SystemExit(f"seeds {old} were judged without {CONTROLLERS}: delete their judged_seed*.json in {args.out} "
                         "and run --seed again (the checkpoint is kept; only the judging reruns).")
    unequal = sorted({s["steps"] for s in seeds})
    if len(unequal) > 1:  # seeds are replicates only at equal training
        raise SystemExit(f"the judged seeds trained unequal steps {unequal}: retrain them with one --iterations.")
    medians = {k: np.array([s["median"][k] for s in seeds]) for k in CONTROLLERS}
    est = stats.stratified_bootstrap(medians, stats.iqm, reps=20_000)
    ratio = medians["trained"] / medians["untrained"]
    ratio_est = stats.stratified_bootstrap({"ratio": ratio}, stats.iqm, reps=20_000)["ratio"]
    vs = {k: stats.paired_difference(medians["trained"], medians[k], stats.iqm, reps=20_000)
          for k in ("linear IK", "IK + integral")}
    machine = detect()
    result = {
        "task": "Reachy Mini head-orientation tracking (reachy-mini 1.13.0 MJCF), targets ±0.25 rad roll/pitch/yaw",
        "trainer": "rsl_rl PPO on MuJoCo Warp (contacts off) with domain randomisation; judged in C MuJoCo, contacts on",
        "seeds": [s["seed"] for s in seeds], "iterations": seeds[0]["iterations"], "steps": seeds[0]["steps"],
        "train_s_max": round(max(s["train_s"] for s in seeds), 1), "n_envs": seeds[0]["n_envs"],
        "device": seeds[0]["device"], "episodes_per_seed": seeds[0]["episodes"],
        "per_seed": {s["seed"]: {"median_rad": s["median"], "train_s": round(s["train_s"], 1), "steps": s["steps"],
                                 "ki": s["ki"], "load_avg": s["load_avg"], "finished": s["finished"]} for s in seeds},
        "iqm_median_error_rad": {k: {"value": e.value, "low": e.low, "high": e.high} for k, e in est.items()},
        "ratio_trained_over_untrained": {"per_seed": ratio.tolist(), "iqm": ratio_est.value, "low": ratio_est.low,
                                         "high": ratio_est.high},
        "halves_untrained": bool(ratio_est.high <= 0.5),
        **{f"trained_minus_{key}_rad": {"iqm": vs[name].value, "low": vs[name].low, "high": vs[name].high,
                                        "test": "paired bootstrap over seeds (same targets per seed)"}
           for name, key in (("linear IK", "linear_ik"), ("IK + integral", "integral_ik"))},
        "interval": "stratified percentile bootstrap over seeds (the seed is the unit), 20,000 resamples, 95 %",
        "machine": f"{machine.cpu_model}, {machine.cpu_cores} cores, {machine.memory_gib:.0f} GiB, "
                   f"{machine.gpus[0].name if machine.gpus else 'no GPU'}; shared with other jobs (load averages per seed)",
        "date": dt.date.today().isoformat(),
    }
    RESULT.write_text(json.dumps(result, indent=1) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--iterations", type=int, default=30,
                        help="rsl_rl iterations per seed, over all invocations (n_envs × steps-per-env steps each)")
    parser.add_argument("--slot-s", type=float, default=None, help="training seconds this invocation at most")
    parser.add_argument("--ki-grid", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5],
                        help="integral gains tried for the IK + integral baseline (on tuning targets)")
    parser.add_argument("--n-envs", type=int, default=256)
    parser.add_argument("--steps-per-env", type=int, default=24)
    parser.add_argument("--episodes", type=int, default=32, help="C-MuJoCo targets per seed and controller")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="checkpoints and per-seed records (kept, not committed)")
    parser.add_argument("--report", action="store_true", help="gather the judged seeds into benchmarks/results/")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:  # the same code path on tiny inputs, in a folder of its own; nothing is written to results/
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()
        with tempfile.TemporaryDirectory() as tmp:
            args.out = tmp
            started = time.perf_counter()
            judged = train_seed(args)
            print(json.dumps({"smoke": True, "judged": judged is not None, "s": round(time.perf_counter() - started, 1)}))
        return
    print(json.dumps(report(args), indent=1) if args.report else json.dumps(train_seed(args)))


if __name__ == "__main__":
    main()
