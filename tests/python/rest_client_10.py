"""Pinecone's official REST client (pinecone==10.2.0, its default `Pinecone` client), unchanged apart from the host,
against the gateway's REST front door. The index's host is the gateway's REST address with the index in its path.

Usage: rest_client_10.py REST_HOST INDEX
Exits non-zero on the first failed check.
"""
import sys

import pinecone
from pinecone import Pinecone

rest, index_name = sys.argv[1], sys.argv[2]
pc = Pinecone(api_key="not-used-by-the-gateway")
index = pc.Index(host=f"http://{rest}/indexes/{index_name}")
ns = "rest-client"
checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    checks += 1


vectors = [(f"r-{i:03d}", [1.0, float(i), 0.5, 0.25], {"genre": "drama" if i % 2 else "comedy", "n": i}) for i in range(150)]
r = index.upsert(vectors=vectors, namespace=ns, batch_size=100)
check(r.upserted_count == 150, f"upsert counted {r.upserted_count}")
# The write's LSN reaches the client's response_info through the gateway.
check(r.response_info is not None and r.response_info.lsn_committed is not None, f"no LSN in {r.response_info}")

f = index.fetch(ids=["r-001", "r-002", "missing"], namespace=ns)
check(set(f.vectors) == {"r-001", "r-002"}, f"fetch returned {sorted(f.vectors)}")
check(f.vectors["r-001"].metadata["genre"] == "drama", "fetched metadata")

q = index.query(vector=[1.0, 5.0, 0.5, 0.25], top_k=3, namespace=ns, include_metadata=True, filter={"genre": "comedy"})
check(len(q.matches) == 3, f"query returned {len(q.matches)} matches")
check(all(m.metadata["genre"] == "comedy" for m in q.matches), "query honoured the filter")

page = index.list_paginated(namespace=ns, limit=100)
check(len(page.vectors) == 100 and page.pagination and page.pagination.next, "list_paginated first page")

index.update(id="r-003", set_metadata={"genre": "thriller"}, namespace=ns)
f = index.fetch(ids=["r-003"], namespace=ns)
check(f.vectors["r-003"].metadata["genre"] == "thriller", "update applied")

index.delete(ids=["r-000", "r-001"], namespace=ns)
f = index.fetch(ids=["r-000", "r-001", "r-002"], namespace=ns)
check(set(f.vectors) == {"r-002"}, f"after delete: {sorted(f.vectors)}")

stats = index.describe_index_stats()
check(stats.namespaces[ns].vector_count == 148, f"stats: {stats.namespaces.get(ns)}")

# Bad input the client lets through is Pinecone's 400 from the gateway, in Pinecone's error shape, naming the problem.
try:
    index.query(vector=[1.0, 5.0, 0.5, 0.25], top_k=1, namespace=ns, filter={"genre": {"$regex": "dra"}})
    check(False, "an unknown filter operator was accepted")
except Exception as e:  # the client's own class for a 400
    check(getattr(e, "status_code", None) == 400, f"not a 400: {e!r}")
    check("$regex" in str(e), f"the refusal does not name the operator: {e}")

# Given the gateway as its control plane and only the index's name, the client finds the index behind the gateway
# (describe index answers with the index's host on the front door).
by_name = Pinecone(api_key="not-used-by-the-gateway", host=f"http://{rest}").index(name=index_name)
f = by_name.fetch(ids=["r-002"], namespace=ns)
check(set(f.vectors) == {"r-002"}, f"fetch through the index found by name returned {sorted(f.vectors)}")

print(f"official REST client pinecone=={pinecone.__version__}: {checks} checks passed")
