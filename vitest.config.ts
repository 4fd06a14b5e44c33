import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Native addons (zstd-napi) and worker_threads behave most predictably in child processes.
    pool: 'forks',
    // Two cores on CI: don't oversubscribe; integration tests are heavy.
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 60_000,
    hookTimeout: 600_000,
  },
});
