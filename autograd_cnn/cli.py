"""The ``autograd-cnn`` command: demo, train, graph, export, info, bench."""
from __future__ import annotations

import argparse
import math
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import backends
from .cli_files import PATHS, folder_written_whole, format_problem, interrupted_name, path_problem, written_whole


def _info(args: argparse.Namespace) -> int:
    import numpy as np

    import autograd_cnn as ag
    from autograd_cnn.backends import cupy_usable, get_backend

    print(f"autograd_cnn {ag.__version__}  Python {platform.python_version()}  NumPy {np.__version__}")
    if backends.env_problem:
        print(f"default backend: none: {backends.env_problem}\n  (a program that imports autograd_cnn stops "
              f"with this error, and every command but info refuses to run: correct or unset the variable)")
    else:
        print(f"default backend: {get_backend().name}")
    print(f"available backends: {', '.join(ag.available_backends())}")
    for name in ag.available_backends():
        details = get_backend(name).describe()
        print("  " + ", ".join(f"{k}={v}" for k, v in details.items()))
    ok, why = cupy_usable()
    if not ok:
        print(f"  cupy: not usable ({why})")
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            if pool.get("user_api") == "blas":
                print(f"BLAS: {pool.get('internal_api')} {pool.get('version')} "
                      f"({pool.get('architecture')}, {pool.get('num_threads')} threads)")
    except ImportError:
        print("BLAS: install threadpoolctl to see which BLAS NumPy uses")
    from .distributed import world

    for line in world.status():
        print(line)
    return 0


# --------------------------------------------------------------------------- train and demo

def _positive(text: str) -> int:
    """argparse type: an int of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _natural(text: str) -> int:
    """argparse type: an int of at least 0 (a seed)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _learning_rate(text: str) -> float:
    """argparse type: a finite float above 0 (float() alone takes "nan", "inf" and "-1")."""
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _images(dataset: str, input_shape: tuple[int, ...], limit: int | None = None) -> Any:
    """A data set's splits as float32 in [0, 1]: (N, 1, 28, 28) for a model that takes channels,
    (N, 28, 28) for the MLPs (they start with Flatten)."""
    from . import data

    return data.load_images(dataset, channels_first=len(input_shape) == 3, limit=limit)


def _optimizer(name: str, lr: float | None, model: Any) -> Any:
    """The optimizer's name as ``compile`` takes it, or an object when a learning rate is given."""
    if lr is None:
        return name
    from . import optim

    classes = {"sgd": optim.SGD, "rmsprop": optim.RMSprop, "adam": optim.Adam, "adamw": optim.AdamW,
               "adadelta": optim.Adadelta}
    return classes[name](model.parameters(), lr=lr)


def _report(model: Any, x_test: Any, y_test: Any, args: argparse.Namespace) -> None:
    """``train --report``: the test set's classification report, and its confusion matrix as a
    picture beside the weights (``--save``), else in the current folder. Rank 0 prints and writes."""
    from . import data, metrics
    from .distributed import world

    probabilities = model.predict(x_test, batch_size=args.batch_size)  # every process: predict is shared
    if not world.is_main():
        return
    names = list(data.FASHION_MNIST_CLASSES) if args.dataset == "fashion-mnist" else None
    print(metrics.classification_report(y_test, probabilities, target_names=names))
    picture = Path(args.save).with_suffix(".confusion.png") if args.save else Path("confusion.png")
    try:
        from . import visual

        visual.plot_confusion_matrix(y_test, probabilities, names or [str(i) for i in range(10)], path=picture)
    except ImportError as e:  # matplotlib is an extra: the report stands without the picture
        print(f"no confusion picture: {e}")
        return
    print(f"wrote the confusion matrix to {picture}")


