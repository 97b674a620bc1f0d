/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/tests', '<rootDir>/providers', '<rootDir>/config', '<rootDir>/server'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' } }],
    // The real clients the tests drive (the AI SDK, @openrouter/sdk) ship as ES modules only, and jest
    // runs CommonJS: swc turns their import/export into require, and changes nothing else.
    '^.+\\.js$': ['@swc/jest', { jsc: { parser: { syntax: 'ecmascript' }, target: 'es2022' }, module: { type: 'commonjs' } }],
  },
  // Nothing else in node_modules is transformed. zod's ESM files are reached through the AI SDK's
  // `zod/v4/locales/en.js` import (the same file for import and require in zod's exports map).
  transformIgnorePatterns: ['/node_modules/(?!(ai|@ai-sdk|@openrouter|@vercel/oidc|@workflow|eventsource-parser|@standard-schema|zod)/)'],
  testTimeout: 20000,
  maxWorkers: 2,
  // Tests start real servers on loopback; a test that leaves one open is a bug we want to see, not hide.
  detectOpenHandles: false,
};
