"""The `nosetrack` command: serve, predict, track, eval, calibrate, models."""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import json
import os
import sys
import typing
from collections.abc import Iterator
from pathlib import Path

from . import __version__
from .config import Settings

if typing.TYPE_CHECKING:
    from .client import Client

CA_FILE_HELP = "CA certificate (PEM) that signed an https:// server's certificate"
CSV_COLUMNS = ("file", "detected", "x", "y", "nose_x", "nose_y", "score", "faces", "latency_ms", "error")


def add_serve_parser(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="run the HTTP server (gunicorn)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 5000)")
    serve.add_argument("--workers", type=int, help="worker processes (default 2)")
    serve.add_argument(
        "--model-instances",
        "--threads",
        dest="model_instances",
        type=int,
        help="model instances per worker: predictions it runs at once (default 2; --threads is the old name)",
    )
    serve.add_argument(
        "--model",
        dest="models",
        action="append",
        help="built-in model name, model file, spec, or folder of specs (see `nosetrack models`); "
        "repeatable: clients pick one by name, the first answers the rest (or NOSETRACK_MODELS=a,b)",
    )
    add_model_options(serve)
    serve.add_argument(
        "--log-file", help="log file (default webserver.log; '' for none); rotate it with logrotate"
    )
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING (default INFO)")
    serve.add_argument("--max-body-bytes", type=int, help="largest request body (default 20 MiB)")
    serve.add_argument(
        "--max-buffered-bytes",
        type=int,
        help="bytes all bodies being received by one worker may hold together; beyond, 503 (default 256 MiB)",
    )
    serve.add_argument("--max-image-pixels", type=int, help="largest image, width x height (default 40 M)")
    serve.add_argument(
        "--decode-min-side", type=int, help="decode JPEGs at 1/2..1/8 size down to this long side (0: off)"
    )
    serve.add_argument("--queue-timeout", type=float, help="seconds to wait for a free model before 503")
    serve.add_argument("--timeout", type=int, help="seconds a worker may spend on one request")
    serve.add_argument("--max-queue", type=int, help="predictions per worker that may wait for a model")
    serve.add_argument("--body-timeout", type=float, help="seconds to receive a whole request before 408")
    serve.add_argument(
        "--keep-alive", type=float, help="seconds an idle kept-alive connection stays open (default 5)"
    )
    serve.add_argument(
        "--drain-delay", type=float, help="seconds to keep serving after SIGTERM while /readyz says 503"
    )
    serve.add_argument(
        "--api-key",
        dest="api_keys",
        action="append",
        help="demand 'Authorization: Bearer KEY' on the API (repeatable; or NOSETRACK_API_KEYS=k1,k2)",
    )
    serve.add_argument(
        "--cors-origin",
        dest="cors_origins",
        action="append",
        help="allow browsers on this origin to call the API (repeatable; '*' for any)",
    )
    serve.add_argument(
        "--show-recent", type=int, metavar="N", help="show the last N predictions on the dashboard (0: off)"
    )
    serve.add_argument(
        "--grpc-port",
        type=int,
        help="also serve the Open Inference Protocol over gRPC on this port (0: off, the default; needs "
        "pip install '.[grpc]' in nosetrack's clone)",
    )
    serve.add_argument("--max-streams", type=int, help="WebSocket streams per worker (default 8)")
    serve.add_argument(
        "--stream-idle-timeout", type=float, help="seconds a stream may go without a frame (default 30)"
    )
    serve.add_argument("--certfile", help="TLS certificate (PEM): serve https:// and wss://")
    serve.add_argument("--keyfile", help="TLS private key (PEM) of --certfile")
    cluster = serve.add_argument_group("on a Ray cluster (pip install '.[ray]'; docs/scale-out.md)")
    cluster.add_argument(
        "--ray", action="store_true", help="deploy on a running cluster, or a local one started here"
    )
    cluster.add_argument("--address", help="the Ray cluster to join (default: this machine's, if any)")
    cluster.add_argument("--min-replicas", type=int, help="replicas kept even when idle (default 1)")
    cluster.add_argument(
        "--max-replicas", type=int, help="replicas under load (default: as many as the cluster's CPUs hold)"
    )
    cluster.add_argument("--cpus-per-replica", type=float, help="CPUs reserved per replica (default 1)")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The built-in model's options that `serve` and `eval` share."""
    parser.add_argument(
        "--calibration",
        metavar="FILE",
        help="report the nose where your annotators put it: a file `nosetrack calibrate` wrote",
    )
    parser.add_argument(
        "--min-face",
        type=float,
        metavar="PX",
        help="smallest face to find, as the distance between the eyes in pixels (default 40); "
        "large photos are searched in more tiles for smaller faces",
    )