def _train(args: argparse.Namespace) -> Any:
    """Load, build, summarise, compile, fit, evaluate and save: the lecture workflow. Returns the model.

    Under ``mpiexec`` every process runs it: fit trains data-parallel, and rank 0 alone prints and saves.
    """
    import autograd_cnn as ag

    from .distributed import world
    from .models import MODELS

    say = print if world.is_main() else _silent
    build, input_shape = MODELS[args.model]
    (x_train, y_train), (x_test, y_test) = _images(args.dataset, input_shape, args.limit)
    processes = world.world_size()
    say(f"{args.dataset}: {len(x_train)} training and {len(x_test)} test images, backend {ag.get_backend().name}"
        + (f", {processes} processes of {args.batch_size} images a step each" if processes > 1 else ""))
    ag.manual_seed(args.seed)
    model = build()
    model.summary(input_shape, print_fn=say)
    model.compile(optimizer=_optimizer(args.optimizer, args.lr, model),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    resume = [ag.nn.BackupAndRestore(args.resume)] if getattr(args, "resume", None) else None
    history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, callbacks=resume)
    if history.interrupted:
        _save_interrupted(model, args, len(history.epoch), say)
        raise KeyboardInterrupt  # main: exit 130
    test_loss, test_acc = model.evaluate(x_test, y_test, batch_size=args.batch_size)
    say(f"test accuracy: {test_acc:.4f}  (test loss {test_loss:.4f})")
    if getattr(args, "report", False):
        _report(model, x_test, y_test, args)
    if args.save:
        if world.is_main():
            Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        model.save(args.save)  # atomic: a Ctrl-C while it writes leaves the old file whole
        say(f"saved the trained weights to {args.save} "
            f"(restore: model.load_state_dict(ag.load({str(args.save)!r})))")
    return model


def _save_interrupted(model: Any, args: argparse.Namespace, epochs_done: int, say: Any) -> None:
    """Ctrl-C stopped fit: the --save file stays as it was; the part-trained weights go to a name
    that says so, and the message says where."""
    say(f"interrupted after {epochs_done} of {args.epochs} epoch(s): not evaluated", file=sys.stderr)
    if getattr(args, "resume", None):
        say(f"{args.resume} holds the backup of the last finished epoch: run the same command again to go "
            "on from there", file=sys.stderr)
    if not args.save:
        return
    from .distributed import world

    partial = interrupted_name(args.save)
    if world.is_main():
        Path(partial).parent.mkdir(parents=True, exist_ok=True)
    model.save(partial)
    kept = "is unchanged" if Path(args.save).exists() else "was not written"
    say(f"{args.save} {kept}; the part-trained weights are in {partial}", file=sys.stderr)


def _silent(*args: Any, **kwargs: Any) -> None:
    """print's stand-in on the processes other than rank 0."""


def _train_command(args: argparse.Namespace) -> int:
    from .data import DataError
    from .serialization import CheckpointError

    try:
        _train(args)
    except (DataError, CheckpointError) as e:  # no data set; a --resume backup of another model
        print(f"autograd-cnn train: {e}", file=sys.stderr)
        return 1
    return 0


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    from .models import MODELS

    parser.add_argument("--model", default="lecture-cnn", choices=list(MODELS), help="default: %(default)s")
    parser.add_argument("--dataset", default="sample", choices=["sample", "mnist", "fashion-mnist"],
                        help="sample: the 5,000 MNIST digits shipped with the package (4,000 train / "
                             "1,000 test); mnist and fashion-mnist are downloaded when not found "
                             "(default: %(default)s)")
    parser.add_argument("--report", action="store_true",
                        help="print the test set's precision, recall and F1 per class, and draw its confusion "
                             "matrix beside the weights (PATH.confusion.png; confusion.png without --save)")
    parser.add_argument("--epochs", type=_positive, default=5, help="default: %(default)s")
    parser.add_argument("--batch-size", type=_positive, default=128, help="default: %(default)s")
    parser.add_argument("--optimizer", default="rmsprop", choices=["rmsprop", "sgd", "adam", "adamw", "adadelta"],
                        help="default: %(default)s, with its Keras default settings")
    parser.add_argument("--lr", type=_learning_rate, default=None, help="learning rate (default: the optimizer's)")
    parser.add_argument("--limit", type=_positive, default=None, metavar="N",
                        help="use at most N training and N test images (quick runs)")
    parser.add_argument("--seed", type=_natural, default=0, help="seed of the initial weights and shuffling")
    parser.add_argument("--save", default=None, metavar="PATH", help="write the trained weights to PATH (.npz)")
    parser.add_argument("--resume", default=None, metavar="DIR",
                        help="back the run up to DIR after every epoch; the same command run again after a kill "
                             "or Ctrl-C goes on from the last finished epoch (nn.BackupAndRestore)")


