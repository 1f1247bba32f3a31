"""Running exported models where TensorFlow may be missing (a Raspberry Pi bin, a phone-side service)."""


def tflite_interpreter(path):
    """LiteRT's standalone interpreter (pip install ai-edge-litert) where installed, else TensorFlow's."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_path=path)
    interpreter.allocate_tensors()
    return interpreter
