// The layering of src/, checked by `npm run lint`. A request walks server -> pipeline -> the lower
// layers and back; arrows only point down:
//   main.ts -> server/ -> pipeline/ (and metrics.ts) -> engine/ -> money/ -> catalog/
//   engine/ -> auction/, calibration/;  everything -> protocol/ and the shared modules in src/*.ts
// auction/ and calibration/ are pure rules that see only protocol types and the shared modules.
const shared = '^src/(config|log|errors|paths|durable_file)\\.ts$';

const forbidden = (name, comment, from, to) => ({ name, comment, severity: 'error', from, to });

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'Import cycles hide which module owns a concept; move the shared type to the lower module.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    forbidden(
      'server-only-from-main',
      'src/server/ is transport; only main.ts wires it.',
      { path: '^src/', pathNot: '^src/(main\\.ts|server/)' },
      { path: '^src/server/' },
    ),
    forbidden(
      'pipeline-only-from-above',
      'Only server/ and main.ts run the pipeline; lower layers must not call back up into it.',
      { path: '^src/', pathNot: '^src/(main\\.ts|server/|pipeline/)' },
      { path: '^src/pipeline/' },
    ),
    forbidden(
      'metrics-only-from-above',
      'Metrics are observed by the pipeline and server; lower layers return what they measured.',
      { path: '^src/(engine|money|catalog|auction|calibration|protocol)/' },
      { path: '^src/metrics\\.ts$' },
    ),
    forbidden(
      'engine-only-from-above',
      'The native engine is reached through engine/; money, catalog and the pure rules must not hold it.',
      { path: '^src/(money|catalog|store|auction|calibration|protocol)/' },
      { path: '^src/engine/' },
    ),
    forbidden(
      'store-sees-catalog-only',
      'The catalog store holds rows; serving reads it, it never reaches into serving.',
      { path: '^src/store/' },
      { path: '^src/(server|pipeline|engine|money|metrics)' },
    ),
    forbidden(
      'money-not-from-below',
      'Money reads the catalog, never the other way round.',
      { path: '^src/(catalog|auction|calibration|protocol)/' },
      { path: '^src/money/' },
    ),
    forbidden(
      'pure-rules-see-protocol-only',
      'Auction and calibration are pure functions of their inputs.',
      { path: '^src/(auction|calibration)/' },
      { path: '^src/(catalog|money|engine)/' },
    ),
    forbidden(
      'protocol-is-a-leaf',
      'protocol/ wraps the generated FlatBuffers code and depends on no layer.',
      { path: '^src/protocol/' },
      { path: '^src/', pathNot: '^src/protocol/' },
    ),
    forbidden(
      'shared-modules-are-leaves',
      'config, log, errors, paths and durable_file serve every layer, so they import none.',
      { path: shared },
      { path: '^src/(server|pipeline|engine|money|catalog|store|auction|calibration|protocol)/|^src/(main|metrics)\\.ts$' },
    ),
    forbidden('src-never-imports-tests-or-bench', 'The daemon ships without test/ and bench/.', { path: '^src/' }, { path: '^(test|bench)/' }),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^build/' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
  },
};
