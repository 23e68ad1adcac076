"""Paper Table 2 metrics for anomaly detection: two areas under the precision-recall curve, and
ROC AUC, of anomaly scores.

Anomalies are the positive class and a higher score means more anomalous. The two AUPRCs differ
in how they join the curve's points (one point per distinct score threshold, tied scores entering
together; the curve starts at recall 0, precision 1):
- "auprc": average precision, sum_n (R_n - R_{n-1}) P_n, a step function with no interpolation,
  as `sklearn.metrics.average_precision_score` computes it. The project's figures before
  "auprc_trapz" existed are this one.
- "auprc_trapz": the trapezoidal area, `sklearn.metrics.auc(recall, precision)` on
  `sklearn.metrics.precision_recall_curve`: what MEG's reference code
  (`scripts/train/anomaly_mnist.py` of ritheshkumar95/energy_based_generative_models) and Zenati
  et al.'s (`utils/evaluations.py`, `do_prc`, of houssamzenati/Efficient-GAN-Anomaly-Detection)
  report. Joining the points linearly, it differs from average precision wherever precision
  changes between two recalls (above it where precision rises with recall).
ROC AUC is `sklearn.metrics.roc_auc_score`. All three are scikit-learn's own computations (it is in
requirements.txt), not reimplementations. What matches that code is the formula of "auprc_trapz"
(points a scikit-learn version keeps or drops past full recall all have recall 1 and add no area);
the scores come from our networks, data stream and split (docs/anomaly.md), so equal numbers are
not expected.
"""
import numpy as np


def _validate(scores: np.ndarray, is_anomaly: np.ndarray) -> None:
  """One-line errors naming the offending value, before anything is computed."""
  if scores.ndim != 1 or scores.shape != is_anomaly.shape:
    raise ValueError(f"scores of shape {scores.shape} and is_anomaly of shape "
                     f"{is_anomaly.shape}: expected two 1-D arrays of one length")
  if not np.isin(is_anomaly, (0, 1)).all():
    raise ValueError(f"is_anomaly holds {np.setdiff1d(is_anomaly, (0, 1))[:5].tolist()}: "
                     "expected booleans (or 0 and 1)")
  non_finite = int(np.count_nonzero(~np.isfinite(scores)))
  if non_finite:
    raise ValueError(f"{non_finite} of {len(scores)} scores are not finite: expected finite "
                     "scores")
  positives = int(np.count_nonzero(is_anomaly))
  if positives in (0, len(is_anomaly)):
    raise ValueError(f"is_anomaly has {positives} anomalies among {len(is_anomaly)} images: "
                     "expected both anomalies and normal images")


def anomaly_metrics(scores: np.ndarray, is_anomaly: np.ndarray) -> dict:
  """{"auprc": average precision, "roc_auc": ROC AUC, "auprc_trapz": the trapezoidal area under the
  precision-recall curve} as floats, anomalies positive."""
  scores = np.asarray(scores, np.float64)
  is_anomaly = np.asarray(is_anomaly)
  _validate(scores, is_anomaly)
  is_anomaly = is_anomaly.astype(bool)
  # Imported here: scikit-learn takes over a second to import, and only anomaly runs score with it.
  from sklearn import metrics  # pylint: disable=g-import-not-at-top
  precision, recall, _ = metrics.precision_recall_curve(is_anomaly, scores)
  return {"auprc": float(metrics.average_precision_score(is_anomaly, scores)),
          "roc_auc": float(metrics.roc_auc_score(is_anomaly, scores)),
          "auprc_trapz": float(metrics.auc(recall, precision))}
