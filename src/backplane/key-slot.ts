/**
 * The Redis Cluster hash slot of a key or shard channel (Redis Cluster
 * specification, "Keys distribution model"): CRC16-XMODEM of the key, or of
 * its hash tag (the text between the first `{` and the next `}` when that is
 * not empty), modulo 16384. The driver needs it to know which shard a room's
 * channel lives on before it subscribes there; tests check it against
 * CLUSTER KEYSLOT.
 */
export const SLOT_COUNT = 16384;

const TABLE = new Uint16Array(256);
for (let byte = 0; byte < 256; byte++) {
  let crc = byte << 8;
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  TABLE[byte] = crc;
}

export function keySlot(key: string): number {
  const bytes = Buffer.from(key, 'utf8');
  let start = 0;
  let end = bytes.length;
  const open = bytes.indexOf(0x7b);
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) {
      start = open + 1;
      end = close;
    }
  }
  let crc = 0;
  for (let i = start; i < end; i++) {
    crc = ((crc << 8) & 0xffff) ^ (TABLE[((crc >> 8) ^ (bytes[i] as number)) & 0xff] as number);
  }
  return crc % SLOT_COUNT;
}
