import type { StorageConfig, StorageDriver } from './driver';
import { createFilesystemDriver } from './filesystem';
import { createGcsDriver } from './gcs';
import { createS3Driver } from './s3';

/**
 * Makes the storage driver the configuration asks for: files under
 * `path` (single node, the default), a GCS bucket or an S3 bucket (cluster).
 */
export function createStorage(cfg: StorageConfig): StorageDriver {
  switch (cfg.backend) {
    case 'filesystem':
      return createFilesystemDriver(cfg.path);
    case 'gcs':
      return createGcsDriver({
        bucket: cfg.bucket,
        signedUrls: cfg.signedUrls,
        signedUrlTtlSeconds: cfg.signedUrlTtlSeconds,
        ...(cfg.credentialsFile ? { keyFilename: cfg.credentialsFile } : {}),
        ...(cfg.publicUrl ? { publicUrl: cfg.publicUrl } : {}),
      });
    case 's3': {
      const { backend: _backend, ...settings } = cfg;
      return createS3Driver(settings);
    }
  }
}
