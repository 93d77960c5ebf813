// shop.test.mjs -- a shopper in Frankfurt, in headless chromium (docs/shop.md, "Browser tests").
//
// Starts the default topology ($MERIDIAN_BIN up --dir <mkdtemp> --detach: three
// regions, a shop per region, an edge per client site) and, through the
// Frankfurt site's edge only, as a person would with the shop's plain forms:
// opens the catalog, searches, opens a product, adds it to the cart, changes
// the quantity, places the order, finds it in the order history, sees the cart
// empty and the product's live stock (the page's polling script) go down.
// Every page must say which region served it, the same region as the answer's
// Meridian-Region header, through the Frankfurt edge (Via), and, with real
// distances (MERIDIAN_LATENCY_SCALE unset or > 0), the site's nearest region.
//
//     cd tests/browser && npm ci && node shop.test.mjs     # or: tests/browser/run.sh
import test from 'node:test';
import assert from 'node:assert/strict';
import { startTopology, launchBrowser, stepper, ms, log } from './lib.mjs';

const SITE = 'Frankfurt';
const QUERY = 'Lamp';
const QTY = 3;

/* "$139.99" -> 13999: the shop's USD format (shop__money). */
function cents(text) {
    const m = /^\$(\d+)\.(\d\d)$/.exec(text.trim());
    assert.ok(m, `not a USD amount: ${JSON.stringify(text)}`);
    return Number(m[1]) * 100 + Number(m[2]);
}

/* Waits for an HTTP endpoint of the edge to be served by the site's nearest
 * region: the edge is ready once any region is healthy, and learns the
 * distances from its first probes. */
async function waitForNearest(edge, region) {
    const until = Date.now() + ms(15000);
    let last = '';
    while (Date.now() < until) {
        try {
            const r = await fetch(`${edge}/api/cart/items`);
            last = r.headers.get('meridian-region');
            if (r.status === 200 && last === region)
                return;
        } catch (e) {
            last = e.message;
        }
        await new Promise((ok) => setTimeout(ok, 100));
    }
    assert.fail(`the ${SITE} edge ${edge} never routed to its nearest region ${region} (last: ${last})`);
}

