"""Classification and multi-label metrics against scikit-learn, with ties and absent classes."""

import warnings

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from cvpipe.engine.metrics import (
    classification_report,
    multilabel_report,
    pr_curves,
    roc_curves,
)

TOL = dict(rtol=0, atol=1e-9)


def _probs(rng, n, c, ties):
    logits = rng.normal(size=(n, c))
    if ties:  # coarse values: many equal scores within rows and columns
        logits = np.round(logits * 2) / 2
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True)


@pytest.mark.parametrize("seed,ties,absent", [(0, False, False), (1, True, False), (2, True, True), (3, False, True)])
def test_classification_report_matches_sklearn(seed, ties, absent):
    rng = np.random.default_rng(seed)
    n, c = 300, 7
    probs = _probs(rng, n, c, ties)
    targets = rng.integers(0, c, size=n)
    if absent:
        targets[targets == 4] = 0  # class 4 never occurs in the targets
    names = [f"class{i}" for i in range(c)]
    report = classification_report(torch.from_numpy(probs), torch.from_numpy(targets), names, topk=(1, 3, 5))
    labels = np.arange(c)
    preds = probs.argmax(1)

    assert report["num_samples"] == n
    np.testing.assert_allclose(report["top1"], skm.accuracy_score(targets, preds), **TOL)
    assert report["accuracy"] == report["top1"]
    # sklearn breaks score ties towards the HIGHER class index; ours towards the lower one (like
    # argmax). Reversing the class order makes sklearn apply our rule.
    for k in (3, 5):
        expected = skm.top_k_accuracy_score(c - 1 - targets, probs[:, ::-1], k=k, labels=labels)
        np.testing.assert_allclose(report[f"top{k}"], expected, **TOL)
    if not ties:
        np.testing.assert_allclose(report["top3"], skm.top_k_accuracy_score(targets, probs, k=3, labels=labels), **TOL)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f, s = skm.precision_recall_fscore_support(targets, preds, labels=labels, zero_division=0)
        for avg in ("macro", "weighted"):  # sklearn's default labels: those in targets or predictions
            ap, ar, af, _ = skm.precision_recall_fscore_support(targets, preds, average=avg, zero_division=0)
            got = report[avg]
            np.testing.assert_allclose([got["precision"], got["recall"], got["f1"]], [ap, ar, af], **TOL)
    per = [report["per_class"][name] for name in names]
    np.testing.assert_allclose([x["precision"] for x in per], p, **TOL)
    np.testing.assert_allclose([x["recall"] for x in per], r, **TOL)
    np.testing.assert_allclose([x["f1"] for x in per], f, **TOL)
    assert [x["support"] for x in per] == s.tolist()

    np.testing.assert_array_equal(report["confusion_matrix"], skm.confusion_matrix(targets, preds, labels=labels))

    present = np.unique(targets)
    per_auc = np.array([x["auc"] for x in per])
    for cls in range(c):
        if cls in present:
            np.testing.assert_allclose(per_auc[cls], skm.roc_auc_score(targets == cls, probs[:, cls]), **TOL)
        else:
            assert np.isnan(per_auc[cls])
    if absent:  # macro over the classes where AUC is defined
        np.testing.assert_allclose(report["macro"]["auc"], per_auc[present].mean(), **TOL)
    else:
        np.testing.assert_allclose(report["macro"]["auc"],
                                   skm.roc_auc_score(targets, probs, multi_class="ovr", average="macro"), **TOL)
        np.testing.assert_allclose(report["weighted"]["auc"],
                                   skm.roc_auc_score(targets, probs, multi_class="ovr", average="weighted"), **TOL)


