"""Pinecone's official REST client of the 8.x line (pinecone==8.1.2, its default `Pinecone` client, API 2025-10),
unchanged apart from its hosts, against the gateway's REST front door: the data plane by the index's host (the
gateway's REST address with the index in its path) and by the index's name (the gateway given as the control
plane), list indexes, a backup and a restore, a quota refusal the client retries on its own (it honours Retry-After),
and read your writes (`additional_headers` of `Index()`).

Usage: rest_client_8.py REST_HOST INDEX [fresh]
With `fresh` (against an emulator that shows writes to reads only after a while), only read your writes is checked.
Exits non-zero on the first failed check.
"""
import sys

import pinecone
from pinecone import Pinecone
from pinecone.exceptions import NotFoundException, PineconeApiException

rest, index_name = sys.argv[1], sys.argv[2]
checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    checks += 1


if sys.argv[3:] == ["fresh"]:
    # 8.x takes an index's headers as an argument of Index(), not of Pinecone().
    fresh = Pinecone(api_key="unused").Index(
        host=f"http://{rest}/indexes/{index_name}",
        additional_headers={"x-caller": "writer", "x-consistency": "read-your-writes"},
    )
    w = fresh.upsert(vectors=[("fresh-8", [0.0, 1.0, 0.0, 0.0])], namespace="fresh")
    q = fresh.query(vector=[0.0, 1.0, 0.0, 0.0], top_k=1, namespace="fresh")
    headers = q._response_info["raw_headers"]
    check(headers.get("x-consistency-stale") == "false", f"read your writes: {headers}")
    written = int(w._response_info["raw_headers"]["x-pinecone-lsn-committed"])
    check(int(headers["x-pinecone-lsn-reconciled"]) >= written, "the read saw the write's LSN")
    check([m.id for m in q.matches] == ["fresh-8"], f"read your writes: {q.matches}")
    print(f"official REST client pinecone=={pinecone.__version__}: read your writes, {checks} checks passed")
    raise SystemExit(0)

pc = Pinecone(api_key="not-used-by-the-gateway", host=f"http://{rest}")
index = pc.Index(host=f"http://{rest}/indexes/{index_name}")
ns = "rest-client-8"
vectors = [(f"e-{i:03d}", [1.0, float(i), 0.5, 0.25], {"genre": "drama" if i % 2 else "comedy"}) for i in range(150)]
r = index.upsert(vectors=vectors, namespace=ns, batch_size=100)
check(r.upserted_count == 150, f"upsert counted {r.upserted_count}")
f = index.fetch(ids=["e-001", "e-002", "missing"], namespace=ns)
check(set(f.vectors) == {"e-001", "e-002"}, f"fetch returned {sorted(f.vectors)}")
check(f.vectors["e-001"].metadata["genre"] == "drama", "fetched metadata")
q = index.query(vector=[1.0, 5.0, 0.5, 0.25], top_k=3, namespace=ns, include_metadata=True, filter={"genre": "comedy"})
check(len(q.matches) == 3 and all(m.metadata["genre"] == "comedy" for m in q.matches), "query with a filter")
page = index.list_paginated(namespace=ns, limit=100)
check(len(page.vectors) == 100 and page.pagination and page.pagination.next, "list_paginated first page")
index.update(id="e-003", set_metadata={"genre": "thriller"}, namespace=ns)
check(index.fetch(ids=["e-003"], namespace=ns).vectors["e-003"].metadata["genre"] == "thriller", "update")
index.delete(ids=["e-000", "e-001"], namespace=ns)
check(set(index.fetch(ids=["e-000", "e-001", "e-002"], namespace=ns).vectors) == {"e-002"}, "delete")
check(index.describe_index_stats().namespaces[ns].vector_count == 148, "stats")
try:
    index.query(vector=[1.0, 5.0, 0.5, 0.25], top_k=1, namespace=ns, filter={"genre": {"$regex": "dra"}})
    check(False, "an unknown filter operator was accepted")
except PineconeApiException as e:
    check(e.status == 400 and "$regex" in str(e), f"the refusal: {e!r}")

# By name: the client asks the gateway (its control plane) for the index's host.
by_name = pc.Index(name=index_name)
check(set(by_name.fetch(ids=["e-002"], namespace=ns).vectors) == {"e-002"}, "fetch through the index found by name")

check(index_name in pc.list_indexes().names(), "list indexes")
backup = pc.create_backup(index_name=index_name, backup_name="rest-client-8", description="through the gateway")
check(backup.source_index_name == index_name and backup.dimension == 4, f"backup: {backup}")
check(any(b.backup_id == backup.backup_id for b in pc.list_backups(index_name=index_name)), "backup listed")
check(pc.describe_backup(backup_id=backup.backup_id).name == "rest-client-8", "describe backup")
restored = pc.create_index_from_backup(backup_id=backup.backup_id, name="restored-by-rest-8")
check(restored.name == "restored-by-rest-8", f"restored index: {restored}")
jobs = [j for j in pc.list_restore_jobs() if j.target_index_name == "restored-by-rest-8"]
check(len(jobs) == 1 and jobs[0].backup_id == backup.backup_id, f"restore job: {jobs}")
check(pc.describe_restore_job(job_id=jobs[0].restore_job_id).backup_id == backup.backup_id, "describe restore job")
pc.delete_backup(backup_id=backup.backup_id)
try:
    pc.describe_backup(backup_id=backup.backup_id)
    check(False, "a deleted backup is still described")
except NotFoundException:
    checks += 1

# A quota refusal, retried by the client on its own: the gateway allows the caller `guide` 1 call/s and answers the
# second call within the second 429 with Retry-After, which the client waits out before its call succeeds.
guided = Pinecone(api_key="unused").Index(
    host=f"http://{rest}/indexes/{index_name}", additional_headers={"x-caller": "guide"}
)
for _ in range(2):
    check(set(guided.fetch(ids=["e-002"], namespace=ns).vectors) == {"e-002"}, "a guided fetch")

print(f"official REST client pinecone=={pinecone.__version__}: {checks} checks passed")
