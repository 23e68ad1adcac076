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


def test_the_weighted_study_trains_the_config_as_it_is_and_the_first_studies_what_they_ran(
    monkeypatch):
  monkeypatch.chdir(comparison.ROOT)
  weighted = comparison.STUDIES["weighted"]
  cells = trained_config(comparison.train_command("/r", ("cells", 1), 0, weighted.network,
                                                  weighted.settings))
  assert (cells.coreset.weighting, cells.prior, cells.coreset.embedding) == (
      "cells", "uniform", "classifier2")
  first = comparison.STUDIES["comparison"]
  smallgan = trained_config(comparison.train_command("/r", ("smallgan", 0), 0, first.network,
                                                     first.settings))
  assert (smallgan.coreset.weighting, smallgan.prior, smallgan.coreset.embedding) == (
      "none", "normal", "classifier")


def test_a_run_is_scored_on_every_network_it_lacks(tmp_path, monkeypatch):
  run = tmp_path / "cells-s0"
  for step in (3500, 4000, 4425, 4500, 5000):  # 4425: where a SIGTERM stopped it.
    (run / "checkpoints" / str(step)).mkdir(parents=True)
  (run / "config.json").write_text(json.dumps({"checkpoint_every_steps": 500}))
  metrics = {f"classifier2_{m}": 1.0 for m in comparison.METRICS}
  entries = [{"step": s, "num": comparison.NUM_SAMPLES, "batch_stats": "standing",
              "metrics": {**metrics, "classifier_fid": 2.0}} for s in (4000, 4500, 5000)]
  entries[-1]["metrics"].update({f"classifier_{m}": 2.0 for m in comparison.METRICS})
  (run / "scores.json").write_text(json.dumps(entries))
  commands = []
  monkeypatch.setattr(comparison, "run_logged", lambda command, log, core: commands.append(command))
  comparison.score(str(tmp_path), ("cells", 0), 3, ("classifier2", "classifier"), 0)
  assert [c[-2:] for c in commands] == [[f"--num={comparison.NUM_SAMPLES}",
                                        "--features=classifier2,classifier"]] * 2
  assert [c[-3] for c in commands] == ["--step=4000", "--step=4500"]


def test_a_run_not_started_has_no_steps_to_score(tmp_path):
  assert comparison.score_steps(str(tmp_path / "cells-s2"), 3) == []
