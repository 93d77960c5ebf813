// dashboard.test.mjs -- the operations dashboard in headless chromium
// (docs/dashboard.md; docs/shop.md, "Browser tests").
//
// Starts the default topology, checks that the dashboard refuses a browser
// without the token and keeps it in a cookie after /dashboard?token=, then
// opens GET /dashboard on every region's node
// (topology.json regions[].node.url): each page must render, from its own
// node only, every region (table and diagram, healthy, with the etcd leader
// named), the edges and the charts; then, while shoppers' requests go through
// the Frankfurt edge, the charts must update without a reload and show that
// traffic on the region the Frankfurt edge routes to.
//
//     cd tests/browser && npm ci && node dashboard.test.mjs
import test from 'node:test';
import assert from 'node:assert/strict';
import { startTopology, launchBrowser, stepper, ms, log } from './lib.mjs';

const SITE = 'Frankfurt';

test('the dashboard renders every region and updates its charts', async (t) => {
    const t0 = Date.now();
    const topo = await startTopology();
    log(`topology up in ${Date.now() - t0} ms: ${topo.dir}`);
    let browser = null, page = null;
    const pageErrors = [], foreign = [];
    const step = stepper(t, 'dashboard', () => page);
    const regions = topo.json.regions;
    const sites = topo.json.sites.map((s) => s.name);

    /* The text of the cells of the #ID table's rows, as arrays. */
    const rows = (id) => page.$$eval(`#${id} table tr`, (trs) =>
        trs.slice(1).map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));

    try {
        browser = await launchBrowser();
        /* The nodes are https:// with a certificate of the run's throw-away CA
         * (docs/topology.md "TLS"), which chromium's store does not hold; the
         * dashboard needs no client certificate, but a read token, which
         * /dashboard?token= keeps in a cookie (one for every port of the
         * host: cookies ignore ports, so every node's page gets it). */
        const context = await browser.newContext({ ignoreHTTPSErrors: true });
        page = await context.newPage();
        page.setDefaultTimeout(ms(15000));
        page.on('pageerror', (e) => pageErrors.push(`${page.url()}: ${e.message}`));
        /* Everything the page loads comes from the node that served it. */
        page.on('request', (r) => {
            if (!r.isNavigationRequest() && !r.url().startsWith('data:') &&
                new URL(r.url()).origin !== new URL(r.frame().url()).origin)
                foreign.push(`${r.frame().url()} loaded ${r.url()}`);
        });

        await step('the dashboard needs a read token; ?token= leaves it in a cookie only', async () => {
            const first = regions[0].node.url;
            const bare = await page.goto(`${first}/dashboard`);
            assert.equal(bare.status(), 401);
            assert.match(await page.locator('h1').textContent(), /needs a token/);
            const wrong = await page.goto(`${first}/dashboard?token=mrt_not-a-token-of-this-cluster`);
            assert.equal(wrong.status(), 401);
            /* The run's admin token (topology.json "auth"), as `meridian up` prints the link. */
            const ok = await page.goto(`${first}/dashboard?token=${topo.json.auth.token}`);
            assert.equal(ok.status(), 200);
            assert.equal(new URL(page.url()).search, '', 'the token left the address bar');
            const cookie = (await page.context().cookies(first)).find((c) => c.name === 'meridian_auth');
            assert.ok(cookie && cookie.httpOnly && cookie.sameSite === 'Strict', 'an HttpOnly, SameSite=Strict cookie');
        });

        for (const r of regions) {
            await step(`${r.name}'s node renders every region`, async () => {
                const resp = await page.goto(`${r.node.url}/dashboard`);
                assert.equal(resp.status(), 200);
                assert.match(resp.headers()['content-type'], /^text\/html/);
                /* Rendered by the page's script from its first poll of this node. */
                await page.waitForFunction((name) => document.getElementById('self').textContent === name, r.name);
                /* Every region healthy: the other nodes are polled once a second. */
                await page.waitForFunction((n) => {
                    const tr = [...document.querySelectorAll('#regions table tr')].slice(1);
                    return tr.length === n && tr.every((x) => x.children[1].textContent === 'healthy');
                }, regions.length);
                const table = await rows('regions');
                assert.deepEqual(table.map((c) => c[0].replace(' (this node)', '')).sort(),
                    regions.map((x) => x.name).sort(), 'one row per region');
                assert.equal(table.filter((c) => c[0].endsWith(' (this node)')).length, 1);
                assert.ok(table.find((c) => c[0] === `${r.name} (this node)`), 'this node marked');
                /* One etcd leader, the same in the header and the table (the peers'
                 * roles come from their last status: wait for them to agree). */
                await page.waitForFunction(() => {
                    const leader = document.getElementById('leader').textContent;
                    const l = [...document.querySelectorAll('#regions table tr')].slice(1)
                        .filter((x) => x.children[2].textContent === 'leader');
                    return l.length === 1 && l[0].children[0].textContent.replace(' (this node)', '') === leader;
                });
                const leader = await page.locator('#leader').textContent();
                assert.ok(regions.some((x) => x.name === leader), `etcd leader ${leader}`);
                const diagram = await page.locator('#diagram svg').textContent();
                for (const x of regions)
                    assert.ok(diagram.includes(x.name), `the diagram shows ${x.name}`);
                const edges = await rows('edges');
                assert.equal(edges.length, sites.length, 'one row per edge');
                const links = (await rows('links')).map((c) => c[0]);
                for (const l of topo.json.links)
                    assert.ok(links.includes(l.name), `WAN link ${l.name} shown`);
                assert.ok(await page.locator('#charts .chart svg').count() >= 4, 'the charts are drawn');
                assert.equal(await page.locator('#stale').textContent(), '');
            });
        }

        await step(`charts update live with ${SITE}'s traffic`, async () => {
            /* Catalog searches through the Frankfurt edge, each for a new text so
             * that the edge's cache cannot answer: every one is a read on the node
             * of the region the edge routes to. */
            const edge = topo.site(SITE).edge.url;
            let n = 0;
            const search = async () => {
                const r = await fetch(`${edge}/api/products?q=${Date.now()}-${n++}`);
                await r.arrayBuffer();
                assert.equal(r.status, 200);
                return r.headers.get('meridian-region');
            };
            const target = await search();
            const node = regions.find((x) => x.name === target).node.url;
            await page.goto(`${node}/dashboard`);
            await page.waitForFunction((name) => document.getElementById('self').textContent === name, target);
            /* What the per-region request rate chart shows: its legend names
             * each region with its last sample ("REGION: N.N"), and its longest
             * line has one point per sample of the history. */
            const rpsChart = () => page.evaluate((name) => {
                const c = [...document.querySelectorAll('#charts .chart')]
                    .find((x) => x.querySelector('h3').textContent.startsWith('Requests per second, per region'));
                if (!c)
                    return null;
                const s = [...c.querySelectorAll('.legend span')].find((x) => x.textContent.startsWith(`${name}:`));
                const pts = [...c.querySelectorAll('path')].map((x) => (x.getAttribute('d').match(/[ML]/g) || []).length);
                return { last: s ? Number(s.textContent.slice(name.length + 1)) : null, points: Math.max(0, ...pts) };
            }, target);
            const before = await rpsChart();
            assert.ok(before && before.last !== null, `the request rate chart has a line for ${target}`);
            let stop = false, sent = 0, failure = null, after = before;
            const worker = async () => {
                while (!stop) {
                    await search();
                    sent++;
                    await new Promise((ok) => setTimeout(ok, 10));
                }
            };
            const load = Promise.all([worker(), worker()]).catch((e) => { failure = e; });
            try {
                /* Redrawn without a reload, with the traffic (tens of requests a second). */
                const until = Date.now() + ms(15000);
                while (Date.now() < until && !failure) {
                    after = await rpsChart();
                    if (after.points > before.points && after.last >= before.last + 5)
                        break;
                    await new Promise((ok) => setTimeout(ok, 200));
                }
            } finally {
                stop = true;
                await load;
            }
            if (failure)
                throw failure;
            log(`${sent} requests through the ${SITE} edge; ${target}'s request rate ${before.last} -> ${after.last}/s, ` +
                `${before.points} -> ${after.points} points`);
            assert.ok(after.points > before.points, `the chart grew: ${before.points} -> ${after.points} points`);
            assert.ok(after.last >= before.last + 5, `${target}'s request rate rose: ${before.last} -> ${after.last}/s`);
            assert.match(await page.locator('#updated').textContent(), /^\d+ s ago$/);
            assert.equal(await page.locator('#stale').textContent(), '');
        });

        await step('no script errors, nothing fetched elsewhere', async () => {
            assert.deepEqual(pageErrors, []);
            assert.deepEqual(foreign, []);
        });
    } finally {
        if (browser)
            await browser.close().catch((e) => log(`closing chromium: ${e.message}`));
        await topo.stop();
        log(`done in ${Date.now() - t0} ms`);
    }
});
