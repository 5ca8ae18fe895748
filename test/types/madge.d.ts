declare module 'madge' {
  interface MadgeResult {
    obj(): Record<string, string[]>;
    circular(): string[][];
  }
  function madge(paths: string | string[], config?: { fileExtensions?: string[]; tsConfig?: string }): Promise<MadgeResult>;
  export default madge;
}
