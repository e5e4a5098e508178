// Package testbed holds what starts and disturbs the local test servers:
// [launch] starts real backends (moto, dynalite, the Spanner emulator,
// cosmosdb-server, the Lambda runtime emulator, hasp itself) on loopback
// ports, [faults] injects faults between a service and its backend, and
// [spanneremu] runs the official Spanner emulator. It is for tests,
// benchmarks and local development tools only: no production package may
// import it (checked by the architecture test at the module root).
package testbed
