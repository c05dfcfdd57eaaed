'use strict';
/* driver.js - Fastly's own tools against a running edgekv (started by tests/compat/run.sh).
 *
 * Two flows, each: create a store, put with metadata, get (value, metadata, generation as the
 * tool reports them), list keys, delete a key, delete the store:
 *   1. the official `fastly` JavaScript client (npm `fastly`), unchanged: its generated methods
 *      ignore `basePath`, so a superagent plugin rewrites https://api.fastly.com to edgekv;
 *   2. the Fastly CLI (npm `@fastly/cli-linux-x64`), unchanged: FASTLY_API_ENDPOINT points at
 *      edgekv; FASTLY_ACCOUNT_ENDPOINT at a small server in this process that answers the
 *      OpenID discovery document the CLI fetches before every command. The same server is the
 *      CLI's HTTP(S) proxy and refuses every CONNECT, so the CLI's update check (to a Fastly
 *      host) never leaves the machine; loopback addresses are never proxied.
 * A third flow links a store to the service with the JavaScript client's ResourceApi, lists
 * and describes the link with the CLI, and reads through the edge path /kv/{link}/{key}.
 *
 * Environment: EKV_URL (http://127.0.0.1:PORT, or https://127.0.0.1:PORT for edgekv's
 * tls-listen: then NODE_EXTRA_CA_CERTS makes node trust the test CA, and SSL_CERT_FILE, passed
 * on to the CLI, makes it trust the same), EKV_TOKEN (an api-token of that edgekv),
 * EKV_SERVICE_ID (its service-id), EKV_COMPAT_TMP (a private scratch directory), NODE_PATH
 * (where the npm packages are), EKV_TESTS_REQUIRED (1: a tool that is not installed is a
 * failure, not a skip).
 * Prints one line per check ("ok: ..." / "FAIL: ..." with the HTTP exchanges or the CLI output,
 * for the record), then "compat: Checks: N, Failures: N, Errors: N" (the format of Check's
 * summary, which contrib/quickstart.sh counts). Exit status 0 if every check passed, 77 if no
 * tool was installed (and that is allowed), else 1. */

const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const path = require('node:path');

const BASE = must('EKV_URL');
const TOKEN = must('EKV_TOKEN');
const TMP = must('EKV_COMPAT_TMP');
const SERVICE = must('EKV_SERVICE_ID'); /* edgekv's --service-id: /kv/{link}/ resolves its links */
const REQUIRED = process.env.EKV_TESTS_REQUIRED === '1';
const FASTLY_API = 'https://api.fastly.com';

let checks = 0;
let failures = 0;
let errors = 0;

function must(name) {
    const v = process.env[name];
    if (!v) {
        console.log(`FAIL: ${name} is not set (run tests/compat/run.sh)`);
        process.exit(1);
    }
    return v;
}

class FlowAborted extends Error {}

/* Runs one check of a flow. A failed check ends its flow (the later steps depend on it). */
async function check(name, fn, explain) {
    checks++;
    try {
        await fn();
        console.log(`ok: ${name}`);
    } catch (e) {
        failures++;
        console.log(`FAIL: ${name}: ${describeError(e)}`);
        if (explain)
            await explain();
        throw new FlowAborted(name);
    }
}

/* Runs a flow; an unexpected exception (not a failed check) counts as an error. */
async function flow(name, fn) {
    try {
        await fn();
    } catch (e) {
        if (e instanceof FlowAborted) {
            console.log(`${name}: the rest of the flow was not run`);
        } else {
            errors++;
            console.log(`ERROR: ${name}: ${describeError(e)}`);
        }
    }
}

function describeError(e) {
    if (e instanceof assert.AssertionError)
        return e.message.split('\n').slice(0, 12).join('\n    ');
    if (e && e.status !== undefined) /* a rejection of the fastly client */
        return `HTTP ${e.status}: ${e.error ? e.error.message : ''}`;
    return e && e.stack ? e.stack : String(e);
}

function skipOrFail(why) {
    if (REQUIRED) {
        checks++;
        failures++;
        console.log(`FAIL: ${why} (EKV_TESTS_REQUIRED=1)`);
    } else {
        console.log(`SKIP: ${why}`);
    }
}

/* ------------------------------------------------------------ the JavaScript client */

/* Every exchange of the client, for the failure reports. */
const exchanges = [];

