"""The web app (python server.py): one module per job.

app.py      create_app(): settings, the objects below, the Blueprints
settings.py every setting once: default, type, flag help, GARBAGE_* name
api.py      the JSON API routes          pages.py   the HTML pages
answers.py  the fields of every JSON answer
uploads.py  a photo out of a request (tolerant multipart, in memory), --save_uploads
model.py    the model, loaded in the background, judging uploads
batcher.py  micro-batching               feedback.py  --collect DIR
kiosk.py    the server camera            state.py   where the routes find those objects
http.py     the listening socket, the limits on slow clients, the dev server, TLS, Server and security headers
production.py  waitress (--production) under the same limits
"""
