"""BASELINE, not nosetrack: the seed notebook's server design, kept only to be measured against.

A faithful copy of ../shared/seed/webserver-com-flask.txt's structure: one global model behind one global
`threading.Lock`, global counters, the `time_it` decorator, DEBUG logging to the terminal and to a file, JSON
written with `json.dumps(indent=4)`, and Flask's development server (`app.run`, threaded). The only change is
the model: the seed's 112x112 OpenCV network is replaced by nosetrack's built-in model (`load_model`), so the
comparison measures the server design, not the network. Its error handling (`except: log`) is the seed's too.

Run: python -m bench.seed_app --port 5001 [--log-file webserver-seed.log]
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import threading
import time

import cv2
import numpy as np
from flask import Flask, request

from nosetrack import load_model
from nosetrack.answer import prediction_answer

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--port", type=int, default=5000)
parser.add_argument("--log-file", default="./webserver-seed.log")
args = parser.parse_args()

log_level = logging.DEBUG
formatter = logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s")
stream_handler = logging.StreamHandler()
stream_handler.setLevel(log_level)
stream_handler.setFormatter(formatter)
file_handler = logging.FileHandler(args.log_file)
file_handler.setLevel(log_level)
file_handler.setFormatter(formatter)
logger = logging.getLogger("webserver")
logger.addHandler(stream_handler)
logger.addHandler(file_handler)
logger.setLevel(log_level)

__version__ = "0.0.1"
app = Flask("inference_webserver")
model = load_model()  # the seed: cv2.dnn.readNetFromTensorflow("./nose_tracker_best_loss.pb")

lock = threading.Lock()
binary_counter = 0
base64_counter = 0


def time_it(func):
    def decorator(*args, **kwargs):
        started_time = time.time()
        ret = func(*args, **kwargs)
        logger.debug(f"{time.time() - started_time:0.04f} took to be executed.")
        return ret

    decorator.__name__ = func.__name__
    return decorator


def answer(image):
    with lock:
        pred = prediction_answer(model.predict(image))
    logger.info(f"pred: {pred['x']}, {pred['y']}")
    body = json.dumps({"x": pred["x"], "y": pred["y"]}, indent=4, sort_keys=True, default=str)
    return body, 200, {"Content-Type": "application/json"}


@app.route("/image-64", methods=["POST"])
@time_it
def image_b64():
    global base64_counter
    base64_counter += 1
    try:
        json_dict = request.get_json()
        logger.info(f"Received keys: {json_dict.keys()}")
        image_array = base64.b64decode(json_dict["image"])
        image = cv2.imdecode(np.frombuffer(image_array, dtype=np.uint8), 1)
        return answer(image)
    except Exception as e:
        logger.error(e)


@app.route("/image-bin", methods=["POST"])
@time_it
def image_bin():
    global binary_counter
    binary_counter += 1
    try:
        image = cv2.imdecode(np.frombuffer(request.files["image"].getvalue(), dtype=np.uint8), 1)
        return answer(image)
    except Exception as e:
        logger.error(e)


@app.route("/")
def dashboard():
    return json.dumps({"base64": base64_counter, "binary": binary_counter})


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=args.port, debug=False)
