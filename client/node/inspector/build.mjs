// Bundles the inspector into the server package (no build step at serve time):
// server/src/mlsdm/server/transport/http/static/ui/{index.html,style.css,app.js}.
// Deterministic output (no timestamps, no source maps), so CI can rebuild and
// compare it with what is checked in (`git diff --exit-code`).
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const oneRuntime = {
  name: "one-runtime",
  setup(b) {
    b.onResolve({ filter: /^@bufbuild\/protobuf(\/|$)/ }, (args) =>
      args.pluginData === "here"
        ? undefined
        : b.resolve(args.path, { kind: args.kind, resolveDir: here, pluginData: "here" }),
    );
  },
};
const out = join(here, "../../../server/src/mlsdm/server/transport/http/static/ui");
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(here, "src/main.ts")],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  legalComments: "none",
  outfile: join(out, "app.js"),
  logLevel: "warning",
  // One copy of the runtime: the generated code under ../src/gen would otherwise
  // resolve @bufbuild/protobuf from client/node/node_modules (a second copy).
  plugins: [oneRuntime],
});
for (const file of ["index.html", "style.css"]) {
  copyFileSync(join(here, "src", file), join(out, file));
}