def _demo(args: argparse.Namespace) -> int:
    """Train the lecture CNN on the shipped digits, save it, and draw one training step's graphs."""
    from .distributed import world

    out = Path(args.out)
    args.model, args.dataset, args.optimizer, args.lr, args.seed = "lecture-cnn", "sample", "rmsprop", None, 0
    args.batch_size, args.save = 128, str(out / "lecture_cnn.npz")
    if world.is_main():
        print("The lecture CNN on 5,000 real MNIST digits that ship with the package (4,000 train / 1,000 test).\n")
    model = _train(args)
    if not world.is_main():  # the pictures and the hint are rank 0's to give
        return 0
    if not args.no_graphs:
        _draw_training_step(model, out)
    print(f"\n{_next_step(args.save)}")
    return 0


def _next_step(weights: str) -> str:
    """The command that shows what the trained CNN sees, as it runs from here: this interpreter
    (the one that has the package) and the example's path, each relative to the current folder
    when inside it."""
    example = EXAMPLES / "what_the_cnn_sees.py"
    if not example.is_file():  # an installed package: the examples live in the source repository
        return (f"Next: examples/what_the_cnn_sees.py in the source repository shows its filters and feature "
                f"maps (--weights {weights}).")
    command = [_from_here(Path(sys.executable)), _from_here(example), "--weights", weights]
    return f"Next: {shlex.join(command)} shows its filters and feature maps."


def _from_here(path: Path) -> str:
    """``path`` relative to the current folder where it lies inside it, else absolute."""
    here = Path.cwd()
    path = path.absolute()
    return str(path.relative_to(here)) if path.is_relative_to(here) else str(path)


def _draw_training_step(model: Any, out: Path) -> None:
    """Save the forward, backward and combined graphs of one step on 4 digits; never fails the demo."""
    import autograd_cnn as ag
    import autograd_cnn.functional as F

    try:
        from . import visual
    except ImportError as e:
        print(f"graph pictures skipped: the graph renderer is not available ({e})")
        return
    (x, y), _ = _images("sample", (1, 28, 28), limit=4)
    model.train()
    backend = ag.get_backend()  # NumPy arrays would otherwise stay on the host
    batch = ag.tensor(x, backend=backend, name="digits")
    loss = F.cross_entropy(model[:-1](batch) if _ends_in_softmax(model) else model(batch),
                           ag.tensor(y, backend=backend, name="labels"))
    loss.backward(retain_graph=True)
    print()
    kinds = (("forward", "forward"), ("backward", "backward"), ("both", "forward and backward"))
    try:
        for kind, what in kinds:
            with written_whole(str(out / f"lecture_cnn_{kind}.svg")) as part:
                visual.save(loss, part, kind=kind, format="svg")
            print(f"{what} graph of one training step: {out / f'lecture_cnn_{kind}.svg'}")
    except visual.RenderError as e:  # no `dot`: keep the training output, write the graphs as DOT text
        print(f"graph pictures skipped: {e}")
        for kind, what in kinds:
            with written_whole(str(out / f"lecture_cnn_{kind}.dot")) as part:
                visual.save(loss, part, kind=kind, format="dot")
            print(f"{what} graph as DOT text (render it with `dot -Tsvg`): {out / f'lecture_cnn_{kind}.dot'}")


