// The public library API: what `import ... from 'imgbuild'` gets.
export * from './errors.js';
export * from './events.js';
export { type Context, type ContextOptions, createContext, defaultCacheDir } from './context.js';
export { type Run, type RunOptions, type RunResult, createRunner } from './runner.js';
export { type Arch, archTable, parseArch } from './arch.js';
export { type AttachStrategy, attachStrategies } from './attach.js';
export { type ImageFile, openImage } from './image.js';
export { type Session, type SessionMode, type SessionOptions, openSession, withSession } from './session.js';
export { type ImageFacts, inspectImage } from './inspect.js';
export { recover } from './recover.js';
export { doctor } from './doctor.js';
export { mountKept, umountKept } from './kept.js';
export { type SampleOptions, buildSample, samplePath } from './sample.js';
export { type PartitionTable, type Partition, parseSfdiskJson, detectFilesystem } from './partitions.js';
export { parseMountinfo } from './mountinfo.js';
export { faultSteps } from './fault.js';
