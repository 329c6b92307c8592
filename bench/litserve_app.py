"""LitServe serving nosetrack's built-in model: the general-purpose server a user would reach for.

Both seed routes, each a LitAPI at its path, written the way LitServe's docs show (decode_request, predict,
encode_response); `workers_per_device` inference processes per route, LitServe's default API servers.

Run: python -m bench.litserve_app --port 5002 [--workers 2]
"""

from __future__ import annotations

import argparse
import base64

import litserve as ls

from nosetrack import load_model
from nosetrack.answer import prediction_answer
from nosetrack.images import decode_image


class NoseAPI(ls.LitAPI):
    """One seed route: the image's bytes from the form (/image-bin) or from base64 JSON (/image-64)."""

    def setup(self, device: str) -> None:
        self.model = load_model()

    def decode_request(self, request):
        if self.api_path == "/image-bin":
            return decode_image(request["image"].file.read())
        return decode_image(base64.b64decode(request["image"]))

    def predict(self, image):
        return self.model.predict(image)

    def encode_response(self, prediction):
        return prediction_answer(prediction)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=2, help="inference processes per route")
    args = parser.parse_args()
    apis = [NoseAPI(api_path="/image-bin"), NoseAPI(api_path="/image-64")]
    server = ls.LitServer(apis, accelerator="cpu", workers_per_device=args.workers)
    server.run(host="127.0.0.1", port=args.port, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