def test_macro_average_leaves_out_classes_neither_in_the_data_nor_predicted():
    # a holdout holding 2 of the model's 6 classes: the 4 others must not average in as zeros
    # (macro F1 was 0.24 for 3 of 4 right); a class predicted but absent still counts
    rng = np.random.default_rng(0)
    targets = np.array([1, 1, 5, 5, 1, 5, 5, 1])
    preds = np.array([1, 5, 5, 5, 1, 5, 1, 1])
    probs = np.eye(6)[preds] * 0.5 + rng.uniform(0, 0.05, size=(8, 6))
    names = [f"c{i}" for i in range(6)]
    report = classification_report(probs, targets, names)
    p, r, f, _ = skm.precision_recall_fscore_support(targets, preds, average="macro", zero_division=0)
    np.testing.assert_allclose([report["macro"][k] for k in ("precision", "recall", "f1")], [p, r, f], **TOL)
    assert report["macro"]["f1"] > 0.7 and report["per_class"]["c0"] == {
        "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "auc": report["per_class"]["c0"]["auc"]}
    preds[0] = 3  # now class 3 is predicted once without being in the data: it counts, with F1 0
    probs = np.eye(6)[preds] * 0.5 + rng.uniform(0, 0.05, size=(8, 6))
    report = classification_report(probs, targets, names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f, _ = skm.precision_recall_fscore_support(targets, preds, average="macro", zero_division=0)
    np.testing.assert_allclose([report["macro"][k] for k in ("precision", "recall", "f1")], [p, r, f], **TOL)
    assert len(np.unique(np.r_[targets, preds])) == 3


def test_topk_keys_and_perfect_predictions():
    probs = np.eye(3)[[0, 1, 2, 2]]
    report = classification_report(probs, [0, 1, 2, 2], ["a", "b", "c"], topk=(1, 2, 5))
    assert "top5" not in report and report["top2"] == 1.0 and report["top1"] == 1.0
    assert report["macro"]["auc"] == 1.0 and report["macro"]["f1"] == 1.0


def test_shape_errors():
    with pytest.raises(ValueError, match="columns"):
        classification_report(np.ones((2, 3)), [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="multi-hot"):
        multilabel_report(np.ones((2, 2)), [0, 1], ["a", "b"])


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True), (2, True)])
def test_multilabel_report_matches_sklearn(seed, ties):
    rng = np.random.default_rng(seed)
    n, c = 200, 6
    probs = rng.random((n, c))
    if ties:
        probs = np.round(probs * 8) / 8
    targets = (rng.random((n, c)) < np.linspace(0.1, 0.6, c)).astype(np.int64)
    targets[:, 2] = 0  # a class with no positive sample: AP NaN, left out of mAP
    names = list("abcdef")
    report = multilabel_report(probs, targets, names, threshold=0.5)

    present = [i for i in range(c) if targets[:, i].any()]
    ap = np.array([report["per_class"][x]["ap"] for x in names])
    expected_ap = [skm.average_precision_score(targets[:, i], probs[:, i]) for i in present]
    np.testing.assert_allclose(ap[present], expected_ap, **TOL)
    assert np.isnan(ap[2])
    np.testing.assert_allclose(report["mAP"], np.mean(expected_ap), **TOL)
    np.testing.assert_allclose(report["mAP"],
                               skm.average_precision_score(targets[:, present], probs[:, present], average="macro"),
                               **TOL)

    preds = (probs >= 0.5).astype(np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose([report["per_class"][x]["f1"] for x in names],
                                   skm.f1_score(targets, preds, average=None, zero_division=0), **TOL)
        for avg in ("micro", "macro"):
            np.testing.assert_allclose(report[avg]["f1"], skm.f1_score(targets, preds, average=avg, zero_division=0),
                                       **TOL)
            np.testing.assert_allclose(report[avg]["precision"],
                                       skm.precision_score(targets, preds, average=avg, zero_division=0), **TOL)
            np.testing.assert_allclose(report[avg]["recall"],
                                       skm.recall_score(targets, preds, average=avg, zero_division=0), **TOL)
    np.testing.assert_allclose(report["exact_match"], skm.accuracy_score(targets, preds), **TOL)
    assert [report["per_class"][x]["support"] for x in names] == targets.sum(0).tolist()


def test_curves_match_sklearn():
    rng = np.random.default_rng(5)
    scores = np.round(rng.random((80, 3)) * 10) / 10  # ties
    positives = (rng.random((80, 3)) < 0.3).astype(int)
    positives[:, 1] = 0
    rocs, prs = roc_curves(scores, positives), pr_curves(scores, positives)
    assert rocs[1] is None and prs[1] is None
    for c in (0, 2):
        fpr, tpr, _ = skm.roc_curve(positives[:, c], scores[:, c], drop_intermediate=False)
        np.testing.assert_allclose(rocs[c][0], fpr, **TOL)
        np.testing.assert_allclose(rocs[c][1], tpr, **TOL)
        precision, recall, _ = skm.precision_recall_curve(positives[:, c], scores[:, c], drop_intermediate=False)
        np.testing.assert_allclose(prs[c][0], recall[::-1], **TOL)
        np.testing.assert_allclose(prs[c][1], precision[::-1], **TOL)
