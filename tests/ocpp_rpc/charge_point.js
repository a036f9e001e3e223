// An OCPP 1.6J charge point built on the npm package ocpp-rpc (not on the Python `ocpp` package the
// gateway uses), for the tests. It prints one JSON line per event on stdout.
//
//   node charge_point.js <ws://host:port> <chargePointId> [probe]
//
// Default: boots, reports Preparing (a car is plugged in), accepts RemoteStartTransaction and then
// sends StartTransaction, sends MeterValues with the transactionId every 0.3 s while charging,
// answers RemoteStopTransaction (Accepted only for its own running transaction) and then sends
// StopTransaction, answers TriggerMessage(MeterValues). It reconnects when the central system goes away
// and reports its status again, as deployed charge points do.
// "probe": sends CALLs the central system must refuse and prints the CALLERROR codes it got.
'use strict';
const { RPCClient } = require('ocpp-rpc');

const [endpoint, identity, mode] = process.argv.slice(2);
const out = (event, extra) => process.stdout.write(JSON.stringify({ event, ...extra }) + '\n');
const now = () => new Date().toISOString();

let energyWh = 100000;
let tx = null;
let status = 'Preparing';

const cli = new RPCClient({
  endpoint, identity, protocols: ['ocpp1.6'], strictMode: false,
  backoff: { initialDelay: 200, maxDelay: 1000, factor: 2, randomisationFactor: 0.1 },
});

async function setStatus(s) {
  status = s;
  await cli.call('StatusNotification', { connectorId: 1, errorCode: 'NoError', status: s });
}

async function meterValues() {
  const mv = { connectorId: 1, meterValue: [{ timestamp: now(), sampledValue: [
    { value: energyWh.toFixed(0), measurand: 'Energy.Active.Import.Register', unit: 'Wh' },
    { value: tx === null ? '0' : '7400', measurand: 'Power.Active.Import', unit: 'W' }] }] };
  if (tx !== null) mv.transactionId = tx;
  await cli.call('MeterValues', mv);
}

cli.handle('RemoteStartTransaction', ({ params }) => {
  if (tx !== null) return { status: 'Rejected' };
  setImmediate(async () => {
    const r = await cli.call('StartTransaction', { connectorId: 1, idTag: params.idTag, meterStart: energyWh, timestamp: now() });
    tx = r.transactionId;
    out('started', { transactionId: tx });
    await setStatus('Charging');
  });
  return { status: 'Accepted' };
});

cli.handle('RemoteStopTransaction', ({ params }) => {
  const ok = tx !== null && params.transactionId === tx;
  out('remote_stop', { transactionId: params.transactionId, answer: ok ? 'Accepted' : 'Rejected' });
  if (!ok) return { status: 'Rejected' };
  setImmediate(async () => {
    const stopped = tx;
    tx = null;
    await cli.call('StopTransaction', { transactionId: stopped, meterStop: energyWh, timestamp: now(), reason: 'Remote' });
    out('stopped', { transactionId: stopped, meterStop: energyWh });
    await setStatus('Finishing');
  });
  return { status: 'Accepted' };
});

cli.handle('SetChargingProfile', () => ({ status: 'Accepted' }));
cli.handle('TriggerMessage', ({ params }) => {
  if (params.requestedMessage !== 'MeterValues') return { status: 'NotImplemented' };
  setImmediate(() => meterValues().catch(() => {}));
  return { status: 'Accepted' };
});

async function probe() {
  const calls = [
    ['unknown_action', 'NoSuchAction', {}],
    ['not_supported', 'Reset', { type: 'Soft' }],  // a 1.6 action the central system only sends
    ['extra_property', 'Heartbeat', { notInTheSchema: 1 }],
    ['wrong_type', 'StatusNotification', { connectorId: 'one', errorCode: 'NoError', status: 'Available' }],
  ];
  for (const [name, method, params] of calls) {
    try {
      await cli.call(method, params);
      out('probe', { name, code: null });
    } catch (e) {
      out('probe', { name, code: e.rpcErrorCode || String(e) });
    }
  }
  // a frame no library would build: a CALL without its payload
  const answer = new Promise((resolve) => cli.on('message', ({ message, outbound }) => {
    if (!outbound && String(message).includes('"raw-1"')) resolve(JSON.parse(String(message)));
  }));
  cli.sendRaw(JSON.stringify([2, 'raw-1', 'Heartbeat']));
  const m = await answer;
  out('probe', { name: 'missing_payload', code: m[0] === 4 ? m[2] : null });
  out('probe_done', {});
}

cli.on('open', async ({ response }) => {
  try {
    const boot = await cli.call('BootNotification', { chargePointVendor: 'ocpp-rpc', chargePointModel: 'independent' });
    out('boot', { status: boot.status });
    if (mode === 'probe') return probe();
    await setStatus(tx === null ? status : 'Charging');
    await meterValues();
  } catch (e) {
    out('error', { where: 'open', message: String(e) });
  }
});

setInterval(() => {
  if (cli.state === RPCClient.OPEN && tx !== null) {
    energyWh += 20;
    meterValues().catch(() => {});
  }
}, 300);

(async function connect() {
  for (;;) {  // the first connection too: the gateway may not listen yet
    try { await cli.connect(); return; } catch (e) { await new Promise((r) => setTimeout(r, 200)); }
  }
})();
