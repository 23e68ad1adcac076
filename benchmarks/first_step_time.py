"""Seconds from launching a run to its first training step, on a cold cache (issue 24's goal: 3
minutes for configs/fashion_mnist_dcgan.py on an idle 2-core CPU).

  apt-get install -y dataset-fashion-mnist
  python benchmarks/first_step_time.py [--config=configs/fashion_mnist_dcgan.py] [flags...]

Runs `python -m smallgan_jax.main` with a new, empty workdir and `config.coreset.cache_dir` in a
temporary folder (so every classifier, FID statistic and embedding array is prepared from
nothing), logging every step, and stops it at the log line of step 1; prints the time of that
line and of each preparation's last line, from the launch. Other arguments go to the run.
"""
import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Log lines worth a timestamp: the start line, each preparation's end, the first step.
MILESTONES = re.compile(r"Before the first step|Saved the|\] \[1\] train/")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="configs/fashion_mnist_dcgan.py")
  args, run_flags = parser.parse_known_args()
  with tempfile.TemporaryDirectory() as root:
    command = [sys.executable, "-m", "smallgan_jax.main", f"--config={args.config}",
               f"--workdir={root}/workdir", f"--config.coreset.cache_dir={root}/cache",
               "--config.log_every_steps=1", *run_flags]
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    first_step, last_lines = None, collections.deque(maxlen=20)
    for line in proc.stderr:
      last_lines.append(line)
      if MILESTONES.search(line):
        print(f"{time.perf_counter() - start:6.1f} s  {line.strip()[:160]}", flush=True)
      if "] [1] train/" in line:
        first_step = time.perf_counter() - start
        proc.terminate()
        break
    proc.wait()
  if first_step is None:
    sys.exit("".join(last_lines) + f"the run ended (status {proc.returncode}) before its first "
             "step")
  print(f"first step {first_step:.1f} s after launch ({args.config}, cold cache)")


if __name__ == "__main__":
  main()
