"""The JSON API: /predict, /labels, /healthz, /feedback, and the kiosk's /video_feed and /shot_photo.

Why a Blueprint of its own: these are the routes phones, scripts and the pages' JavaScript call;
the HTML pages are tools/serving/pages.py. Which answer and which status is decided here, what each
answer says in tools/serving/answers.py. The kiosk routes are a second Blueprint, registered only
with --server_camera.
"""

from flask import Blueprint, Response, current_app, request

from tools.errors import GarbageError
from tools.names import NamesFileError, names_in
from tools.serving import answers, state
from tools.serving.http import RETRY_AFTER_S
from tools.serving.uploads import body_too_large, read_upload, save_upload

api = Blueprint("api", __name__)
kiosk = Blueprint("kiosk", __name__)


def http_error(e):
    """Every HTTP error, pages included, as JSON {"error": ...}; 413 says what the limit is."""
    if e.code == 413:  # the body is over MAX_CONTENT_LENGTH (form limits are BadImage, see uploads.read_multipart_photo)
        return answers.error(body_too_large(current_app.config["MAX_CONTENT_LENGTH"])), 413
    return answers.error(f"{e.name}: {e.description}"), e.code


@api.errorhandler(GarbageError)
def refused(e):
    """A request the API refuses (uploads.BadImage, feedback.FeedbackError) as JSON {"error": ...}, its status."""
    return answers.error(str(e)), e.http_status


def _retry_after(holder):
    """Retry-After while the model is loading (not once it has failed: retrying will not help)."""
    return {} if holder.error else {"Retry-After": str(RETRY_AFTER_S)}


def _not_ready():
    return answers.not_ready(state.holder()), 503, _retry_after(state.holder())


def _answer(data):
    """The prediction answer for `data` (kept with --save_uploads); while collecting, the photo waits
    for feedback under the answer's capture_id."""
    result, time_ms, ext = state.holder().judge(data)
    answer = answers.prediction(result, time_ms)
    if current_app.config["SAVE_UPLOADS"]:
        save_upload(current_app.config["SAVE_UPLOADS"], data, ext, answer)
    collector = state.collector()
    if collector is not None:
        capture_id = collector.store.put(data, ext, result["label"], result["probability"])
        answer = answers.prediction(result, time_ms, collecting=True, capture_id=capture_id)
    return answer


@api.get("/healthz")
def healthz():
    answer, status = answers.health(state.holder(), state.collector())
    return answer, status, _retry_after(state.holder()) if status == 503 else {}


@api.post("/predict")
def predict():
    if not state.holder().ready.is_set():
        return _not_ready()
    return _answer(read_upload(request))


@api.get("/labels")
def labels():
    if not state.holder().ready.is_set():
        return _not_ready()
    classifier = state.holder().classifier
    try:
        names = {"en": names_in(classifier.labels, "en")}
    except NamesFileError as e:  # a broken names file must not take the class list away: own names then
        current_app.logger.warning("%s; the page shows the class names as they are", e)
        names = {}
    return answers.labels(classifier, names)


@api.post("/feedback")
def feedback():
    """{"capture_id": ..., "label": <class id>}: save the photo of that capture under that label."""
    collector = state.collector()
    if collector is None:
        return answers.error("not collecting: the server was started without --collect DIR"), 404
    if not state.holder().ready.is_set():
        return _not_ready()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return answers.error('send JSON {"capture_id": "...", "label": <class id>}'), 400
    return answers.saved(*collector.feedback(body.get("capture_id"), body.get("label"))), 201


@kiosk.get("/video_feed")
def video_feed():
    return Response(state.camera().mjpeg(), mimetype="multipart/x-mixed-replace; boundary=frame")


@kiosk.route("/shot_photo", methods=["GET", "POST"])
def shot_photo():
    if not state.holder().ready.is_set():
        return _not_ready()
    try:
        data = state.camera().snapshot_jpeg()
    except OSError as e:
        return answers.error(str(e)), 503
    return _answer(data)
