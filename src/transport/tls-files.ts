import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { ErrorCode, UsageError } from '../errors.js';

/** Where the certificate, its key and the optional CA bundle live (`server.tls.*`). */
export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /** '' when there is none. */
  readonly caFile: string;
}

/** A validated certificate/key pair, as read from disk, with what an operator wants to see of it. */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer | undefined;
  readonly subject: string;
  readonly serialNumber: string;
  readonly fingerprint256: string;
  /** Milliseconds since the epoch. */
  readonly validFrom: number;
  readonly validTo: number;
}

/** The names a user knows each file by, so an error points at what to fix. */
const SETTING_NAMES = {
  cert: '--tls-cert-file / server.tls.certFile',
  key: '--tls-key-file / server.tls.keyFile',
  ca: '--tls-ca-file / server.tls.caFile',
} as const;
type Part = keyof typeof SETTING_NAMES;

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----/g;

/**
 * Reads and checks a certificate/key pair the way OpenSSL will use it: every
 * file readable, PEM, parseable, the key belonging to the certificate, and the
 * whole accepted by `tls.createSecureContext`. Any problem is a UsageError that
 * names the flag and YAML key, so startup fails with one line and a reload can
 * log the same line and keep the old pair.
 */
export function loadTlsMaterial(files: TlsFiles, read: (path: string) => Buffer = readFileSync): TlsMaterial {
  const cert = readPart('cert', files.certFile, read);
  const key = readPart('key', files.keyFile, read);
  const ca = files.caFile === '' ? undefined : readPart('ca', files.caFile, read);

  // A combined file (certificate chain and key in one, as HAProxy uses) is fine as certFile.
  const certificates = pemBlocks('cert', files.certFile, cert, 'CERTIFICATE', /PRIVATE KEY$/).map((block) =>
    parseCertificate('cert', files.certFile, block),
  );
  const leaf = certificates[0] as X509Certificate;
  const privateKey = parseKey(files.keyFile, key);
  if (ca !== undefined) {
    for (const block of pemBlocks('ca', files.caFile, ca, 'CERTIFICATE'))
      parseCertificate('ca', files.caFile, block);
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new UsageError(
      ErrorCode.TLS_KEY_MISMATCH,
      `the private key in ${files.keyFile} (${SETTING_NAMES.key}) does not match the certificate in ${files.certFile} (${SETTING_NAMES.cert}, subject ${oneLine(leaf.subject)})`,
    );
  }
  const material: TlsMaterial = {
    cert,
    key,
    ca,
    subject: oneLine(leaf.subject),
    serialNumber: leaf.serialNumber,
    fingerprint256: leaf.fingerprint256,
    validFrom: Date.parse(leaf.validFrom),
    validTo: Date.parse(leaf.validTo),
  };
  try {
    createSecureContext(secureContextOptions(material));
  } catch (error) {
    throw new UsageError(
      ErrorCode.TLS_INVALID_PEM,
      `OpenSSL rejected the certificate ${files.certFile} (${SETTING_NAMES.cert}) with its key${ca ? ' and CA bundle' : ''}: ${(error as Error).message}`,
    );
  }
  return material;
}

export function secureContextOptions(material: TlsMaterial): SecureContextOptions {
  return material.ca === undefined
    ? { cert: material.cert, key: material.key }
    : { cert: material.cert, key: material.key, ca: material.ca };
}

/** One line for logs: subject, serial, expiry and SHA-256 fingerprint. */
export function describeCertificate(material: TlsMaterial): string {
  return `subject ${material.subject}, serial ${material.serialNumber}, expires ${new Date(material.validTo).toISOString()}, sha256 ${material.fingerprint256}`;
}

/** Whether two loads read the same bytes (a directory event that did not touch our files). */
export function sameMaterial(a: TlsMaterial, b: TlsMaterial): boolean {
  return (
    a.cert.equals(b.cert) && a.key.equals(b.key) && (a.ca ?? Buffer.alloc(0)).equals(b.ca ?? Buffer.alloc(0))
  );
}

function readPart(part: Part, path: string, read: (path: string) => Buffer): Buffer {
  try {
    return read(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new UsageError(
        ErrorCode.TLS_FILE_NOT_FOUND,
        `cannot read ${path} (${SETTING_NAMES[part]}): no such file`,
      );
    }
    const why =
      code === 'EISDIR'
        ? 'it is a directory'
        : code === 'EACCES'
          ? 'permission denied'
          : (error as Error).message;
    throw new UsageError(
      ErrorCode.TLS_FILE_UNREADABLE,
      `cannot read ${path} (${SETTING_NAMES[part]}): ${why}`,
    );
  }
}

/** The PEM blocks of the expected type; anything else in the file is an error, not silently skipped. */
function pemBlocks(part: Part, path: string, content: Buffer, type: string, alsoAllowed?: RegExp): string[] {
  const text = content.toString('latin1');
  const blocks = [...text.matchAll(PEM_BLOCK)].filter((block) => !alsoAllowed?.test(block[1] as string));
  if (blocks.length === 0) {
    throw new UsageError(
      ErrorCode.TLS_INVALID_PEM,
      `${path} (${SETTING_NAMES[part]}) is not a PEM file: expected a "-----BEGIN ${type}-----" block`,
    );
  }
  const wrong = blocks.find((block) => block[1] !== type);
  if (wrong) {
    throw new UsageError(
      ErrorCode.TLS_INVALID_PEM,
      `${path} (${SETTING_NAMES[part]}) holds a ${wrong[1]} block where only ${type} blocks belong`,
    );
  }
  return blocks.map((block) => block[0]);
}

function parseCertificate(part: Part, path: string, pem: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (error) {
    throw new UsageError(
      ErrorCode.TLS_INVALID_PEM,
      `${path} (${SETTING_NAMES[part]}) holds a certificate that cannot be parsed: ${(error as Error).message}`,
    );
  }
}

function parseKey(path: string, content: Buffer): KeyObject {
  const text = content.toString('latin1');
  const blocks = [...text.matchAll(PEM_BLOCK)];
  const keyBlocks = blocks.filter((block) => (block[1] as string).endsWith('PRIVATE KEY'));
  if (keyBlocks.length !== 1) {
    const found = blocks.length === 0 ? 'no PEM block' : `${keyBlocks.length} private keys`;
    throw new UsageError(
      ErrorCode.TLS_INVALID_PEM,
      `${path} (${SETTING_NAMES.key}) must hold exactly one "-----BEGIN PRIVATE KEY-----" (or RSA/EC PRIVATE KEY) block; found ${found}`,
    );
  }
  const block = keyBlocks[0] as RegExpMatchArray;
  if (block[1] === 'ENCRYPTED PRIVATE KEY' || /Proc-Type: 4,ENCRYPTED/.test(block[0])) {
    throw new UsageError(
      ErrorCode.TLS_INVALID_PEM,
      `${path} (${SETTING_NAMES.key}) is encrypted; wshub needs an unencrypted key (openssl pkey -in KEY -out PLAIN)`,
    );
  }
  try {
    return createPrivateKey(block[0]);
  } catch (error) {
    throw new UsageError(
      ErrorCode.TLS_INVALID_PEM,
      `${path} (${SETTING_NAMES.key}) holds a private key that cannot be parsed: ${(error as Error).message}`,
    );
  }
}

const oneLine = (subject: string): string => subject.split('\n').join(', ');
