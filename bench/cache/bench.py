#!/usr/bin/env python3
"""Cache push/restore of a ~1 GB venv-like tree: runnel through the S3 server on loopback
(`--cache-config`), runnel's local cache, and plain `zip -r` / `unzip`, in the same run.

Each runnel measurement is one `runnel exec` of a one-job pipeline with FF_TIMESTAMPS=true; the
time is read from the job's trace: push = "Creating cache" .. "Created cache" (archive + upload),
restore = "Checking cache for" .. "Successfully extracted cache" (download + extract); the S3
archive time is "Creating cache" .. "Uploading cache.zip", the download alone a plain GET. Restores
run in a fresh repository (S3: nothing local; local: builds directory removed). Peak RSS is the
whole `runnel exec` process's (GNU time), which includes the transfer; so is the CPU time
(user + system, the job's `cp -al` included), which a loaded machine disturbs less than wall time.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

PIPELINE = """\
push:
  script:
    - cp -al {tree} venv
  cache:
    key: venv
    paths: [venv/]
    policy: push
pull:
  script:
    - test -f venv/lib/python3.11/site-packages/numpy/__init__.py
    - test -L venv/bin/python3 && venv/bin/python3 -c pass
  cache:
    key: venv
    paths: [venv/]
    policy: pull
"""

CONFIG = """\
[[runners]]
  name = "bench"
  url = "https://gitlab.example.com"
  token = "glrt-benchbenchbench"
  executor = "shell"
  [runners.cache]
    Type = "s3"
    Shared = true
    [runners.cache.s3]
      ServerAddress = "{address}"
      AccessKey = "AKIABENCH"
      SecretKey = "bench-secret"
      BucketName = "{bucket}"
      Insecure = true
