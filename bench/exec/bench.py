#!/usr/bin/env python3
"""Exec benchmark: `runnel exec` against `gitlab-ci-local --shell-isolation` on small pipelines,
in the same run, each timed run in a fresh git repository. Stdlib only; bench/exec/run.sh builds
runnel and installs the peer, then calls this.

    bench.py --runnel BIN --peer BIN [--runs 5] [--warmup 1] [--only runnel|gitlab-ci-local]
             [--report out.json]

Pipelines:
  empty      no job (a hidden template only): the tool's fixed cost
  echo-30    30 jobs over 3 stages, each `echo`
  python-5   5 jobs in one stage, each `python3 -c 'print(1)'`

Reported per pipeline and tool: median wall time, median peak RSS (GNU time: the largest single
process of the tool's tree), and the ratios gitlab-ci-local / runnel. Per-job overhead =
(wall(echo-30) - wall(empty)) / 30.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from measure import fmt_kb, fmt_s, have_gnu_time, measure, ratio  # noqa: E402

GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
           "GIT_AUTHOR_DATE": "2020-01-05T00:00:00Z", "GIT_COMMITTER_DATE": "2020-01-05T00:00:00Z"}


def pipeline_empty():
    return "stages: [test]\n\n.nothing:\n  script: [\"true\"]\n"


def pipeline_echo(jobs=30, stages=3):
    names = [f"s{i + 1}" for i in range(stages)]
    out = ["stages: [" + ", ".join(names) + "]", ""]
    for n in range(1, jobs + 1):
        out += [f"echo-{n:02d}:", f"  stage: {names[(n - 1) * stages // jobs]}",
                "  script:", f"    - echo \"job {n}\"", ""]
    return "\n".join(out)


def pipeline_python(jobs=5):
    out = ["stages: [test]", ""]
    for n in range(1, jobs + 1):
        out += [f"py-{n}:", "  stage: test", "  script:", "    - python3 -c 'print(1)'", ""]
    return "\n".join(out)


PIPELINES = {"empty": pipeline_empty(), "echo-30": pipeline_echo(), "python-5": pipeline_python()}


def git(repo, *args):
    env = dict(os.environ, **GIT_ENV)
    subprocess.run(["git", *args], cwd=repo, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def fresh_repo(root, yaml_text, counter=[0]):
    """A new git repository holding only `.gitlab-ci.yml` (branch main, origin/HEAD set)."""
    counter[0] += 1
    repo = os.path.join(root, f"repo-{counter[0]}")
    os.makedirs(repo)
    with open(os.path.join(repo, ".gitlab-ci.yml"), "w") as fh:
        fh.write(yaml_text)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "commit.gpgsign", "false")
    git(repo, "remote", "add", "origin", "git@gitlab.com:bench/pipeline.git")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "bench pipeline")
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    git(repo, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")
    return repo


def tail(path, n=15):
    try:
        with open(path, errors="replace") as fh:
            return "".join(fh.readlines()[-n:])
    except OSError:
        return ""


def run_tool(tool, cmd, name, yaml_text, work, a):
    root = os.path.join(work, tool, name)
    os.makedirs(root)
    log = os.path.join(work, f"{tool}-{name}.log")
    previous = []

    def prepare():
        for old in previous:   # keep the disk flat: only the current run's repository exists
            shutil.rmtree(old, ignore_errors=True)
        previous[:] = [fresh_repo(root, yaml_text)]
        return previous[0]

    result = measure(cmd, runs=a.runs, warmup=a.warmup, prepare=prepare, log=log)
    codes = sorted({r["rc"] for r in result["runs"]})
    result["exit_codes"] = codes
    result["ok"] = codes == [0] or name == "empty"
    if not result["ok"]:
        print(f"  {tool} on {name}: exit codes {codes}; last lines of {log}:", file=sys.stderr)
        print("    " + tail(log).replace("\n", "\n    "), file=sys.stderr)
    return result


def report(results, a):
    tools = list(results)
    print(f"\nexec benchmark: {a.runs} runs each (+{a.warmup} warm-up), fresh repository per run")
    print(f"{'pipeline':10s} {'tool':16s} {'wall median':>12s} {'peak RSS':>10s}  exit codes")
    for name in PIPELINES:
        for tool in tools:
            r = results[tool][name]
            print(f"{name:10s} {tool:16s} {fmt_s(r['median_wall_s']):>12s} "
                  f"{fmt_kb(r['median_rss_kb']):>10s}  {r['exit_codes']}{'' if r['ok'] else '  FAILED'}")
    for tool in tools:
        e, a30 = results[tool]["empty"], results[tool]["echo-30"]
        if e["ok"] and a30["ok"]:
            per_job = (a30["median_wall_s"] - e["median_wall_s"]) / 30
            results[tool]["per_job_overhead_s"] = per_job
            print(f"per-job overhead {tool:16s} {fmt_s(per_job)}  ((echo-30 - empty) / 30)")
    if {"runnel", "gitlab-ci-local"} <= set(tools):
        r, p = results["runnel"], results["gitlab-ci-local"]
        for name in PIPELINES:
            if r[name]["ok"] and p[name]["ok"]:
                print(f"gitlab-ci-local / runnel on {name:9s}: wall "
                      f"{ratio(p[name]['median_wall_s'], r[name]['median_wall_s'])}, peak RSS "
                      f"{ratio(p[name]['median_rss_kb'], r[name]['median_rss_kb'])}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runnel", help="the runnel binary")
    ap.add_argument("--peer", help="the gitlab-ci-local wrapper")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--only", choices=["runnel", "gitlab-ci-local"])
    ap.add_argument("--report", help="write the numbers as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    a = ap.parse_args()
    tools = {}
    if a.runnel and a.only in (None, "runnel"):
        tools["runnel"] = [os.path.abspath(a.runnel), "exec"]
    if a.peer and a.only in (None, "gitlab-ci-local"):
        tools["gitlab-ci-local"] = [os.path.abspath(a.peer), "--shell-isolation"]
    if not tools:
        ap.error("give --runnel and/or --peer")
    if not have_gnu_time():
        print("GNU time (/usr/bin/time, apt package `time`) missing: no RSS numbers", file=sys.stderr)
    work = tempfile.mkdtemp(prefix="runnel-bench-exec.")
    results = {}
    try:
        for name, yaml_text in PIPELINES.items():   # pipeline by pipeline: both tools see the same load
            for tool, cmd in tools.items():
                print(f"running {tool} on {name} ...", flush=True)
                results.setdefault(tool, {})[name] = run_tool(tool, cmd, name, yaml_text, work, a)
        report(results, a)
        if a.report:
            with open(a.report, "w") as fh:
                json.dump(results, fh, indent=2)
    finally:
        if a.keep:
            print(f"logs and repositories kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    failed = [f"{t}/{n}" for t, rs in results.items() for n, r in rs.items()
              if isinstance(r, dict) and not r.get("ok", True)]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
