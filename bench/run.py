"""`make bench`: every benchmark in turn, each comparing metacrm with the raw stack in the
same run. Pass-through sizes are the scripts' own defaults; run a script alone for flags."""

from __future__ import annotations

import importlib
import sys

SCRIPTS = ("bench.bench_core", "bench.bench_dedup_import", "bench.bench_pool_sweep", "bench.bench_workflow")


def main() -> int:
    failed = []
    for name in SCRIPTS:
        print(f"\n=== {name}", flush=True)
        module = importlib.import_module(name)
        try:
            code = module.main([])
        except SystemExit as exit_:
            code = exit_.code
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
