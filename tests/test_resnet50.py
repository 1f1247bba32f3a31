"""The hand-written ResNet50 is keras.applications.ResNet50, and both weight-file layouts load."""

import shutil

import h5py
import keras
import numpy as np
import pytest

from models import weights as W
from models.resnet50 import ResNet50, conv_block, identity_block
from support.h5_weights import save_h5_weights


def _copy_weights(src, dst):
    for layer in dst.layers:
        if layer.weights:
            layer.set_weights(src.get_layer(layer.name).get_weights())


def _assert_same_weights(a, b):
    checked = 0
    for layer in (l for l in a.layers if l.weights):
        for wa, wb in zip(layer.weights, b.get_layer(layer.name).weights):
            np.testing.assert_array_equal(np.asarray(wa), np.asarray(wb), err_msg=layer.name)
            checked += 1
    assert checked == len(a.weights)


@pytest.mark.parametrize("include_top,pooling,shape", [
    (True, None, (224, 224, 3)), (False, None, (64, 64, 3)), (False, "avg", (64, 64, 3)), (False, "max", (96, 64, 3))])
def test_same_network_as_keras_applications(include_top, pooling, shape):
    mine = ResNet50(include_top=include_top, weights=None, pooling=pooling, input_shape=shape)
    ref = keras.applications.ResNet50(include_top=include_top, weights=None, pooling=pooling, input_shape=shape)
    assert sorted(l.name for l in mine.layers[1:]) == sorted(l.name for l in ref.layers[1:])
    assert mine.count_params() == ref.count_params()
    _copy_weights(ref, mine)
    x = np.random.default_rng(1).normal(0, 60, size=(2, *shape)).astype("float32")
    out_mine, out_ref = mine.predict(x, verbose=0), ref.predict(x, verbose=0)
    assert out_mine.shape == out_ref.shape
    np.testing.assert_allclose(out_mine, out_ref, rtol=1e-5, atol=1e-5)


def test_parameter_count_of_1000_class_model():
    assert ResNet50(weights=None).count_params() == 25_636_712


def test_blocks_accept_letters_and_name_layers_by_stage():
    x = keras.Input((16, 16, 64))
    y = conv_block(x, 3, (64, 64, 256), stage=2, block="a", strides=(1, 1))
    y = identity_block(y, 3, (64, 64, 256), stage=2, block="b")
    names = {l.name for l in keras.Model(x, y).layers}
    assert {"conv2_block1_0_conv", "conv2_block1_1_conv", "conv2_block2_3_bn", "conv2_block2_out"} <= names


@pytest.mark.parametrize("kwargs,quoted", [
    (dict(weights="imagenet", include_top=True, classes=10), "classes=10"),
    (dict(weights="no_such_file.h5"), "no_such_file.h5"),
    (dict(weights=None, input_shape=(31, 31, 3), include_top=False), "(31, 31, 3)"),
    (dict(weights=None, include_top=False, pooling="sum"), "'sum'"),
    (dict(weights="imagenet", include_top=True, input_shape=(128, 128, 3)), "(128, 128, 3)"),
])
def test_bad_arguments_raise_valueerror_quoting_the_value(kwargs, quoted):
    with pytest.raises(ValueError) as e:
        ResNet50(**kwargs)
    assert quoted in str(e.value)


# ----------------------------------------------------------------- weight files
@pytest.fixture(scope="module")
def random_notop(tmp_path_factory):
    """A randomly initialised notop model and both file layouts written from it."""
    keras.utils.set_random_seed(7)
    model = ResNet50(include_top=False, weights=None, input_shape=(64, 64, 3))
    # non-default BN statistics so a mix-up of moving mean/variance would show
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            rng = np.random.default_rng(len(layer.name))
            layer.set_weights([g * rng.uniform(0.5, 1.5, g.shape), b + rng.normal(0, 0.1, b.shape),
                               rng.normal(0, 0.1, m.shape), rng.uniform(0.5, 2, v.shape)])
    folder = tmp_path_factory.mktemp("weights")
    files = {}
    for layout in ("keras", "legacy"):
        files[layout] = str(folder / f"{layout}.h5")
        save_h5_weights(model, files[layout], layout=layout)
    return model, files


def test_legacy_file_uses_v02_layer_names(random_notop):
    _, files = random_notop
    with h5py.File(files["legacy"]) as f:
        names = {n.decode() for n in f.attrs["layer_names"]}
    assert {"conv1", "bn_conv1", "res2a_branch2a", "bn2a_branch2a", "res2a_branch1", "bn5c_branch2c"} <= names
    assert not any(n.startswith("conv2_block") for n in names)


