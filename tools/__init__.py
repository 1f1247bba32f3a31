"""The library behind the entry scripts (train.py, predict.py, server.py, sample.py), one module per job.

contract.py       the model folder: best.h5 + labels.json, the resize rule, crops, bins
images.py         the one image decoder (+ what kind of file it is)
inference.py      Classifier: image bytes in, a result out (Keras or .tflite)
batch_predict.py  predict.py's files, folders and URLs, in batches
fetch.py          an image from an http(s) URL
model_source.py   --model by URL, fetched into the Keras cache
export.py         SavedModel / TFLite / ONNX export (python -m tools.export)
quiet.py          Keras imported without TensorFlow's start-up noise
data/, training/, serving/: the data folders, train.py's parts and the web app (each says what it holds).
"""
