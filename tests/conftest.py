"""Test-session setup: one persistent XLA compilation cache for the tests and every run they start.

Many tests compile the same steps again (each CLI run is a new process; each test builds its own
jitted step); with the cache the second compilation of a program is a file read. Set here, before
any test module imports jax, so the subprocesses inherit it through the environment. The cache is
keyed on the program, jax version and flags, so a stale entry is never reused; set
JAX_COMPILATION_CACHE_DIR to move it.
"""
import os
import tempfile

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), "smallgan_jax_tests_xla_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
