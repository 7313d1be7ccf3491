// Apollo's composition (@apollo/composition's composeServices) over our subgraph's SDL and
// the reviews subgraph.
//
//   node compose.mjs [--alone] < our.graphql
//
// prints {"ok":true,"query":[...],"mutation":[...]} (the composed API's root fields) or
// {"ok":false,"errors":[...]} and exits 1. `--alone` composes our subgraph by itself.
import { composeServices } from '@apollo/composition';
import { Supergraph } from '@apollo/federation-internals';
import { parse } from 'graphql';
import { typeDefs as reviews } from './reviews.mjs';

/** Composes `ourSdl` (served at `ourUrl`) with the reviews subgraph (at `reviewsUrl`). */
/** Without `reviewsUrl`, our subgraph is composed alone. */
export function compose(ourSdl, ourUrl = 'http://anineplus.invalid/graphql', reviewsUrl = null) {
  const subgraphs = [{ name: 'anineplus', url: ourUrl, typeDefs: parse(ourSdl) }];
  if (reviewsUrl) subgraphs.push({ name: 'reviews', url: reviewsUrl, typeDefs: parse(reviews) });
  const result = composeServices(subgraphs);
  if (result.errors?.length) {
    return { ok: false, errors: result.errors.map((e) => e.message) };
  }
  return { ok: true, supergraphSdl: result.supergraphSdl };
}

/** The root fields a client of the composed API (the supergraph's API schema) sees. */
export function rootFields(supergraphSdl) {
  const schema = Supergraph.build(supergraphSdl).apiSchema().toGraphQLJSSchema();
  return {
    query: Object.keys(schema.getQueryType()?.getFields() ?? {}).sort(),
    mutation: Object.keys(schema.getMutationType()?.getFields() ?? {}).sort(),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const alone = process.argv.includes('--alone');
  const result = compose(Buffer.concat(chunks).toString('utf8'), undefined, alone ? null : 'http://reviews.invalid/');
  if (!result.ok) {
    console.log(JSON.stringify(result));
    process.exit(1);
  }
  console.log(JSON.stringify({ ok: true, ...rootFields(result.supergraphSdl) }));
}
