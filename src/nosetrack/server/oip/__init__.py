"""The Open Inference Protocol v2 (KServe, Triton) beside nosetrack's own API: routes and tensors."""

from .routes import oip

__all__ = ["oip"]