def add_predict_parser(commands: argparse._SubParsersAction) -> None:
    predict = commands.add_parser("predict", help="send images to a server and write the noses")
    predict.add_argument("paths", nargs="+", help="image files and folders (searched recursively)")
    predict.add_argument("--url", default="http://127.0.0.1:5000", help="server address")
    predict.add_argument("--route", default="/v1/nose", choices=("/v1/nose", "/image-bin", "/image-64"))
    predict.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    predict.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    predict.add_argument("--output", "-o", help="file to write (default: standard output)")
    predict.add_argument("--annotate", metavar="DIR", help="also write each image with its noses drawn")
    predict.add_argument("--api-key", help="Bearer key, when the server asks for one")
    predict.add_argument("--ca-file", help=CA_FILE_HELP)


def add_track_parser(commands: argparse._SubParsersAction) -> None:
    track = commands.add_parser("track", help="track the faces of a video file or camera (or on a server)")
    track.add_argument("source", help="a video file, or a camera's index (0 for the first)")
    track.add_argument("--output", "-o", help="noses.csv or noses.jsonl (default: CSV on standard output)")
    track.add_argument("--format", choices=("csv", "jsonl"), help="default: from the output's extension")
    track.add_argument(
        "--annotate",
        metavar="OUT.mp4",
        help="also write the video with each face drawn: .mp4 is H.264, .webm is VP9 (browsers play both)",
    )
    track.add_argument("--model", help="built-in model name, or a model file or spec")
    track.add_argument(
        "--calibration",
        metavar="FILE",
        help="report the nose where your annotators put it: a file `nosetrack calibrate` wrote (in process)",
    )
    track.add_argument(
        "--min-cutoff", type=float, help="the filter's cutoff at rest, Hz (steadier when lower)"
    )
    track.add_argument(
        "--beta", type=float, help="how fast the filter opens with speed (less lag when higher)"
    )
    track.add_argument("--url", help="track on this server, over WS /v1/track, instead of in process")
    track.add_argument("--api-key", help="Bearer key, when the server asks for one")
    track.add_argument("--ca-file", help=CA_FILE_HELP)


def worst_count(value: str) -> int | None:
    return None if value == "all" else int(value)


def add_eval_parser(commands: argparse._SubParsersAction) -> None:
    from .evaluation import LABELS_HELP

    evaluate = commands.add_parser(
        "eval",
        help="measure nose accuracy on an annotated set (labels.csv)",
        description="Measure where a model puts the nose on your annotated photos. " + LABELS_HELP,
    )
    evaluate.add_argument(
        "data_dir", type=Path, help="folder with labels.csv and images/ (no_face/, multi_face/)"
    )
    where = evaluate.add_mutually_exclusive_group()
    where.add_argument("--model", help="built-in model to run in process (default: the default model)")
    where.add_argument("--url", help="measure a running server instead, e.g. http://127.0.0.1:5000")
    add_model_options(evaluate)
    evaluate.add_argument("--sheet", type=Path, help="PNG contact sheet of the worst faces to write")
    evaluate.add_argument(
        "--worst",
        type=worst_count,
        default=24,
        metavar="N|all",
        help="faces on the contact sheet, worst first (default 24; all: every face)",
    )
    evaluate.add_argument("--json", type=Path, help="also write the figures as JSON")


def check_tls_files(settings: Settings) -> None:
    """Both TLS files or neither, and readable: a ValueError that says which, before any worker starts."""
    given = [name for name in ("certfile", "keyfile") if getattr(settings, name)]
    if len(given) == 1:
        raise ValueError("TLS needs both --certfile and --keyfile.")
    for name in given:
        if not Path(getattr(settings, name)).is_file():
            raise ValueError(f"--{name} {getattr(settings, name)}: no such file.")


