"""A model file and its labels.json -> a model that takes uint8 RGB pixels, whichever version wrote them.

predict.py and server.py (tools.inference.Classifier), train.py --test_only and tools/export.py open
a model folder here, so they all hold one kind of model: uint8 RGB crops (N, S, S, 3) in, class
probabilities out. A best.h5 of the older contract (tools.contract: "caffe_float32", a labels.json
without "input"; it takes float32 crops the caller preprocessed) is adapted once, when it is loaded:
put behind the classifier's own input layers (models.preprocess.pixel_preprocessing, the same values
as the numpy preprocessing its callers did, to the last bit), so it predicts as before, and exports
with pixel input. An older float32 .tflite export cannot be rewrapped: its uint8 crops are
preprocessed on the host (models.preprocess.preprocess_input), behind the same interface. This is the
one module that tells the two contracts apart (bench/layout.py checks it).

labels.json's contract and the model's input dtype must agree: files of two different models are one
ModelFilesError line. Keras is imported only when a Keras file is loaded, TensorFlow only where a
.tflite file runs without LiteRT: predict.py on a .tflite file needs neither.
"""

from collections import namedtuple

import numpy as np

from models.preprocess import pixel_preprocessing, preprocess_input
from models.saving import load_model
from tools.contract import CAFFE, INPUT_DTYPES, LABELS_FILE, ModelFilesError, input_contract, load_labels
from tools.files import first_line

#: What open_model returns: the uint8-input model, labels.json's class names and whole dict, and the input
#: contract labels.json states (tools.contract.PIXELS or CAFFE: which version wrote the files).
LoadedModel = namedtuple("LoadedModel", "model labels meta contract")


def tflite_interpreter(path):
    """LiteRT's standalone interpreter (pip install ai-edge-litert) where installed, else TensorFlow's."""
    try:  # optional, and TensorFlow is heavy: imported only when a .tflite file is run
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_path=path)
    interpreter.allocate_tensors()
    return interpreter


class TFLiteModel:
    """A `.tflite` file from `python -m tools.export` behind the one method the Classifier uses; the
    one way this project runs a TFLite model (tools.export's parity check runs it too).

    Runs with LiteRT's small `ai_edge_litert` package (a Raspberry Pi needs no TensorFlow), or with
    TensorFlow's interpreter where that is what is installed.
    """

    def __init__(self, path):
        self.interpreter = tflite_interpreter(path)
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]
        self.input_shape = tuple(int(d) for d in self._in["shape"])
        self.output_shape = tuple(int(d) for d in self._out["shape"])
        #: What the input tensor holds: uint8 (pixels: exports since models took pixels) or float32.
        self.input_dtype = np.dtype(self._in["dtype"])
        self._batch = self.input_shape[0]

    def predict_on_batch(self, x):
        """Outputs for the batch `x` in one call, set in the interpreter's input dtype (the input is
        resized to its batch size). Float values for an integer input are refused, never truncated."""
        x = np.asarray(x)
        if self.input_dtype.kind in "iu" and x.dtype.kind not in "iub":
            raise ValueError(f"this TFLite model takes {self.input_dtype.name} pixels. Received: x.dtype={x.dtype}")
        if x.shape[0] != self._batch:
            self.interpreter.resize_tensor_input(self._in["index"], x.shape)
            self.interpreter.allocate_tensors()
            self._batch = x.shape[0]
        self.interpreter.set_tensor(self._in["index"], x.astype(self.input_dtype))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out["index"]).copy()


class _PreprocessedOnTheHost:
    """An older float32 .tflite export behind TFLiteModel's interface, taking uint8 crops like the rest."""

    def __init__(self, lite):
        self.lite = lite
        self.input_shape, self.output_shape = lite.input_shape, lite.output_shape
        self.input_dtype = np.dtype(np.uint8)

    def predict_on_batch(self, x):
        return self.lite.predict_on_batch(preprocess_input(x))


def _with_pixel_input(model):
    """A Keras model of the older contract behind the pixel input layers: uint8 crops in, its answers out."""
    import keras  # only a Keras file needs it (see the module docstring)

    pixels = keras.layers.Input(tuple(model.input_shape[1:]), dtype="uint8", name="pixels")
    return keras.Model(pixels, model(pixel_preprocessing(pixels)), name=f"{model.name}_pixels")


def input_dtype_of(model):
    """numpy dtype name of a loaded model's input ("uint8", "float32"), or None where it cannot tell."""
    if isinstance(model, TFLiteModel):
        return model.input_dtype.name
    try:
        return np.dtype(model.inputs[0].dtype).name
    except (AttributeError, IndexError, TypeError):
        return None


def check_input_dtype(model, meta, model_path):
    """labels.json's input contract (`meta`: its dict) checked against the loaded model's input dtype;
    returns the contract. ModelFilesError (one line) when the two files disagree."""
    contract = input_contract(meta, LABELS_FILE)
    dtype = input_dtype_of(model)
    if dtype is not None and dtype != INPUT_DTYPES[contract]:
        said = f"says input={contract!r}" if "input" in meta else f"has no \"input\" (so {contract!r})"
        raise ModelFilesError(f"{model_path} takes {dtype} input but its {LABELS_FILE} {said}, which means "
                              f"{INPUT_DTYPES[contract]}: the two files are from different models")
    return contract


def older_contract(meta):
    """True for the labels.json dict of a model written before models took pixels (CAFFE): it loads
    adapted, but a run of it is not one this version can go on with."""
    return input_contract(meta) == CAFFE


def open_model(model_path):
    """The model at `model_path` (`.h5`/`.keras` from train.py, or `.tflite` from tools.export) and its
    labels.json, as a LoadedModel whose model takes uint8 RGB crops. ModelFilesError (one line) for a
    missing or bad labels.json, a file that does not load, or files of two different models."""
    labels, meta = load_labels(model_path)
    try:
        model = TFLiteModel(model_path) if model_path.endswith(".tflite") else load_model(model_path)
    except Exception as e:  # Keras and LiteRT raise many types for a foreign file
        raise ModelFilesError(f"cannot load model {model_path}: {first_line(e, 200)}") from None
    contract = check_input_dtype(model, meta, model_path)
    if contract == CAFFE:
        model = _PreprocessedOnTheHost(model) if isinstance(model, TFLiteModel) else _with_pixel_input(model)
    return LoadedModel(model, labels, meta, contract)
