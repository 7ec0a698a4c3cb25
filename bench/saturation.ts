// `node dist/bench/saturation.js [--model dir] [--duration s] [--rates 100,200,...]`: the saturation
// curve. For each offered rate (the open-loop driver of bench/open_loop.ts: uniform arrivals,
// latency from the scheduled send time) a fresh daemon takes POST /v1/ads traffic; the report gives achieved throughput, p50/p99 and shed or failed
// requests per step, names the knee, and plots the curve (SVG). A pipelined WebSocket run of our own
// (autocannon has no WebSocket mode) measures the same daemon closed-loop with exact latencies.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';

import WebSocket from 'ws';

import { ByteBuffer } from 'flatbuffers';

import { projectRoot } from '../src/paths';
import { decodeAdResponse } from '../src/protocol/encode_request';
import { AdRequest } from '../src/protocol/schema';
import { startDaemon } from './daemon';
import { percentiles, runOpenLoop } from './open_loop';
import { gitCommit, machineInfo, runBench, writeReport } from './report';
import { benchRequests } from './requests';

const { values: options } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/demo' },
    duration: { type: 'string', default: '6' },
    rates: { type: 'string', default: '100,200,300,400,500,600,800,1000' },
    'ws-inflight': { type: 'string', default: '64' },
  },
});

interface Step {
  offered: number;
  achieved: number;
  p50Ms: number;
  p99Ms: number;
  shedOrFailed: number;
}

async function httpStep(rate: number, bodies: Buffer[]): Promise<Step> {
  const daemon = await startDaemon({ ADSERVE_MODEL_DIR: path.resolve(projectRoot, options.model!) });
  try {
    const openLoop = (durationSeconds: number) =>
      runOpenLoop({
        host: '127.0.0.1',
        port: daemon.port,
        path: '/v1/ads',
        bodies,
        contentType: 'application/x-flatbuffers',
        rate,
        durationSeconds,
        initialConnections: 32,
        maxConnections: 512,
      });
    await openLoop(2); // warm-up
    const result = await openLoop(Number(options.duration));
    return {
      offered: rate,
      achieved: result.achievedRate,
      p50Ms: result.latencyMs.p50,
      p99Ms: result.latencyMs.p99,
      shedOrFailed: result.non2xx + result.errors + result.timedOut + result.dropped,
    };
  } finally {
    await daemon.stop();
  }
}

async function websocketRun(bodies: Buffer[]): Promise<{ inFlight: number; requestsPerSecond: number; p50Ms: number; p99Ms: number }> {
  const daemon = await startDaemon({ ADSERVE_MODEL_DIR: path.resolve(projectRoot, options.model!) });
  try {
    const sockets = await Promise.all(
      Array.from(
        { length: 4 },
        () =>
          new Promise<WebSocket>((resolve, reject) => {
            const ws = new WebSocket(`ws://127.0.0.1:${daemon.port}/v1/ws`);
            ws.once('open', () => resolve(ws));
            ws.once('error', reject);
          }),
      ),
    );
    const inFlight = Number(options['ws-inflight']);
    const ids = bodies.map((body) => AdRequest.getRootAsAdRequest(new ByteBuffer(body)).id()!);
    const latencies: number[] = [];
    let next = 0;
    let stop = false;
    const until = Date.now() + Number(options.duration) * 1000;
    await Promise.all(
      sockets.map(
        (ws) =>
          new Promise<void>((resolve) => {
            // Answers may come out of order: match them to their sends by request id.
            const sent = new Map<string, bigint>();
            const fire = (): void => {
              const index = next++ % bodies.length;
              sent.set(ids[index]!, process.hrtime.bigint());
              ws.send(bodies[index]!);
            };
            ws.on('message', (data: Buffer) => {
              const id = decodeAdResponse(new Uint8Array(data)).requestId()!;
              latencies.push(Number(process.hrtime.bigint() - sent.get(id)!) / 1e6);
              sent.delete(id);
              if (Date.now() >= until) stop = true;
              if (!stop) fire();
              else if (sent.size === 0) resolve();
            });
            for (let i = 0; i < inFlight / sockets.length; i++) fire();
          }),
      ),
    );
    sockets.forEach((ws) => ws.close());
    const { p50, p99 } = percentiles(Float64Array.from(latencies), latencies.length);
    return { inFlight, requestsPerSecond: latencies.length / Number(options.duration), p50Ms: p50, p99Ms: p99 };
  } finally {
    await daemon.stop();
  }
}

// One request at a time: the latency of an unloaded daemon, with sub-millisecond resolution.
async function sequentialRun(bodies: Buffer[]): Promise<{ p50Ms: number; p99Ms: number }> {
  const daemon = await startDaemon({ ADSERVE_MODEL_DIR: path.resolve(projectRoot, options.model!) });
  try {
    const latencies: number[] = [];
    for (let i = 0; i < 550; i++) {
      const started = process.hrtime.bigint();
      const response = await fetch(`${daemon.url}/v1/ads`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-flatbuffers' },
        body: bodies[i % bodies.length],
      });
      await response.arrayBuffer();
      if (i >= 50) latencies.push(Number(process.hrtime.bigint() - started) / 1e6); // the first 50 warm up
    }
    const { p50, p99 } = percentiles(Float64Array.from(latencies), latencies.length);
    return { p50Ms: p50, p99Ms: p99 };
  } finally {
    await daemon.stop();
  }
}