def add_calibrate_parser(commands: argparse._SubParsersAction) -> None:
    from .evaluation import LABELS_HELP

    calibrate = commands.add_parser(
        "calibrate",
        help="fit where your annotators put the nose (labels.csv), for --calibration",
        description="Fit how your annotated nose point relates to FaceMesh's landmarks, check it with "
        "k-fold cross-validation, and write it for `--calibration`. " + LABELS_HELP,
    )
    calibrate.add_argument("data_dir", type=Path, help="folder with labels.csv and images/")
    calibrate.add_argument(
        "--output", "-o", type=Path, help="calibration file to write (without it, nothing is written)"
    )
    calibrate.add_argument(
        "--even-if-worse",
        action="store_true",
        help="write the file even when the calibration measured worse on some figure",
    )
    calibrate.add_argument("--model", help="built-in model whose meshes to read (default: the default)")
    calibrate.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    calibrate.add_argument(
        "--strength",
        type=float,
        help="how strongly the landmark weights are held near 0 (default 0.001)",
    )


def check_listening(settings: Settings) -> None:
    """Refuse, in one sentence, an address that is taken and a --grpc-port that cannot work, before any worker
    starts. gRPC is looked for without importing it: the workers import it after the fork."""
    from .server.gunicorn import check_address

    check_address(settings.host, settings.port, "--port")
    if not settings.grpc_port:
        return
    if importlib.util.find_spec("grpc") is None:
        raise ValueError(
            "--grpc-port needs gRPC support, which is not installed: pip install '.[grpc]' in nosetrack's "
            "clone."
        )
    if settings.grpc_port == settings.port:
        raise ValueError(
            f"--grpc-port {settings.grpc_port} is the HTTP port too: give gRPC a port of its own."
        )
    check_address(settings.host, settings.grpc_port, "--grpc-port")


def serve_options(args: argparse.Namespace) -> dict:
    """`serve`'s settings flags (None where not given)."""
    return {k: v for k, v in vars(args).items() if k not in ("command", "ray", "address")}


def serve_settings(args: argparse.Namespace) -> Settings:
    """`serve`'s flags over the NOSETRACK_* variables over the defaults; ValueError for a bad variable."""
    return Settings.from_environment(**serve_options(args))


