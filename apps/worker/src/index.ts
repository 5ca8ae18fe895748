export { startBuildWorker, type BuildWorker, type WorkerDeps } from './worker';
