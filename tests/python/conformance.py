"""Compares the gateway's VectorService proto with the official 2025-10 descriptor shipped in pinecone[grpc]==8.1.2:
every message, field number, type, label, presence and RPC must match, and there must be no proto package.

Usage: conformance.py DESCRIPTOR_SET_FILE
"""
import sys

from google.protobuf import descriptor_pb2
from pinecone.core.grpc.protos import db_data_2025_10_pb2 as official

ours_set = descriptor_pb2.FileDescriptorSet()
with open(sys.argv[1], "rb") as fh:
    ours_set.ParseFromString(fh.read())
ours = next(f for f in ours_set.file if f.name == "vector_service.proto")
theirs = descriptor_pb2.FileDescriptorProto()
official.DESCRIPTOR.CopyToProto(theirs)

problems = []
if ours.package != theirs.package:
    problems.append(f"package {ours.package!r} != {theirs.package!r}")


def fields(msg):
    return {
        f.number: (f.name, f.type, f.label, f.type_name, f.proto3_optional)
        for f in msg.field
    }


def messages(file):
    out = {}

    def walk(prefix, msgs):
        for m in msgs:
            out[prefix + m.name] = fields(m)
            walk(prefix + m.name + ".", m.nested_type)

    walk("", file.message_type)
    return out


mine, official_msgs = messages(ours), messages(theirs)
for name, want in official_msgs.items():
    got = mine.get(name)
    if got is None:
        problems.append(f"message {name} missing")
    elif got != want:
        problems.append(f"message {name}: {got} != {want}")
for name in mine.keys() - official_msgs.keys():
    problems.append(f"extra message {name}")

rpcs = lambda f: {(s.name, m.name, m.input_type, m.output_type, m.client_streaming, m.server_streaming) for s in f.service for m in s.method}
if rpcs(ours) != rpcs(theirs):
    problems.append(f"services differ: {rpcs(ours) ^ rpcs(theirs)}")

if problems:
    raise SystemExit("NOT wire-compatible:\n" + "\n".join(problems))
print(f"VectorService matches the official 2025-10 descriptor: {len(official_msgs)} messages, {len(rpcs(theirs))} RPCs")
