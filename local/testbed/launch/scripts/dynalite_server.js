// dynalite (npm, installed by `make deps`) on HOST:PORT, for tests; with
// DIR it keeps its tables there (LevelDB), so a restart keeps them.
//
//   node dynalite_server.js HOST PORT [DIR]
//
// It works around one quirk of the emulator here, in the test launcher, so
// that the provider under test never has to know about it: dynalite throws
// from its request's 'error' listener, so a client that gives up on a
// request while dynalite still reads its body (a context deadline, which
// the election and contention tests hit on a loaded machine) kills the
// whole server with "Error: aborted" (ECONNRESET). DynamoDB simply drops
// such a request. This catches exactly that error and lets any other one
// end the process as before.
"use strict";

const dynalite = require("dynalite");

const [host, port, dir] = process.argv.slice(2);
if (!host || !port) {
  console.error("usage: node dynalite_server.js HOST PORT [DIR]");
  process.exit(2);
}

process.on("uncaughtException", (err) => {
  if (err && err.code === "ECONNRESET" && err.message === "aborted") {
    console.error("dynalite: a client aborted its request; dropped");
    return;
  }
  console.error(err);
  process.exit(1);
});

const opts = { createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 };
if (dir) opts.path = dir;
const server = dynalite(opts).listen(Number(port), host, () => {
  console.log("Dynalite listening at: http://%s:%s", host, server.address().port);
});
