"""Resume cost: a 1,000,000-row job that is 99 % done (990,000 rows recorded in part files, as a
run with the default flush of 500 rows leaves them). Times each step of `batch run` before the
first missing row is sent: manifest check (id hashes), reading the state, skipping done rows.

    .venv/bin/python bench/resume.py [--rows 1000000] [--done 0.99]

Target (issue 7): skipping 990,000 done rows in under 10 s.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from batch.core.records import Answer, Outcome, Usage  # noqa: E402
from batch.inputs.manifest import Manifest  # noqa: E402
from batch.ledger.store import ResultStore  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--done", type=float, default=0.99)
    args = ap.parse_args()
    n = args.rows
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        manifest_path = tmp / "m.parquet"
        pq.write_table(
            pa.table(
                {"id": [f"row-{i:08d}" for i in range(n)], "image": [f"img/{i % 1000:04d}.png" for i in range(n)]}
            ),
            manifest_path,
        )
        # Which rows are done: a scattered 1 % is missing (in-flight rows of several kills).
        rng = np.random.default_rng(1)
        done = rng.random(n) < args.done
        info = Manifest(manifest_path).check()
        store = ResultStore(tmp / "out.parquet", info)
        store.open()
        t = time.monotonic()
        idx = np.flatnonzero(done)
        for start in range(0, len(idx), 500):
            store.write_parts(
                [
                    Outcome(
                        int(i),
                        "ok",
                        answer=Answer("a caption of some length", "stop", Usage(300, 40, 340), "gpt-4o"),
                        attempts=1,
                    )
                    for i in idx[start : start + 500]
                ]
            )
        print(f"setup: {len(idx)} done rows written as {len(idx) // 500 + 1} parts in {time.monotonic() - t:.1f} s")

        t0 = time.monotonic()
        m = Manifest(manifest_path)
        info2 = m.check()
        t1 = time.monotonic()
        again = ResultStore(tmp / "out.parquet", info2)
        already = again.open()
        t2 = time.monotonic()
        first = None
        todo = 0
        for _item in m.items(skip=again.done.copy()):
            if first is None:
                first = time.monotonic()
            todo += 1
        t3 = time.monotonic()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"rows {n}, done {already}, to send {todo}")
    print(f"manifest check (id hashes, duplicate test): {t1 - t0:.2f} s")
    print(f"read resume state ({already} rows in parts):  {t2 - t1:.2f} s")
    print(
        f"skip done rows and yield the {todo} missing: {t3 - t2:.2f} s "
        f"(first missing row after {(first or t3) - t2:.3f} s)"
    )
    print(
        f"total before sending could start: {(first or t3) - t0:.2f} s; all skipping done: {t3 - t0:.2f} s "
        f"(target < 10 s)"
    )
    print(f"peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
