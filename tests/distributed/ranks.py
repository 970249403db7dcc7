"""Run a function on N gloo processes (forked, CPU) and collect what each rank returns."""

from __future__ import annotations

import os
import pickle
import traceback
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import multiprocessing as mp


def _worker(rank, world, store, fn, args, results, timeout):
    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world,
                                timeout=timedelta(seconds=timeout))
        out = fn(rank, world, *args)
        results.put((rank, "ok", pickle.dumps(out)))  # bytes: no shared-memory handles
    except BaseException:  # noqa: BLE001 - the parent shows it
        results.put((rank, "error", traceback.format_exc()))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def run_ranks(fn, world: int, tmp: Path, *args, timeout: float = 60.0) -> list:
    """``[fn(rank, world, *args) for rank in range(world)]``, each in its own gloo process."""
    ctx = mp.get_context("fork")
    results = ctx.Queue()
    store = Path(tmp) / f"store-{os.getpid()}-{len(list(Path(tmp).iterdir()))}"
    procs = [ctx.Process(target=_worker, args=(r, world, store, fn, args, results, timeout)) for r in range(world)]
    for p in procs:
        p.start()
    got = {}
    for _ in procs:
        rank, kind, value = results.get(timeout=timeout * 3 + 60)
        got[rank] = (kind, value)
    for p in procs:
        p.join()
    errors = [v for k, v in got.values() if k == "error"]
    if errors:
        raise AssertionError("a rank failed:\n" + "\n".join(errors))
    return [pickle.loads(got[r][1]) for r in range(world)]