test(`a shopper in ${SITE} browses, adds to cart, checks out, sees the order in the history`, async (t) => {
    const t0 = Date.now();
    const topo = await startTopology();
    log(`topology up in ${Date.now() - t0} ms: ${topo.dir}`);
    let browser = null, page = null;
    const pageErrors = [];
    const edge = topo.site(SITE).edge.url;
    const nearest = topo.nearest(SITE);

    const step = stepper(t, 'shop', () => page);

    /* The page names the region that served it, the one the edge says answered. */
    async function served(resp, want) {
        const h = resp.headers();
        const region = h['meridian-region'];
        assert.equal(resp.status(), want ?? 200, `${resp.url()}: status`);
        assert.ok(topo.regions.includes(region), `${resp.url()}: Meridian-Region ${region} is not a region`);
        assert.match(h.via ?? '', new RegExp(`\\b${SITE}\\b`), `${resp.url()}: not through the ${SITE} edge`);
        assert.equal(await page.locator('#served-by').textContent(), `served by region ${region}`);
        assert.match(await page.locator('footer').textContent(), new RegExp(`This page: region ${region}\\.`));
        if (nearest)
            assert.equal(region, nearest, `${resp.url()}: a ${SITE} shopper is served by the nearest region`);
        return region;
    }

    /* Clicks and waits for the page it leads to (after the shop's 303, if any). */
    async function follow(locator, path) {
        const resp = page.waitForResponse((r) => r.request().isNavigationRequest() &&
            r.request().frame() === page.mainFrame() && r.status() !== 303 && new URL(r.url()).pathname === path);
        await locator.click();
        const r = await resp;
        await page.waitForLoadState('load');
        return r;
    }

    try {
        if (nearest)
            await waitForNearest(edge, nearest);
        browser = await launchBrowser();
        const context = await browser.newContext();
        page = await context.newPage();
        page.setDefaultTimeout(ms(15000));
        page.on('pageerror', (e) => pageErrors.push(`${page.url()}: ${e.message}`));
        log(`chromium ${browser.version()} up at ${Date.now() - t0} ms; ${SITE} edge ${edge}, nearest ${nearest ?? '(none: latency scale 0)'}`);

        let product, stockBefore, ref, lineTotal;

        await step('catalog', async () => {
            await served(await page.goto(`${edge}/`));
            assert.equal(await page.locator('h1').textContent(), 'Catalog');
            assert.equal(await page.locator('main p.muted').first().textContent(), '300 products; prices in USD.');
            assert.equal(await page.locator('.grid .card').count(), 24);
        });

        await step('search', async () => {
            await page.locator('input[name=q]').fill(QUERY);
            const resp = await follow(page.getByRole('button', { name: 'Search' }), '/');
            await served(resp);
            assert.equal(new URL(page.url()).searchParams.get('q'), QUERY);
            assert.equal(await page.locator('input[name=q]').inputValue(), QUERY);
            const m = /^(\d+) products matching \u201c(.*)\u201d; prices in USD\.$/.exec(
                await page.locator('main p.muted').first().textContent());
            assert.ok(m, 'the result count and the query are shown');
            assert.equal(m[2], QUERY);
            const total = Number(m[1]);
            assert.ok(total > 0 && total < 300, `${total} results`);
            const cards = await page.$$eval('.grid .card', (cs) => cs.map((c) => ({
                href: c.querySelector('a').getAttribute('href'),
                name: c.querySelector('strong').textContent,
                price: c.querySelector('.price').textContent,
                stock: parseInt(c.querySelector('span.muted').textContent, 10),
            })));
            assert.equal(cards.length, Math.min(total, 24));
            for (const c of cards)
                assert.match(c.name, new RegExp(QUERY, 'i'), 'every result matches the search');
            product = cards.find((c) => c.stock >= QTY + 2);
            assert.ok(product, `a result with at least ${QTY + 2} in stock`);
        });

        await step('product page', async () => {
            const resp = await follow(page.locator(`.grid a[href="${product.href}"]`), product.href);
            await served(resp);
            assert.equal(await page.locator('h1').textContent(), product.name);
            assert.equal(await page.locator('main p.price').textContent(), product.price);
            stockBefore = Number(await page.locator('#stock').textContent());
            assert.ok(stockBefore >= QTY, `stock ${stockBefore}`);
        });

        await step('add to cart', async () => {
            await page.locator('form[action="/cart/add"] input[name=qty]').fill('1');
            const resp = await follow(page.getByRole('button', { name: 'Add to cart' }), '/cart');
            await served(resp);
            assert.equal(await page.locator('h1').textContent(), 'Your cart');
            const row = page.locator('table tr', { has: page.locator(`a[href="${product.href}"]`) });
            assert.equal(await row.count(), 1, 'one line for the product');
            assert.equal(await row.locator('a').textContent(), product.name);
            assert.equal(await row.locator('input[name=quantity]').inputValue(), '1');
            assert.equal(await row.locator('td.num').last().textContent(), product.price);
        });

        await step('change quantity', async () => {
            const row = page.locator('table tr', { has: page.locator(`a[href="${product.href}"]`) });
            await row.locator('input[name=quantity]').fill(String(QTY));
            const resp = await follow(row.getByRole('button', { name: 'update' }), '/cart');
            await served(resp);
            const again = page.locator('table tr', { has: page.locator(`a[href="${product.href}"]`) });
            assert.equal(await again.locator('input[name=quantity]').inputValue(), String(QTY));
            lineTotal = cents(await again.locator('td.num').last().textContent());
            assert.equal(lineTotal, QTY * cents(product.price), 'line total = quantity x price');
            assert.equal(cents(await page.locator('table tr:last-child th.num').textContent()), lineTotal, 'cart total');
        });

        await step('checkout', async () => {
            const resp = await follow(page.getByRole('button', { name: 'Place order' }), '/checkout');
            await served(resp);
            assert.equal(resp.request().method(), 'POST');
            assert.match(await page.locator('h1').textContent(), /^Thank you: order M-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4} is placed$/);
            ref = await page.locator('#order-ref').textContent();
            assert.match(ref, /^M-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}$/, 'the order ref');
            const p = await page.locator('.msg.ok p').textContent();
            assert.ok(p.startsWith(`Total $${(lineTotal / 100).toFixed(2)}, committed in the global database`), p);
            assert.ok(!p.includes('already placed'), 'a first order, not a replay');
            assert.deepEqual(await page.locator('main ul li').allTextContents(), [`${QTY} \u00d7 ${product.href.slice(10)}`]);
        });

        await step('order history', async () => {
            const resp = await follow(page.locator('main a[href="/orders"]'), '/orders');
            const region = await served(resp);
            assert.equal(await page.locator('h1').textContent(), 'Your orders');
            const orders = page.locator('main .card');
            assert.equal(await orders.count(), 1, 'exactly one order');
            assert.equal(await orders.locator('strong.order').textContent(), ref, 'the order ref');
            assert.match(await orders.locator('span.muted').textContent(), new RegExp(`, placed in ${region}$`));
            assert.equal(cents(await orders.locator('span.price').textContent()), lineTotal);
            assert.deepEqual(await orders.locator('li').allTextContents(), [`${QTY} \u00d7 ${product.name}`]);
        });

        await step('cart emptied', async () => {
            await served(await page.goto(`${edge}/cart`));
            assert.equal(await page.locator('main p').first().textContent(), 'Your cart is empty. Browse the catalog.');
        });

        await step('live stock', async () => {
            /* The page itself may come from the edge's cache (10 s); its script
             * polls the strong stock read every 5 s and must show the order. */
            await served(await page.goto(`${edge}${product.href}`));
            const want = String(stockBefore - QTY);
            await page.waitForFunction((w) => document.getElementById('stock').textContent === w, want,
                { timeout: ms(15000) });
        });

        await step('no script errors', async () => {
            assert.deepEqual(pageErrors, []);
        });
    } finally {
        if (browser)
            await browser.close().catch((e) => log(`closing chromium: ${e.message}`));
        await topo.stop();
        log(`done in ${Date.now() - t0} ms`);
    }
});
