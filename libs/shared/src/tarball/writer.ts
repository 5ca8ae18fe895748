import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import { setImmediate as nextMacrotask } from 'node:timers/promises';
import { pack as tarPack, type Pack } from 'tar-stream';
import { FIXED_MTIME, TarballError, type TarEntry } from './entry';

type Sink = ReturnType<Pack['entry']>;
type FileEntry = Extract<TarEntry, { type: 'file' }>;

/** Bytes the output may buffer before the writer stops adding entries. */
const OUTPUT_HIGH_WATER_MARK = 256 * 1024;
/** Files up to this size are read whole with one synchronous read; larger ones are streamed. */
const SMALL_FILE = 64 * 1024;
/** Longest run of synchronous work (walking, small reads) before yielding to the event loop. */
const SLICE_MS = 4;

/**
 * Writes `entries` as an uncompressed tar, in the order given, with uid/gid 0,
 * empty user/group names and the fixed mtime. Content is read one file at a
 * time and no entry is added while the reader lags behind, so memory stays
 * flat whatever the tree's size.
 *
 * Why synchronous filesystem calls: store trees are mostly many small files,
 * and on a loaded machine each libuv thread-pool round trip costs 50-300 us
 * against about 10 us for the same call done synchronously, so a 50,000-file
 * layer took 12-30 s asynchronously and about 2 s this way. The walk and
 * small reads run in slices of at most ~`SLICE_MS` ms between event-loop
 * turns; big files are streamed asynchronously.
 *
 * A failure of the walk or of a read ends the returned stream with that error;
 * destroying the returned stream stops the walk.
 */
export function writeTar(entries: Iterable<TarEntry>): Readable {
  const pack = tarPack();
  const out = new PassThrough({ highWaterMark: OUTPUT_HIGH_WATER_MARK });
  const flow = new OutputFlow(out);

  pack.on('data', (chunk: unknown) => {
    if (!out.write(chunk as Buffer)) {
      flow.blocked = true;
      pack.pause();
    }
  });
  out.on('drain', () => {
    flow.blocked = false;
    pack.resume();
  });
  pack.on('end', () => out.end());
  pack.on('error', (err: Error) => out.destroy(err));
  out.on('close', () => {
    if (!pack.destroyed) pack.destroy();
  });

  produce(entries, pack, flow).catch((err: unknown) => {
    const error = err instanceof Error ? err : new Error(String(err));
    out.destroy(error);
    if (!pack.destroyed) pack.destroy(error);
  });
  return out;
}

/** Tracks whether the output can take more, and lets the producer wait until it can. */
class OutputFlow {
  blocked = false;
  constructor(private readonly out: PassThrough) {}
  get closed(): boolean {
    return this.out.destroyed || this.out.writableEnded;
  }
  async ready(): Promise<void> {
    while (this.blocked && !this.closed) {
      await waitForEvent(this.out, ['drain', 'close']);
    }
  }
}

async function produce(entries: Iterable<TarEntry>, pack: Pack, flow: OutputFlow): Promise<void> {
  await nextMacrotask(); // start after the caller has attached its listeners
  let sliceStart = performance.now();
  for (const entry of entries) {
    if (flow.closed) return;
    if (entry.type === 'file' && entry.size > SMALL_FILE) {
      await writeStreamedFile(pack, entry);
    } else {
      const content = entry.type === 'file' ? readExactly(entry.source, entry.size) : undefined;
      await addEntry(pack, entry, content).done;
    }
    await flow.ready();
    if (performance.now() - sliceStart > SLICE_MS) {
      await nextMacrotask();
      sliceStart = performance.now();
    }
  }
  if (!flow.closed) pack.finalize();
}

function headerOf(entry: TarEntry) {
  return {
    name: entry.name,
    type: entry.type,
    mode: entry.mode & 0o7777,
    size: entry.type === 'file' ? entry.size : 0,
    linkname: entry.type === 'symlink' ? entry.linkname : '',
    mtime: FIXED_MTIME,
    uid: 0,
    gid: 0,
    uname: '',
    gname: '',
  };
}

function addEntry(pack: Pack, entry: TarEntry, content?: Buffer): { sink: Sink; done: Promise<void> } {
  let sink!: Sink;
  const done = new Promise<void>((resolve, reject) => {
    const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
    sink = content ? pack.entry(headerOf(entry), content, cb) : pack.entry(headerOf(entry), cb);
  });
  done.catch(() => undefined); // awaited by the caller; never an unhandled rejection
  return { sink, done };
}

/** Reads exactly `size` bytes of a small file (the size seen by the walk). */
function readExactly(source: string, size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  if (size === 0) return buf;
  const fd = openSync(source, 'r');
  try {
    let off = 0;
    while (off < size) {
      const n = readSync(fd, buf, off, size - off, off);
      if (n === 0) throw new TarballError('tree-changed', source, 'file shrank while being packed');
      off += n;
    }
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** Streams one big file into its entry; reads exactly the size recorded in the header. */
async function writeStreamedFile(pack: Pack, entry: FileEntry): Promise<void> {
  const { sink, done } = addEntry(pack, entry);
  const src = createReadStream(entry.source, { start: 0, end: entry.size - 1, highWaterMark: 64 * 1024 });
  try {
    for await (const chunk of src) {
      if (sink.destroyed) break;
      if (!sink.write(chunk as Buffer)) await waitForEvent(sink, ['drain', 'close']);
    }
  } catch (err) {
    sink.destroy(err instanceof Error ? err : new Error(String(err)));
    throw err;
  }
  // A file that shrank since the walk makes tar-stream fail the entry ("Size mismatch").
  sink.end(undefined); // streamx typings want an argument; undefined writes nothing
  await done;
}

interface Emitter {
  once(event: string, listener: () => void): unknown;
  off(event: string, listener: () => void): unknown;
}

function waitForEvent(emitter: Emitter, events: string[]): Promise<void> {
  return new Promise((resolve) => {
    const onEvent = (): void => {
      for (const e of events) emitter.off(e, onEvent);
      resolve();
    };
    for (const e of events) emitter.once(e, onEvent);
  });
}
