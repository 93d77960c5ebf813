// lib.mjs -- what the browser tests share: a whole local topology, started and
// stopped like tests/lib/cluster.c does it, and headless Debian chromium driven
// by playwright-core (docs/shop.md, "Browser tests").
//
//     const topo = await startTopology();   // $MERIDIAN_BIN up --dir <mkdtemp> --detach
//     const browser = await launchBrowser();
//     ... topo.json.sites, topo.site('Frankfurt').edge.url ...
//     await browser.close(); await topo.stop();   // down, leftovers, sanitizer reports, rm -rf
//
// The topology is always stopped and its directory removed: by stop() (call it
// in a finally), and by the SIGTERM/SIGINT/SIGHUP handler this module installs
// (tests/run.sh's timeout sends SIGTERM), which stops it synchronously and exits.
// MR_TEST_KEEP=1 keeps the directory.  Every timeout is multiplied by
// MR_TEST_TIMEOUT_MULTIPLIER.
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const MULT = Number(process.env.MR_TEST_TIMEOUT_MULTIPLIER || 1) || 1;
export const BIN = process.env.MERIDIAN_BIN || join(ROOT, 'build/asan/meridian');
export const CHROMIUM = process.env.MR_CHROMIUM || '/usr/bin/chromium';

export const ms = (n) => Math.round(n * MULT);

const SANITIZER = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|ERROR: UndefinedBehaviorSanitizer/;

export function log(...a) {
    process.stderr.write(`# ${a.join(' ')}\n`);
}

function run(args, timeout) {
    return new Promise((ok, fail) => {
        execFile(BIN, args, { timeout, killSignal: 'SIGKILL', maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
            if (err) {
                err.message = `\`meridian ${args.join(' ')}\` failed: ${err.message}\n${stdout}${stderr}`;
                fail(err);
            } else {
                ok(stdout);
            }
        });
    });
}

/* Pids of live processes whose command line names dir. */
function processesNaming(dir) {
    const pids = [];
    for (const e of readdirSync('/proc')) {
        if (!/^\d+$/.test(e) || Number(e) === process.pid)
            continue;
        try {
            if (readFileSync(`/proc/${e}/cmdline`, 'latin1').split('\0').some((a) => a.includes(dir)))
                pids.push(Number(e));
        } catch {
            /* gone meanwhile */
        }
    }
    return pids;
}

/* Files in dir/logs with a sanitizer report: "file:line: text" for each. */
function sanitizerReports(dir) {
    const found = [];
    let files = [];
    try {
        files = readdirSync(join(dir, 'logs')).filter((f) => f.endsWith('.log'));
    } catch {
        return found;
    }
    for (const f of files) {
        const lines = readFileSync(join(dir, 'logs', f), 'latin1').split('\n');
        const i = lines.findIndex((l) => SANITIZER.test(l));
        if (i >= 0)
            found.push(`${dir}/logs/${f}:${i + 1}: ${lines[i]}`);
    }
    return found;
}

let live = null; /* the running topology, for the signal handler */

/* down, then SIGKILL whatever still names the directory, then remove it.
 * Synchronous so that the signal handler can use it.  Returns the problems. */
function stopSync(dir) {
    const problems = [];
    if (existsSync(join(dir, 'topology.json'))) {
        try {
            execFileSync(BIN, ['down', dir, '--timeout', `${Math.ceil(ms(30000) / 1000)}s`],
                { stdio: ['ignore', 'ignore', 'pipe'], timeout: ms(40000), killSignal: 'SIGKILL' });
        } catch (e) {
            problems.push(`meridian down ${dir} failed: ${e.message}`);
        }
    }
    const left = processesNaming(dir);
    for (const pid of left) {
        try {
            process.kill(pid, 'SIGKILL');
        } catch {
            /* already gone */
        }
    }
    if (left.length)
        problems.push(`processes left after meridian down (killed): ${left.join(' ')}`);
    problems.push(...sanitizerReports(dir).map((r) => `SANITIZER: ${r}`));
    if (process.env.MR_TEST_KEEP === '1')
        log(`kept ${dir} (MR_TEST_KEEP=1)`);
    else
        rmSync(dir, { recursive: true, force: true });
    return problems;
}

function onSignal(sig) {
    log(`${sig}: stopping the topology`);
    if (live) {
        const dir = live;
        live = null;
        for (const p of stopSync(dir))
            log(p);
    }
    process.exit(128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15 })[sig]);
}
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'])
    process.on(sig, onSignal);

/* Starts the default topology (three regions, their shops, an edge per client
 * site) in a fresh directory.  --latency-scale follows $MERIDIAN_LATENCY_SCALE
 * (default 1: real distances, so a site has one nearest region). */
export async function startTopology() {
    if (!existsSync(BIN))
        throw new Error(`${BIN} does not exist: run \`make build/asan/meridian\` or set MERIDIAN_BIN`);
    const dir = mkdtempSync(join(tmpdir(), 'mr-browser-'));
    live = dir;
    try {
        await run(['up', '--dir', dir, '--detach'], ms(90000));
    } catch (e) {
        live = null;
        for (const p of stopSync(dir))
            log(p);
        throw e;
    }
    const json = JSON.parse(readFileSync(join(dir, 'topology.json'), 'utf8'));
    return {
        dir,
        json,
        site(name) {
            const s = json.sites.find((x) => x.name === name);
            if (!s)
                throw new Error(`no site ${name} in ${dir}/topology.json`);
            return s;
        },
        /* The site's nearest region, or null when every region is as near (scale 0). */
        nearest(name) {
            const lat = Object.entries(this.site(name).latency_ms).sort((a, b) => a[1] - b[1]);
            return lat.length > 1 && lat[0][1] < lat[1][1] ? lat[0][0] : null;
        },
        regions: json.regions.map((r) => r.name),
        /* Stops it (also after a failed test): throws when something was wrong. */
        async stop() {
            if (live !== dir)
                return;
            live = null;
            const problems = stopSync(dir);
            if (problems.length)
                throw new Error(problems.join('\n'));
        },
    };
}

export async function launchBrowser() {
    return chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        /* root in a container: no user namespaces for the sandbox; /dev/shm may be tiny. */
        args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
        timeout: ms(30000),
    });
}

/* On failure: a screenshot and the page's HTML under build/tests/browser/. */
export async function saveFailure(page, name) {
    try {
        const out = join(ROOT, 'build/tests/browser');
        mkdirSync(out, { recursive: true });
        await page.screenshot({ path: join(out, `${name}.png`), fullPage: true, timeout: ms(5000) });
        writeFileSync(join(out, `${name}.html`), await page.content());
        log(`page ${page.url()} saved as ${out}/${name}.{png,html}`);
    } catch (e) {
        log(`could not save the page: ${e.message}`);
    }
}

/* Steps of one journey, each a subtest of t: after a failure the rest are
 * skipped (not piled on), and the failing page is saved as PREFIX-STEP.
 *     const step = stepper(t, 'shop', () => page);
 *     await step('catalog', async () => { ... });                          */
export function stepper(t, prefix, getPage) {
    let failed = false;
    return async function step(name, fn) {
        await t.test(name, { skip: failed && 'an earlier step failed' }, async () => {
            const s = Date.now();
            try {
                await fn();
            } catch (e) {
                failed = true;
                const page = getPage();
                if (page)
                    await saveFailure(page, `${prefix}-${name.replace(/[^a-z0-9]+/gi, '-')}`);
                throw e;
            }
            log(`${name}: ${Date.now() - s} ms`);
        });
    };
}
