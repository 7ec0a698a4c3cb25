// ESLint checks only the rules that catch real bugs; tsc (strict, noImplicitAny, noUnused*) and
// Prettier cover the rest.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['build/', 'dist/', 'node_modules/', 'models/', 'data/', 'cache/'] },
  {
    files: ['**/*.ts', '**/*.mts'],
    extends: [js.configs.recommended, tseslint.configs.recommended],
    languageOptions: { parserOptions: { project: './tsconfig.test.json', tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unused-expressions': 'error',
      // Leaving fields out of a copy by destructuring them next to a rest element is the idiom, not a leftover.
      '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true }],
      '@typescript-eslint/only-throw-error': 'error',
    },
  },
  // The admin console's browser modules (console/), with the browser globals they use.
  {
    files: ['console/**/*.js'],
    extends: [js.configs.recommended],
    languageOptions: {
      sourceType: 'module',
      globals: { document: 'readonly', sessionStorage: 'readonly', fetch: 'readonly', URLSearchParams: 'readonly', CSS: 'readonly' },
    },
  },
  // A function longer than a screen is two functions.
  { files: ['src/**/*.ts'], rules: { 'max-lines-per-function': ['error', { max: 60 }] } },
);
