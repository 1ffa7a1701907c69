"""An official Pinecone gRPC client (pinecone[grpc]==8.1.2 or 7.3.0), unchanged apart from the host, against the gateway.

Usage: official_client.py HOST INDEX
Exits non-zero on the first failed check.
"""
import sys

import grpc
import pinecone
from pinecone.grpc import GRPCClientConfig, PineconeGRPC

host, index_name = sys.argv[1], sys.argv[2]
pc = PineconeGRPC(api_key="not-used-by-the-gateway")
index = pc.Index(name=index_name, host=host, grpc_config=GRPCClientConfig(secure=False))
ns = "official-client"
checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    checks += 1


vectors = [
    (f"doc-{i:03d}", [1.0, float(i), 0.5, 0.25], {"genre": "drama" if i % 2 else "comedy", "n": i})
    for i in range(300)
]
r = index.upsert(vectors=vectors, namespace=ns, batch_size=100)
check(r.upserted_count == 300, f"upsert counted {r.upserted_count}")
if pinecone.__version__.startswith("8."):
    # 8.x shows a call's response metadata as response_info's raw headers (7.x keeps none): the write's LSN under
    # both of Pinecone's spellings, and Pinecone's own request id.
    raw = r._response_info["raw_headers"]
    check(raw.get("x-pinecone-lsn-committed") is not None, f"no x-pinecone-lsn-committed in {raw}")
    check(raw.get("x-pinecone-lsn-committed") == raw.get("x-pinecone-request-lsn"), f"the two spellings differ: {raw}")
    check(raw.get("x-pinecone-request-id"), f"no x-pinecone-request-id in {raw}")

f = index.fetch(ids=["doc-001", "doc-002", "missing"], namespace=ns)
check(set(f.vectors) == {"doc-001", "doc-002"}, f"fetch returned {sorted(f.vectors)}")
check(f.vectors["doc-001"].metadata["genre"] == "drama", "fetched metadata")
check(list(f.vectors["doc-002"].values) == [1.0, 2.0, 0.5, 0.25], "fetched values")

ids, token, pages = [], None, 0
while True:
    page = index.list_paginated(namespace=ns, limit=100, pagination_token=token)
    pages += 1
    ids += [v.id for v in page.vectors]
    token = page.pagination.next if page.pagination else None
    if not token:
        break
check(len(ids) == 300 and ids == sorted(ids), f"list_paginated walked {len(ids)} ids")
check(pages == 3, f"list_paginated took {pages} pages")
walked = [i for chunk in index.list(namespace=ns, prefix="doc-1") for i in chunk]
check(len(walked) == 100, f"list() with prefix walked {len(walked)}")

if hasattr(index, "fetch_by_metadata"):  # API 2025-10 (8.x); 7.x speaks 2025-04, which has no such call
    fm = index.fetch_by_metadata(filter={"n": {"$lt": 10}, "genre": "drama"}, namespace=ns, limit=3)
    check(len(fm.vectors) == 3, f"fetch_by_metadata returned {len(fm.vectors)}")
    check(fm.pagination is not None and fm.pagination.next, "fetch_by_metadata has a next page")

q = index.query(vector=[1.0, 5.0, 0.5, 0.25], top_k=3, namespace=ns, include_metadata=True, filter={"genre": "comedy"})
check(len(q.matches) == 3, f"query returned {len(q.matches)} matches")
check(all(m.metadata["genre"] == "comedy" for m in q.matches), "query honoured the filter")

index.delete(ids=["doc-000", "doc-001"], namespace=ns)
index.delete(filter={"n": {"$gte": 200}}, namespace=ns)
stats = index.describe_index_stats()
check(stats.namespaces[ns].vector_count == 198, f"after deletes: {stats.namespaces[ns].vector_count}")

# Routing metadata, a caller name and a deadline: `additional_metadata` goes with every call, `timeout` (seconds)
# becomes each call's gRPC deadline. The gateway is started with a quota of 1 call/s for the caller `guide`.
from pinecone.exceptions import PineconeException  # noqa: E402

from retry_advice import retry_advice  # noqa: E402

guided = pc.Index(
    name=index_name,
    host=host,
    grpc_config=GRPCClientConfig(secure=False, additional_metadata={"x-caller": "guide"}),
)
guided.fetch(ids=["doc-002"], namespace=ns, timeout=5)
try:
    guided.fetch(ids=["doc-002"], namespace=ns, timeout=5)
    check(False, "the second call within a second was not refused")
except PineconeException as e:
    # The official client wraps the gRPC error; the original, with its trailers, is the cause.
    rpc = e.__cause__
    check(rpc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, f"refused with {rpc.code()}")
    delay, pushback_ms = retry_advice(rpc)
    check(delay is not None and 0 < delay <= 1, f"RetryInfo {delay}")
    check(pushback_ms is not None and 0 < pushback_ms <= 1000, f"grpc-retry-pushback-ms {pushback_ms}")


print(f"official client pinecone[grpc]=={pinecone.__version__}: {checks} checks passed")
