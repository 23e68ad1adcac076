"""The comparison benchmark's command lines and score reading
(benchmarks/fashion_mnist_comparison.py): what a run trains with is what its variant, the chosen
network and the --set settings say, in that order of precedence."""
import json

from absl import flags
from ml_collections import config_flags

from benchmarks import fashion_mnist_comparison as comparison


def trained_config(command: list[str]):
  """The config `smallgan_jax.main` would train with, parsed from `command` as main parses it."""
  argv = ["main", *command[3:]]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=values, sys_argv=argv)
  flags.DEFINE_string("workdir", None, "", flag_values=values)
  values(argv)
  return values.config


def test_a_variants_own_flags_win_over_the_network_and_settings_over_both(monkeypatch):
  monkeypatch.chdir(comparison.ROOT)
  settings = ["dcgan.g_channels=64", "checkpoint_every_steps=5000", "coreset.factor_prior=2"]
  pixels = trained_config(comparison.train_command("/r", ("pixels", 2), 20_000, "classifier2",
                                                   settings))
  assert pixels.coreset.embedding == "pixels"  # The variant's, not the network's.
  assert pixels.fid.features == ("classifier2",)
  assert (pixels.seed, pixels.num_train_steps) == (2, 20_000)
  assert (pixels.dcgan.g_channels, pixels.checkpoint_every_steps) == (64, 5_000)
  assert pixels.coreset.factor_prior == 2

  plain64 = trained_config(comparison.train_command("/r", ("plain64", 0), 0))
  assert (plain64.coreset.embedding, plain64.fid.features) == ("classifier", ("classifier",))
  assert (plain64.coreset.factor_prior, plain64.coreset.factor_target) == (1, 1)
  assert (plain64.batch_size, plain64.num_train_steps) == (64, comparison.CONFIG_STEPS)


def test_scores_are_read_for_the_runs_network_at_the_studys_sample_count(tmp_path):
  metrics = {f"classifier2_{m}": float(i) for i, m in enumerate(comparison.METRICS)}
  entries = [{"step": 500, "num": comparison.NUM_SAMPLES, "batch_stats": "standing",
              "metrics": metrics},
             {"step": 1000, "num": 500, "batch_stats": "standing", "metrics": metrics},
             {"step": 1500, "num": comparison.NUM_SAMPLES, "batch_stats": "running",
              "metrics": metrics}]
  (tmp_path / "scores.json").write_text(json.dumps(entries))
  assert comparison.scored(str(tmp_path), "classifier2") == {
      500: {m: float(i) for i, m in enumerate(comparison.METRICS)}}
