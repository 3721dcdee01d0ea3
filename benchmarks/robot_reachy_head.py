"""Reachy Mini head tracking: rsl_rl PPO on a MuJoCo Warp batch with domain randomisation, judged in C MuJoCo over seeds.

One seed per invocation (``--seed``), resumable: training runs in chunks and saves the whole runner
after each, so a run cut short (a ``--slot-s`` slot on a shared machine) continues where it stopped.
Every seed trains the same ``--iterations`` (the same environment steps): a time budget would give a
seed on a busy machine less training than one on a quiet machine, and the seeds would not be
replicates. Its training time is recorded. A finished seed is judged in C MuJoCo (the shipped model,
contacts on, double precision) on 32 targets drawn from ``90,000 + seed``: the trained policy, the
untrained policy rsl_rl built for the same seed (its first weights), holding the rest pose, and two
classical controllers from MuJoCo's own model — inverse kinematics linearised at rest
(:func:`sparkbooks.robot.head_task.linear_ik`, first order) and IK solved to convergence with lead, its
lead tuned on 32 other targets (``80,000 + seed``, :func:`sparkbooks.robot.head_task.tune_converged_ik`).
The trained policy and both IKs are judged again on the same targets with the model mismatched — servo
stiffness and head mass at the corners of the training randomisation
(:data:`sparkbooks.robot.head_task.MISMATCH`), the IKs still solved on the nominal model, as an engineer's
would be. Each seed's record is kept beside its checkpoint.
``--report`` gathers the finished seeds: per-seed median errors, their IQM with a stratified bootstrap
95 % interval (:mod:`sparkbooks.robot.stats`, the seed the unit), the per-seed ratio trained/untrained,
and writes ``benchmarks/results/robot_reachy_head.json`` with the machine, date and load.

    python benchmarks/robot_reachy_head.py --seed 0 [--iterations 30] [--n-envs 256] [--out DIR]
    python benchmarks/robot_reachy_head.py --report [--seeds 0 1 2 3 4 5]
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
SMOKE = {"n_envs": 4, "iterations": 1, "episodes": 2, "steps_per_env": 2, "leads": [0.0, 0.5]}
CONTROLLERS = ("trained", "untrained", "rest", "linear IK", "converged IK")
MISMATCHED = ("trained", "linear IK", "converged IK")  # judged again on the mismatched models
RESULT = Path(__file__).parent / "results" / "robot_reachy_head.json"
DEFAULT_OUT = Path.home() / ".cache" / "sparkbooks" / "robot_reachy_head"


def _judge(run: head_batch.HeadRun, episodes: int, leads: list[float], steps_per_env: int) -> dict:
    """The seed's five controllers on the same C-MuJoCo targets (episode scores in rad, and their medians), then
    the trained policy and both IKs on the same targets with the model mismatched (scores pooled over corners)."""
    target_seed = 90_000 + run.seed
    tuned = head_task.tune_converged_ik(leads=tuple(leads), episodes=episodes, seed=80_000 + run.seed)
    players = {"trained": head_batch.load_policy(run), "untrained": head_batch.load_policy(None, seed=run.seed),
               "rest": head_task.rest_policy, "linear IK": head_task.linear_ik(), "converged IK": tuned.controller}
    scores = {k: head_task.judge(p, episodes=episodes, seed=target_seed).tolist() for k, p in players.items()}
    corners = {f"stiffness ×{k}, head mass ×{m}": head_task.mismatched(stiffness=k, head_mass=m)
               for k, m in head_task.MISMATCH}
    mismatch = {name: {corner: head_task.judge(players[name], episodes=episodes, seed=target_seed,
                                               model=model).tolist() for corner, model in corners.items()}
                for name in MISMATCHED}
    return {"seed": run.seed, "iterations": run.iterations, "steps": run.steps, "steps_per_env": steps_per_env,
            "lead": tuned.controller.lead, "lead_tuning_median_rad": {str(k): v for k, v in tuned.medians.items()},
            "mismatch_scores": mismatch,
            "mismatch_median": {k: float(np.median(sum(v.values(), []))) for k, v in mismatch.items()},
            "mismatch_worst_corner": {k: max(float(np.median(c)) for c in v.values()) for k, v in mismatch.items()},
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
        write_json_atomic(record, _judge(run, args.episodes, args.leads, args.steps_per_env))
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
    old = [s["seed"] for s in seeds if set(CONTROLLERS) - set(s["median"]) or "mismatch_median" not in s]
    if old:
        raise SystemExit(f"seeds {old} were judged without {CONTROLLERS} or the mismatched models: delete their "
                         f"judged_seed*.json in {args.out} and run --seed again (the checkpoint is kept; only the "
                         "judging reruns).")
    same = {"steps": "steps", "iterations": "iterations", "n_envs": "n_envs", "steps_per_env": "steps_per_env",
            "device": "device", "episodes": "episodes", "mismatch_median": "mismatched models",
            "lead_tuning_median_rad": "lead grid"}
    for key, what in same.items():  # replicates only at equal training and equal judging
        values = sorted({str(sorted(s[key]) if isinstance(s.get(key), dict) else s.get(key)) for s in seeds})
        if len(values) > 1:
            raise SystemExit(f"the judged seeds differ in {what}: {values} — retrain or re-judge them with one setting.")
    medians = {k: np.array([s["median"][k] for s in seeds]) for k in CONTROLLERS}
    mismatch = {k: np.array([s["mismatch_median"][k] for s in seeds]) for k in MISMATCHED}
    worst = {k: np.array([s["mismatch_worst_corner"][k] for s in seeds]) for k in MISMATCHED}
    est = stats.stratified_bootstrap(medians, stats.iqm, reps=20_000)
    ratio = medians["trained"] / medians["untrained"]
    ratio_est = stats.stratified_bootstrap({"ratio": ratio}, stats.iqm, reps=20_000)["ratio"]
    vs = {k: stats.paired_difference(medians["trained"], medians[k], stats.iqm, reps=20_000)
          for k in ("linear IK", "converged IK")}
    vs_mismatch = stats.paired_difference(mismatch["trained"], mismatch["converged IK"], stats.iqm, reps=20_000)
    est_mismatch = stats.stratified_bootstrap(mismatch, stats.iqm, reps=20_000)
    machine = detect()
    result = {
        "task": "Reachy Mini head-orientation tracking (reachy-mini 1.13.0 MJCF), targets ±0.25 rad roll/pitch/yaw",
        "trainer": "rsl_rl PPO on MuJoCo Warp (contacts off) with domain randomisation; judged in C MuJoCo, contacts on",
        "seeds": [s["seed"] for s in seeds], "iterations": seeds[0]["iterations"], "steps": seeds[0]["steps"],
        "train_s_max": round(max(s["train_s"] for s in seeds), 1), "n_envs": seeds[0]["n_envs"],
        "device": seeds[0]["device"], "episodes_per_seed": seeds[0]["episodes"],
        "per_seed": {s["seed"]: {"median_rad": s["median"], "train_s": round(s["train_s"], 1), "steps": s["steps"],
                                 "lead": s["lead"], "mismatch_median_rad": s["mismatch_median"],
                                 "mismatch_worst_corner_rad": s["mismatch_worst_corner"], "load_avg": s["load_avg"],
                                 "finished": s["finished"]} for s in seeds},
        "mismatch": [{"stiffness": k, "head_mass": m} for k, m in head_task.MISMATCH],
        "iqm_mismatch_median_error_rad": {k: {"value": e.value, "low": e.low, "high": e.high}
                                          for k, e in est_mismatch.items()},
        "worst_corner_iqm_rad": {k: float(stats.iqm(v)) for k, v in worst.items()},
        "iqm_median_error_rad": {k: {"value": e.value, "low": e.low, "high": e.high} for k, e in est.items()},
        "ratio_trained_over_untrained": {"per_seed": ratio.tolist(), "iqm": ratio_est.value, "low": ratio_est.low,
                                         "high": ratio_est.high},
        "halves_untrained": bool(ratio_est.high <= 0.5),
        **{f"trained_minus_{key}_rad": {"iqm": vs[name].value, "low": vs[name].low, "high": vs[name].high,
                                        "test": "paired bootstrap over seeds (same targets per seed)"}
           for name, key in (("linear IK", "linear_ik"), ("converged IK", "converged_ik"))},
        "trained_minus_converged_ik_mismatch_rad": {"iqm": vs_mismatch.value, "low": vs_mismatch.low,
                                                    "high": vs_mismatch.high,
                                                    "test": "paired bootstrap over seeds (same targets and models)"},
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
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5],
                        help="the seeds --report gathers (claims over seeds need ≥ 6: sparkbooks.evidence.MIN_SEEDS)")
    parser.add_argument("--iterations", type=int, default=30,
                        help="rsl_rl iterations per seed, over all invocations (n_envs × steps-per-env steps each)")
    parser.add_argument("--slot-s", type=float, default=None, help="training seconds this invocation at most")
    parser.add_argument("--leads", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0],
                        help="lead gains tried for the converged-IK controller (on tuning targets)")
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