def _ends_in_softmax(model: Any) -> bool:
    from . import nn

    return isinstance(model, nn.Sequential) and isinstance(model[-1], nn.Softmax)


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=_positive, default=10,
                        help="passes over the 4,000 training digits (default: %(default)s, about 20 s on 2 cores)")
    parser.add_argument("--limit", type=_positive, default=None, metavar="N",
                        help="use at most N training and N test digits (quick runs)")
    parser.add_argument("--out", default="out", help="folder for the checkpoint and the graphs (default: %(default)s)")
    parser.add_argument("--no-graphs", action="store_true", help="do not draw the graphs")


# --------------------------------------------------------------------------- bench

# Where the benchmark suite and the examples are in a source checkout; an installed package has none.
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks" / "run_all.py"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _bench(args: argparse.Namespace) -> int:
    """Run benchmarks/run_all.py from a source checkout."""
    script = BENCHMARKS
    if not script.is_file():
        print("autograd-cnn bench: the benchmarks live in the source repository, not in the installed "
              "package; clone it and run `make bench` there", file=sys.stderr)
        return 1
    extra = (["--quick"] if args.quick else []) + (["--only", *args.only] if args.only else [])
    return subprocess.call([sys.executable, str(script), *extra])


def _bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="the shorter version of each benchmark")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks (e.g. accuracy)")


# --------------------------------------------------------------------------- graph

def _graph_loss(args: argparse.Namespace) -> Any:
    """The loss to draw: one training step of a lecture model on shipped digits, or a script's build()."""
    import autograd_cnn as ag
    import autograd_cnn.functional as F

    if args.script:
        import runpy

        build = runpy.run_path(args.script).get("build")
        if not callable(build):
            raise SystemExit(f"autograd-cnn graph: {args.script} defines no build() function returning a loss tensor")
        loss = build()
        if not isinstance(loss, ag.Tensor):
            raise SystemExit(f"autograd-cnn graph: build() in {args.script} returned "
                             f"{type(loss).__name__}, not a Tensor")
        return loss
    from .models import MODELS

    build_model, input_shape = MODELS[args.model]
    ag.manual_seed(0)
    model = build_model()
    (x, y), _ = _images("sample", input_shape, limit=args.batch)
    batch = ag.tensor(x, backend=ag.get_backend(), name="images")
    logits = model[:-1](batch) if _ends_in_softmax(model) else model(batch)
    return F.cross_entropy(logits, ag.tensor(y, backend=ag.get_backend(), name="labels"))


def _graph(args: argparse.Namespace) -> int:
    """Draw the forward, backward or both graphs of a lecture model's training step (or a script's loss)."""
    from . import visual
    from .visual.render import check_format

    loss = _graph_loss(args)
    try:
        if args.frames:
            with folder_written_whole(args.frames) as part:
                visual.backprop_frames(loss, part, format="png" if args.format == "png" else "svg")
            print(f"backward pass step by step: {Path(args.frames) / 'index.html'}")
        format, written = check_format(args.out, args.format)
        with written_whole(written) as part:
            visual.save(loss, part, kind=args.kind, format=format, collapse=args.collapse,
                        collapse_depth=args.collapse_depth, rankdir=args.rankdir,
                        **({"flow": True} if args.flow and args.kind != "forward" else {}))
    except visual.RenderError as e:
        print(f"autograd-cnn graph: {e}", file=sys.stderr)
        return 1
    print(f"{args.kind} graph: {written}")
    return 0


