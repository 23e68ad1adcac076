"""The anomaly-detection metrics (metrics/anomaly.py): average precision and the trapezoidal AUPRC
against hand-worked values and a direct NumPy float64 computation, and how
benchmarks/anomaly_table.py turns a run's evaluations into its score."""
import os
import shutil

import numpy as np
import pytest
from sklearn import metrics as sk_metrics

from benchmarks import anomaly_table
from configs import fashion_mnist_bigan, fashion_mnist_meg, mnist_meg
from smallgan_jax import checkpointing
from smallgan_jax.metrics.anomaly import anomaly_metrics


def pr_points(scores: np.ndarray, is_anomaly: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(recall, precision) at each distinct threshold, highest first, in float64: flagging every
  image scoring >= t, tied scores enter together."""
  scores, is_anomaly = np.asarray(scores, np.float64), np.asarray(is_anomaly, bool)
  thresholds = np.unique(scores)[::-1]
  tp = np.array([np.sum(is_anomaly & (scores >= t)) for t in thresholds], np.float64)
  flagged = np.array([np.sum(scores >= t) for t in thresholds], np.float64)
  return tp / is_anomaly.sum(), tp / flagged


def numpy_average_precision(scores, is_anomaly) -> float:
  """sum_n (R_n - R_{n-1}) P_n from R_0 = 0: each recall step at the precision reached."""
  recall, precision = pr_points(scores, is_anomaly)
  return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def numpy_trapezoid(scores, is_anomaly) -> float:
  """The area of the curve from (recall 0, precision 1) through every point, joined by straight
  lines: sum_n (R_n - R_{n-1}) (P_n + P_{n-1}) / 2."""
  recall, precision = pr_points(scores, is_anomaly)
  recall, precision = np.concatenate([[0.0], recall]), np.concatenate([[1.0], precision])
  return float(np.sum(np.diff(recall) * (precision[1:] + precision[:-1]) / 2))


def test_metrics_by_hand():
  """Ranked 1, 0, 1, 0: precision 1 at recall 1/2, 2/3 at recall 1, so AP = 1/2 * 1 + 1/2 * 2/3;
  the trapezoids from (0, 1): 1/2 * (1 + 1) / 2 + 0 + 1/2 * (1/2 + 2/3) / 2 = 19/24 (the dip to
  precision 1/2 at recall 1/2 counts); 3 of the 4 (anomaly, normal) pairs are ordered right."""
  got = anomaly_metrics(np.array([0.9, 0.8, 0.7, 0.1]), np.array([1, 0, 1, 0]))
  assert all(type(v) is float for v in got.values())
  assert got == pytest.approx({"auprc": 5 / 6, "roc_auc": 0.75, "auprc_trapz": 19 / 24})
  same = anomaly_metrics([0.9, 0.8, 0.7, 0.1], np.array([True, False, True, False]))
  assert same == got


def test_metrics_ties_are_one_threshold():
  """Scores 0.5 (anomaly), 0.5 (normal), 0.1 (anomaly): the tied pair enters together, precision
  1/2 at recall 1/2, then 2/3 at recall 1: AP = 1/2 * 1/2 + 1/2 * 2/3 = 7/12; the trapezoids from
  (0, 1): 1/2 * (1 + 1/2) / 2 + 1/2 * (1/2 + 2/3) / 2 = 2/3. ROC AUC: the tie counts 1/2,
  0.1 < 0.5 counts 0, so 1/4."""
  scores, is_anomaly = np.array([0.5, 0.5, 0.1]), np.array([True, False, True])
  got = anomaly_metrics(scores, is_anomaly)
  assert got == pytest.approx({"auprc": 7 / 12, "roc_auc": 0.25, "auprc_trapz": 2 / 3})
  assert numpy_average_precision(scores, is_anomaly) == pytest.approx(7 / 12)
  assert numpy_trapezoid(scores, is_anomaly) == pytest.approx(2 / 3)


def test_perfect_ranking_scores_one():
  got = anomaly_metrics(np.array([0.2, 3.0, -1.0, 2.5, 0.0]), np.array([0, 1, 0, 1, 0]))
  assert got == {"auprc": 1.0, "roc_auc": 1.0, "auprc_trapz": 1.0}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_both_auprcs_match_numpy_on_random_ties(seed):
  rng = np.random.default_rng(seed)
  scores = rng.integers(0, 6, 300).astype(np.float32)  # Many ties.
  is_anomaly = rng.random(300) < 0.2 + 0.1 * scores  # Anomalies score higher, on average.
  got = anomaly_metrics(scores, is_anomaly)
  assert got["auprc"] == pytest.approx(numpy_average_precision(scores, is_anomaly), rel=1e-12)
  assert got["auprc_trapz"] == pytest.approx(numpy_trapezoid(scores, is_anomaly), rel=1e-12)
  assert got["roc_auc"] == pytest.approx(sk_metrics.roc_auc_score(is_anomaly, scores))
  assert abs(got["auprc_trapz"] - got["auprc"]) > 1e-3  # Two measures, not one.
  assert 0.5 < got["roc_auc"] < 1 and is_anomaly.mean() < got["auprc"] < 1


@pytest.mark.parametrize("scores,is_anomaly,message", [
    ([0.1, np.nan, np.inf, 0.3], [1, 0, 1, 0],
     "2 of 4 scores are not finite: expected finite scores"),
    ([0.1, 0.2, 0.3], [1, 0],
     "scores of shape (3,) and is_anomaly of shape (2,): expected two 1-D arrays of one length"),
    ([0.1, 0.2], [1, 1], "is_anomaly has 2 anomalies among 2 images: expected both anomalies and "
     "normal images"),
    ([0.1, 0.2], [0, 0], "is_anomaly has 0 anomalies among 2 images: expected both anomalies and "
     "normal images"),
    ([0.1, 0.2], [2, 0], "is_anomaly holds [2]: expected booleans (or 0 and 1)")])
def test_metric_refusals_are_one_line(scores, is_anomaly, message):
  with pytest.raises(ValueError) as e:
    anomaly_metrics(np.array(scores), np.array(is_anomaly))
  assert str(e.value) == message


def eval_steps(config) -> list[int]:
  """The steps a run of `config` evaluates at (`train.train_and_evaluate`): every
  `eval_every_steps` before the last step, then the last."""
  last = config.num_train_steps
  return [*range(config.eval_every_steps, last, config.eval_every_steps), last]


@pytest.mark.parametrize("config,count", [(fashion_mnist_meg, 4), (fashion_mnist_bigan, 4),
                                          (mnist_meg, 11)])
def test_the_score_averages_the_evaluations_of_the_last_fifth(config, count):
  """What the configs' and the table's docstrings say: 4 evaluations (steps 1,700-2,000) on
  Fashion-MNIST, 11 of 55 on MNIST, each strictly after 80% of the run."""
  steps = eval_steps(config.get_config())
  scores = {step: float(step) for step in steps}
  got = anomaly_table.tail(scores)
  assert got == [float(s) for s in steps[-count:]]
  assert got[0] > 0.8 * steps[-1] >= steps[-count - 1]
  assert anomaly_table.tail({}) == []


@pytest.mark.parametrize("run,expected", [
    (("MEG", 0, 1), {"objective": "meg", "anomaly_class": 0, "seed": 1, "n_dis": 1,
                     "coreset.factor_prior": 1, "coreset.factor_target": 1}),
    (("core-set MEG", 2, 0), {"objective": "meg", "anomaly_class": 2, "seed": 0,
                              "coreset.factor_prior": 4, "coreset.factor_target": 8}),
    (("BiGAN", 5, 2), {"objective": "bigan", "anomaly_class": 5, "seed": 2, "n_dis": 1}),
    (("prior core-set MEG", 1, 0), {"coreset.factor_prior": 4, "coreset.factor_target": 1}),
    (("target core-set MEG", 1, 0), {"coreset.factor_prior": 1, "coreset.factor_target": 8})])
def test_run_config_is_what_the_run_trains_with(run, expected):
  config = anomaly_table.run_config(run)
  for key, value in expected.items():
    got = config.coreset[key.split(".")[1]] if "." in key else config[key]
    assert got == value, key


def write_record(root, run, overrides=None) -> str:
  """A finished-looking workdir of `run` in `root` whose config.json holds the run's config with
  `overrides`; returns its path."""
  path = anomaly_table.workdir(str(root), *run)
  config = anomaly_table.run_config(run)
  config.update_from_flattened_dict(overrides or {})
  checkpointing.write_json_atomically(
      checkpointing.workdir_path(path) / "config.json",
      checkpointing.run_record(config, checkpointing.device_layout()))
  return path


def test_finished_run_of_another_config_is_refused(tmp_path):
  run = ("MEG", 0, 0)
  path = write_record(tmp_path, run)
  assert not anomaly_table.finished(str(tmp_path), run)  # No "done": main resumes or refuses it.
  open(f"{path}/done", "w").close()
  assert anomaly_table.finished(str(tmp_path), run)
  write_record(tmp_path, run, {"n_dis": 5, "eval_every_steps": 200})  # An earlier protocol.
  with pytest.raises(ValueError) as e:
    anomaly_table.finished(str(tmp_path), run)
  assert str(e.value) == (f"--workdir={path!r} holds a run of another config (config.n_dis=5 "
                          "there, 1 now); use another --root")


def write_scores(path: str, scores: dict, done: bool = True) -> None:
  """TensorBoard scalars as a run's evaluations write them: {step: {tag: value}}; `done`: with
  the marker of a finished run."""
  from clu import metric_writers  # pylint: disable=g-import-not-at-top  # Imports TensorFlow.
  writer = metric_writers.create_default_writer(path)
  for step, values in scores.items():
    writer.write_scalars(step, values)
  writer.close()
  if done:
    open(os.path.join(path, "done"), "w").close()


def test_summary_reads_both_measures_and_averages_the_tail(tmp_path, capsys):
  """Runs of class 1, seeds 0 and 1, evaluated every 100 of 2,000 steps: 0.9 up to step 1,600,
  then 0.4, 0.5, 0.6, 0.5 (mean 0.5) + 0.1 * seed for MEG, + 0.02 more for core-set MEG, + 0.05
  for the target core-set only, 0.3 for BiGAN; the trapezoidal tag holds 1 - those. Only the
  last 4 count."""
  offsets = {"BiGAN": None, "MEG": 0.0, "core-set MEG": 0.02, "target core-set MEG": 0.05}
  for method, offset in offsets.items():
    for seed in (0, 1):
      scores = {}
      for step in range(100, 2_001, 100):
        value = 0.9 if step <= 1_600 else [0.4, 0.5, 0.6, 0.5][(step - 1_700) // 100]
        value = 0.3 if offset is None else value + 0.1 * seed + offset
        scores[step] = {"eval/auprc": value, "eval/auprc_trapz": 1 - value, "eval/roc_auc": 0.7}
      write_scores(anomaly_table.workdir(str(tmp_path), method, 1, seed), scores)
  anomaly_table.summarize(str(tmp_path), [1], [0, 1], list(offsets))
  out = capsys.readouterr().out
  ap, trapz = out.split("AUPRC as ")[1:]
  assert ap.startswith("average precision (eval/auprc)") and "(4 a run)" in ap
  assert ("| 1 | 0.300 +- 0.000 | 0.550 +- 0.071 | 0.570 +- 0.071 | 0.600 +- 0.071 | 0.287 | "
          "0.281 | 0.351 |\n") in ap  # The paper has no ablation row for MEG: no column.
  assert "paper MNIST target" not in ap
  assert "class 1: core-set MEG - MEG, paired by seed: +0.020, +0.020 (mean +0.020)" in ap
  assert "class 1: target core-set MEG - MEG, paired by seed: +0.050, +0.050 (mean +0.050)" in ap
  assert trapz.startswith("trapezoidal area (eval/auprc_trapz)") and "(4 a run)" in trapz
  assert "| 1 | 0.700 +- 0.000 | 0.450 +- 0.071 | 0.430 +- 0.071 | 0.400 +- 0.071 |" in trapz
  assert "core-set MEG - MEG, paired by seed: -0.020, -0.020 (mean -0.020)" in trapz

  # A MEG-only rerun: no BiGAN run is read or printed.
  for seed in (0, 1):
    shutil.rmtree(anomaly_table.workdir(str(tmp_path), "BiGAN", 1, seed))
  anomaly_table.summarize(str(tmp_path), [1], [0, 1], ["MEG", "core-set MEG"])
  ap = capsys.readouterr().out.split("AUPRC as ")[1]
  assert "| 1 | 0.550 +- 0.071 | 0.570 +- 0.071 | 0.281 | 0.351 |" in ap and "BiGAN" not in ap

  # A run still training: its last evaluations are not its tail, so it is left out, and said so.
  os.remove(os.path.join(anomaly_table.workdir(str(tmp_path), "core-set MEG", 1, 1), "done"))
  anomaly_table.summarize(str(tmp_path), [1], [0, 1], ["MEG", "core-set MEG"])
  out = capsys.readouterr().out
  assert out.startswith("not finished, left out: coreset_meg-c1-s1\n")
  assert "| 1 | 0.550 +- 0.071 | nan +- nan | 0.281 | 0.351 |" in out.split("AUPRC as ")[1]
