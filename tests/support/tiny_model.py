"""The tests' model: a 32 px classifier of today's contract that tells support.datagen's classes apart.

An untrained classifier gives every photo the same class, so a test comparing two answers could not
tell a right answer from a wrong one. This one is trained in a few seconds, as train.py's first
phase trains: the backbone frozen (here with its random initial weights, whose pooled features
still keep each photo's colour), the head fitted on the backbone's features of generated photos
of 4 classes. make_image's classes differ by their colour (red, green, blue, yellow): a wrong channel
order makes red blue and yellow cyan, raw pixels for preprocessed ones shift every colour. Label
smoothing keeps the top probability near 0.85: clear answers, but always under an "unsure"
threshold of 0.99.
"""

import io
import os

import numpy as np

from support.datagen import CLASS_NAMES, make_image

NUM_CLASSES, INPUT_SIZE = 4, 32
#: Photo sizes of the training photos: the sizes tests use, from thumbnails to camera frames.
TRAIN_SIZES = ((80, 60), (64, 64), (120, 90), (160, 120), (300, 200), (500, 400), (640, 480), (320, 240))


def encoded(img, fmt="JPEG"):
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def crops_of(data, crops=5):
    """What the model sees of encoded photo bytes: the prediction core's uint8 crops."""
    from tools.images import load_resized
    from tools.inference import crop_batch

    return crop_batch(load_resized(data, INPUT_SIZE), INPUT_SIZE, crops)


def training_pixels(seed=0):
    """(uint8 crops, labels): one crop (centre or a corner, in turn) of a JPEG and of a PNG of a generated
    photo of every class at every TRAIN_SIZES size."""
    rng = np.random.default_rng(seed)
    pixels, labels = [], []
    for label in range(NUM_CLASSES):
        for k, size in enumerate(TRAIN_SIZES):
            for j, fmt in enumerate(("JPEG", "PNG")):
                pixels.append(crops_of(encoded(make_image(label, rng, size), fmt))[(k + j) % 5])
                labels.append(label)
    return np.stack(pixels), np.array(labels)


def train_tiny_classifier(seed=11, passes=32, label_smoothing=0.2):
    """A build_classifier(4, 32, weights=None) whose head is trained on its frozen backbone's features of
    training_pixels() (64 steps of 32); returns the model."""
    import keras

    from models.classifier import build_classifier, custom_top

    keras.utils.set_random_seed(seed)
    model = build_classifier(NUM_CLASSES, INPUT_SIZE, weights=None)
    x, y = training_pixels()
    backbone = keras.Model(model.input, model.get_layer("head_pool").input)
    features = np.asarray(backbone(x, training=False))  # (N, 1, 1, 2048) at 32 px; eager: no tracing to pay
    head_input = keras.Input(features.shape[1:])
    head = keras.Model(head_input, custom_top(head_input, NUM_CLASSES, dropout=0.0))  # the same layer names
    for layer in head.layers:  # frozen BatchNormalization runs as at inference: training sees what tests see
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
    head.compile(keras.optimizers.Adam(1e-3), keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing))
    targets = keras.utils.to_categorical(y, NUM_CLASSES)
    # the passes as one epoch: each Keras epoch costs a fixed ~0.5 s on 2 cores
    head.fit(np.tile(features, (passes, 1, 1, 1)), np.tile(targets, (passes, 1)), batch_size=32, verbose=0)
    for layer in head.layers:
        if layer.weights:
            model.get_layer(layer.name).set_weights(layer.get_weights())
    return model


def check_photos(seed=1000):
    """(class, encoded photo) of every class at sizes and formats the tests use, none of them trained on."""
    rng = np.random.default_rng(seed)
    return [(label, encoded(make_image(label, rng, size), fmt)) for label in range(NUM_CLASSES)
            for size, fmt in (((80, 60), "JPEG"), ((640, 480), "JPEG"), ((300, 200), "PNG"), ((64, 64), "PNG"))]


def answers(model, photos):
    """The model's class for each (class, encoded photo) of `photos`: the mean of its 5 crops, ranked here."""
    crops = [crops_of(data) for _, data in photos]
    probs = np.asarray(model(np.concatenate(crops), training=False)).reshape(len(photos), -1, NUM_CLASSES)
    return [int(p) for p in probs.mean(axis=1).argmax(axis=1)]


def save_tiny_classifier(folder):
    """train_tiny_classifier() saved as train.py saves a model: folder/best.h5 + labels.json; returns
    (the best.h5 path, the model)."""
    from models.saving import save_model_atomic
    from tools.contract import write_labels

    model = train_tiny_classifier()
    path = os.path.join(str(folder), "best.h5")
    save_model_atomic(model, path)
    write_labels(str(folder), CLASS_NAMES[:NUM_CLASSES], INPUT_SIZE)
    return path, model
