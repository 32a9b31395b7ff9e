import numpy as np

from autorma_models import metrics

CLASSES = ["a", "b", "c"]


def test_confusion_rows_are_true_columns_predicted():
    m = metrics.confusion(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]


def test_report_precision_recall():
    probs = np.eye(3)[[0, 1, 1, 2]]
    r = metrics.report(np.array([0, 0, 1, 2]), probs, CLASSES)
    assert r["accuracy"] == 0.75
    assert r["per_class"]["a"]["recall"] == 0.5 and r["per_class"]["a"]["precision"] == 1.0
    assert r["per_class"]["b"]["precision"] == 0.5


def test_temperature_recovers_the_scale_of_overconfident_logits():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(4000, 3)) * 2
    labels = np.array([rng.choice(3, p=p) for p in metrics.softmax(true_logits)])
    t = metrics.fit_temperature(true_logits * 3, labels)  # three times too sharp
    assert 2.6 < t < 3.4


def test_thresholds_exclude_the_confident_mistake():
    # class a: confidences 0.99 (right), 0.95 (wrong), 0.9 (right): only 0.99 may be accepted.
    probs = np.array([[0.99, 0.01, 0], [0.95, 0.05, 0], [0.9, 0.1, 0], [0.2, 0.8, 0], [0, 0.3, 0.7]])
    labels = np.array([0, 1, 0, 1, 2])
    t = metrics.review_thresholds(labels, probs, CLASSES, target=0.997)
    assert t["a"] == 0.99 and t["b"] == 0.8 and t["c"] == 0.7
    auto = metrics.decisions(probs, CLASSES, t)
    assert auto.tolist() == [True, False, False, True, True]
    r = metrics.review_report(labels, probs, CLASSES, t)
    assert r["accepted_accuracy"] == 1.0 and r["share_sent_to_review"] == 0.4


def test_a_class_whose_top_guess_is_wrong_is_always_reviewed():
    probs = np.array([[0.99, 0.01, 0], [0.5, 0.5, 0]])
    t = metrics.review_thresholds(np.array([1, 0]), probs, CLASSES, target=0.997)
    assert t["a"] == 1.0


def test_ece_is_zero_when_confidence_matches_accuracy():
    probs = np.array([[1.0, 0, 0]] * 4)
    assert metrics.expected_calibration_error(np.array([0, 0, 0, 0]), probs) == 0.0
    assert abs(metrics.expected_calibration_error(np.array([0, 0, 1, 1]), probs) - 0.5) < 1e-9
