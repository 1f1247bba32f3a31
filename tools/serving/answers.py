"""Every JSON answer of the API, field by field: renaming a field happens here and nowhere else.

The routes (tools/serving/api.py) decide which answer and which status; this module decides what
the answer says. A prediction is the classifier's result (tools/inference.py: label, name,
category, probability, top_k, bins, unsure) with the server's own fields added.
"""


def prediction(result, time_ms, collecting=False, capture_id=None):
    """/predict and /shot_photo: the classifier's result, time_ms measured by the server (decoding,
    waiting for the batch, the model call) and, while collecting, the capture_id that /feedback names
    (None when the photo could not be kept for feedback)."""
    answer = dict(result, time_ms=time_ms)
    if collecting:
        answer.update(collecting=True, capture_id=capture_id)
    return answer


def health(holder, collector=None):
    """/healthz: (answer, status): 200 once the model is ready, else 503 "loading" or "error"."""
    if holder.ready.is_set():
        extra = {} if collector is None else {"collected": collector.collected}
        classifier = holder.classifier
        return dict(status="ok", classes=len(classifier.labels), model=holder.model_name, model_sha256=holder.sha256,
                    input_size=classifier.input_size, crops=classifier.crops, **extra), 200
    return dict(status="error" if holder.error else "loading", error=holder.error, model=holder.model_name), 503


def labels(classifier, names):
    """/labels: the class names (index = label), the bins, and `names`: the items and bins in the
    page's other language, {"en": {"items": [one per label], "bins": {bin: name}}} (tools/names.py)."""
    return dict(labels=classifier.labels, bins=classifier.bins, names=names)


def saved(file, label, name, collected):
    """/feedback's 201: the image written into the collect folder, its label and the folder's count."""
    return dict(saved=True, file=file, label=label, name=name, collected=collected)


def error(message):
    """Every refusal: one line that says what was wrong."""
    return dict(error=message)


def not_ready(holder):
    """503 while the model is loading or failed to load."""
    return error(holder.error or "model is still loading, try again shortly")
