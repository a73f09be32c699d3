#!/usr/bin/env node
// The installed entry point is plain JS so `npm i -g` / `npx lakehouse` need no build step:
// tsx is registered first, then the TypeScript CLI is loaded (a dynamic import, so it comes after).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./cli.ts');
process.exitCode = await main(process.argv.slice(2));
