import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeCertificate, makeTempDir, requireOpenssl } from './helpers/certs.js';
import { TestClient } from './helpers/clients.js';
import { metricValue, waitForMetric } from './helpers/metrics.js';
import { RedisServer, spawnNode } from './helpers/redis.js';
import { type SpawnedServer, spawnServer } from './helpers/server.js';

/**
 * rediss:// against a real redis-server serving TLS only, with a certificate from a private CA
 * (as Redis in a cluster usually has). wshub verifies the certificate with Node's trust store;
 * NODE_EXTRA_CA_CERTS adds the private CA (README: Scaling out).
 */
describe('backplane over TLS (rediss://)', () => {
  const certs = makeTempDir('wshub-redis-tls-');
  let redis: RedisServer;
  let caFile: string;
  const nodes: SpawnedServer[] = [];
  before(async () => {
    requireOpenssl();
    const ca = makeCertificate(certs.dir, 'ca', { ca: true, cn: 'wshub test CA' });
    const server = makeCertificate(certs.dir, 'redis', { issuer: ca });
    caFile = ca.certFile;
    redis = await RedisServer.start({ tls: { certFile: server.certFile, keyFile: server.keyFile, caFile } });
  });
  after(async () => {
    for (const node of nodes) node.kill('SIGKILL');
    await redis?.stop();
    certs.cleanup();
  });

  it('two nodes trusting the CA join through rediss:// and a broadcast crosses them', async () => {
    const env = { NODE_EXTRA_CA_CERTS: caFile };
    const [a, b] = await Promise.all([spawnNode(redis, [], env), spawnNode(redis, [], env)]);
    nodes.push(a, b);
    assert.ok(
      a.stdout.lines.some((line) =>
        line.includes(`Backplane connected to rediss://127.0.0.1:${redis.port}/0`),
      ),
    );
    assert.equal(await metricValue(a.metricsUrl, 'wshub_backplane_connected'), 1);
    const [sender, receiver] = await Promise.all([TestClient.open(a.url), TestClient.open(b.url)]);
    try {
      await waitForMetric(b.metricsUrl, 'wshub_backplane_subscribed_rooms', 1);
      await sender.send('over tls');
      const got = await receiver.next(10_000);
      assert.equal(got.data.toString(), 'over tls');
      assert.equal(got.isBinary, false);
      assert.equal(await redis.info('connected_clients'), '5'); // 2 per node + the INFO connection
    } finally {
      await Promise.all([sender.close(), receiver.close()]);
    }
  });

  it('a node that does not trust the certificate stays disconnected, says why, and still serves locally', async () => {
    const node = await spawnServer([
      '--mode=broadcast',
      '--stats-interval=0',
      `--backplane=${redis.url}`,
      '--backplane-reconnect-max=100ms',
    ]);
    nodes.push(node);
    const line = await node.stdout.waitFor(
      /Backplane error \(rediss:\/\/127\.0\.0\.1:\d+\/0\): .*certificate/i,
    );
    assert.match(line, /self[- ]signed|unable to (get|verify)/i);
    assert.equal(await metricValue(node.metricsUrl, 'wshub_backplane_connected'), 0);
    assert.ok(!node.stdout.lines.some((text) => text.includes('Backplane connected')));
    const [one, two] = await Promise.all([TestClient.open(node.url), TestClient.open(node.url)]);
    try {
      await one.send('local only');
      assert.equal((await two.next(5_000)).data.toString(), 'local only');
    } finally {
      await Promise.all([one.close(), two.close()]);
    }
  });
});
