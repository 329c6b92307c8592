"""The Open Inference Protocol's gRPC service (KServe's GRPCInferenceService, with Triton's configuration,
statistics and repository index), on --grpc-port beside HTTP in each worker.

Each gunicorn worker runs its own gRPC server on the same port (SO_REUSEPORT: the kernel hands each new
connection to one of them) with the worker's own state: the same models, admission gate, limits, API keys
and metrics as its HTTP routes. The answers come from protocol.py and the tensors from tensors.py, as over
HTTP; this module only translates messages and maps failures to gRPC status codes.

grpcio is an optional dependency (`pip install '.[grpc]'` in the clone); only this module imports it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from ...images import ImageError
from ...logs import LOGGER_NAME
from ...pool import Overloaded
from .. import request_log
from ..auth import is_authorized
from ..errors import ApiError, client_failure
from ..state import ServerState
from . import inference_pb2 as pb
from . import protocol
from .tensors import INPUT_NAME, output_tensors, read_infer_request

logger = logging.getLogger(LOGGER_NAME)

SERVICE = "inference.GRPCInferenceService"  # the name clients call, whatever the messages' package
# A failure's HTTP status (the server's one measure of outcome, in metrics and logs) as a gRPC status code.
STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    500: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
}
UNAUTHORIZED = ApiError(
    401, "unauthorized", "This server needs an API key: send the metadata 'authorization: Bearer <key>'."
)


def route_of(method: str) -> str:
    """An RPC's full name, its route in the metrics and the log."""
    return f"/{SERVICE}/{method}"


def as_message(document: dict | list, message: Message) -> Message:
    """A protocol answer (protocol.py's dicts, in the protocol's JSON names) as the reply message. Fields the
    gRPC messages do not have (/v2's "parameters", Triton's empty batch_stats) are left out."""
    return json_format.ParseDict(document, message, ignore_unknown_fields=True)


def parameter_value(parameter: pb.InferParameter) -> Any:
    choice = parameter.WhichOneof("parameter_choice")
    return None if choice is None else getattr(parameter, choice)


def infer_document(request: pb.ModelInferRequest) -> tuple[dict, bytes]:
    """A ModelInferRequest in the JSON form tensors.py reads, with its raw_input_contents as the binary data
    (the same bytes as HTTP's binary extension), so both fronts check a request the same way."""
    inputs, raw = [], []
    if len(request.raw_input_contents) > len(request.inputs):
        raise ApiError(400, "invalid_infer_request", "raw_input_contents has more entries than inputs.")
    for index, tensor in enumerate(request.inputs):
        described: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
            "parameters": {key: parameter_value(value) for key, value in tensor.parameters.items()},
        }
        if index < len(request.raw_input_contents):
            raw.append(request.raw_input_contents[index])
            described["parameters"]["binary_data_size"] = len(raw[-1])
        elif tensor.contents.bytes_contents:
            described["data"] = list(tensor.contents.bytes_contents)
        elif tensor.contents.uint_contents:
            described["data"] = list(tensor.contents.uint_contents)
        else:
            raise ApiError(
                400,
                "invalid_infer_request",
                f"{INPUT_NAME} needs its data in raw_input_contents or in contents "
                "(bytes_contents for BYTES, uint_contents for UINT8).",
            )
        inputs.append(described)
    document = {
        "id": request.id or None,
        "parameters": {key: parameter_value(value) for key, value in request.parameters.items()},
        "inputs": inputs,
        "outputs": [{"name": output.name} for output in request.outputs] or None,
    }
    return document, b"".join(raw)  # one input, as the model takes: its bytes, not a copy


class InferenceService:
    """One method per RPC, each a protocol answer for `state`; `Call` adds what every call needs."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def ServerLive(self, request: pb.ServerLiveRequest) -> Message:
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request: pb.ServerReadyRequest) -> Message:
        return pb.ServerReadyResponse(ready=self.state.is_ready)

    def ModelReady(self, request: pb.ModelReadyRequest) -> Message:
        """An unknown model is not ready: a plain no, as tritonclient's is_model_ready expects."""
        try:
            self.state.pool_for(request.name, request.version or None)
        except ApiError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=self.state.ready)

    def ServerMetadata(self, request: pb.ServerMetadataRequest) -> Message:
        return as_message(protocol.server_metadata(), pb.ServerMetadataResponse())

    def ModelMetadata(self, request: pb.ModelMetadataRequest) -> Message:
        info = self.state.pool_for(request.name, request.version or None).info
        return as_message(protocol.model_metadata(info), pb.ModelMetadataResponse())

    def ModelConfig(self, request: pb.ModelConfigRequest) -> Message:
        info = self.state.pool_for(request.name, request.version or None).info
        return pb.ModelConfigResponse(config=as_message(protocol.model_config(info), pb.ModelConfig()))

    def ModelStatistics(self, request: pb.ModelStatisticsRequest) -> Message:
        statistics = protocol.model_statistics(self.state, request.name or None, request.version or None)
        return as_message(statistics, pb.ModelStatisticsResponse())

    def RepositoryIndex(self, request: pb.RepositoryIndexRequest) -> Message:
        index = protocol.repository_index(self.state, request.ready)
        return as_message({"models": index}, pb.RepositoryIndexResponse())

    def ModelInfer(self, request: pb.ModelInferRequest) -> Message:
        pool = self.state.pool_for(request.model_name, request.model_version or None)
        document, binary = infer_document(request)
        asked = read_infer_request(document, binary, self.state.settings.max_image_pixels)
        predictions = protocol.predict_images(self.state, pool, asked.images, route_of("ModelInfer"))
        tensors = output_tensors(predictions, asked.outputs)
        return pb.ModelInferResponse(
            model_name=pool.info.name,
            model_version=pool.info.version,
            id=asked.id or "",
            outputs=[tensor.metadata() for tensor in tensors],
            raw_output_contents=[tensor.values.tobytes() for tensor in tensors],
        )


