"""Reading the gateway's retry advice from a RESOURCE_EXHAUSTED error (docs/clients.md quotes this file).

The gateway sends it twice: a `google.rpc.RetryInfo` in the `grpc-status-details-bin` trailer (the richer error
model) and the `grpc-retry-pushback-ms` trailer (what gRPC's own retry policy reads).
"""
import grpc
from google.rpc import error_details_pb2, status_pb2


def retry_advice(err: grpc.RpcError):
    """(seconds from RetryInfo, milliseconds from grpc-retry-pushback-ms), None where absent."""
    trailers = dict(err.trailing_metadata() or ())
    pushback = trailers.get("grpc-retry-pushback-ms")
    delay = None
    details = trailers.get("grpc-status-details-bin")
    if details:
        for detail in status_pb2.Status.FromString(details).details:
            if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                detail.Unpack(info)
                delay = info.retry_delay.ToTimedelta().total_seconds()
    return delay, (int(pushback) if pushback is not None else None)
