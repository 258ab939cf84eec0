// Node's cluster module serving the same answer as the sample: "Hello from <pid>".
// POLICY=rr: the primary accepts and passes each socket (round-robin); POLICY=none: workers accept themselves.
const cluster = require('node:cluster');
const http = require('node:http');

const port = Number(process.env.PORT);
const workers = Number(process.env.WORKERS || 2);
cluster.schedulingPolicy = process.env.POLICY === 'none' ? cluster.SCHED_NONE : cluster.SCHED_RR;

if (cluster.isPrimary) {
  for (let i = 0; i < workers; i++) {
    cluster.fork();
  }
  cluster.on('listening', () => {});
  process.on('SIGTERM', () => {
    for (const id in cluster.workers) cluster.workers[id].process.kill('SIGTERM');
    process.exit(0);
  });
} else {
  http.createServer((req, res) => {
    const body = `Hello from ${process.pid}`;
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  }).listen(port, '127.0.0.1');
}
