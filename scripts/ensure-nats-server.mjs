#!/usr/bin/env node
// Makes sure a nats-server binary is available (Debian's `nats-server` package, 2.9.x). Used before the
// demo and the test suite: installs it with apt when running as root and it is missing; otherwise says how.
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

function executable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
function onPath() {
  return spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' }).stdout.trim();
}

const explicit = process.env.NATS_SERVER_BIN;
if (explicit) {
  if (executable(explicit)) process.exit(0);
  console.error(`NATS_SERVER_BIN=${explicit} is not executable.`);
  process.exit(1);
}
if (onPath()) process.exit(0);

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const hasApt = spawnSync('sh', ['-c', 'command -v apt-get'], { encoding: 'utf8' }).stdout.trim() !== '';
if (isRoot && hasApt) {
  console.error('nats-server is missing: installing Debian package nats-server with apt-get …');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'ignore', 'inherit'], env });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'nats-server'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env,
  });
  if (onPath()) process.exit(0);
}
console.error(
  'nats-server is required and was not found.\n' +
    '  Debian/Ubuntu: sudo apt-get install nats-server\n' +
    '  Elsewhere: install nats-server 2.9+ (https://github.com/nats-io/nats-server/releases) and put it on PATH,\n' +
    '  or set NATS_SERVER_BIN=/path/to/nats-server.',
);
process.exit(1);