function showExchanges(from) {
    return () => {
        for (const x of exchanges.slice(from))
            console.log(`    ${x}`);
    };
}

/* The superagent plugin: send to edgekv instead of api.fastly.com, and record the exchange. */
function toEdgekv(req) {
    assert.ok(req.url.startsWith(FASTLY_API), `unexpected URL ${req.url}`);
    req.url = BASE + req.url.slice(FASTLY_API.length);
    req.on('response', (res) => {
        const hdrs = Object.entries(res.headers).map(([k, v]) => `${k}: ${v}`).join(', ');
        let body = res.text !== undefined ? res.text : (Buffer.isBuffer(res.body) ? res.body.toString('latin1') : '');
        if (body.length > 300)
            body = body.slice(0, 300) + '...';
        const reqHdrs = Object.entries(req.header || {})
            .map(([k, v]) => `${k}: ${k.toLowerCase() === 'fastly-key' ? '(token)' : v}`).join(', ');
        exchanges.push(`${req.method} ${req.url} [${reqHdrs}] -> ${res.status} [${hdrs}] ${JSON.stringify(body)}`);
    });
}

/* A rejected promise of the client, as {status, headers, body}: for expected errors. */
async function rejection(promise) {
    try {
        await promise;
    } catch (e) {
        assert.ok(e && e.status !== undefined, `not an HTTP error: ${describeError(e)}`);
        return { status: e.status, headers: e.response ? e.response.headers : {}, body: e.body };
    }
    assert.fail('the request succeeded; an error was expected');
    return null;
}