def run_serve(args: argparse.Namespace) -> int:
    from .models import check_unique_names, load_served_model, model_sources

    try:
        if args.ray:
            from .cluster.deployment import cluster_settings
            from .cluster.launch import serve_on_ray

            settings = cluster_settings(os.environ, **serve_options(args))
        else:
            settings = serve_settings(args)
            check_listening(settings)
            check_tls_files(settings)
        # Load each once here: a bad model or spec stops the start with one sentence, not in every worker.
        served = model_sources(settings.models)
        check_unique_names(
            load_served_model(source, settings.calibration, settings.min_face).info for source in served
        )
    except ImportError as error:
        needs = f"--ray needs Ray Serve ({error}): pip install '.[ray]' in nosetrack's clone"
        print(f"nosetrack: {needs}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as error:  # a ModelSpecError, a NOSETRACK_* value, a taken port, TLS files
        print(f"nosetrack: {error}", file=sys.stderr)
        return 2
    if args.ray:
        serve_on_ray(settings, args.address)
    else:
        from .server.gunicorn import serve

        serve(settings)
    return 0


def csv_row(path: Path, result: dict | None, error: str | None) -> dict:
    if result is None:
        return {"file": str(path), "error": error}
    nose = result.get("nose") or {}
    return {
        "file": str(path),
        "detected": result["detected"],
        "x": result["x"],
        "y": result["y"],
        "nose_x": nose.get("x"),
        "nose_y": nose.get("y"),
        "score": result["score"],
        "faces": len(result["faces"]),
        "latency_ms": result.get("latency_ms"),
    }


def write_annotated(path: Path, result: dict, folder: Path) -> None:
    import cv2

    from .annotate import draw_prediction
    from .answer import prediction_from_answer
    from .images import read_image

    drawn = draw_prediction(read_image(path), prediction_from_answer(result))
    cv2.imwrite(str(folder / f"{path.stem}.annotated.jpg"), drawn)


def open_output(path: str | None) -> typing.ContextManager[typing.TextIO]:
    """The file to write, or standard output (left open) when no path is given."""
    return open(path, "w", newline="") if path else contextlib.nullcontext(sys.stdout)


def server_problem(client: Client) -> str | None:
    """One sentence when no nosetrack server answers at the client's address (asked once, before hundreds of
    files each fail with the same long exception); None when one does."""
    import requests

    try:
        client.version()
    except requests.ConnectionError:
        return (
            f"nothing answers at {client.url}: start a server with `nosetrack serve`, "
            "or give its address with --url."
        )
    except requests.RequestException as error:
        return f"{client.url} does not answer like a nosetrack server ({error})."
    return None


def run_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .client import Client, find_images

    files = find_images(args.paths)
    if not files:
        print("No image files found.", file=sys.stderr)
        return 1
    annotate_dir = Path(args.annotate) if args.annotate else None
    if annotate_dir:
        annotate_dir.mkdir(parents=True, exist_ok=True)
    client = Client(args.url, api_key=args.api_key, ca_file=args.ca_file)
    problem = server_problem(client)
    if problem:
        print(f"nosetrack: {problem}", file=sys.stderr)
        return 2
    failures = 0
    with open_output(args.output) as output:
        writer = csv.DictWriter(output, CSV_COLUMNS) if args.format == "csv" else None
        if writer:
            writer.writeheader()
        outcomes: Iterator = client.predict_many(files, args.concurrency, args.route)
        for outcome in tqdm(outcomes, total=len(files), unit="img", file=sys.stderr, disable=None):
            failures += outcome.error is not None
            if writer:
                writer.writerow(csv_row(outcome.path, outcome.result, outcome.error))
            else:
                record = {"file": str(outcome.path), **(outcome.result or {"error": outcome.error})}
                output.write(json.dumps(record) + "\n")
            if annotate_dir and outcome.result:
                write_annotated(outcome.path, outcome.result, annotate_dir)
    if failures:
        print(f"{failures} of {len(files)} images failed.", file=sys.stderr)
    return 1 if failures else 0


# Frames with their timestamps in, each frame with its tracked answer out.
Tracking = typing.Callable[[typing.Iterable], typing.Iterator]


def local_tracking(args: argparse.Namespace, options) -> Tracking:
    from .answer import tracked_answer
    from .models import load_model
    from .tracking import Tracker

    model, tracker = load_model(args.model, calibration=args.calibration), Tracker(options)
    return lambda frames: ((image, tracked_answer(tracker.update(model, image, at))) for image, at in frames)


def server_tracking(args: argparse.Namespace, changes: dict) -> Tracking:
    from .client import Client
    from .video import tracked_by_server

    client = Client(args.url, api_key=args.api_key, ca_file=args.ca_file)
    return lambda frames: tracked_by_server(frames, client, changes)


def print_note(message: str) -> None:
    print(f"nosetrack: {message}", file=sys.stderr)


def run_track(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .client import ServerError
    from .tracking import TrackerOptions
    from .video import VideoSource, write_tracks

    changes = {"min_cutoff": args.min_cutoff, "beta": args.beta}
    changes = {key: value for key, value in changes.items() if value is not None}
    try:
        options = TrackerOptions().with_changes(changes)  # refused here, even before a server is asked
        source = VideoSource.open(args.source)
        track = server_tracking(args, changes) if args.url else local_tracking(args, options)
    except ValueError as error:
        print(f"nosetrack: {error}", file=sys.stderr)
        return 2
    frames = tqdm(source.frames(), total=source.frame_count, unit="frame", file=sys.stderr, disable=None)
    output_format = args.format or ("jsonl" if (args.output or "").endswith(".jsonl") else "csv")
    try:
        with (
            open_output(args.output) as output,
            contextlib.suppress(KeyboardInterrupt),
        ):  # a camera runs until stopped
            write_tracks(track(frames), output, output_format, args.annotate, source.fps, note=print_note)
    except (ServerError, OSError) as error:  # the server refused or ended the stream, or was not there
        print(f"nosetrack: {error}", file=sys.stderr)
        return 1
    return 0


def progress_bar(what: str):
    """A progress bar on stderr for a list of images, shown only on a terminal."""
    from tqdm import tqdm

    def wrap(names: list[str]):
        return tqdm(names, desc=what, unit="img", file=sys.stderr, disable=None, leave=False)

    return wrap


def report_evaluation(args: argparse.Namespace, predict_file) -> int:
    """Evaluate, print the figures, and write the contact sheet and JSON the flags ask for."""
    from .evaluation import EvaluationError, contact_sheet, evaluate

    try:
        report = evaluate(args.data_dir, predict_file, progress=progress_bar("images"))
    except EvaluationError as error:
        print(f"nosetrack eval: {error}", file=sys.stderr)
        return 1
    print(report.as_text())
    if args.sheet:
        import cv2

        cv2.imwrite(str(args.sheet), contact_sheet(args.data_dir, report.worst(args.worst)))
        shown = "every face" if args.worst is None else f"worst {args.worst} faces"
        print(f"{shown} drawn in {args.sheet} (green cross: label, red dot: prediction)")
    if args.json:
        figures = {**report.summary(), "face_counts": report.face_counts, "breakdown": report.breakdown()}
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from .evaluation import model_predictor, server_predictor
    from .models import load_model

    if args.url:
        if args.calibration or args.min_face:
            print("--calibration and --min-face are the server's own: start it with them.", file=sys.stderr)
            return 2
        return report_evaluation(args, server_predictor(args.url))
    try:
        model = load_model(args.model, calibration=args.calibration, min_face=args.min_face)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    return report_evaluation(args, model_predictor(model))


def run_calibrate(args: argparse.Namespace) -> int:
    from .calibrate import collect_samples, cross_validate
    from .models import load_model
    from .models.calibration import DEFAULT_STRENGTH

    try:
        model = load_model(args.model)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    if not hasattr(model, "read_faces"):
        print("nosetrack calibrate: calibrations are for the built-in models.", file=sys.stderr)
        return 2
    points = getattr(model, "points", "facemesh")
    try:
        samples, missed = collect_samples(args.data_dir, model, progress_bar("reading faces"))
        print(f"faces: {len(samples)} found and used, {missed} missed (left out)")
        fitted_on = f"{args.data_dir.resolve().name}: {len(samples)} faces"
        strength = DEFAULT_STRENGTH if args.strength is None else args.strength
        result = cross_validate(samples, args.folds, strength=strength, fitted_on=fitted_on, points=points)
    except ValueError as error:  # an EvaluationError (labels.csv, images), or too few faces
        print(f"nosetrack calibrate: {error}", file=sys.stderr)
        return 1
    print(result.as_text(args.folds))
    worse = result.worse_figures()
    if worse:
        figures = ", ".join(worse)
        print(f"The calibration measured WORSE than FaceMesh's own tip on faces it did not see: {figures}.")
    if args.output is None:
        print("Nothing written: give --output FILE to write the calibration.")
        return 0
    if worse and not args.even_if_worse:
        print(f"Nothing written to {args.output}: add --even-if-worse to write it all the same.")
        return 1
    result.calibration.save(args.output)
    print(f"wrote {args.output}: use it with --calibration {args.output}")
    return 0


def run_models(args: argparse.Namespace) -> int:
    from .models import BUILTIN_MODELS, DEFAULT_MODEL, ModelSpecError, load_model

    for name, (description, _) in BUILTIN_MODELS.items():
        marker = " (default)" if name == DEFAULT_MODEL else ""
        print(f"{name}{marker}\n    {description}")
    if args.model:
        try:
            info = load_model(args.model).info
        except ModelSpecError as error:
            print(f"nosetrack: {error}", file=sys.stderr)
            return 2
        print(
            f"\n{info.name} {info.version} (loaded from {args.model})\n{json.dumps(info.as_dict(), indent=2)}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nosetrack", description="Find the nose in images, over HTTP.")
    parser.add_argument("--version", action="version", version=f"nosetrack {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    add_serve_parser(commands)
    add_predict_parser(commands)
    add_track_parser(commands)
    add_eval_parser(commands)
    add_calibrate_parser(commands)
    models = commands.add_parser("models", help="list the built-in models, and check a user model's spec")
    models.add_argument("--model", help="a model file or spec to load, check and show")
    return parser


HANDLERS = {
    "serve": run_serve,
    "predict": run_predict,
    "track": run_track,
    "eval": run_eval,
    "calibrate": run_calibrate,
    "models": run_models,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = HANDLERS[args.command](args)
        sys.stdout.flush()  # here, where a closed pipe can still be caught
        return code
    except BrokenPipeError:
        # Whoever read the output has gone (`nosetrack predict photos/ | head`): stop quietly, as `cat` does.
        # Standard output goes to /dev/null, so that Python's own flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a program a closed pipe stopped


if __name__ == "__main__":
    sys.exit(main())
