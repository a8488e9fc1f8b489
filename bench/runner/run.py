#!/usr/bin/env python3
"""Benchmarks of `runnel run` against the fake GitLab (crates/runnel-runner/examples/fake_gitlab.rs).

Measures:
  1. idle RSS of `runnel run` with 3 registered runners (after 10 s of polling),
  2. job pickup latency (queue -> the runner takes the job), n jobs one after another,
     with check_interval = 3 (gitlab-runner's default) and with check_interval = 1,
  3. trace throughput with masking on, for a job printing 1 GiB (default output_limit, so the
     daemon's memory stays bounded); peak RSS of the daemon during that job.

Usage: bench/runner/run.py [--pickup-jobs N] [--gib G]   (builds release binaries first)
       bench/runner/run.py --no-build --baseline OLD_RUNNEL [--rounds N]
         only the trace throughput, of OLD_RUNNEL and target/release/runnel in turns, N rounds:
         medians and the ratio new/old (a change's cost on the trace path, same machine, same run)
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
RUNNEL = os.path.join(TARGET, "release", "runnel")
FAKE = os.path.join(TARGET, "release", "examples", "fake_gitlab")


def build():
    subprocess.run(["cargo", "build", "--release", "-p", "runnel"], cwd=ROOT, check=True)
    subprocess.run(
        ["cargo", "build", "--release", "-p", "runnel-runner", "--features", "test-support",
         "--example", "fake_gitlab"],
        cwd=ROOT, check=True)


class Fake:
    def __init__(self, runners):
        self.proc = subprocess.Popen([FAKE, str(runners)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.url = self.proc.stdout.readline().split()[1]
        self.tokens = [self.proc.stdout.readline().split()[1] for _ in range(runners)]

    def job(self, script):
        self.proc.stdin.write(f"job {script}\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline().split()[1])

    def wait(self, job_id):
        self.proc.stdin.write(f"wait {job_id}\n")
        self.proc.stdin.flush()
        fields = self.proc.stdout.readline().split()
        values = dict(f.split("=") for f in fields[3:])
        return fields[2], {k: int(v) for k, v in values.items()}

    def close(self):
        self.proc.kill()
        self.proc.wait()


def write_config(path, fake, check_interval, work, output_limit_kib=None):
    lines = [f"concurrent = 4\ncheck_interval = {check_interval}\n"]
    for i, token in enumerate(fake.tokens):
        lines.append(
            f'[[runners]]\n  name = "bench-{i}"\n  url = "{fake.url}"\n  token = "{token}"\n'
            f'  executor = "shell"\n  builds_dir = "{work}/builds"\n  cache_dir = "{work}/cache"\n'
            + (f"  output_limit = {output_limit_kib}\n" if output_limit_kib else ""))
    with open(path, "w") as f:
        f.write("\n".join(lines))


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def start_daemon(config, env=None, runnel=None):
    return subprocess.Popen([runnel or RUNNEL, "run", "-c", config, "--log-level", "warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})})


def stop_daemon(proc):
    proc.send_signal(3)  # SIGQUIT: graceful
    proc.wait(timeout=60)


def idle_rss(work, trim=True, after_job=False):
    """VmRSS, RssAnon and RssFile (KiB) of a daemon with 3 runners after 10 s of polling;
    `trim=False` turns off the start-up page release, `after_job` runs one job first."""
    fake = Fake(3)
    config = os.path.join(work, "idle.toml")
    write_config(config, fake, 3, work)
    daemon = start_daemon(config, {} if trim else {"RUNNEL_TRIM_START_UP": "0"})
    if after_job:
        time.sleep(3)
        fake.wait(fake.job("echo hello"))
    time.sleep(10)
    fields = [status_kib(daemon.pid, f) for f in ("VmRSS", "RssAnon", "RssFile")]
    stop_daemon(daemon)
    fake.close()
    return fields


def pickup(work, check_interval, jobs):
    fake = Fake(1)
    config = os.path.join(work, f"pickup{check_interval}.toml")
    write_config(config, fake, check_interval, work)
    daemon = start_daemon(config)
    time.sleep(2)
    latencies = []
    for _ in range(jobs):
        job_id = fake.job("true")
        state, values = fake.wait(job_id)
        assert state == "Success", state
        latencies.append(values["pickup_ms"])
    stop_daemon(daemon)
    fake.close()
    return latencies


def throughput(work, size, output_limit_kib=None, runnel=None):
    """A job printing `size` bytes; with `output_limit_kib` above the size, every byte is also
    sent to the fake (trace PATCHes), so upload is measured too."""
    fake = Fake(1)
    config = os.path.join(work, "throughput.toml")
    write_config(config, fake, 1, work, output_limit_kib)
    daemon = start_daemon(config, runnel=runnel)
    # A masked variable is in force (CI_JOB_TOKEN is masked in every payload of the fake).
    job_id = fake.job(f"head -c {size} /dev/zero | tr '\\0' 'a'")
    start = time.monotonic()
    peak = 0
    import threading
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            try:
                peak = max(peak, status_kib(daemon.pid, "VmRSS"))
            except OSError:
                return
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    state, values = fake.wait(job_id)
    done.set()
    sampler.join()
    elapsed = (values["total_ms"] - values["pickup_ms"]) / 1000 or (time.monotonic() - start)
    stop_daemon(daemon)
    fake.close()
    return state, size / elapsed / 1e6, peak, values["trace_bytes"], elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pickup-jobs", type=int, default=10)
    parser.add_argument("--gib", type=int, default=1)
    parser.add_argument("--upload-mib", type=int, default=256,
                        help="size of the job whose whole trace is sent (output_limit raised)")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--baseline", help="another runnel binary to compare the trace path with")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not args.no_build:
        build()
    if args.baseline:
        return compare(args)
    with tempfile.TemporaryDirectory() as work:
        for label, kwargs in (("", {}), (", start-up trim off", {"trim": False}),
                              (", 10 s after one job", {"after_job": True})):
            rss, anon, file = idle_rss(work, **kwargs)
            print(f"idle RSS, 3 runners polling every 3 s{label}: {rss / 1024:.1f} MiB "
                  f"(anonymous {anon / 1024:.1f}, file-backed {file / 1024:.1f})")
        for interval in (3, 1):
            lat = pickup(work, interval, args.pickup_jobs)
            print(f"pickup latency, check_interval={interval}: median {statistics.median(lat)} ms, "
                  f"min {min(lat)} ms, max {max(lat)} ms (n={len(lat)})")
        state, mbps, peak, trace_bytes, elapsed = throughput(work, args.gib << 30)
        print(f"trace throughput with masking, {args.gib} GiB job: {mbps:.0f} MB/s "
              f"({elapsed:.1f} s, job {state}, {trace_bytes} trace bytes sent, daemon peak RSS "
              f"{peak / 1024:.1f} MiB)")
        size = args.upload_mib << 20
        state, mbps, peak, trace_bytes, elapsed = throughput(work, size, (size >> 10) + 1024)
        print(f"trace throughput with masking, all {args.upload_mib} MiB sent (output_limit raised): "
              f"{mbps:.0f} MB/s ({elapsed:.1f} s, job {state}, {trace_bytes} trace bytes sent, "
              f"daemon peak RSS {peak / 1024:.1f} MiB)")


def compare(args):
    """Trace throughput of the baseline binary and the current one, in turns."""
    results = {"baseline": ([], []), "current": ([], [])}
    size_all = args.upload_mib << 20
    with tempfile.TemporaryDirectory() as work:
        for _ in range(args.rounds):
            for name, binary in (("baseline", args.baseline), ("current", RUNNEL)):
                limited = throughput(work, args.gib << 30, runnel=binary)[1]
                sent = throughput(work, size_all, (size_all >> 10) + 1024, runnel=binary)[1]
                results[name][0].append(limited)
                results[name][1].append(sent)
                print(f"{name}: {args.gib} GiB job {limited:.0f} MB/s, "
                      f"all {args.upload_mib} MiB sent {sent:.0f} MB/s", flush=True)
    for i, what in enumerate((f"{args.gib} GiB job (default output_limit)",
                              f"all {args.upload_mib} MiB sent")):
        old = statistics.median(results["baseline"][i])
        new = statistics.median(results["current"][i])
        print(f"trace throughput, {what}: baseline median {old:.0f} MB/s, current median "
              f"{new:.0f} MB/s, ratio current/baseline {new / old:.3f} (n={args.rounds})")


if __name__ == "__main__":
    sys.exit(main())