async function jsClientFlow(Fastly, version) {
    const client = new Fastly.ApiClient();
    client.authenticate(TOKEN);
    client.plugins = [toEdgekv];
    client.timeout = 10000;
    const stores = new Fastly.KvStoreApi(client);
    const items = new Fastly.KvStoreItemApi(client);
    const name = 'compat-js';
    const key = 'dir/greeting one'; /* sent as dir%2Fgreeting%20one */
    const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    let sid;
    let gen;
    let n;

    console.log(`fastly (JavaScript client) ${version}`);

    n = exchanges.length;
    await check('js: create a store (kvStoreCreate)', async () => {
        const r = await stores.kvStoreCreateWithHttpInfo({ kv_store_request_create: { name } });
        assert.equal(r.response.status, 201);
        assert.equal(r.data.name, name);
        assert.match(r.data.id, /^[a-z0-9]{22}$/);
        sid = r.data.id;
    }, showExchanges(n));

    n = exchanges.length;
    await check('js: the store is listed and described (kvStoreList, kvStoreGet)', async () => {
        const list = await stores.kvStoreList({ name });
        assert.deepEqual(list.data.map((s) => [s.id, s.name]), [[sid, name]]);
        const all = await stores.kvStoreList({});
        assert.ok(all.data.some((s) => s.id === sid), 'the store is in the full list');
        const one = await stores.kvStoreGet({ store_id: sid });
        assert.equal(one.id, sid);
        assert.equal(one.name, name);
    }, showExchanges(n));

    n = exchanges.length;
    await check('js: put with metadata (kvStoreUpsertItem)', async () => {
        const r = await items.kvStoreUpsertItemWithHttpInfo({
            store_id: sid, key, body: 'hello world', metadata: 'lang=en',
        });
        assert.equal(r.response.status, 200);
        assert.equal(r.data, null);
    }, showExchanges(n));

    n = exchanges.length;
    await check('js: get returns the value, Metadata and Generation (kvStoreGetItem)', async () => {
        const r = await items.kvStoreGetItemWithHttpInfo({ store_id: sid, key });
        assert.equal(r.response.status, 200);
        assert.ok(Buffer.isBuffer(r.data), `the value is a Buffer (${typeof r.data})`);
        assert.equal(r.data.toString(), 'hello world');
        assert.equal(r.response.headers['content-type'], 'application/octet-stream');
        assert.equal(r.response.headers.metadata, 'lang=en');
        assert.match(r.response.headers.generation, /^[0-9]+$/);
        gen = r.response.headers.generation;
    }, showExchanges(n));

    n = exchanges.length;
    await check('js: if_generation_match: a stale generation is refused (412), the current one wins', async () => {
        const stale = await rejection(items.kvStoreUpsertItem({
            store_id: sid, key, body: 'lost', if_generation_match: String(BigInt(gen) + 1000n),
        }));
        assert.equal(stale.status, 412);
        await items.kvStoreUpsertItem({ store_id: sid, key, body: 'hello again', if_generation_match: gen });
        const r = await items.kvStoreGetItemWithHttpInfo({ store_id: sid, key });
        assert.equal(r.data.toString(), 'hello again');
        assert.equal(r.response.headers.metadata, '', 'a put without metadata clears it');
        assert.ok(BigInt(r.response.headers.generation) > BigInt(gen), 'the generation grew');
    }, showExchanges(n));

    n = exchanges.length;
    await check('js: binary value with add and time_to_live_sec; add again is 412', async () => {
        await items.kvStoreUpsertItem({
            store_id: sid, key: 'bin', body: binary, add: true, time_to_live_sec: 3600,
        });
        const r = await items.kvStoreGetItemWithHttpInfo({ store_id: sid, key: 'bin' });
        assert.ok(Buffer.isBuffer(r.data) && r.data.equals(binary), 'the 256 bytes come back unchanged');
        const again = await rejection(items.kvStoreUpsertItem({ store_id: sid, key: 'bin', body: 'x', add: true }));
        assert.equal(again.status, 412);
    }, showExchanges(n));

    n = exchanges.length;
    await check('js: append and prepend', async () => {
        await items.kvStoreUpsertItem({ store_id: sid, key: 'seq', body: 'b' });
        await items.kvStoreUpsertItem({ store_id: sid, key: 'seq', body: 'c', append: true });
        await items.kvStoreUpsertItem({ store_id: sid, key: 'seq', body: 'a', prepend: true });
        const v = await items.kvStoreGetItem({ store_id: sid, key: 'seq' });
        assert.equal(v.toString(), 'abc');
    }, showExchanges(n));

    n = exchanges.length;
    await check('js: list keys, sorted; prefix; paging with limit=1 and the cursor (kvStoreListItemKeys)', async () => {
        const all = await items.kvStoreListItemKeys({ store_id: sid });
        assert.deepEqual(all.data, ['bin', key, 'seq']);
        const pre = await items.kvStoreListItemKeys({ store_id: sid, prefix: 'dir/' });
        assert.deepEqual(pre.data, [key]);
        const paged = [];
        let cursor;
        for (let i = 0; i < 10; i++) {
            const page = await items.kvStoreListItemKeys({ store_id: sid, limit: 1, cursor });
            paged.push(...page.data);
            cursor = page.meta ? page.meta.next_cursor : undefined;
            if (!cursor)
                break;
        }
        assert.deepEqual(paged, ['bin', key, 'seq']);
        const strong = await items.kvStoreListItemKeys({ store_id: sid, consistency: 'strong' });
        assert.deepEqual(strong.data, ['bin', key, 'seq']);
    }, showExchanges(n));

    n = exchanges.length;
    await check('js: a store that holds keys is not deleted (409)', async () => {
        const r = await rejection(stores.kvStoreDelete({ store_id: sid }));
        assert.equal(r.status, 409);
    }, showExchanges(n));

    n = exchanges.length;
    await check('js: delete keys (kvStoreDeleteItem); get is then 404', async () => {
        for (const k of [key, 'bin', 'seq']) {
            const r = await items.kvStoreDeleteItemWithHttpInfo({ store_id: sid, key: k });
            assert.equal(r.response.status, 204);
        }
        const gone = await rejection(items.kvStoreGetItem({ store_id: sid, key }));
        assert.equal(gone.status, 404);
        const again = await rejection(items.kvStoreDeleteItem({ store_id: sid, key }));
        assert.equal(again.status, 404);
        await items.kvStoreDeleteItem({ store_id: sid, key, force: true });
        const empty = await items.kvStoreListItemKeys({ store_id: sid });
        assert.deepEqual(empty.data, []);
    }, showExchanges(n));

    n = exchanges.length;
    await check('js: delete the store (kvStoreDelete); it is gone', async () => {
        const r = await stores.kvStoreDeleteWithHttpInfo({ store_id: sid });
        assert.equal(r.response.status, 204);
        const gone = await rejection(stores.kvStoreGet({ store_id: sid }));
        assert.equal(gone.status, 404);
        const list = await stores.kvStoreList({ name });
        assert.deepEqual(list.data, []);
    }, showExchanges(n));

    n = exchanges.length;
    await check('js: a wrong token is refused (401)', async () => {
        const bad = new Fastly.ApiClient();
        bad.authenticate('not-the-token');
        bad.plugins = [toEdgekv];
        const r = await rejection(new Fastly.KvStoreApi(bad).kvStoreList({}));
        assert.equal(r.status, 401);
    }, showExchanges(n));
}

