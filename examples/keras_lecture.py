"""The lectures' Keras code, run as the slides write it: only the import lines differ.

    python examples/keras_lecture.py                          # MNIST where it is found or downloads
    python examples/keras_lecture.py --dataset sample --epochs 1 --limit 1000    # a quick run

Three programs, each as on its slides: the dense network (Dense 512 relu + Dense 10 softmax,
rmsprop, 407,050 parameters), the convnet (Conv2D 32/64/128 with MaxPool2D, 104,202 parameters)
and the same without pooling (712,202, summary only), and the Keras ``mnist_cnn.py`` example of
the MIPT deck (``Sequential.add`` with ``input_shape``, Dropout, ``to_categorical``, Adadelta).
Where a slide writes the size of full MNIST (``reshape(60000, 28 * 28)``) the code says
``len(train_images)``, so that it runs on any number of digits; ``epochs`` comes from
``--epochs`` when given. Nothing else is changed.
"""
from __future__ import annotations

import argparse

from autograd_cnn import keras  # was: from tensorflow import keras
from autograd_cnn.data import DataError, load_sample
from autograd_cnn.keras import backend as K  # was: from keras import backend as K
from autograd_cnn.keras import layers  # was: from tensorflow.keras import layers
from autograd_cnn.keras.datasets import mnist  # was: from tensorflow.keras.datasets import mnist
from autograd_cnn.keras.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D  # was: from keras.layers import ...
from autograd_cnn.keras.models import Sequential  # was: from keras.models import Sequential


def dense_network(train_images, train_labels, test_images, test_labels, epochs=5):
    """The slides "Архітектура мережі" to "Оцінка моделі на нових даних", line for line."""
    model = keras.Sequential([
        layers.Dense(512, activation='relu'),
        layers.Dense(10, activation='softmax')
    ])
    model.compile(optimizer="rmsprop",
                  loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])

    train_images = train_images.reshape(len(train_images), 28 * 28)  # the slide: reshape(60000, 28 * 28)
    train_images = train_images.astype("float32") / 255

    test_images = test_images.reshape(len(test_images), 28 * 28)  # the slide: reshape(10000, 28 * 28)
    test_images = test_images.astype("float32") / 255

    model.fit(train_images, train_labels, epochs=epochs, batch_size=128)
    model.summary()  # built by fit, on its first batch: 407,050 parameters

    test_digits = test_images[0:10]
    prediction = model.predict(test_digits)
    print("prediction[0]:", prediction[0])
    print("prediction[0].argmax():", prediction[0].argmax(), " test_labels[0]:", test_labels[0])

    test_loss, test_acc = model.evaluate(test_images, test_labels)
    print(f"test accuracy: {test_acc}")
    return test_acc


def convnet(train_images, train_labels, test_images, test_labels, epochs=5):
    """The slides "Створюємо згорткову мережу" to "Оцінка згорткової моделі на нових даних"."""
    input = keras.Input(shape=(28, 28, 1))
    x = layers.Conv2D(filters=32, kernel_size=3, activation="relu") (input)
    x = layers.MaxPool2D(pool_size=2) (x)
    x = layers.Conv2D(filters=64, kernel_size=3, activation="relu") (x)
    x = layers.MaxPool2D(pool_size=2)(x)
    x = layers.Conv2D(filters=128, kernel_size=3, activation="relu") (x)
    x = layers.Flatten() (x)
    output = layers.Dense(10, activation="softmax") (x)
    model = keras.Model(inputs=input, outputs=output)

    model.summary()  # 104,202 parameters

    train_images = train_images.reshape(len(train_images), 28, 28, 1)  # the slide: reshape(60000, 28, 28, 1)
    train_images = train_images.astype("float32") / 255

    test_images = test_images.reshape(len(test_images), 28, 28, 1)  # the slide: reshape(10000, 28, 28, 1)
    test_images = test_images.astype("float32") / 255

    model.compile(optimizer="rmsprop",
                  loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])

    model.fit(train_images, train_labels, epochs=epochs, batch_size=128)

    test_loss, test_acc = model.evaluate(test_images, test_labels)
    print(f"test accuracy: {test_acc}")
    return test_acc


