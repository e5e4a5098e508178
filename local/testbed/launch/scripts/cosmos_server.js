// @vercel/cosmosdb-server (npm, installed by `make deps`) on HOST:PORT with
// the TLS certificate and key in CERT and KEY, for tests.
//
//   node cosmos_server.js HOST PORT CERT KEY
//
// It works around two quirks of the emulator here, in the test launcher, so
// that the provider under test never has to know about them:
//   - its CLI closes the connection after every response: this starts the
//     server from the package's createHttpsServer export with keepAlive;
//   - reading a missing document fails with 500 (a TypeError in its
//     read-document handler) where Cosmos DB answers 404: the handler is
//     wrapped to answer 404 NotFound, as Cosmos DB does.
// It serves our own certificate (valid, for 127.0.0.1) instead of the
// package's expired one, so clients verify TLS against it.
"use strict";

const fs = require("fs");

const [host, port, certFile, keyFile] = process.argv.slice(2);
if (!host || !port || !certFile || !keyFile) {
  console.error("usage: node cosmos_server.js HOST PORT CERT KEY");
  process.exit(2);
}

// Wrap the read-document handler before the router loads it.
const readDocument = require("@vercel/cosmosdb-server/lib/handler/read-document");
const partition = require("@vercel/cosmosdb-server/lib/utils/get-partition-from-header");
const original = readDocument.default;
readDocument.default = (account, req, res, params) => {
  const collection = account.database(params.dbId).collection(params.collId);
  if (collection.read()) {
    const header = partition.default(req);
    let key = params.docId;
    if (header) {
      key = partition.parsePartitionKey(header, params.docId);
    }
    if (!collection.document(params.docId, key).read()) {
      res.statusCode = 404;
      return {
        code: "NotFound",
        message: "Entity with the specified id does not exist in the system."
      };
    }
  }
  return original(account, req, res, params);
};

const { createHttpsServer } = require("@vercel/cosmosdb-server");

const server = createHttpsServer({
  cert: fs.readFileSync(certFile),
  key: fs.readFileSync(keyFile),
  keepAlive: true
});
server.keepAliveTimeout = 60000;
server.listen(Number(port), host, () => {
  console.log(`cosmosdb-server listening on https://${host}:${port}/`);
});
