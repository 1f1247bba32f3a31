"""The HTML pages: / (the browser's camera, or the server camera's stream in kiosk mode) and /upload.

Why a Blueprint of its own: the pages are templates/ and static/ (no inline code, see the CSP in
tools/serving/http.py); everything they show comes from the JSON API, tools/serving/api.py.
"""

from flask import Blueprint, render_template

from tools.serving import state

pages = Blueprint("pages", __name__)


@pages.get("/")
def index():
    return render_template("index.html", server_camera=state.camera() is not None,
                           collecting=state.collector() is not None)


@pages.get("/upload")
def upload():
    return render_template("upload.html", collecting=state.collector() is not None)
