"""The lecture's first network, line for line: Dense 512 relu + Dense 10 softmax on MNIST.

    python examples/mnist_mlp.py                      # full MNIST (downloaded once), 5 epochs
    python examples/mnist_mlp.py --dataset sample     # the 5,000 digits that ship with the package

Keras's ``layers.Dense(512, activation="relu")`` is ``nn.Linear(784, 512), nn.ReLU()`` here; the
rest (compile, fit, predict, evaluate) reads as in the lecture. Without full MNIST and without a
network, ``--dataset auto`` (the default) falls back to Fashion-MNIST, then to the shipped sample.
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

    # Loading the data set: four NumPy arrays, as keras.datasets.mnist.load_data() gives, with the
    # lecture's astype("float32") / 255 done: (N, 28, 28) images in [0, 1] instead of uint8 in [0, 255].
    (train_images, train_labels), (test_images, test_labels) = data.load_images(
        args.dataset, channels_first=False, limit=args.limit)
    print("train_images.shape:", train_images.shape, " test_images.shape:", test_images.shape)

    # The network architecture.
    model = nn.Sequential(
        nn.Linear(28 * 28, 512), nn.ReLU(),
        nn.Linear(512, 10), nn.Softmax(),
    )
    model.summary((28 * 28,))  # 407,050 parameters

    # Compiling the model.
    model.compile(optimizer="rmsprop",
                  loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])

    # Preparing the data: each 28x28 image becomes one vector of 784 values, (N, 28, 28) -> (N, 784).
    train_images = train_images.reshape(len(train_images), 28 * 28)
    test_images = test_images.reshape(len(test_images), 28 * 28)

    # Training ("fitting") the model.
    model.fit(train_images, train_labels, epochs=args.epochs, batch_size=128)

    # Making predictions: ten class probabilities for each digit.
    test_digits = test_images[0:10]
    prediction = model.predict(test_digits)
    print("prediction[0]:", prediction[0])
    print("prediction[0].argmax():", prediction[0].argmax(), " test_labels[0]:", test_labels[0])

    # Evaluating the model on new data.
    test_loss, test_acc = model.evaluate(test_images, test_labels)
    print(f"test accuracy: {test_acc}")
    return test_acc


if __name__ == "__main__":
    main()