/* ------------------------------------------------------------ the CLI */

/* FASTLY_ACCOUNT_ENDPOINT: the OpenID discovery document; also the CLI's HTTP(S) proxy, which
 * refuses every CONNECT (the CLI's update check). Resolves to the server once it listens. */
function accountServer() {
    const srv = http.createServer((req, res) => {
        const base = `http://127.0.0.1:${srv.address().port}`;
        if (req.url === '/realms/fastly/.well-known/openid-configuration') {
            res.setHeader('Content-Type', 'application/json');
            res.end(JSON.stringify({
                issuer: `${base}/realms/fastly`,
                authorization_endpoint: `${base}/realms/fastly/protocol/openid-connect/auth`,
                token_endpoint: `${base}/realms/fastly/protocol/openid-connect/token`,
                jwks_uri: `${base}/realms/fastly/protocol/openid-connect/certs`,
            }));
        } else {
            res.statusCode = 404;
            res.end();
        }
    });
    srv.on('connect', (req, sock) => {
        sock.on('error', () => {});
        sock.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n');
    });
    srv.on('clientError', (err, sock) => sock.destroy());
    return new Promise((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', () => resolve(srv));
    });
}

function cliRunner(bin, accountPort) {
    const home = path.join(TMP, 'cli-home');
    fs.mkdirSync(home, { recursive: true });
    const account = `http://127.0.0.1:${accountPort}`;
    const env = {
        PATH: process.env.PATH || '/usr/bin:/bin',
        HOME: home,
        XDG_CONFIG_HOME: path.join(home, '.config'),
        FASTLY_API_ENDPOINT: BASE,
        FASTLY_API_TOKEN: TOKEN,
        ...(process.env.SSL_CERT_FILE ? { SSL_CERT_FILE: process.env.SSL_CERT_FILE } : {}),
        FASTLY_ACCOUNT_ENDPOINT: account,
        HTTPS_PROXY: account,
        HTTP_PROXY: account,
        NO_PROXY: '127.0.0.1,localhost',
        TERM: 'dumb',
    };
    let last = null; /* the last command run, for explain() */
    const run = (args) => new Promise((resolve) => {
        execFile(bin, args, { env, timeout: 20000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
            const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
            resolve({ code, stdout, stderr, args });
        });
    });
    /* Runs a command that must succeed; returns its stdout. */
    const ok = async (args) => {
        const r = await run(args);
        last = r;
        assert.equal(r.code, 0, `fastly ${args.join(' ')} exited with ${r.code}`);
        return r.stdout;
    };
    /* Runs a command that must fail; returns stdout + stderr. */
    const fails = async (args) => {
        const r = await run(args);
        last = r;
        assert.notEqual(r.code, 0, `fastly ${args.join(' ')} succeeded; it should have failed`);
        return r.stdout + r.stderr;
    };
    /* For a failure report: the last command's output, and the same command again with
     * --debug-mode (the CLI then prints its requests and edgekv's responses). */
    const explain = async () => {
        if (last === null)
            return;
        const r = last;
        console.log(`    fastly ${r.args.join(' ')} -> exit ${r.code}`);
        for (const line of (r.stdout + r.stderr).split('\n').filter((l) => l.trim() !== ''))
            console.log(`    | ${line}`);
        const d = await run([...r.args, '--debug-mode']);
        console.log('    the same with --debug-mode:');
        for (const line of (d.stdout + d.stderr).split('\n').filter((l) => l.trim() !== ''))
            console.log(`    | ${line.length > 400 ? line.slice(0, 400) + '...' : line}`);
    };
    return { ok, fails, explain };
}

async function cliFlow(bin) {
    const srv = await accountServer();
    try {
        await cliSteps(cliRunner(bin, srv.address().port));
    } finally {
        srv.close();
    }
}

