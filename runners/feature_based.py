"""feature_based: the frozen model as a feature extractor plus a linear classifier — often the cheapest strong baseline.

Each example's input text goes through the base model once; its hidden state at `layer`, mean-pooled over the real
tokens or taken at the last one, is the feature vector. scikit-learn's LogisticRegression (standardised features, L2,
multinomial) is fitted on the train split and predicts the eval split. Accuracy, macro-F1 and their intervals come
from the same runners.scoring functions every strategy uses. Nothing is generated, so format compliance does not
apply (the result says so), and the base model is unchanged (no forgetting to measure). The classifier is saved as JSON
(weights, scaler, labels): a few KB, and nothing that could run code when read back.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

from base.data import Example
from base.errors import AdaptError
from base.io import write_json_atomic
from base.plan import FeatureBasedSettings, RunSpec
from base.results import RunResult
from runners import common
from runners.scoring import Evaluation, classification_metrics, percentile, time_each

NOT_GENERATED = "not applicable: feature_based predicts a label with a classifier and generates no text"


def features(model: Any, tokenizer: Any, texts: Sequence[str], settings: FeatureBasedSettings,
             progress: Any = None) -> Any:
    """One row per text: the chosen layer's hidden states, mean-pooled over real tokens or at the last real token."""
    import numpy as np
    import torch

    rows = []
    device = next(model.parameters()).device
    tokenizer.padding_side = "right"
    with torch.no_grad():
        for start in range(0, len(texts), settings.batch_size):
            batch = tokenizer(list(texts[start:start + settings.batch_size]), return_tensors="pt", padding=True,
                              truncation=True, max_length=settings.max_length).to(device)
            hidden = model(**batch, output_hidden_states=True, use_cache=False).hidden_states[settings.layer].float()
            mask = batch["attention_mask"].unsqueeze(-1).float()
            if settings.pooling == "mean":
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            else:
                last = batch["attention_mask"].sum(1) - 1
                pooled = hidden[torch.arange(hidden.shape[0], device=device), last]
            rows.append(pooled.cpu().numpy())
            if progress:
                progress(len(rows[-1]))
    return np.concatenate(rows) if rows else np.zeros((0, model.config.hidden_size))


def fit_classifier(train_features: Any, targets: Sequence[str], settings: FeatureBasedSettings, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=settings.regularisation, max_iter=2000,
                                                              random_state=seed)).fit(train_features, list(targets))


def save_classifier(classifier: Any, settings: FeatureBasedSettings, folder: Any) -> None:
    scaler, regression = classifier.named_steps["standardscaler"], classifier.named_steps["logisticregression"]
    write_json_atomic(folder / "classifier.json", {
        "pooling": settings.pooling, "layer": settings.layer, "labels": [str(c) for c in regression.classes_],
        "mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist(),
        "coef": regression.coef_.tolist(), "intercept": regression.intercept_.tolist()})


def check_task(spec: RunSpec, train: Sequence[Example]) -> None:
    name = spec.strategy.name
    if spec.task.type != "classification":
        raise AdaptError(f"feature_based classifies; task {spec.task.name!r} is {spec.task.type}",
                         field=f"strategies.{name}", hint="restrict it with `tasks:` to classification tasks")
    if len({e.target for e in train}) < 2:
        raise AdaptError("feature_based needs train examples of at least two labels to fit a classifier",
                         file=spec.task.train, field=f"tasks.{spec.task.name}.train")


def run(spec: RunSpec) -> RunResult:
    from base.progress import bar
    from runners.models import load_model, model_digest, resolve_model_path

    started = time.time()
    settings = spec.strategy
    common.seed_everything(spec.seed)
    data = common.load_task_data(spec)
    check_task(spec, data.train)
    model, tokenizer = load_model(spec.model, spec.device, spec.dtype)
    model.eval()
    train_texts, eval_texts = [e.prompt for e in data.train], [e.prompt for e in data.eval]
    with common.PeakMemory(spec.device) as peak:
        fit_start = time.perf_counter()
        with bar(f"{spec.task.name} · {settings.name}: features", len(train_texts)) as advance:
            train_features = features(model, tokenizer, train_texts, settings, advance)
        targets = [e.target for e in data.train]
        classifier = fit_classifier(train_features, targets, settings, spec.seed)
        fit_seconds = time.perf_counter() - fit_start
        with bar(f"{spec.task.name} · {settings.name}: scoring", len(eval_texts)) as advance:
            eval_features = features(model, tokenizer, eval_texts, settings, advance)
    probabilities = classifier.predict_proba(eval_features)
    classes = [str(c) for c in classifier.classes_]
    predicted = [classes[row.argmax()] for row in probabilities]
    metrics = classification_metrics(predicted, [e.target for e in data.eval], data.labels or classes, spec.seed)
    del metrics["unparsed_rate"]  # a classifier always answers with a label
    metrics.update(scoring="features", format_compliance=None, format_compliance_note=NOT_GENERATED,
                   train_accuracy=float(classifier.score(train_features, targets)))
    latencies = time_each(lambda text: classifier.predict(features(model, tokenizer, [text], settings)), eval_texts)
    predictions = [{"id": e.id, "input": e.prompt, "prediction": p, "target": e.target, "correct": p == e.target,
                    "scores": [round(float(s), 4) for s in row]}
                   for e, p, row in zip(data.eval, predicted, probabilities)]
    tokens = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in eval_texts]
    evaluation = Evaluation(metrics=metrics, predictions=predictions, latency_p50_s=percentile(latencies, 50),
                            latency_p95_s=percentile(latencies, 95),
                            prompt_tokens_per_query=sum(tokens) / len(tokens) if tokens else 0.0,
                            completion_tokens_per_query=0.0)
    saved = spec.run_dir / "model"
    saved.mkdir(parents=True, exist_ok=True)
    save_classifier(classifier, settings, saved)
    regression = classifier.named_steps["logisticregression"]
    head = int(regression.coef_.size + regression.intercept_.size)
    _, total = common.count_params(model)
    cost = {"train_time_s": round(fit_seconds, 3), "peak_memory_mb": round(peak.peak_mb, 1), "trainable_params": head,
            "total_params": total + head, "adapter_size_mb": round(common.folder_size_mb(saved), 4),
            "examples_per_s": round(len(train_texts) / fit_seconds, 3) if fit_seconds else 0.0}
    return common.build_result(spec, evaluation, cost, started, artifact_dir=spec.run_dir,
                               model_hash=model_digest(resolve_model_path(spec.model)))
