import { SignJWT } from 'jose';
import { flag, flagsHelp, parseFlags } from '../config/args.js';
import { duration, oneOf, text } from '../config/kinds.js';
import { ErrorCode, UsageError } from '../errors.js';
import { loadSecretKey } from './keys.js';
import { isValidRoomPattern } from './patterns.js';

export interface TokenCommandIO {
  readonly stdout: { write(text: string): unknown };
}

const HMAC = ['HS256', 'HS384', 'HS512'] as const;

/** One table (src/config/args.ts): parsing, validation and --help come from it. */
export const TOKEN_FLAGS = {
  'secret-file': flag({
    kind: { ...text({ allowEmpty: true }), hint: '<path>' },
    default: '',
    doc: 'The HMAC secret (the file the server reads with --auth-jwt-secret-file); required',
  }),
  sub: flag({
    kind: { ...text({ allowEmpty: true }), hint: '<user>' },
    default: '',
    doc: 'The user ("sub"); --max-connections-per-user counts by it; required',
  }),
  rooms: flag({
    kind: { ...text({ allowEmpty: true }), hint: '<a,b,...>' },
    default: '',
    emptyAllowed: true,
    doc: 'Room patterns the token may join ("rooms"): chat.*, * (every room); the default room /ws is the empty pattern, written --rooms= (absent: none)',
  }),
  publish: flag({
    kind: { ...text({ allowEmpty: true }), hint: '<a,b,...>' },
    default: '',
    emptyAllowed: true,
    doc: 'Room patterns it may send to ("publish"); absent: receive-only',
  }),
  ttl: flag({
    kind: duration(1000, 366 * 24 * 3600_000),
    default: 3600_000,
    doc: 'Lifetime ("exp"), e.g. 15m, 24h',
  }),
  issuer: flag({ kind: text(), default: '', doc: '"iss" (match --auth-jwt-issuer)' }),
  audience: flag({ kind: text(), default: '', doc: '"aud" (match --auth-jwt-audience)' }),
  alg: flag({ kind: oneOf(HMAC), default: 'HS256' as (typeof HMAC)[number], doc: 'Signature algorithm' }),
} as const;

export function tokenHelpText(): string {
  return [
    'Usage: wshub token --secret-file=FILE --sub=USER [flags]',
    '',
    'Prints an HS256 JWT signed with the secret of --auth-jwt-secret-file, for tests and',
    'quick starts (in production the application backend or identity provider issues tokens).',
    '',
    'Flags:',
    ...flagsHelp(TOKEN_FLAGS),
    '',
    'Example:',
    '  openssl rand -base64 48 > secret',
    '  wshub --mode=broadcast --auth=jwt --auth-jwt-secret-file=secret &',
    "  wshub client --token=$(wshub token --secret-file=secret --sub=alice --rooms='chat.*' --publish='chat.*') ws://127.0.0.1:3003/ws/chat.en",
    '',
  ].join('\n');
}

/** A comma-separated list of room patterns; an empty item names the default room. */
function patternList(value: string, flagName: string): string[] {
  const patterns = value === '' ? [''] : value.split(',').map((part) => part.trim());
  const unique = [...new Set(patterns)];
  const invalid = unique.find((pattern) => !isValidRoomPattern(pattern));
  if (invalid !== undefined) {
    throw new UsageError(
      ErrorCode.INVALID_VALUE,
      `invalid value for --${flagName}: ${JSON.stringify(invalid)}; expected room patterns of up to 64 of A-Z a-z 0-9 . _ - *, comma-separated`,
    );
  }
  return unique;
}

/** `wshub token …`: prints one token; usage errors are thrown (exit 2). */
export async function tokenCommand(argv: readonly string[], io: TokenCommandIO): Promise<number> {
  const { values, given, help } = parseFlags(argv, TOKEN_FLAGS, 'wshub token');
  if (help) {
    io.stdout.write(tokenHelpText());
    return 0;
  }
  for (const required of ['secret-file', 'sub'] as const) {
    if (values[required] === '') {
      throw new UsageError(
        ErrorCode.MISSING_SETTING,
        `wshub token needs --${required} (see wshub token --help)`,
      );
    }
  }
  const secret = loadSecretKey(values['secret-file'], '--secret-file');
  if (!secret.algorithms.includes(values.alg)) {
    throw new UsageError(
      ErrorCode.INVALID_VALUE,
      `invalid value for --alg: ${JSON.stringify(values.alg)}; with this secret it can be ${secret.algorithms.join(', ')}`,
    );
  }
  const claims: Record<string, unknown> = {};
  if (given.has('rooms')) claims.rooms = patternList(values.rooms, 'rooms');
  if (given.has('publish')) claims.publish = patternList(values.publish, 'publish');
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: values.alg, typ: 'JWT' })
    .setSubject(values.sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor((Date.now() + values.ttl) / 1000));
  if (values.issuer !== '') jwt.setIssuer(values.issuer);
  if (values.audience !== '') jwt.setAudience(values.audience);
  io.stdout.write(`${await jwt.sign(secret.key)}\n`);
  return 0;
}
