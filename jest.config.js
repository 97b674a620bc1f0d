/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/tests', '<rootDir>/providers', '<rootDir>/config', '<rootDir>/server'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' } }] },
  testTimeout: 20000,
  maxWorkers: 2,
  // Tests start real servers on loopback; a test that leaves one open is a bug we want to see, not hide.
  detectOpenHandles: false,
};
