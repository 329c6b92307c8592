"""The `nosetrack` command: serve, predict, track, eval, models."""

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
    serve.add_argument(
        "--log-file", help="log file (default webserver.log; '' for none); rotate it with logrotate"
    )
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING (default INFO)")
    serve.add_argument("--max-body-bytes", type=int, help="largest request body (default 20 MiB)")
    serve.add_argument("--max-image-pixels", type=int, help="largest image, width x height (default 40 M)")
    serve.add_argument(
        "--decode-min-side", type=int, help="decode JPEGs at 1/2..1/8 size down to this long side (0: off)"
    )
    serve.add_argument("--queue-timeout", type=float, help="seconds to wait for a free model before 503")
    serve.add_argument("--timeout", type=int, help="seconds a worker may spend on one request")
    serve.add_argument("--max-queue", type=int, help="predictions per worker that may wait for a model")
    serve.add_argument("--body-timeout", type=float, help="seconds to receive a whole request before 408")
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
        "pip install 'nosetrack[grpc]')",
    )
    cluster = serve.add_argument_group("on a Ray cluster (pip install 'nosetrack[ray]'; docs/scale-out.md)")
    cluster.add_argument(
        "--ray", action="store_true", help="deploy on a running cluster, or a local one started here"
    )
    cluster.add_argument("--address", help="the Ray cluster to join (default: this machine's, if any)")
    cluster.add_argument("--min-replicas", type=int, help="replicas kept even when idle (default 1)")
    cluster.add_argument(
        "--max-replicas", type=int, help="replicas under load (default: as many as the cluster's CPUs hold)"
    )
    cluster.add_argument("--cpus-per-replica", type=float, help="CPUs reserved per replica (default 1)")


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


def add_track_parser(commands: argparse._SubParsersAction) -> None:
    track = commands.add_parser("track", help="track the faces of a video file or camera, in process")
    track.add_argument("source", help="a video file, or a camera's index (0 for the first)")
    track.add_argument("--output", "-o", help="noses.csv or noses.jsonl (default: CSV on standard output)")
    track.add_argument("--format", choices=("csv", "jsonl"), help="default: from the output's extension")
    track.add_argument("--annotate", metavar="OUT.mp4", help="also write the video with each face drawn")
    track.add_argument("--model", help="built-in model name, or a model file or spec")
    track.add_argument(
        "--min-cutoff", type=float, help="the filter's cutoff at rest, Hz (steadier when lower)"
    )
    track.add_argument(
        "--beta", type=float, help="how fast the filter opens with speed (less lag when higher)"
    )


def add_eval_parser(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser("eval", help="measure nose accuracy on an annotated set (labels.csv)")
    evaluate.add_argument(
        "data_dir", type=Path, help="folder with labels.csv and images/ (no_face/, multi_face/)"
    )
    where = evaluate.add_mutually_exclusive_group()
    where.add_argument("--model", help="built-in model to run in process (default: the default model)")
    where.add_argument("--url", help="measure a running server instead, e.g. http://127.0.0.1:5000")
    evaluate.add_argument("--sheet", type=Path, help="PNG contact sheet of the worst faces to write")
    evaluate.add_argument("--worst", type=int, default=24, help="faces on the contact sheet (default 24)")
    evaluate.add_argument("--json", type=Path, help="also write the figures as JSON")


def check_listening(settings: Settings) -> None:
    """Refuse, in one sentence, an address that is taken and a --grpc-port that cannot work, before any worker
    starts. gRPC is looked for without importing it: the workers import it after the fork."""
    from .server.gunicorn import check_address

    check_address(settings.host, settings.port, "--port")
    if not settings.grpc_port:
        return
    if importlib.util.find_spec("grpc") is None:
        raise ValueError(
            "--grpc-port needs gRPC support, which is not installed: pip install 'nosetrack[grpc]'."
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
    from .models import check_unique_names, load_model, model_sources

    try:
        if args.ray:
            from .cluster.deployment import cluster_settings
            from .cluster.launch import serve_on_ray

            settings = cluster_settings(os.environ, **serve_options(args))
        else:
            settings = serve_settings(args)
            check_listening(settings)
        # Load each once here: a bad model or spec stops the start with one sentence, not in every worker.
        check_unique_names(load_model(source).info for source in model_sources(settings.models))
    except ImportError as error:
        print(f"nosetrack: --ray needs Ray Serve ({error}): pip install 'nosetrack[ray]'", file=sys.stderr)
        return 2
    except (ValueError, OSError) as error:  # a ModelSpecError, a NOSETRACK_* value, a taken port
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
    client = Client(args.url, api_key=args.api_key)
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


def run_track(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .answer import tracked_answer
    from .models import load_model
    from .tracking import Tracker, TrackerOptions
    from .video import VideoSource, write_tracks

    try:
        model = load_model(args.model)
        changes = {"min_cutoff": args.min_cutoff, "beta": args.beta}
        options = TrackerOptions().with_changes({k: v for k, v in changes.items() if v is not None})
        source = VideoSource.open(args.source)
    except ValueError as error:
        print(f"nosetrack: {error}", file=sys.stderr)
        return 2
    tracker = Tracker(options)
    frames = tqdm(source.frames(), total=source.frame_count, unit="frame", file=sys.stderr, disable=None)
    answers = ((image, tracked_answer(tracker.update(model, image, at))) for image, at in frames)
    output_format = args.format or ("jsonl" if (args.output or "").endswith(".jsonl") else "csv")
    with (
        open_output(args.output) as output,
        contextlib.suppress(KeyboardInterrupt),
    ):  # a camera runs until stopped
        write_tracks(answers, output, output_format, args.annotate, source.fps)
    return 0


def report_evaluation(args: argparse.Namespace, predict_file) -> int:
    """Evaluate, print the figures, and write the contact sheet and JSON the flags ask for."""
    from .evaluation import contact_sheet, evaluate

    if not (args.data_dir / "labels.csv").is_file():
        print(f"No labels.csv in {args.data_dir}.", file=sys.stderr)
        return 1
    report = evaluate(args.data_dir, predict_file)
    print(report.as_text())
    if args.sheet:
        import cv2

        cv2.imwrite(str(args.sheet), contact_sheet(args.data_dir, report.worst(args.worst)))
        print(f"worst {args.worst} faces drawn in {args.sheet} (green cross: label, red dot: prediction)")
    if args.json:
        args.json.write_text(json.dumps({**report.summary(), "face_counts": report.face_counts}, indent=2))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from .evaluation import model_predictor, server_predictor
    from .models import load_model

    if args.url:
        return report_evaluation(args, server_predictor(args.url))
    try:
        model = load_model(args.model)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    return report_evaluation(args, model_predictor(model))


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
    models = commands.add_parser("models", help="list the built-in models, and check a user model's spec")
    models.add_argument("--model", help="a model file or spec to load, check and show")
    return parser


HANDLERS = {
    "serve": run_serve,
    "predict": run_predict,
    "track": run_track,
    "eval": run_eval,
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
