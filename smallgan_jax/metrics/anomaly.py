"""Paper Table 2 metrics for anomaly detection: AUPRC and ROC AUC of anomaly scores.

Anomalies are the positive class and a higher score means more anomalous. AUPRC is average
precision, sum_n (R_n - R_{n-1}) P_n over the score thresholds (tied scores are one threshold, no
interpolation), not the trapezoidal area under the precision-recall curve, exactly as
`sklearn.metrics.average_precision_score` computes it; ROC AUC is `sklearn.metrics.roc_auc_score`.
Both are computed by scikit-learn itself (it is in requirements.txt) rather than reimplemented, so
the numbers match what scikit-learn-based evaluation code, such as that of the protocol's papers
(Zenati et al. 2018, Kumar et al. 2019), would report for the same scores.
"""
import numpy as np
from sklearn import metrics


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
  """{"auprc": average precision, "roc_auc": ROC AUC} as floats, anomalies positive."""
  scores = np.asarray(scores, np.float64)
  is_anomaly = np.asarray(is_anomaly)
  _validate(scores, is_anomaly)
  is_anomaly = is_anomaly.astype(bool)
  return {"auprc": float(metrics.average_precision_score(is_anomaly, scores)),
          "roc_auc": float(metrics.roc_auc_score(is_anomaly, scores))}