@dataclass(frozen=True)
class Rpc:
    request: type[Message]
    response: type[Message]
    public: bool  # open without an API key, as the same question is over HTTP


RPCS = {
    "ServerLive": Rpc(pb.ServerLiveRequest, pb.ServerLiveResponse, public=True),
    "ServerReady": Rpc(pb.ServerReadyRequest, pb.ServerReadyResponse, public=True),
    "ModelReady": Rpc(pb.ModelReadyRequest, pb.ModelReadyResponse, public=True),
    "ServerMetadata": Rpc(pb.ServerMetadataRequest, pb.ServerMetadataResponse, public=True),
    "ModelMetadata": Rpc(pb.ModelMetadataRequest, pb.ModelMetadataResponse, public=False),
    "ModelInfer": Rpc(pb.ModelInferRequest, pb.ModelInferResponse, public=False),
    "ModelConfig": Rpc(pb.ModelConfigRequest, pb.ModelConfigResponse, public=False),
    "ModelStatistics": Rpc(pb.ModelStatisticsRequest, pb.ModelStatisticsResponse, public=False),
    "RepositoryIndex": Rpc(pb.RepositoryIndexRequest, pb.RepositoryIndexResponse, public=False),
}


class Call:
    """What HTTP's hooks do for a route, for one RPC: a request id, the API key check, the failure's status
    code, the log line and the request metrics (route: the method's full name)."""

    def __init__(self, state: ServerState, method: str, answer: Callable[[Message], Message], public: bool):
        self.state = state
        self.route = route_of(method)
        self.answer = answer
        self.keys = () if public else tuple(key.encode() for key in state.settings.api_keys)

    def __call__(self, request: Message, context: grpc.ServicerContext) -> Message:
        started = time.perf_counter()
        metadata = dict(context.invocation_metadata())
        request_id = request_log.request_id(metadata.get("x-request-id", ""))
        context.set_trailing_metadata((("x-request-id", request_id),))
        failure: ApiError | None = None
        try:
            if self.keys and not is_authorized(metadata.get("authorization", ""), self.keys):
                raise UNAUTHORIZED
            response = self.answer(request)
        except (ApiError, ImageError, Overloaded) as error:
            failure = client_failure(error)
        except Exception:
            logger.exception("Unhandled error (request_id=%s)", request_id)
            failure = ApiError(500, "internal_error", "The server failed; the log holds the details.")
        status = failure.status if failure else 200
        seconds = time.perf_counter() - started
        call = ("gRPC", self.route, self.route)
        request_log.record_answer(self.state, call, status, seconds, request_id, failure and failure.code)
        if failure:
            code = STATUS_CODES.get(failure.status, grpc.StatusCode.INVALID_ARGUMENT)
            context.abort(code, failure.message)
        return response


def handlers(state: ServerState) -> grpc.GenericRpcHandler:
    service = InferenceService(state)
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            method: grpc.unary_unary_rpc_method_handler(
                Call(state, method, getattr(service, method), rpc.public),
                request_deserializer=rpc.request.FromString,
                response_serializer=rpc.response.SerializeToString,
            )
            for method, rpc in RPCS.items()
        },
    )


def start_grpc_server(state: ServerState, host: str, port: int, threads: int) -> grpc.Server:
    """Serve `state` over gRPC on host:port with `threads` threads, sharing the port with the other workers.

    Calls beyond `threads` are refused at once (RESOURCE_EXHAUSTED) rather than queued; the admission gate,
    shared with HTTP, refuses predictions beyond the worker's models and queue (UNAVAILABLE). Messages are
    bounded by --max-body-bytes, as HTTP bodies are (gRPC answers RESOURCE_EXHAUSTED beyond it).
    """
    server = grpc.server(
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc"),
        handlers=(handlers(state),),
        maximum_concurrent_rpcs=threads,
        options=(
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", state.settings.max_body_bytes),
        ),
    )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    server.add_insecure_port(address)
    server.start()
    logger.info("gRPC listening at: %s (Open Inference Protocol, pid %d)", address, os.getpid())
    return server
