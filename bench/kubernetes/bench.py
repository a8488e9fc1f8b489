#!/usr/bin/env python3
"""Kubernetes job start: `runnel exec --executor kubernetes` against the fake API server of
crates/runnel-kube-fake against `runnel exec --executor docker` on the same Docker engine,
interleaved in the same run (both see the same machine load). Stdlib only.

For each run the time from starting `runnel exec` to the job's first script line on its
standard output ("job start to first script line"), and to its exit, are measured. The job:
`runnel-test/busybox:latest`, script `echo "first-line-$((40+2))"` (the printed line differs
from the echoed command). Each run gets a fresh git repository, made outside the timing.

On the fake the pod's containers are Docker containers in a shared network namespace, so the
difference to the docker executor is what the Kubernetes executor adds: the API round trips, the
pod's sandbox, build and helper containers, waiting for `Running`, copying the project into the
pod over `pods/exec`, and the attach stream. Goal: at most docker + 0.5 s.
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from measure import fmt_s  # noqa: E402

IMAGE = "runnel-test/busybox:latest"
PIPELINE = f"""job:
  image: {IMAGE}
  script:
    - echo "first-line-$((40+2))"
"""
FIRST_LINE = "first-line-42"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


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


def run_job(cmd, cwd, env):
    """Runs `cmd`; returns {first_line_s, wall_s, rc, output}."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, text=True, errors="replace")
    first = None
    output = []
    for line in p.stdout:
        output.append(line)
        text = ANSI.sub("", line).rstrip()
        if first is None and text.endswith(FIRST_LINE) and "echo" not in text:
            first = time.perf_counter() - t0
    rc = p.wait()
    return {"first_line_s": first, "wall_s": time.perf_counter() - t0, "rc": rc,
            "output": "".join(output)}


def start_fake(fake, root):
    """Starts the fake API server; returns (process, kubeconfig path)."""
    kubeconfig = os.path.join(root, "kubeconfig")
    proc = subprocess.Popen([fake, "--kubeconfig", kubeconfig, "--namespace", "bench"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if line.startswith("kubeconfig written"):
            return proc, kubeconfig
    raise SystemExit(f"the fake API server exited (code {proc.wait()})")


def stop_fake(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runnel", required=True)
    ap.add_argument("--fake", required=True)
    ap.add_argument("--helper-image", required=True)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--report", default=None)
    a = ap.parse_args()
    a.runnel = os.path.abspath(a.runnel)

    root = tempfile.mkdtemp(prefix="runnel-bench-kube-")
    fake, kubeconfig = start_fake(os.path.abspath(a.fake), root)
    env = dict(os.environ, KUBECONFIG=kubeconfig, NO_COLOR="1")
    cases = {
        "runnel exec --executor docker": [a.runnel, "exec", "--executor", "docker"],
        "runnel exec --executor kubernetes": [a.runnel, "exec", "--executor", "kubernetes",
                                              "--kube-helper-image", a.helper_image],
    }
    results = {name: [] for name in cases}
    try:
        for i in range(a.warmup + a.runs):
            for name, cmd in cases.items():
                cwd = fresh_repo(root, f"{len(name)}-{i}")
                r = run_job(cmd, cwd, env)
                if r["rc"] != 0 or r["first_line_s"] is None:
                    print(f"{name} failed (exit code {r['rc']}) in {cwd}:\n{r['output'][-3000:]}",
                          file=sys.stderr)
                    return 1
                del r["output"]
                if i >= a.warmup:
                    results[name].append(r)
    finally:
        stop_fake(fake)
        shutil.rmtree(root, ignore_errors=True)

    report = {}
    print(f"{'command':36} {'first line':>11} {'min':>9} {'max':>9} {'whole job':>10}")
    for name, runs in results.items():
        firsts = [r["first_line_s"] for r in runs]
        walls = [r["wall_s"] for r in runs]
        report[name] = {"median_first_line_s": statistics.median(firsts),
                        "median_wall_s": statistics.median(walls), "runs": runs}
        print(f"{name:36} {fmt_s(statistics.median(firsts)):>11} {fmt_s(min(firsts)):>9} "
              f"{fmt_s(max(firsts)):>9} {fmt_s(statistics.median(walls)):>10}")
    docker = report["runnel exec --executor docker"]["median_first_line_s"]
    kube = report["runnel exec --executor kubernetes"]["median_first_line_s"]
    report["ratio"] = kube / docker
    report["difference_s"] = kube - docker
    verdict = "met" if kube - docker <= 0.5 else "NOT met"
    print(f"\njob start to first script line: kubernetes / docker = {kube / docker:.2f}x, "
          f"difference {kube - docker:+.2f} s (goal <= docker + 0.5 s: {verdict})")
    if a.report:
        with open(a.report, "w") as fh:
            json.dump(report, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