def without_max_pool():
    """The slide "Операція максимізаційного агрегування": the convnet without pooling (summary only)."""
    input = keras.Input(shape=(28, 28, 1))
    x = layers.Conv2D(filters=32, kernel_size=3, activation="relu") (input)
    x = layers.Conv2D(filters=64, kernel_size=3, activation="relu") (x)
    x = layers.Conv2D(filters=128, kernel_size=3, activation="relu") (x)
    x = layers.Flatten() (x)
    output = layers.Dense(10, activation="softmax") (x)
    model_without_max_pool = keras.Model(inputs=input, outputs=output)

    model_without_max_pool.summary()  # 712,202 parameters: 619,530 of them in the Dense layer
    return model_without_max_pool.count_params()


def mnist_cnn(x_train, y_train, x_test, y_test, epochs=12):
    """Keras's mnist_cnn.py example, as the MIPT deck shows it."""
    batch_size = 128
    num_classes = 10

    # input image dimensions
    img_rows, img_cols = 28, 28

    if K.image_data_format() == 'channels_first':
        x_train = x_train.reshape(x_train.shape[0], 1, img_rows, img_cols)
        x_test = x_test.reshape(x_test.shape[0], 1, img_rows, img_cols)
        input_shape = (1, img_rows, img_cols)
    else:
        x_train = x_train.reshape(x_train.shape[0], img_rows, img_cols, 1)
        x_test = x_test.reshape(x_test.shape[0], img_rows, img_cols, 1)
        input_shape = (img_rows, img_cols, 1)

    x_train = x_train.astype('float32')
    x_test = x_test.astype('float32')
    x_train /= 255
    x_test /= 255
    print('x_train shape:', x_train.shape)
    print(x_train.shape[0], 'train samples')
    print(x_test.shape[0], 'test samples')

    # convert class vectors to binary class matrices
    y_train = keras.utils.to_categorical(y_train, num_classes)
    y_test = keras.utils.to_categorical(y_test, num_classes)

    model = Sequential()
    model.add(Conv2D(32, kernel_size=(3, 3),
                     activation='relu',
                     input_shape=input_shape))
    model.add(Conv2D(64, (3, 3), activation='relu'))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Dropout(0.25))
    model.add(Flatten())
    model.add(Dense(128, activation='relu'))
    model.add(Dropout(0.5))
    model.add(Dense(num_classes, activation='softmax'))

    model.compile(loss=keras.losses.categorical_crossentropy,
                  optimizer=keras.optimizers.Adadelta(),
                  metrics=['accuracy'])

    model.fit(x_train, y_train,
              batch_size=batch_size,
              epochs=epochs,
              verbose=1,
              validation_data=(x_test, y_test))
    score = model.evaluate(x_test, y_test, verbose=0)
    print('Test loss:', score[0])
    print('Test accuracy:', score[1])
    return score


def load_digits(dataset: str, limit: int | None):
    """(train_images, train_labels), (test_images, test_labels) as mnist.load_data() gives them:
    uint8 (N, 28, 28) and uint8 labels. "auto": MNIST, else the 5,000 digits that ship with the package."""
    if dataset in ("auto", "mnist"):
        try:
            (x_train, y_train), (x_test, y_test) = mnist.load_data()
        except DataError as err:
            if dataset == "mnist":
                raise
            print(f"MNIST is not available ({str(err).splitlines()[0]}); using the 5,000 digits that ship "
                  "with the package (4,000 train / 1,000 test)")
            (x_train, y_train), (x_test, y_test) = load_sample(split=True)
    else:
        (x_train, y_train), (x_test, y_test) = load_sample(split=True)
    return (x_train[:limit], y_train[:limit]), (x_test[:limit], y_test[:limit])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="auto", choices=["auto", "mnist", "sample"])
    parser.add_argument("--epochs", type=int, default=None, help="epochs for every model (default: each slide's)")
    parser.add_argument("--limit", type=int, default=None, help="use at most N training and N test images")
    args = parser.parse_args(argv)
    epochs = {} if args.epochs is None else {"epochs": args.epochs}

    (train_images, train_labels), (test_images, test_labels) = load_digits(args.dataset, args.limit)
    results = {"dense": dense_network(train_images, train_labels, test_images, test_labels, **epochs),
               "convnet": convnet(train_images, train_labels, test_images, test_labels, **epochs),
               "without_max_pool_params": without_max_pool()}
    results["mnist_cnn"] = mnist_cnn(train_images, train_labels, test_images, test_labels, **epochs)
    return results


if __name__ == "__main__":
    main()
