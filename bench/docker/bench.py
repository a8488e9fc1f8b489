#!/usr/bin/env python3
"""Docker job overhead: `runnel exec --executor docker` running one job against a bare
`docker run --rm` of the same image and command, interleaved in the same run (so both see the
same machine load). Also times `runnel exec` with the shell executor on the same pipeline, for
reference. Stdlib only; uses bench/measure.py.

The job: `runnel-test/busybox:latest` (scripts/test-images.sh), script `echo hello`. Each runnel
run gets a fresh git repository (made outside the timing). The goal is a ratio of at most 1.5.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from measure import fmt_s, have_gnu_time, run_once  # noqa: E402

IMAGE = "runnel-test/busybox:latest"
PIPELINE = f"""job:
  image: {IMAGE}
  script:
    - echo hello
"""


def fresh_repo(root, index):
    repo = os.path.join(root, f"repo-{index}")
    os.makedirs(repo)
    with open(os.path.join(repo, ".gitlab-ci.yml"), "w") as fh:
        fh.write(PIPELINE)
    env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="b@example.com",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="b@example.com")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)
    return repo


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runnel", required=True)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--report", default=None)
    a = ap.parse_args()
    a.runnel = os.path.abspath(a.runnel)

    gnu = have_gnu_time()
    root = tempfile.mkdtemp(prefix="runnel-bench-docker-")
    cases = {
        "docker run --rm": lambda i: (["docker", "run", "--rm", IMAGE, "sh", "-c", "echo hello"], root),
        "runnel exec --executor docker": lambda i: (
            [a.runnel, "exec", "--executor", "docker"], fresh_repo(root, f"d{i}")),
        "runnel exec (shell)": lambda i: ([a.runnel, "exec"], fresh_repo(root, f"s{i}")),
    }
    results = {name: [] for name in cases}
    try:
        for i in range(a.warmup + a.runs):
            for name, make in cases.items():
                cmd, cwd = make(i)
                log = os.path.join(root, f"run-{i}.log")
                r = run_once(cmd, cwd, gnu_time=gnu, log=log)
                if r["rc"] != 0:
                    with open(log, errors="replace") as fh:
                        tail = fh.read()[-3000:]
                    print(f"{name} failed (exit code {r['rc']}) in {cwd}:\n{tail}", file=sys.stderr)
                    return 1
                os.unlink(log)
                if i >= a.warmup:
                    results[name].append(r)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    report = {}
    print(f"{'command':32} {'median':>10} {'min':>10} {'max':>10}")
    for name, runs in results.items():
        walls = [r["wall_s"] for r in runs]
        report[name] = {"median_wall_s": statistics.median(walls), "runs": runs}
        print(f"{name:32} {fmt_s(statistics.median(walls)):>10} {fmt_s(min(walls)):>10} {fmt_s(max(walls)):>10}")
    bare = report["docker run --rm"]["median_wall_s"]
    runnel = report["runnel exec --executor docker"]["median_wall_s"]
    report["ratio"] = runnel / bare
    print(f"\nrunnel exec --executor docker / docker run --rm = {runnel / bare:.2f}x (goal <= 1.5x)")
    if a.report:
        with open(a.report, "w") as fh:
            json.dump(report, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