async function cliSteps({ ok, fails, explain }) {
    const name = 'compat-cli';
    const key = 'dir/greeting one';
    let sid;

    console.log(`Fastly CLI: ${(await ok(['version'])).split('\n')[0]}`);

    await check('cli: kv-store create', async () => {
        const out = JSON.parse(await ok(['kv-store', 'create', '--name', name, '--json']));
        assert.equal(out.Name, name);
        assert.match(out.StoreID, /^[a-z0-9]{22}$/);
        sid = out.StoreID;
    }, explain);

    await check('cli: kv-store list and describe', async () => {
        const list = JSON.parse(await ok(['kv-store', 'list', '--json']));
        assert.ok(list.Data.some((s) => s.StoreID === sid && s.Name === name), 'the store is listed');
        const one = JSON.parse(await ok(['kv-store', 'describe', '--store-id', sid, '--json']));
        assert.equal(one.StoreID, sid);
        assert.equal(one.Name, name);
        assert.match(one.CreatedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    }, explain);

    await check('cli: kv-store-entry create with --metadata', async () => {
        const out = await ok(['kv-store-entry', 'create', '-s', sid, '-k', key, '--value', 'hello world',
            '--metadata', 'lang=en']);
        assert.match(out, /SUCCESS: Created key 'dir\/greeting one'/);
        await ok(['kv-store-entry', 'create', '-s', sid, '-k', 'plain', '--value', 'x']);
    }, explain);

    let gen;
    await check('cli: kv-store-entry get prints the value', async () => {
        assert.equal(await ok(['kv-store-entry', 'get', '-s', sid, '-k', key]), 'hello world');
        const j = JSON.parse(await ok(['kv-store-entry', 'get', '-s', sid, '-k', key, '--json']));
        assert.deepEqual(j, { [key]: Buffer.from('hello world').toString('base64') });
    }, explain);

    await check('cli: kv-store-entry describe shows generation and metadata', async () => {
        const j = JSON.parse(await ok(['kv-store-entry', 'describe', '-s', sid, '-k', key, '--json']));
        assert.equal(j.key, key);
        assert.equal(j.metadata, 'lang=en');
        assert.match(String(j.generation), /^[0-9]+$/);
        gen = String(j.generation);
        const text = await ok(['kv-store-entry', 'describe', '-s', sid, '-k', key]);
        assert.match(text, new RegExp(`Generation: ${gen}\\b`));
        assert.match(text, /Metadata: lang=en/);
    }, explain);

    await check('cli: --if-generation-match: stale refused, current accepted', async () => {
        const stale = String(BigInt(gen) + 1000n);
        await fails(['kv-store-entry', 'create', '-s', sid, '-k', key, '--value', 'lost',
            '--if-generation-match', stale]);
        await ok(['kv-store-entry', 'create', '-s', sid, '-k', key, '--value', 'hello world',
            '--metadata', 'lang=en', '--if-generation-match', gen]);
        const j = JSON.parse(await ok(['kv-store-entry', 'describe', '-s', sid, '-k', key, '--json']));
        assert.ok(BigInt(j.generation) > BigInt(gen), 'the generation grew');
        assert.equal(j.metadata, 'lang=en');
    }, explain);

    await check('cli: kv-store-entry create --file (the batch endpoint)', async () => {
        const file = path.join(TMP, 'batch.ndjson');
        fs.writeFileSync(file, [
            { key: 'batch/a', value: Buffer.from('A').toString('base64') },
            { key: 'batch/b', value: Buffer.from('B').toString('base64'), metadata: 'm' },
        ].map((o) => JSON.stringify(o)).join('\n') + '\n');
        await ok(['kv-store-entry', 'create', '-s', sid, '--file', file]);
        assert.equal(await ok(['kv-store-entry', 'get', '-s', sid, '-k', 'batch/b']), 'B');
        const j = JSON.parse(await ok(['kv-store-entry', 'describe', '-s', sid, '-k', 'batch/b', '--json']));
        assert.equal(j.metadata, 'm');
    }, explain);

    await check('cli: kv-store-entry list (sorted) and --prefix', async () => {
        const keys = JSON.parse(await ok(['kv-store-entry', 'list', '-s', sid, '--json']));
        assert.deepEqual(keys, ['batch/a', 'batch/b', key, 'plain']);
        const pre = JSON.parse(await ok(['kv-store-entry', 'list', '-s', sid, '--prefix', 'batch/', '--json']));
        assert.deepEqual(pre, ['batch/a', 'batch/b']);
    }, explain);

    await check('cli: kv-store-entry delete; describe of the deleted key fails', async () => {
        const out = await ok(['kv-store-entry', 'delete', '-s', sid, '-k', 'plain']);
        assert.match(out, /SUCCESS: Deleted key 'plain'/);
        const err = await fails(['kv-store-entry', 'describe', '-s', sid, '-k', 'plain', '--json']);
        assert.match(err, /404/);
        const keys = JSON.parse(await ok(['kv-store-entry', 'list', '-s', sid, '--json']));
        assert.deepEqual(keys, ['batch/a', 'batch/b', key]);
    }, explain);

    await check('cli: kv-store delete refuses a store that holds keys (409)', async () => {
        const err = await fails(['kv-store', 'delete', '-s', sid, '--auto-yes']);
        assert.match(err, /409/);
    }, explain);

    await check('cli: kv-store-entry delete --all, then kv-store delete', async () => {
        await ok(['kv-store-entry', 'delete', '-s', sid, '--all', '--auto-yes']);
        assert.deepEqual(JSON.parse(await ok(['kv-store-entry', 'list', '-s', sid, '--json'])), []);
        const out = await ok(['kv-store', 'delete', '-s', sid, '--auto-yes']);
        assert.match(out, /SUCCESS: Deleted KV Store/);
        const list = JSON.parse(await ok(['kv-store', 'list', '--json']));
        assert.ok(!(list.Data || []).some((s) => s.StoreID === sid), 'the store is gone');
        await fails(['kv-store', 'describe', '--store-id', sid, '--json']);
    }, explain);
}

/* ------------------------------------------------------------ resource links and the edge path */

/* GET @path on edgekv with the token: {status, headers, body}. */
function edgeGet(urlPath) {
    return new Promise((resolve, reject) => {
        const req = (BASE.startsWith('https:') ? https : http).get(`${BASE}${urlPath}`, { headers: { 'Fastly-Key': TOKEN } }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => {
                const body = Buffer.concat(chunks).toString();
                exchanges.push(`GET ${urlPath} -> ${res.statusCode} ${JSON.stringify(res.headers)} ${JSON.stringify(body.slice(0, 300))}`);
                resolve({ status: res.statusCode, headers: res.headers, body });
            });
        });
        req.on('error', reject);
        req.setTimeout(10000, () => req.destroy(new Error(`GET ${urlPath}: timeout`)));
    });
}