function svg(steps: Step[]): string {
  const width = 640;
  const height = 360;
  const maxX = Math.max(...steps.map((s) => s.offered));
  const maxY = Math.max(...steps.map((s) => s.p99Ms), 1);
  const x = (v: number): number => 50 + (v / maxX) * (width - 80);
  const y = (v: number): number => height - 40 - (v / maxY) * (height - 80);
  const line = (pick: (s: Step) => number, color: string): string =>
    `<polyline fill="none" stroke="${color}" stroke-width="2" points="${steps.map((s) => `${x(s.offered).toFixed(1)},${y(pick(s)).toFixed(1)}`).join(' ')}"/>`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<line x1="50" y1="${height - 40}" x2="${width - 30}" y2="${height - 40}" stroke="black"/><line x1="50" y1="40" x2="50" y2="${height - 40}" stroke="black"/>`,
    `<text x="${width / 2}" y="${height - 8}" text-anchor="middle">offered load (requests/s)</text>`,
    `<text x="12" y="${height / 2}" transform="rotate(-90 12 ${height / 2})" text-anchor="middle">latency (ms)</text>`,
    ...steps.map((s) => `<text x="${x(s.offered)}" y="${height - 26}" text-anchor="middle">${s.offered}</text>`),
    `<text x="44" y="${y(maxY) + 4}" text-anchor="end">${maxY.toFixed(1)}</text><text x="44" y="${height - 36}" text-anchor="end">0</text>`,
    line((s) => s.p99Ms, '#d62728'),
    line((s) => s.p50Ms, '#1f77b4'),
    `<text x="${width - 150}" y="30" fill="#d62728">p99</text><text x="${width - 110}" y="30" fill="#1f77b4">p50</text>`,
    '</svg>',
  ].join('\n');
}

async function main(): Promise<void> {
  const bodies = benchRequests(2000, 3);
  const steps: Step[] = [];
  for (const rate of options.rates!.split(',').map(Number)) {
    const step = await httpStep(rate, bodies);
    process.stdout.write(
      `offered ${rate}/s: achieved ${step.achieved.toFixed(0)}/s, p50 ${step.p50Ms.toFixed(2)} ms, p99 ${step.p99Ms.toFixed(2)} ms, shed/failed ${step.shedOrFailed}\n`,
    );
    steps.push(step);
  }
  // The knee: the first step that no longer keeps up (achieved < 95 % of offered, or anything shed)
  // or whose p99 is more than twice that of the lightest step.
  const knee = steps.find((s) => s.achieved < 0.95 * s.offered || s.shedOrFailed > 0 || s.p99Ms > 2 * Math.max(steps[0]!.p99Ms, 1));
  const ws = await websocketRun(bodies);
  const unloaded = await sequentialRun(bodies);
  const date = new Date().toISOString();
  const report = { date, commit: gitCommit(), machine: machineInfo(), options, steps, knee: knee?.offered ?? null, websocket: ws, unloaded };
  const plotName = `saturation-${date.replace(/[:.]/g, '-')}.svg`;
  writeFileSync(path.join(projectRoot, 'bench', 'results', plotName), svg(steps));
  const markdown = [
    `# Saturation curve, ${date}`,
    '',
    `commit ${report.commit}; model ${options.model}; ${report.machine.cpu} x${report.machine.cores}; a fresh daemon per step, 2 s warm-up, ${options.duration} s measured; the open-loop driver (32 connections to start, up to 512, one request in flight on each) shares the box.`,
    '',
    '| offered req/s | achieved req/s | p50 ms | p99 ms | shed or failed |',
    '|---|---|---|---|---|',
    ...steps.map((s) => `| ${s.offered} | ${s.achieved.toFixed(0)} | ${s.p50Ms.toFixed(2)} | ${s.p99Ms.toFixed(2)} | ${s.shedOrFailed} |`),
    '',
    "Requests arrive at uniform intervals and latency runs from each request's scheduled send time, so a step past the knee shows its queueing in the latencies; shed or failed counts non-2xx answers, errors, timeouts and requests dropped because all 512 connections were busy.",
    '',
    knee
      ? `Knee: ${knee.offered} req/s offered (the first step that falls behind, sheds, or doubles the lightest step's p99).`
      : 'No knee within the offered rates.',
    '',
    `Unloaded (one HTTP request at a time, fetch client, 500 requests): p50 ${unloaded.p50Ms.toFixed(2)} ms, p99 ${unloaded.p99Ms.toFixed(2)} ms.`,
    '',
    `WebSocket, ${ws.inFlight} frames in flight over 4 sockets, closed loop: ${ws.requestsPerSecond.toFixed(0)} req/s, p50 ${ws.p50Ms.toFixed(2)} ms, p99 ${ws.p99Ms.toFixed(2)} ms (exact client-side latencies).`,
    '',
    `![saturation curve](${plotName})`,
    '',
  ].join('\n');
  writeReport('saturation', date, report, markdown);
}

runBench(main);