def _graph_arguments(parser: argparse.ArgumentParser) -> None:
    from .models import MODELS

    parser.add_argument("--model", default="lecture-cnn", choices=list(MODELS), help="default: %(default)s")
    parser.add_argument("--script", default=None, metavar="PATH.py",
                        help="draw the loss returned by build() in this Python file instead of a model")
    parser.add_argument("--batch", type=_positive, default=2,
                        help="digits in the drawn training step (default: %(default)s)")
    parser.add_argument("--kind", default="both", choices=["forward", "backward", "both"], help="default: %(default)s")
    parser.add_argument("--out", default="out/graph.svg", help="default: %(default)s")
    parser.add_argument("--format", default=None, choices=["svg", "png", "pdf", "dot"],
                        help="default: from the suffix of --out, else svg")
    parser.add_argument("--collapse", default=None, choices=["module"], help="one node per nn.Module layer")
    parser.add_argument("--collapse-depth", type=_positive, default=None, metavar="N",
                        help="with --collapse module: cut module paths to N parts")
    parser.add_argument("--rankdir", default="TB", choices=["TB", "LR"], help="layout direction (default: %(default)s)")
    parser.add_argument("--flow", action="store_true", help="edge width and colour by the gradient's size")
    parser.add_argument("--frames", default=None, metavar="FOLDER",
                        help="also write the backward pass step by step (pictures and index.html) to FOLDER")


# --------------------------------------------------------------------------- export

def _export(args: argparse.Namespace) -> int:
    """Build a lecture model, load its trained weights, and write it as an ONNX file."""
    import numpy as np

    import autograd_cnn as ag

    from .models import MODELS
    from .onnx import ExportError, export
    from .serialization import CheckpointError

    build, input_shape = MODELS[args.model]
    model = build()
    try:
        if args.weights:
            model.load_state_dict(ag.load(args.weights))
        else:
            print("no --weights given: writing the untrained initial weights")
        example = np.zeros((1, *input_shape), dtype=np.float32)
        with written_whole(args.out) as part:
            export(model, example, part, opset=args.opset, dynamic_batch=not args.static_batch)
    except (OSError, ImportError, CheckpointError, ExportError) as e:
        print(f"autograd-cnn export: {e}", file=sys.stderr)
        return 1
    batch = "1" if args.static_batch else "batch"
    print(f"wrote {args.out}: {args.model}, input 'input' ({', '.join([batch, *map(str, input_shape)])}), "
          f"output 'output', opset {args.opset}")
    return 0


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    from .models import MODELS

    parser.add_argument("--model", default="lecture-cnn", choices=list(MODELS), help="default: %(default)s")
    parser.add_argument("--weights", default=None, metavar="W.npz",
                        help="trained weights, as `train --save` writes them (default: the initial weights)")
    parser.add_argument("--out", default="out/model.onnx", metavar="M.onnx", help="default: %(default)s")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset version (default: %(default)s)")
    parser.add_argument("--static-batch", action="store_true",
                        help="fix the batch size to 1 (default: any batch size)")


# name: (function, one-line help[, function that adds the command's options])
COMMANDS: dict[str, tuple[Any, ...]] = {
    "demo": (_demo, "train the lecture CNN on the shipped digits and draw its graphs", _demo_arguments),
    "train": (_train_command, "train a lecture model on a data set", _train_arguments),
    "info": (_info, "version, backends, devices, BLAS, MPI and NCCL"),
    "bench": (_bench, "run the benchmark suite (from a source checkout)", _bench_arguments),
    "graph": (_graph, "render a model's forward/backward graphs to a file", _graph_arguments),
    "export": (_export, "write a lecture model as an ONNX file (needs autograd-cnn[onnx])", _export_arguments),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autograd-cnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text, *add_arguments) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        for add in add_arguments:
            add(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    where = f"autograd-cnn {args.command}"
    if backends.env_problem and args.command != "info":
        print(f"{where}: {backends.env_problem}", file=sys.stderr)
        return 1
    for option, attribute, kind in PATHS.get(args.command, []):
        path = getattr(args, attribute)
        why = path_problem(path, kind) if path is not None else None
        if why:
            print(f"{where}: {option} {path}: {why}", file=sys.stderr)
            return 2
    bad_format = format_problem(args.command, args)
    if bad_format:
        option, why = bad_format
        print(f"{where}: {option} {getattr(args, option[2:])}: {why}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[args.command][0](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
