"""The newest official Pinecone client (pinecone==10.2.0, whose gRPC client is compiled in) against the gateway,
unchanged apart from the host. It sends no index name, so the gateway routes its calls to `upstream.default_index`.

Usage: official_client_10.py HOST
Exits non-zero on the first failed check.
"""
import sys
import time

import pinecone
from pinecone import Pinecone

host = sys.argv[1]
pc = Pinecone(api_key="not-used-by-the-gateway", grpc_scheme="http")
index = pc.index(host=host, grpc=True)
ns = "official-client-10"
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
r = index.upsert(vectors=vectors, namespace=ns, batch_size=100, show_progress=False)
check(r.upserted_count == 300, f"upsert counted {r.upserted_count}")

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
walked = [v.id for page in index.list(namespace=ns, prefix="doc-1") for v in page.vectors]
check(len(walked) == 100, f"list() with prefix walked {len(walked)}")

fm = index.fetch_by_metadata(filter={"n": {"$lt": 10}, "genre": "drama"}, namespace=ns, limit=3)
check(len(fm.vectors) == 3, f"fetch_by_metadata returned {len(fm.vectors)}")
check(fm.pagination is not None and fm.pagination.next, "fetch_by_metadata has a next page")

q = index.query(vector=[1.0, 5.0, 0.5, 0.25], top_k=3, namespace=ns, include_metadata=True, filter={"genre": "comedy"})
check(len(q.matches) == 3, f"query returned {len(q.matches)} matches")
check(all(m.metadata["genre"] == "comedy" for m in q.matches), "query honoured the filter")

u = index.update(id="doc-003", set_metadata={"genre": "documentary"}, namespace=ns)
check(index.fetch(ids=["doc-003"], namespace=ns).vectors["doc-003"].metadata["genre"] == "documentary", "update")

index.delete(ids=["doc-000", "doc-001"], namespace=ns)
index.delete(filter={"n": {"$gte": 200}}, namespace=ns)
stats = index.describe_index_stats()
check(stats.namespaces[ns].vector_count == 198, f"after deletes: {stats.namespaces[ns].vector_count}")

desc = index.describe_namespace(namespace=ns)
check(desc.record_count == 198, f"describe_namespace counted {desc.record_count}")
names = [n.name for n in index.list_namespaces_paginated(limit=100).namespaces]
check(ns in names, f"list_namespaces: {names}")

# Retry advice: the gateway names this client's caller by its user-agent's first product, `python-client[grpc]`, and
# tests/official_client.rs gives that caller a quota of one fetch a second. The client reads the refusal's
# `grpc-retry-pushback-ms` itself, waits, and sends the call again: both fetches succeed, a second apart.
started = time.monotonic()
index.fetch(ids=["doc-002"], namespace=ns)
index.fetch(ids=["doc-002"], namespace=ns)
waited = time.monotonic() - started
check(waited >= 0.5, f"two fetches under a 1/s quota took {waited:.3f} s")

print(f"official client pinecone=={pinecone.__version__}: {checks} checks passed")
