// Pinecone's official TypeScript/JavaScript SDK (@pinecone-database/pinecone 9.0.0, REST only), unchanged apart
// from its hosts, against the gateway's REST front door: the data plane by the index's host and by its name, list
// indexes, a backup and a restore, and a quota refusal.
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

  // Given the gateway as its control plane (controllerHostUrl) and only the index's name, the SDK finds the index
  // behind the gateway; list indexes, a backup and a restore go through the gateway too.
  const gw = new Pinecone({ apiKey: 'not-used-by-the-gateway', controllerHostUrl: `http://${rest}` });
  const byName = gw.index({ name: indexName, namespace: 'ts-client' });
  const found = await byName.fetch({ ids: ['t-002'] });
  check(Object.keys(found.records).join(',') === 't-002', `fetch by name returned ${Object.keys(found.records)}`);
  const indexes = await gw.listIndexes();
  const mine = (indexes.indexes || []).find((i) => i.name === indexName);
  check(mine && mine.host === `http://${rest}/indexes/${indexName}`, `list indexes: ${JSON.stringify(indexes)}`);
  const backup = await gw.createBackup({ indexName, name: 'ts-client', description: 'through the gateway' });
  check(backup.sourceIndexName === indexName && backup.backupId, `backup: ${JSON.stringify(backup)}`);
  const backups = await gw.listBackups({ indexName });
  check(backups.data.some((b) => b.backupId === backup.backupId), 'backup listed');
  check((await gw.describeBackup(backup.backupId)).name === 'ts-client', 'describe backup');
  const restore = await gw.createIndexFromBackup({ backupId: backup.backupId, name: 'restored-by-ts' });
  const job = await gw.describeRestoreJob(restore.restoreJobId);
  check(job.backupId === backup.backupId && job.targetIndexName === 'restored-by-ts', `restore job: ${JSON.stringify(job)}`);
  check((await gw.listRestoreJobs()).data.some((j) => j.restoreJobId === restore.restoreJobId), 'restore job listed');
  await gw.deleteBackup(backup.backupId);
  let gone = null;
  try {
    await gw.describeBackup(backup.backupId);
  } catch (e) {
    gone = e;
  }
  check(gone && gone.name === 'PineconeNotFoundError', `a deleted backup: ${gone}`);

  // A quota refusal as the SDK sees it: it does not retry 429, so the second call within the second by the caller
  // `guide` (1 call/s) reaches the code as its error for an unmapped status, with the gateway's message.
  const guided = pc.index({ host: `http://${rest}/indexes/${indexName}`, namespace: 'ts-client', additionalHeaders: { 'x-caller': 'guide' } });
  await guided.fetch({ ids: ['t-002'] });
  let limited = null;
  try {
    await guided.fetch({ ids: ['t-002'] });
  } catch (e) {
    limited = e;
  }
  check(limited && limited.name === 'PineconeUnmappedHttpError' && String(limited.message).includes('429') && String(limited.message).includes('guide'), `the quota refusal: ${limited}`);
  console.log(`official TypeScript SDK @pinecone-database/pinecone: ${checks} checks passed`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
