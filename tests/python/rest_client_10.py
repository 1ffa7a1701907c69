"""Pinecone's official REST client (pinecone==10.2.0, its default `Pinecone` client), unchanged apart from the host,
against the gateway's REST front door. The index's host is the gateway's REST address with the index in its path.

Usage: rest_client_10.py REST_HOST INDEX [fresh]
With `fresh` (against an emulator that shows writes to reads only after a while), only read your writes is checked.
Exits non-zero on the first failed check.
"""
import sys

import pinecone
from pinecone import Pinecone, RetryConfig

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


def read_your_writes():
    """Read your writes: headers on every call of a client; the query waits until the write is applied."""
    fresh = Pinecone(
        api_key="unused", additional_headers={"x-caller": "writer", "x-consistency": "read-your-writes"}
    ).Index(host=f"http://{rest}/indexes/{index_name}")
    w = fresh.upsert(vectors=[("fresh-1", [0.0, 0.0, 1.0, 0.0])], namespace="fresh")
    q = fresh.query(vector=[0.0, 0.0, 1.0, 0.0], top_k=1, namespace="fresh")
    headers = q.response_info.raw_headers
    check(headers.get("x-consistency-stale") == "false", f"read your writes: {headers}")
    check(int(headers["x-pinecone-max-indexed-lsn"]) >= w.response_info.lsn_committed, "the read saw the write's LSN")
    check([m.id for m in q.matches] == ["fresh-1"], f"read your writes: {q.matches}")
    print(f"official REST client pinecone=={pinecone.__version__}: read your writes, {checks} checks passed")


if sys.argv[3:] == ["fresh"]:
    read_your_writes()
    raise SystemExit(0)


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

# The control plane through the gateway: list indexes, backups and a restore, the client given the gateway as its
# control-plane host.
control = Pinecone(api_key="not-used-by-the-gateway", host=f"http://{rest}")
listed = control.list_indexes()
check(index_name in [i.name for i in listed], f"list indexes: {[i.name for i in listed]}")
mine = [i for i in listed if i.name == index_name][0]
check(mine.host == f"http://{rest}/indexes/{index_name}", f"the listed host is the gateway's: {mine.host}")
backup = control.create_backup(index_name=index_name, backup_name="rest-client-10", description="through the gateway")
check(backup.source_index_name == index_name and backup.backup_id, f"backup: {backup}")
check(any(b.backup_id == backup.backup_id for b in control.list_backups(index_name=index_name)), "backup listed")
check(any(b.backup_id == backup.backup_id for b in control.list_backups()), "backup listed in the project")
check(control.describe_backup(backup_id=backup.backup_id).name == "rest-client-10", "describe backup")
restored = control.create_index_from_backup(backup_id=backup.backup_id, name="restored-by-rest", timeout=-1)
job = control.describe_restore_job(job_id=restored.restore_job_id)
check(job.backup_id == backup.backup_id and job.target_index_name == "restored-by-rest", f"restore job: {job}")
check(any(j.restore_job_id == job.restore_job_id for j in control.list_restore_jobs()), "restore job listed")
control.delete_backup(backup_id=backup.backup_id)
try:
    control.describe_backup(backup_id=backup.backup_id)
    check(False, "a deleted backup is still described")
except pinecone.errors.exceptions.NotFoundError:
    checks += 1

# A quota refusal as the client sees it: the gateway allows the caller `guide` 1 call/s. A control-plane client with
# its retries off gets the second call within the second as its RateLimitError (429, the message naming the quota);
# an index client (which always retries 429) waits out the Retry-After the gateway sent, and its calls succeed.
strict = Pinecone(
    api_key="unused", host=f"http://{rest}", additional_headers={"x-caller": "guide"},
    retry_config=RetryConfig(max_retries=0),
)
strict.describe_index(name=index_name)
try:
    strict.describe_index(name=index_name)
    check(False, "the second call within a second was not refused")
except pinecone.errors.exceptions.RateLimitError as e:
    check(e.status_code == 429 and "guide" in str(e), f"the refusal: {e}")
patient = Pinecone(api_key="unused", additional_headers={"x-caller": "guide"}).Index(
    host=f"http://{rest}/indexes/{index_name}"
)
for _ in range(2):
    f = patient.fetch(ids=["r-002"], namespace=ns)
    check(set(f.vectors) == {"r-002"}, "the client's own retry of the 429 succeeded")

print(f"official REST client pinecone=={pinecone.__version__}: {checks} checks passed")