@pytest.mark.parametrize("layout", ["keras", "legacy"])
def test_weight_file_layouts_load_into_the_right_layers(random_notop, layout):
    model, files = random_notop
    loaded = ResNet50(include_top=False, weights=files[layout], input_shape=(64, 64, 3))
    _assert_same_weights(model, loaded)
    x = np.random.default_rng(2).normal(0, 60, size=(1, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


def test_generated_keras_layout_is_what_keras_applications_reads(random_notop):
    """keras.applications loads our 'keras' file by its own rules: the format is the published one."""
    model, files = random_notop
    ref = keras.applications.ResNet50(include_top=False, weights=files["keras"], input_shape=(64, 64, 3))
    _assert_same_weights(model, ref)


def test_top_layer_of_legacy_file_lands_in_predictions(tmp_path):
    model = ResNet50(include_top=True, weights=None)
    path = str(tmp_path / "legacy_top.h5")
    save_h5_weights(model, path, layout="legacy")
    with h5py.File(path) as f:
        assert "fc1000" in f
    loaded = ResNet50(include_top=True, weights=path)
    np.testing.assert_array_equal(loaded.get_layer("predictions").get_weights()[0],
                                  model.get_layer("predictions").get_weights()[0])
    # the same file also serves a model without the top (fc1000 is the only layer left over)
    ResNet50(include_top=False, weights=path, input_shape=(64, 64, 3))


def test_file_of_another_network_is_refused(tmp_path, random_notop):
    _, files = random_notop
    partial = str(tmp_path / "partial.h5")
    with h5py.File(files["keras"]) as src, h5py.File(partial, "w") as dst:
        keep = [n for n in src.attrs["layer_names"] if not n.decode().startswith("conv5")]
        for n in keep:
            src.copy(src[n.decode()], dst, n.decode())
        dst.attrs["layer_names"] = np.array(keep + [b"conv6_block1_1_conv"])
        g = dst.create_group("conv6_block1_1_conv")
        g.attrs["weight_names"] = np.array([b"conv6_block1_1_conv/kernel:0"])
        g.create_dataset("conv6_block1_1_conv/kernel:0", data=np.zeros((1, 1, 1, 1)))
    with pytest.raises(ValueError, match="not in the file.*conv5_block1.*not in the model.*conv6_block1_1_conv"):
        ResNet50(include_top=False, weights=partial, input_shape=(64, 64, 3))


# ----------------------------------------------------------------- "imagenet": cache, download, offline
@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


def _publish(monkeypatch, files, layout, base_url):
    """Point the module at a local server publishing `files[layout]` under Keras' file name."""
    fname, keras_md5, legacy_md5 = W.IMAGENET_FILES[False]
    digest = W.md5sum(files[layout])
    if layout == "keras":
        keras_md5 = digest
    else:
        legacy_md5 = digest
    monkeypatch.setitem(W.IMAGENET_FILES, False, (fname, keras_md5, legacy_md5))
    monkeypatch.setattr(W, "KERAS_BASE_URL", base_url)
    return fname


def test_imagenet_downloads_through_get_file_into_keras_cache(random_notop, keras_home, http_dir, monkeypatch):
    model, files = random_notop
    base_url, www = http_dir
    fname = _publish(monkeypatch, files, "keras", base_url)
    shutil.copy(files["keras"], www / fname)
    loaded = ResNet50(include_top=False, weights="imagenet", input_shape=(64, 64, 3))
    assert (keras_home / "models" / fname).is_file()
    _assert_same_weights(model, loaded)
    (www / fname).unlink()  # second use must come from the cache, not the network
    _assert_same_weights(model, ResNet50(include_top=False, weights="imagenet", input_shape=(64, 64, 3)))


def test_legacy_file_placed_in_cache_is_used_offline(random_notop, keras_home, monkeypatch):
    model, files = random_notop
    fname = _publish(monkeypatch, files, "legacy", "http://127.0.0.1:9/")
    (keras_home / "models").mkdir(parents=True)
    shutil.copy(files["legacy"], keras_home / "models" / fname)
    _assert_same_weights(model, ResNet50(include_top=False, weights="imagenet", input_shape=(64, 64, 3)))


def test_offline_without_cache_names_url_cache_path_and_flag(keras_home):
    """The real Keras URL, unreachable here: a clear error, not get_file's traceback."""
    with pytest.raises(W.WeightsUnavailableError) as e:
        ResNet50(include_top=False, weights="imagenet")
    msg = str(e.value)
    fname = W.IMAGENET_FILES[False][0]
    assert W.KERAS_BASE_URL + fname in msg
    assert str(keras_home / "models" / fname) in msg
    assert "--weights PATH" in msg
    assert not (keras_home / "models" / fname).exists()


def test_unrecognised_cached_file_is_reported_and_kept(keras_home):
    fname = W.IMAGENET_FILES[False][0]
    (keras_home / "models").mkdir(parents=True)
    foreign = keras_home / "models" / fname
    foreign.write_bytes(b"not the weights")
    with pytest.raises(W.WeightsUnavailableError, match="not the published ResNet50 file"):
        ResNet50(include_top=False, weights="imagenet")
    assert foreign.read_bytes() == b"not the weights"


def test_model_script_reports_offline_error_in_one_line(cli, tmp_path, keras_home):
    from support.datagen import make_image

    img = tmp_path / "x.jpg"
    make_image(0, np.random.default_rng(0), (120, 90)).save(img)
    r = cli("models/resnet50.py", img, env={"KERAS_HOME": str(keras_home)})
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    err = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(err) == 1 and W.KERAS_BASE_URL in err[0]


def test_model_script_prints_top5_with_a_weights_file(cli, tmp_path):
    from support.datagen import make_image

    keras.utils.set_random_seed(3)
    path = str(tmp_path / "top.h5")
    save_h5_weights(ResNet50(include_top=True, weights=None), path)
    img = tmp_path / "x.jpg"
    make_image(1, np.random.default_rng(0), (300, 200)).save(img)
    r = cli("models/resnet50.py", img, "--weights", path, env={"KERAS_HOME": str(tmp_path / "kh")})
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [l for l in r.stdout.splitlines() if l[:2] in {f"{i}." for i in range(1, 6)}]
    assert len(lines) == 5
    probs = [float(l.split()[-1]) for l in lines]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
