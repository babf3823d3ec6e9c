// The ground floor every layer stands on: the error family with its exit codes, the events the
// library emits, the context each stage receives, the one process runner, shell quoting, file
// hashing, shipped resources, fault injection, architectures, file and process identity, byte
// units and formatters, waiting on the kernel and the interrupt that ends a job. Nothing here
// knows about images, sessions or wheels.
export * from './arch.js';
export * from './context.js';
export * from './errors.js';
export * from './events.js';
export * from './fault.js';
export * from './hash.js';
export * from './held-dir.js';
export * from './identity.js';
export * from './quote.js';
export * from './resources.js';
export * from './runner.js';
export * from './units.js';
export * from './wait.js';
