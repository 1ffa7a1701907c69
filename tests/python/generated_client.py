"""A Python client generated from proto/ with grpcio-tools calls VectorService, BackupService and ListService
through the gateway.

Usage: generated_client.py HOST INDEX PROTO_DIR OUT_DIR
"""
import importlib
import sys

from grpc_tools import protoc

host, index_name, proto_dir, out_dir = sys.argv[1:5]
files = ["vector_service.proto", "pinecone_gateway/v1/backup_service.proto", "pinecone_gateway/v1/list_service.proto"]
well_known = protoc.__file__.rsplit("/", 1)[0] + "/_proto"
rc = protoc.main(["protoc", f"-I{proto_dir}", f"-I{well_known}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *files])
if rc != 0:
    raise SystemExit(f"protoc failed with {rc}")
sys.path.insert(0, out_dir)

import grpc  # noqa: E402
from google.protobuf import struct_pb2  # noqa: E402

vs = importlib.import_module("vector_service_pb2")
vs_grpc = importlib.import_module("vector_service_pb2_grpc")
bs = importlib.import_module("pinecone_gateway.v1.backup_service_pb2")
bs_grpc = importlib.import_module("pinecone_gateway.v1.backup_service_pb2_grpc")
ls = importlib.import_module("pinecone_gateway.v1.list_service_pb2")
ls_grpc = importlib.import_module("pinecone_gateway.v1.list_service_pb2_grpc")

channel = grpc.insecure_channel(host)
md = [("pinecone-index", index_name)]
checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    checks += 1


vectors = vs_grpc.VectorServiceStub(channel)
meta = struct_pb2.Struct()
meta.update({"genre": "drama"})
up = vectors.Upsert(
    vs.UpsertRequest(namespace="gen", vectors=[vs.Vector(id=f"g{i}", values=[1.0, 2.0, 3.0, float(i)], metadata=meta) for i in range(150)]),
    metadata=md,
)
check(up.upserted_count == 150, f"upserted {up.upserted_count}")
f = vectors.Fetch(vs.FetchRequest(ids=["g1", "g2", "missing"], namespace="gen"), metadata=md)
check(set(f.vectors) == {"g1", "g2"}, f"fetched {sorted(f.vectors)}")
check(f.vectors["g1"].metadata["genre"] == "drama", "metadata round trip")

walk = ls_grpc.ListServiceStub(channel).ListAll(ls.ListAllRequest(namespace="gen", page_size=100), metadata=md)
ids = [i for page in walk for i in page.ids]
check(len(ids) == 150, f"ListAll streamed {len(ids)} ids")

backups = bs_grpc.BackupServiceStub(channel)
b = backups.CreateBackup(bs.CreateBackupRequest(index_name=index_name, name="generated-client"))
check(b.source_index_name == index_name and b.record_count >= 150, f"backup {b}")
listed = backups.ListIndexBackups(bs.ListIndexBackupsRequest(index_name=index_name, limit=10))
check(any(x.backup_id == b.backup_id for x in listed.backups), "backup listed")
check(backups.DescribeBackup(bs.DescribeBackupRequest(backup_id=b.backup_id)).name == "generated-client", "described")

try:
    vectors.Fetch(vs.FetchRequest(ids=[""], namespace="gen"), metadata=md)
    check(False, "an empty id was accepted")
except grpc.RpcError as e:
    check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and "ids[0]" in e.details(), f"bad input: {e.details()}")

# Routing metadata, a caller name and a deadline on one call; the gateway is started with a quota of 1 call/s for
# the caller `guide`, so the second of two calls is refused with retry advice.
from retry_advice import retry_advice  # noqa: E402

guide = [("pinecone-index", index_name), ("x-caller", "guide")]
vectors.Fetch(vs.FetchRequest(ids=["g1"], namespace="gen"), metadata=guide, timeout=5.0)
try:
    vectors.Fetch(vs.FetchRequest(ids=["g1"], namespace="gen"), metadata=guide, timeout=5.0)
    check(False, "the second call within a second was not refused")
except grpc.RpcError as e:
    check(e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, f"refused with {e.code()}")
    delay, pushback_ms = retry_advice(e)
    check(delay is not None and 0 < delay <= 1, f"RetryInfo {delay}")
    check(pushback_ms is not None and 0 < pushback_ms <= 1000, f"grpc-retry-pushback-ms {pushback_ms}")

# Read your writes: a write's LSN comes back in the response metadata; a read that asks for read-your-writes waits
# (within its deadline) until Pinecone has applied this caller's writes to the namespace.
writer = [("pinecone-index", index_name), ("x-caller", "writer")]
_, call = vectors.Upsert.with_call(
    vs.UpsertRequest(namespace="fresh", vectors=[vs.Vector(id="w1", values=[1.0, 0.0, 0.0, 0.0])]), metadata=writer
)
written = int(dict(call.initial_metadata())["x-pinecone-request-lsn"])
found, call = vectors.Query.with_call(
    vs.QueryRequest(namespace="fresh", top_k=1, vector=[1.0, 0.0, 0.0, 0.0]),
    metadata=writer + [("x-consistency", "read-your-writes")],
    timeout=5.0,
)
answer = dict(call.initial_metadata())
stale = answer.get("x-consistency-stale")  # "false": it reflects the writes; "true": the wait ran out
applied = int(answer["x-pinecone-max-indexed-lsn"])
check(stale == "false" and applied >= written, f"read your writes: stale={stale}, applied {applied} < {written}")
check([m.id for m in found.matches] == ["w1"], f"read your writes: {found.matches}")

print(f"python client generated from proto/: {checks} checks passed")