"""

# Nothing is deleted until the end of the run: right after 50,000 files are deleted, ext4 skips
# their inodes when it allocates new ones (`recently_deleted`, for up to 5 minutes), which made
# the next extraction's times swing by several seconds. Start runs a few minutes apart.

STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z ")


def stamp(line):
    m = STAMP.match(line)
    if not m:
        return None
    return datetime.datetime.fromisoformat(m.group(1)).timestamp()


def between(log, start, end):
    t0 = t1 = None
    for line in log.splitlines():
        if t0 is None and start in line:
            t0 = stamp(line)
        elif t0 is not None and end in line:
            t1 = stamp(line)
            break
    if t0 is None or t1 is None:
        raise RuntimeError(f"no {start!r} .. {end!r} in the trace:\n{log[-3000:]}")
    return t1 - t0


def make_repo(path, tree):
    os.makedirs(path)
    with open(os.path.join(path, ".gitlab-ci.yml"), "w") as f:
        f.write(PIPELINE.format(tree=tree))
    env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@e", GIT_COMMITTER_NAME="b",
               GIT_COMMITTER_EMAIL="b@e")
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                ["git", "commit", "-q", "-m", "bench"]):
        subprocess.run(cmd, cwd=path, env=env, check=True)


def runnel_job(runnel, repo, job, extra):
    cmd = ["/usr/bin/time", "-f", "%M %U %S", runnel, "exec", "--var", "FF_TIMESTAMPS=true",
           *extra, job]
    p = subprocess.run(cmd, cwd=repo, capture_output=True, text=True)
    rss_kb, user, system = p.stderr.strip().splitlines()[-1].split()
    with open(os.path.join(repo, ".runnel", "logs", f"{job}.log"), errors="replace") as f:
        log = f.read()
    if p.returncode != 0:
        raise RuntimeError(f"runnel exec {job} failed:\n{p.stdout[-2000:]}\n{log[-3000:]}")
    return log, int(rss_kb) / 1024, float(user) + float(system)


def download_time(address, bucket):
    """Seconds to GET the bucket's one object and drop it: the transfer alone, for comparison
    with the restore. Through a URL signed with boto3 (moto takes any key), when it is there."""
    try:
        import boto3
    except ImportError:
        return None
    s3 = boto3.client("s3", endpoint_url=f"http://{address}", aws_access_key_id="AKIABENCH",
                      aws_secret_access_key="bench-secret", region_name="us-east-1")
    key = s3.list_objects_v2(Bucket=bucket)["Contents"][0]["Key"]
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key})
    t0 = time.monotonic()
    with urllib.request.urlopen(url) as response:
        while response.read(1 << 20):
            pass
    return time.monotonic() - t0


def timed(cmd, cwd):
    t0 = time.monotonic()
    subprocess.run(cmd, cwd=cwd, check=True)
    return time.monotonic() - t0


def measure_s3(args, tree, work, fmt, results):
    """Push and restore through the S3 server."""
    bucket = f"bench-{os.getpid()}"
    urllib.request.urlopen(urllib.request.Request(f"http://{args.s3}/{bucket}", method="PUT"))
    config = os.path.join(work, "cache.toml")
    with open(config, "w") as f:
        f.write(CONFIG.format(address=args.s3, bucket=bucket))
    make_repo(os.path.join(work, "s3-push"), tree)
    log, rss, cpu = runnel_job(args.runnel, os.path.join(work, "s3-push"), "push",
                          [*fmt, "--cache-config", config])
    results["s3_push_s"] = between(log, "Creating cache", "Created cache")
    results["s3_archive_s"] = between(log, "Creating cache", "Uploading cache.zip")
    results["s3_upload_s"] = between(log, "Uploading cache.zip", "Created cache")
    results["s3_push_rss_mb"] = rss
    results["s3_push_job_cpu_s"] = cpu
    archive = os.path.join(work, "s3-push", ".runnel", "cache", "venv-non_protected", "cache.zip")
    results["archive_mb"] = os.path.getsize(archive) / 1e6
    make_repo(os.path.join(work, "s3-pull"), tree)
    log, rss, cpu = runnel_job(args.runnel, os.path.join(work, "s3-pull"), "pull",
                          [*fmt, "--cache-config", config])
    if "Downloading cache from" not in log:
        raise RuntimeError("the restore did not download")
    results["s3_restore_s"] = between(log, "Checking cache for", "Successfully extracted cache")
    results["s3_restore_rss_mb"] = rss
    results["s3_restore_job_cpu_s"] = cpu
    results["s3_download_s"] = download_time(args.s3, bucket)


def measure_local(args, tree, work, fmt, results):
    """Push and restore through runnel's local cache."""
    local = os.path.join(work, "local")
    make_repo(local, tree)
    log, rss, cpu = runnel_job(args.runnel, local, "push", fmt)
    results["local_push_s"] = between(log, "Creating cache", "Created cache")
    results["local_push_rss_mb"] = rss
    results["local_push_job_cpu_s"] = cpu
    # Moved aside, not deleted (see the note above STAMP).
    os.rename(os.path.join(local, ".runnel", "builds"), os.path.join(work, "local-builds"))
    log, rss, cpu = runnel_job(args.runnel, local, "pull", fmt)
    results["local_restore_s"] = between(log, "Checking cache for", "Successfully extracted cache")
    results["local_restore_rss_mb"] = rss
    results["local_restore_job_cpu_s"] = cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runnel", required=True)
    ap.add_argument("--tree", required=True, help="the directory holding venv/")
    ap.add_argument("--s3", default=os.environ.get("RUNNEL_TEST_S3", "127.0.0.1:9310"))
    ap.add_argument("--format", default="zip", choices=["zip", "tarzstd"])
    ap.add_argument("--level", default="default")
    ap.add_argument("--work", help="scratch directory on the tree's file system")
    ap.add_argument("--report")
    ap.add_argument("--no-zip", action="store_true",
                    help="skip the zip -r / unzip baseline (quicker, for iterating)")
    ap.add_argument("--local-first", action="store_true",
                    help="measure the local cache before S3 (order effects: a cold tree)")
    args = ap.parse_args()

    tree = os.path.join(os.path.abspath(args.tree), "venv")
    work = tempfile.mkdtemp(prefix="cache-bench-", dir=args.work)
    results = {"format": args.format, "level": args.level}
    try:
        fmt = ["--var", f"CACHE_COMPRESSION_FORMAT={args.format}",
               "--var", f"CACHE_COMPRESSION_LEVEL={args.level}"]

        first, second = ((measure_local, measure_s3) if args.local_first
                         else (measure_s3, measure_local))
        first(args, tree, work, fmt, results)
        second(args, tree, work, fmt, results)
        if not args.no_zip:
            results["zip_s"] = timed(["zip", "-qr", os.path.join(work, "venv.zip"), "venv"],
                                     os.path.dirname(tree))
            os.makedirs(os.path.join(work, "out"))
            results["unzip_s"] = timed(["unzip", "-q", os.path.join(work, "venv.zip"), "-d",
                                        os.path.join(work, "out")], work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    results = {k: v for k, v in results.items() if v is not None}
    for side in ("push", "restore"):
        if "zip_s" in results:
            base = results["zip_s" if side == "push" else "unzip_s"]
            results[f"s3_{side}_vs_zip"] = results[f"s3_{side}_s"] / base
            results[f"local_{side}_vs_zip"] = results[f"local_{side}_s"] / base
        results[f"s3_{side}_vs_local"] = results[f"s3_{side}_s"] / results[f"local_{side}_s"]
    for key, value in results.items():
        print(f"{key:24} {value:.2f}" if isinstance(value, float) else f"{key:24} {value}")
    if args.report:
        with open(args.report, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
