/** Progress of a popularity run (BullMQ job progress). */
export interface PopcountProgress {
  stage: 'resolving' | 'listing' | 'fetching' | 'evaluating' | 'building' | 'querying' | 'counting' | 'publishing' | 'done';
  /** Items done and in all, where the stage counts something. */
  done?: number;
  total?: number;
}
