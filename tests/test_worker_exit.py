"""How a torchrun worker ends: ``distributed.finish_worker`` (one implementation for every worker)."""

import os
import subprocess
import sys

import sparkbooks as sb
from sparkbooks.training import distributed


def test_finish_worker_returns_outside_torchrun(monkeypatch):
    # in-process (a test driving a worker) it must not end the caller: os._exit would end pytest with status 0
    import torch.distributed as dist

    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(sb.services.free_port()), "SPARKBOOKS_DIST_BACKEND": "gloo"}.items():
        monkeypatch.setenv(key, value)
    distributed.init_worker()
    assert distributed.finish_worker() is None and not dist.is_initialized()


def test_finish_worker_under_torchrun_exits_zero_without_finalising(tmp_path):
    # under torchrun the worker exits at once (no interpreter teardown, where gloo's threads can abort it);
    # what it printed before is flushed, and code after the call never runs
    script = tmp_path / "worker.py"
    script.write_text("from sparkbooks.training import distributed\n"
                      "distributed.init_worker()\nprint('before', flush=False)\n"
                      "distributed.finish_worker()\nprint('after: must not run')\n")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--standalone",
                           str(script)], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "SPARKBOOKS_DIST_BACKEND": "gloo", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("before") == 2 and "must not run" not in done.stdout
