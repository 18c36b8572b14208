"""examples/keras_lecture.py: the slides' Keras programs run as written, on a few shipped digits."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "keras_lecture.py"


def test_keras_lecture_runs_the_slides_programs(capsys):
    spec = importlib.util.spec_from_file_location("example_keras_lecture", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = module.main(["--dataset", "sample", "--epochs", "1", "--limit", "300"])
    out = capsys.readouterr().out
    for total in ("407,050", "104,202", "712,202"):  # the slides' summaries
        assert f"Total params: {total}" in out
    assert "(None, 13, 13, 32)" in out  # channels last
    assert re.search(r"max_pooling2d(_\d+)? \(MaxPooling2D\)", out)  # Keras's names (numbered after the first)
    assert 0.3 < results["dense"] <= 1.0  # 300 digits, one epoch; chance is 0.1
    assert 0.0 <= results["convnet"] <= 1.0 and results["without_max_pool_params"] == 712_202
    loss, accuracy = results["mnist_cnn"]  # evaluate with metrics: [loss, accuracy], as Keras
    assert loss > 0 and 0.0 <= accuracy <= 1.0
    assert "prediction[0].argmax():" in out and "Test accuracy:" in out
    assert "x_train shape: (300, 28, 28, 1)" in out  # mnist_cnn.py's channels-last branch, as Keras takes it


def test_only_the_imports_differ_from_the_slides():
    """The example imports from autograd_cnn where the slides import from tensorflow."""
    text = EXAMPLE.read_text()
    assert "import tensorflow" not in text and "from tensorflow" not in text.replace("# was: from tensorflow", "")
    assert "from autograd_cnn import keras  # was: from tensorflow import keras" in text
    assert "from autograd_cnn.keras import layers  # was: from tensorflow.keras import layers" in text
    for line in ('    x = layers.Conv2D(filters=32, kernel_size=3, activation="relu") (input)',
                 "    model.add(Conv2D(64, (3, 3), activation='relu'))",
                 "                  optimizer=keras.optimizers.Adadelta(),",
                 "    model.fit(train_images, train_labels, epochs=epochs, batch_size=128)"):
        assert line in text
