"""What fit takes for a loader on TensorFlow (tools/training/feed.py): a tf.data pipeline of the loader's own
batches, with static shapes, whose epochs end (the next shuffle order) exactly as Keras ends a PyDataset's."""

import keras
import numpy as np
import pytest

from tools.data.layout import load_dataset
from tools.training.feed import EpochEnds, batches, fit_input
from tools.training.loader import GarbageClassifySequence

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the TensorFlow backend's pipeline")


class Recording(GarbageClassifySequence):
    """A loader that remembers which (epoch, batch) it was asked for."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def __getitem__(self, idx):
        self.calls.append((self.epoch, idx))
        return super().__getitem__(idx)


def loaders(tiny_data, workers=2):
    ds = load_dataset(tiny_data)
    common = dict(num_classes=4, batch_size=8, input_size=32, workers=workers)
    train = Recording(ds.paths[:40], ds.labels[:40], training=True, **common)
    val = Recording(ds.paths[40:], ds.labels[40:], training=False, **common)
    return train, val


@pytest.mark.parametrize("workers", [1, 3])
def test_the_pipeline_yields_the_loaders_batches_in_order_with_static_shapes(tiny_data, workers):
    train, val = loaders(tiny_data, workers)
    for seq in (train, val):
        ds = batches(seq)
        assert all(spec.shape.is_fully_defined() for spec in ds.element_spec)
        assert [tuple(s.shape) for s in ds.element_spec] == [shape for shape, _ in seq.batch_spec()]
        got = [tuple(np.asarray(p) for p in b) for b in ds]
        want = [seq[i] for i in range(len(seq))]
        assert len(got) == len(want) == len(seq)
        for g, w in zip(got, want):
            assert len(g) == len(w) and all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(g, w))
    assert len(val.batch_spec()) == 3 and len(train.batch_spec()) == 2  # validation has its sample weights


def test_fit_loads_each_epochs_batches_once_in_that_epochs_order(tiny_data):
    """Keras makes the next epoch's iterator before the epoch's callbacks run: no batch may be loaded from it
    with the old order, and every epoch's batches are loaded exactly once."""
    train, val = loaders(tiny_data)
    pixels = keras.Input((32, 32, 3), dtype="uint8")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(pixels))
    model = keras.Model(pixels, keras.layers.Dense(4, activation="softmax")(x))
    model.compile("adam", "categorical_crossentropy")
    train_input, val_input = fit_input(train), fit_input(val)
    assert train_input is not train and val_input is not val and fit_input(None) is None
    model.fit(train_input, validation_data=val_input, epochs=3, verbose=0, shuffle=False,
              callbacks=[EpochEnds([train, val, None])])
    assert sorted(train.calls) == [(e, i) for e in range(3) for i in range(len(train))]
    assert sorted(val.calls) == [(0, i) for _ in range(3) for i in range(len(val))]
    assert train.epoch == 3  # and the next run of the loader shuffles for epoch 3
    assert not np.array_equal(train._order_for(0), train._order_for(1))  # the orders differ: the test can tell
