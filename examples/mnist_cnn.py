"""The lecture's convnet, line for line: Conv 32/64/128 with max-pooling, then Dense 10 softmax.

    python examples/mnist_cnn.py                      # full MNIST (downloaded once), 5 epochs
    python examples/mnist_cnn.py --dataset sample     # the 5,000 digits that ship with the package
    mpiexec -n 2 python examples/mnist_cnn.py         # two processes, data-parallel, the same code

Keras takes images as (28, 28, 1), channels last; like PyTorch we take (1, 28, 28), channels first.
``layers.Conv2D(filters=32, kernel_size=3, activation="relu")`` is ``nn.Conv2d(1, 32, 3), nn.ReLU()``.
Without full MNIST and without a network, ``--dataset auto`` (the default) falls back to
Fashion-MNIST, then to the shipped sample.
"""
from __future__ import annotations

import argparse

from autograd_cnn import data, nn


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="auto", choices=["auto", "mnist", "fashion-mnist", "sample"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--limit", type=int, default=None, help="use at most N training and N test images")
    args = parser.parse_args(argv)

    # Preparing the data: the lecture's reshape to (N, 28, 28, 1) and astype("float32") / 255,
    # channels first: images become (N, 1, 28, 28) float32 in [0, 1].
    (train_images, train_labels), (test_images, test_labels) = data.load_images(args.dataset, limit=args.limit)

    # The convnet: a stack of Conv2d and MaxPool2d layers, then a classifier.
    model = nn.Sequential(
        nn.Conv2d(1, 32, kernel_size=3), nn.ReLU(),     # (None, 32, 26, 26)
        nn.MaxPool2d(2),                                # (None, 32, 13, 13)
        nn.Conv2d(32, 64, kernel_size=3), nn.ReLU(),    # (None, 64, 11, 11)
        nn.MaxPool2d(2),                                # (None, 64, 5, 5)
        nn.Conv2d(64, 128, kernel_size=3), nn.ReLU(),   # (None, 128, 3, 3)
        nn.Flatten(),                                   # (None, 1152)
        nn.Linear(1152, 10), nn.Softmax(),              # (None, 10)
    )
    model.summary((1, 28, 28))  # 104,202 parameters, as in the lecture

    model.compile(optimizer="rmsprop",
                  loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(train_images, train_labels, epochs=args.epochs, batch_size=128)

    prediction = model.predict(test_images[0:10])
    print("prediction[0].argmax():", prediction[0].argmax(), " test_labels[0]:", test_labels[0])

    test_loss, test_acc = model.evaluate(test_images, test_labels)
    print(f"test accuracy: {test_acc:.3f}")
    return test_acc


if __name__ == "__main__":
    main()