async function linksFlow(Fastly, cliBin) {
    const client = new Fastly.ApiClient();
    client.authenticate(TOKEN);
    client.plugins = [toEdgekv];
    client.timeout = 10000;
    const stores = new Fastly.KvStoreApi(client);
    const items = new Fastly.KvStoreItemApi(client);
    const links = new Fastly.ResourceApi(client);
    const name = 'compat-linked';
    let sid;
    let link;
    let n;

    n = exchanges.length;
    await check('links: js: a store with an item, linked to the service (createResource)', async () => {
        sid = (await stores.kvStoreCreate({ kv_store_request_create: { name } })).id;
        await items.kvStoreUpsertItem({ store_id: sid, key: 'a/b', body: 'linked value', metadata: 'm1' });
        const r = await links.createResourceWithHttpInfo({
            service_id: SERVICE, version_id: 1, resource_id: sid, name: 'compat-link',
        });
        assert.equal(r.response.status, 200);
        link = r.data;
        assert.equal(link.name, 'compat-link');
        assert.equal(link.resource_id, sid);
        assert.equal(link.service_id, SERVICE);
        assert.equal(link.version, 1);
        assert.ok(link.created_at instanceof Date && !isNaN(link.created_at), 'created_at is a date');
        const list = await links.listResources({ service_id: SERVICE, version_id: 1 });
        assert.deepEqual(list.map((l) => [l.id, l.name]), [[link.id, 'compat-link']]);
        const one = await links.getResource({ service_id: SERVICE, version_id: 1, id: link.id });
        assert.equal(one.resource_id, sid);
    }, showExchanges(n));

    n = exchanges.length;
    await check('links: the edge path /kv/{link}/{key} and /kv/{store name}/{key}', async () => {
        for (const p of ['/kv/compat-link/a/b', '/kv/compat-link/a%2Fb', `/kv/${name}/a/b`]) {
            const r = await edgeGet(p);
            assert.equal(r.status, 200, p);
            assert.equal(r.body, 'linked value', p);
            assert.equal(r.headers.metadata, 'm1', p);
            assert.match(r.headers.generation, /^[0-9]+$/, p);
        }
    }, showExchanges(n));

    if (cliBin !== null) {
        const srv = await accountServer();
        try {
            const { ok, explain } = cliRunner(cliBin, srv.address().port);
            await check('links: cli: service resource-link list (--version latest) and describe', async () => {
                const list = JSON.parse(await ok(['service', 'resource-link', 'list', '--service-id', SERVICE,
                    '--version', 'latest', '--json']));
                assert.deepEqual(list.map((l) => [l.id, l.name, l.resource_id]), [[link.id, 'compat-link', sid]]);
                const one = JSON.parse(await ok(['service', 'resource-link', 'describe', '--service-id', SERVICE,
                    '--version', '1', '--id', link.id, '--json']));
                assert.equal(one.name, 'compat-link');
                assert.equal(one.resource_type, 'kv-store');
            }, explain);
            /* every version edgekv describes is editable: create works on --version N with and
             * without --autoclone (it used to fail without: "service version 1 is active") */
            for (const [flags, alias] of [[[], 'cli-link-a'], [['--autoclone'], 'cli-link-b']]) {
                await check(`links: cli: service resource-link create --version 1 ${flags.join(' ')}`, async () => {
                    const made = JSON.parse(await ok(['service', 'resource-link', 'create', '--service-id', SERVICE,
                        '--version', '1', '--resource-id', sid, '--name', alias, ...flags, '--json']));
                    assert.equal(made.name, alias);
                    assert.equal(made.resource_id, sid);
                    const all = await links.listResources({ service_id: SERVICE, version_id: 1 });
                    assert.ok(all.some((l) => l.id === made.id), 'the new link is listed');
                    await links.deleteResource({ service_id: SERVICE, version_id: 1, id: made.id });
                }, explain);
            }
        } finally {
            srv.close();
        }
    }

    n = exchanges.length;
    await check('links: js: rename the link (updateResource); the edge path follows', async () => {
        const r = await links.updateResource({ service_id: SERVICE, version_id: 1, id: link.id, name: 'compat-link2' });
        assert.equal(r.name, 'compat-link2');
        assert.equal((await edgeGet('/kv/compat-link2/a/b')).body, 'linked value');
        assert.equal((await edgeGet('/kv/compat-link/a/b')).status, 404);
    }, showExchanges(n));

    n = exchanges.length;
    await check('links: js: delete the link (deleteResource), the item and the store', async () => {
        const r = await links.deleteResourceWithHttpInfo({ service_id: SERVICE, version_id: 1, id: link.id });
        assert.equal(r.response.status, 200);
        assert.equal(r.data.status, 'ok');
        assert.deepEqual(await links.listResources({ service_id: SERVICE, version_id: 1 }), []);
        assert.equal((await edgeGet('/kv/compat-link2/a/b')).status, 404);
        await items.kvStoreDeleteItem({ store_id: sid, key: 'a/b' });
        await stores.kvStoreDelete({ store_id: sid });
    }, showExchanges(n));
}

