// Pinecone's official TypeScript/JavaScript SDK (@pinecone-database/pinecone 9.0.0, REST only), unchanged apart
// from the index's host, against the gateway's REST front door.
//
// Usage: node rest_client.js REST_HOST INDEX
// Exits non-zero on the first failed check.
const { Pinecone } = require('@pinecone-database/pinecone');

const [rest, indexName] = process.argv.slice(2);
let checks = 0;
function check(cond, what) {
  if (!cond) {
    console.error(`FAILED: ${what}`);
    process.exit(1);
  }
  checks += 1;
}

async function main() {
  const pc = new Pinecone({ apiKey: 'not-used-by-the-gateway' });
  const index = pc.index({ host: `http://${rest}/indexes/${indexName}`, namespace: 'ts-client' });
  const records = [];
  for (let i = 0; i < 120; i += 1) {
    records.push({ id: `t-${String(i).padStart(3, '0')}`, values: [1, i, 0.5, 0.25], metadata: { genre: i % 2 ? 'drama' : 'comedy', n: i } });
  }
  await index.upsert({ records });
  const fetched = await index.fetch({ ids: ['t-001', 't-002', 'missing'] });
  check(Object.keys(fetched.records).sort().join(',') === 't-001,t-002', `fetch returned ${Object.keys(fetched.records)}`);
  check(fetched.records['t-001'].metadata.genre === 'drama', 'fetched metadata');
  const q = await index.query({ vector: [1, 5, 0.5, 0.25], topK: 3, includeMetadata: true, filter: { genre: 'comedy' } });
  check(q.matches.length === 3, `query returned ${q.matches.length} matches`);
  check(q.matches.every((m) => m.metadata.genre === 'comedy'), 'query honoured the filter');
  const listed = await index.listPaginated({ limit: 100 });
  check(listed.vectors.length === 100 && listed.pagination && listed.pagination.next, 'listPaginated first page');
  await index.update({ id: 't-003', metadata: { genre: 'thriller' } });
  const updated = await index.fetch({ ids: ['t-003'] });
  check(updated.records['t-003'].metadata.genre === 'thriller', 'update applied');
  await index.deleteMany({ ids: ['t-000', 't-001'] });
  const after = await index.fetch({ ids: ['t-000', 't-001', 't-002'] });
  check(Object.keys(after.records).join(',') === 't-002', `after delete: ${Object.keys(after.records)}`);
  const stats = await index.describeIndexStats();
  check(stats.namespaces['ts-client'].recordCount === 118, `stats: ${JSON.stringify(stats.namespaces['ts-client'])}`);
  // A refusal from the gateway reaches the SDK as Pinecone's 400, with the gateway's message.
  let refused = null;
  try {
    await index.query({ vector: [1, 5, 0.5, 0.25], topK: 1, filter: { genre: { $regex: 'dra' } } });
  } catch (e) {
    refused = e;
  }
  check(refused !== null && String(refused.message || refused).includes('$regex'), `no refusal naming $regex: ${refused}`);
  console.log(`official TypeScript SDK @pinecone-database/pinecone: ${checks} checks passed`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
