export { createGateway, type Gateway, type GatewayDeps, type GatewayParts } from './app';
export type { Builds } from './build-client';
export { RequestDrain } from './drain';
export { type GatewayServer, serveGateway } from './serve';
