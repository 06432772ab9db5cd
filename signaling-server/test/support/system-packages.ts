// The programs from Debian packages that some tests start: Chromium (the browser tests), coturn's
// turnserver (the TURN test) and HAProxy (clients behind a load balancer). The global setup installs
// the missing ones once with apt-get, so `npm test` passes by itself on a fresh Debian machine run
// as root (CI); elsewhere it says what to install, and the tests that need a program say it again.
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

export interface SystemProgram {
  /** The Debian package that ships it. */
  package: string;
  /** Where it is looked for unless `envVar` names another path. */
  defaultPath: string;
  envVar: string;
  usedBy: string;
}

export const SYSTEM_PROGRAMS = {
  chromium: {
    package: 'chromium',
    defaultPath: '/usr/bin/chromium',
    envVar: 'CHROMIUM_PATH',
    usedBy: 'the browser tests',
  },
  turnserver: {
    package: 'coturn',
    defaultPath: '/usr/bin/turnserver',
    envVar: 'TURNSERVER_PATH',
    usedBy: 'the TURN test',
  },
  haproxy: {
    package: 'haproxy',
    defaultPath: '/usr/sbin/haproxy',
    envVar: 'HAPROXY_PATH',
    usedBy: 'the tests of clients behind HAProxy',
  },
} satisfies Record<string, SystemProgram>;

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function pathOf(program: SystemProgram, env: NodeJS.ProcessEnv): string {
  return env[program.envVar] || program.defaultPath;
}

/** Where the program is; throws what to install when it is not there. */
export function systemProgramPath(program: SystemProgram, env: NodeJS.ProcessEnv = process.env): string {
  const path = pathOf(program, env);
  if (isExecutable(path)) return path;
  throw new Error(
    `${path} is not there (${program.usedBy} start it): it comes with Debian's ${program.package} package, which ` +
      `npm test installs when run as root on Debian; otherwise run \`apt-get install ${program.package}\` ` +
      `or set ${program.envVar} to where the program is.`,
  );
}

/** The programs that are missing from their default path, with no override to look elsewhere. */
export function missingSystemPrograms(env: NodeJS.ProcessEnv = process.env): SystemProgram[] {
  return Object.values(SYSTEM_PROGRAMS).filter((p) => !env[p.envVar] && !isExecutable(p.defaultPath));
}

function run(command: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

/**
 * Installs the packages of the missing programs with apt-get (root only). Where that is not
 * possible it warns and returns, so the tests that need no such program still run; a failed
 * installation throws with apt-get's own words.
 */
export async function installMissingSystemPackages(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const missing = missingSystemPrograms(env);
  if (missing.length === 0) return;
  const packages = missing.map((p) => p.package);
  const canInstall = process.getuid?.() === 0 && isExecutable('/usr/bin/apt-get');
  if (!canInstall) {
    process.stderr.write(
      `\nMissing Debian packages ${packages.join(', ')} (for ${missing.map((p) => p.usedBy).join(', ')}), ` +
        `which only root on Debian can install here: run \`apt-get install ${packages.join(' ')}\`; ` +
        `until then those tests fail.\n`,
    );
    return;
  }
  process.stderr.write(
    `\nInstalling Debian packages ${packages.join(', ')} for ${missing.map((p) => p.usedBy).join(', ')} (once)\n`,
  );
  // Several test runs on one machine may reach here together: wait for dpkg's lock, not fail on it.
  const lock = ['-o', 'DPkg::Lock::Timeout=300'];
  for (const args of [
    [...lock, 'update', '-qq'],
    [...lock, 'install', '-y', '-qq', ...packages],
  ]) {
    const { code, output } = await run('/usr/bin/apt-get', args);
    if (code !== 0)
      throw new Error(`apt-get ${args.slice(lock.length).join(' ')} failed (exit ${code}):\n${output.slice(-4000)}`);
  }
  for (const program of missing) systemProgramPath(program, env);
}
