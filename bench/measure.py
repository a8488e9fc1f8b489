#!/usr/bin/env python3
"""Time a command over several runs: wall time and peak RSS per run, medians. Stdlib only.

Peak RSS comes from GNU time (`/usr/bin/time -v`, Debian package `time`): the largest resident set
of any one process of the command's tree that was waited for, not the sum over processes.
Wall time is measured here around the whole command (GNU time adds about a millisecond to every
tool alike). Without GNU time, RSS is left out.

As a module: `measure(cmd, cwd=..., runs=..., prepare=...)`. As a command (the lint benchmark's
fallback when hyperfine is missing):

    measure.py --runs 10 --warmup 1 --cwd DIR --label NAME -- CMD ARGS...

prints one JSON object {label, runs: [{wall_s, rss_kb, rc}], median_wall_s, median_rss_kb}.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

GNU_TIME = "/usr/bin/time"


def have_gnu_time():
    if not os.access(GNU_TIME, os.X_OK):
        return False
    probe = subprocess.run([GNU_TIME, "-v", "true"], capture_output=True, text=True)
    return "Maximum resident set size" in probe.stderr


def run_once(cmd, cwd, env=None, log=None, gnu_time=True):
    """Run `cmd` once; return {wall_s, rss_kb, rc}. Output goes to `log` (a path) or nowhere."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    try:
        if gnu_time:
            fd, stats = tempfile.mkstemp(prefix="measure-", suffix=".txt")
            os.close(fd)
            try:
                t0 = time.perf_counter()
                p = subprocess.run([GNU_TIME, "-v", "-o", stats, *cmd], cwd=cwd, env=env,
                                   stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                wall = time.perf_counter() - t0
                with open(stats) as fh:
                    text = fh.read()
            finally:
                os.unlink(stats)
            rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
            return {"wall_s": wall, "rss_kb": int(rss.group(1)) if rss else None, "rc": p.returncode}
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL)
        return {"wall_s": time.perf_counter() - t0, "rss_kb": None, "rc": p.returncode}
    finally:
        if log:
            out.close()


def measure(cmd, cwd=None, runs=5, warmup=1, prepare=None, env=None, log=None):
    """Run `cmd` warmup + runs times. `prepare()` (untimed) runs before each run and may return
    the working directory for it. Returns {runs: [...], median_wall_s, median_rss_kb}."""
    gnu = have_gnu_time()
    results = []
    for i in range(warmup + runs):
        where = prepare() if prepare else cwd
        r = run_once(cmd, where or cwd, env=env, log=log, gnu_time=gnu)
        if i >= warmup:
            results.append(r)
    walls = [r["wall_s"] for r in results]
    rsss = [r["rss_kb"] for r in results if r["rss_kb"] is not None]
    return {"runs": results,
            "median_wall_s": statistics.median(walls) if walls else None,
            "median_rss_kb": int(statistics.median(rsss)) if rsss else None}


def fmt_s(seconds):
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_kb(kb):
    return "-" if kb is None else f"{kb / 1024:.1f} MiB"


def ratio(a, b):
    """a / b as text, or '-' when either is missing."""
    return f"{a / b:.1f}x" if a and b else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--cwd", default=None)
    ap.add_argument("--label", default=None)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd or not shutil.which(cmd[0]):
        ap.error(f"no such command: {cmd[:1]}")
    result = measure(cmd, cwd=a.cwd, runs=a.runs, warmup=a.warmup)
    result["label"] = a.label or " ".join(cmd)
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
