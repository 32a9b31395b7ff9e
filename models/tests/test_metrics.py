import numpy as np

from autorma_models import metrics, threshold_study

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
    # b and c made no mistake, but pooled over all photos the 0.95 mistake floors them at 0.99.
    probs = np.array([[0.99, 0.01, 0], [0.95, 0.05, 0], [0.9, 0.1, 0], [0.2, 0.8, 0], [0, 0.3, 0.7]])
    labels = np.array([0, 1, 0, 1, 2])
    t = metrics.review_thresholds(labels, probs, CLASSES, target=0.997)
    assert t == {"a": 0.99, "b": 0.99, "c": 0.99}
    auto = metrics.decisions(probs, CLASSES, t)
    assert auto.tolist() == [True, False, False, False, False]
    r = metrics.review_report(labels, probs, CLASSES, t)
    assert r["accepted_accuracy"] == 1.0 and r["share_sent_to_review"] == 0.8


def test_a_class_keeps_its_own_threshold_above_the_pooled_floor():
    # The only mistake (predicted b at 0.85) floors everyone just above it, at c's 0.86; a made
    # no mistake and is raised from 0.7 to that floor; b's next right answer, 0.95, is its own.
    probs = np.array([[0.7, 0.3, 0], [0.9, 0.1, 0], [0.15, 0.85, 0], [0.05, 0.95, 0], [0, 0.14, 0.86]])
    labels = np.array([0, 0, 0, 1, 2])
    t = metrics.review_thresholds(labels, probs, CLASSES, target=0.997)
    assert t == {"a": 0.86, "b": 0.95, "c": 0.86}


def test_a_class_whose_top_guess_is_wrong_is_always_reviewed():
    probs = np.array([[0.99, 0.01, 0], [0.5, 0.5, 0]])
    t = metrics.review_thresholds(np.array([1, 0]), probs, CLASSES, target=0.997)
    assert t["a"] == 1.0


def test_ece_is_zero_when_confidence_matches_accuracy():
    probs = np.array([[1.0, 0, 0]] * 4)
    assert metrics.expected_calibration_error(np.array([0, 0, 0, 0]), probs) == 0.0
    assert abs(metrics.expected_calibration_error(np.array([0, 0, 1, 1]), probs) - 0.5) < 1e-9


def test_split_half_study_sees_the_floor_keep_a_lucky_class_from_accepting_mistakes():
    # Class a has confident mistakes (c photos called a at 0.9), which set the pooled floor.
    # Class b is right whenever its fit half misses its two mistakes (c photos called b at 0.7),
    # so its bare threshold drops to its lowest confidence (~0.6) and the held half accepts them.
    rng = np.random.default_rng(1)
    n = 40
    labels = np.repeat([0, 1, 2], n)
    pred = labels.copy()
    conf = np.concatenate([rng.uniform(0.95, 1.0, n), rng.uniform(0.6, 1.0, n), rng.uniform(0.95, 1.0, n)])
    pred[80:84], conf[80:84] = 0, 0.9
    pred[84:86], conf[84:86] = 1, 0.7
    probs = np.repeat(((1 - conf) / 2)[:, None], 3, axis=1)
    probs[np.arange(len(labels)), pred] = conf
    r = threshold_study.split_half(labels, np.log(probs), CLASSES, 0.997, trials=50, seed=0)
    bare, floored = r["per class"], r["per class, floored at the pooled one"]
    assert floored["accepted_accuracy"] > bare["accepted_accuracy"]
    assert floored["review"] > bare["review"]