/* ------------------------------------------------------------ main */

function loadPackage(name) {
    try {
        return { mod: require(name), version: require(`${name}/package.json`).version };
    } catch (e) {
        return null;
    }
}

async function main() {
    const watchdog = setTimeout(() => {
        console.log('FAIL: the compat driver did not finish within 60 s');
        process.exit(1);
    }, 60000);

    const fastly = loadPackage('fastly');
    let cli = null;
    try {
        const dir = path.dirname(require.resolve('@fastly/cli-linux-x64/package.json'));
        cli = path.join(dir, 'fastly');
        fs.accessSync(cli, fs.constants.X_OK);
    } catch (e) {
        cli = null;
    }

    if (fastly === null)
        skipOrFail('the npm package fastly is not installed (npm ci --prefix tests/compat)');
    else
        await flow('js', () => jsClientFlow(fastly.mod, fastly.version));
    if (cli === null)
        skipOrFail(`the Fastly CLI (npm @fastly/cli-linux-x64) is not installed (${process.platform}/${process.arch})`);
    else
        await flow('cli', () => cliFlow(cli));
    if (fastly !== null)
        await flow('links', () => linksFlow(fastly.mod, cli));

    clearTimeout(watchdog);
    console.log(`compat: Checks: ${checks}, Failures: ${failures}, Errors: ${errors}`);
    if (checks === 0)
        process.exit(77); /* nothing was installed, and that is allowed */
    process.exit(failures + errors === 0 ? 0 : 1);
}

main();
