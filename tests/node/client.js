// A Node.js client (@grpc/grpc-js + @grpc/proto-loader, loading proto/ at run time) calls VectorService,
// BackupService and ListService through the gateway.
// Usage: node client.js HOST INDEX PROTO_DIR
'use strict';
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { retryAdvice } = require('./retry_advice');

const [host, indexName, protoDir] = process.argv.slice(2);
const definition = protoLoader.loadSync(
  ['vector_service.proto', 'pinecone_gateway/v1/backup_service.proto', 'pinecone_gateway/v1/list_service.proto'],
  { includeDirs: [protoDir], keepCase: true, longs: Number, defaults: true, oneofs: true },
);
const api = grpc.loadPackageDefinition(definition);
const creds = grpc.credentials.createInsecure();
const vectors = new api.VectorService(host, creds);
const backups = new api.pinecone_gateway.v1.BackupService(host, creds);
const lists = new api.pinecone_gateway.v1.ListService(host, creds);
const md = new grpc.Metadata();
md.set('pinecone-index', indexName);

let checks = 0;
function check(cond, what) {
  if (!cond) {
    console.error(`FAILED: ${what}`);
    process.exit(1);
  }
  checks += 1;
}
const call = (client, method, req, meta = md) =>
  new Promise((resolve, reject) => client[method](req, meta, (err, res) => (err ? reject(err) : resolve(res))));

(async () => {
  const struct = { fields: { genre: { stringValue: 'comedy' } } };
  const vs = Array.from({ length: 120 }, (_, i) => ({ id: `n${i}`, values: [1, 2, 3, i], metadata: struct }));
  const up = await call(vectors, 'Upsert', { namespace: 'node', vectors: vs });
  check(up.upserted_count === 120, `upserted ${up.upserted_count}`);
  const f = await call(vectors, 'Fetch', { ids: ['n1', 'missing'], namespace: 'node' });
  check(Object.keys(f.vectors).length === 1 && f.vectors.n1.metadata.fields.genre.stringValue === 'comedy', 'fetch');

  const ids = await new Promise((resolve, reject) => {
    const out = [];
    const stream = lists.ListAll({ namespace: 'node', page_size: 50 }, md);
    stream.on('data', (page) => out.push(...page.ids));
    stream.on('end', () => resolve(out));
    stream.on('error', reject);
  });
  check(ids.length === 120, `ListAll streamed ${ids.length}`);

  const b = await call(backups, 'CreateBackup', { index_name: indexName, name: 'node-client' }, new grpc.Metadata());
  check(b.source_index_name === indexName, 'backup created');
  const listed = await call(backups, 'ListIndexBackups', { index_name: indexName, limit: 5 }, new grpc.Metadata());
  check(listed.backups.some((x) => x.backup_id === b.backup_id), 'backup listed');

  try {
    await call(vectors, 'Query', { namespace: 'node', top_k: 0, vector: [1, 2, 3, 4] });
    check(false, 'top_k 0 was accepted');
  } catch (err) {
    check(err.code === grpc.status.INVALID_ARGUMENT && err.details.includes('top_k'), `bad input: ${err.details}`);
  }
  // Routing metadata, a caller name and a deadline on one call; the gateway is started with a quota of 1 call/s for
  // the caller `guide`, so the second of two calls is refused with retry advice.
  const guide = new grpc.Metadata();
  guide.set('pinecone-index', indexName);
  guide.set('x-caller', 'guide');
  const fetchGuided = () =>
    new Promise((resolve, reject) =>
      vectors.Fetch({ ids: ['n1'], namespace: 'node' }, guide, { deadline: Date.now() + 5000 }, (err, res) =>
        err ? reject(err) : resolve(res),
      ),
    );
  await fetchGuided();
  try {
    await fetchGuided();
    check(false, 'the second call within a second was not refused');
  } catch (err) {
    check(err.code === grpc.status.RESOURCE_EXHAUSTED, `refused with ${err.code}: ${err.details}`);
    const { delaySeconds, pushbackMs } = retryAdvice(err);
    check(delaySeconds > 0 && delaySeconds <= 1, `RetryInfo ${delaySeconds}`);
    check(pushbackMs > 0 && pushbackMs <= 1000, `grpc-retry-pushback-ms ${pushbackMs}`);
  }
  // Read your writes: a write's LSN comes back in the response metadata; a read that asks for read-your-writes waits
  // (within its deadline) until Pinecone has applied this caller's writes to the namespace.
  const writer = new grpc.Metadata();
  writer.set('pinecone-index', indexName);
  writer.set('x-caller', 'writer');
  const withMetadata = (method, req, meta) =>
    new Promise((resolve, reject) => {
      let headers;
      const c = vectors[method](req, meta, { deadline: Date.now() + 5000 }, (err, res) =>
        err ? reject(err) : resolve({ res, headers }),
      );
      c.on('metadata', (m) => {
        headers = m;
      });
    });
  const w = { namespace: 'fresh', vectors: [{ id: 'w1', values: [1, 0, 0, 0] }] };
  const { headers: wrote } = await withMetadata('Upsert', w, writer);
  const written = Number(wrote.get('x-pinecone-request-lsn')[0]);
  const fresh = writer.clone();
  fresh.set('x-consistency', 'read-your-writes');
  const q = { namespace: 'fresh', top_k: 1, vector: [1, 0, 0, 0] };
  const { res: found, headers: answer } = await withMetadata('Query', q, fresh);
  const [stale] = answer.get('x-consistency-stale'); // 'false': it reflects the writes; 'true': the wait ran out
  const applied = Number(answer.get('x-pinecone-max-indexed-lsn')[0]);
  check(stale === 'false' && applied >= written, `read your writes: stale=${stale}, applied ${applied} < ${written}`);
  check(found.matches.length === 1 && found.matches[0].id === 'w1', 'read your writes: the record');
  console.log(`node client (@grpc/grpc-js): ${checks} checks passed`);
  process.exit(0);
})().catch((err) => {
  console.error(`FAILED: ${err.stack || err}`);
  process.exit(1);
});
