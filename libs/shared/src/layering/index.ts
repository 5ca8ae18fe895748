/**
 * layering: the pure layering algorithm (popularity dominators, Nixery's
 * rules) that groups a closure graph into at most `budget` layers.
 * Never imports anything but core; does no I/O.
 */
export * from './layering';
export * from './options';
