import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { keySlot } from '../src/backplane/key-slot.js';
import { roomChannel } from '../src/backplane/room-keys.js';
import { makeCertificate, makeTempDir, requireOpenssl } from './helpers/certs.js';
import { TestClient } from './helpers/clients.js';
import { waitForMetric } from './helpers/metrics.js';
import { RedisClusterFixture } from './helpers/redis-cluster.js';
import { type SpawnedServer, spawnServer } from './helpers/server.js';

/**
 * Issue 18: `rediss-cluster://`, a Redis Cluster serving TLS only (tls-port, tls-cluster,
 * tls-replication) with a certificate from a private CA, which the nodes trust through
 * NODE_EXTRA_CA_CERTS (README: Scaling out). The slot map names masters by address, and each is
 * reached over TLS, its certificate verified.
 */
describe('backplane: Redis Cluster over TLS (rediss-cluster://)', () => {
  const certs = makeTempDir('wshub-redis-cluster-tls-');
  let cluster: RedisClusterFixture;
  let caFile: string;
  const nodes: SpawnedServer[] = [];
  const clients: TestClient[] = [];
  before(async () => {
    requireOpenssl();
    const ca = makeCertificate(certs.dir, 'ca', { ca: true, cn: 'wshub test CA' });
    const server = makeCertificate(certs.dir, 'redis', { issuer: ca });
    caFile = ca.certFile;
    cluster = await RedisClusterFixture.start({
      masters: 3,
      replicas: 0,
      tls: { certFile: server.certFile, keyFile: server.keyFile, caFile },
    });
  });
  after(async () => {
    await Promise.all(clients.map((client) => client.close().catch(() => {})));
    for (const node of nodes) node.kill('SIGKILL');
    await cluster?.stop();
    certs.cleanup();
  });

  it('two nodes trusting the CA join every shard over TLS; a room on each shard crosses them', async () => {
    assert.match(cluster.url, /^rediss-cluster:\/\//);
    for (let i = 0; i < 2; i++) {
      const node = await spawnServer(
        ['--mode=broadcast', '--stats-interval=0', `--backplane=${cluster.url}`],
        { NODE_EXTRA_CA_CERTS: caFile },
      );
      nodes.push(node);
      await node.stdout.waitFor(/Backplane connected to rediss-cluster:\/\/\S+ \(3 shards\)/, 30_000);
    }
    const [a, b] = nodes as [SpawnedServer, SpawnedServer];
    // One room per shard.
    const rooms: string[] = [];
    for (const shard of await cluster.shards()) {
      for (let i = 0; ; i++) {
        const slot = keySlot(roomChannel('wshub', `tls-${i}`));
        if (!shard.ranges.some(([from, to]) => slot >= from && slot <= to)) continue;
        rooms.push(`tls-${i}`);
        break;
      }
    }
    assert.equal(rooms.length, 3);
    for (const room of rooms) {
      const [sender, receiver] = await Promise.all([
        TestClient.open(`ws://127.0.0.1:${a.port}/ws/${room}`),
        TestClient.open(`ws://127.0.0.1:${b.port}/ws/${room}`),
      ]);
      clients.push(sender, receiver);
    }
    await waitForMetric(b.metricsUrl, 'wshub_backplane_subscribed_rooms', 3);
    for (const [index, room] of rooms.entries()) {
      const sender = clients[2 * index] as TestClient;
      const receiver = clients[2 * index + 1] as TestClient;
      await sender.send(`over tls to ${room}`);
      assert.equal((await receiver.next(10_000)).data.toString(), `over tls to ${room}`);
    }
    assert.equal(await waitForMetric(a.metricsUrl, 'wshub_backplane_connected', 1), 1);
  });
});
