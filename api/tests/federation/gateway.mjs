// An Apollo Gateway in front of our API and the reviews subgraph.
//
//   node gateway.mjs http://127.0.0.1:<port>/graphql
//
// Fetches our subgraph's SDL (`{ _service { sdl } }`), composes it with the reviews
// subgraph (composeServices; exits 1 with the composition errors if it fails), and serves
// the supergraph on a free loopback port. The client's `authorization` and
// `x-correlation-id` headers are forwarded to every subgraph request. Prints one JSON line
// on stdout once it serves: {"gateway": "<url>", "reviews": "<url>"}; stops when stdin
// closes (the test that spawned it ended).
import { ApolloGateway, RemoteGraphQLDataSource } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { compose } from './compose.mjs';
import { startReviews } from './reviews.mjs';

const FORWARDED = ['authorization', 'x-correlation-id'];

const apiUrl = process.argv[2];
if (!apiUrl) {
  console.error('usage: node gateway.mjs <our API graphql URL>');
  process.exit(64);
}

const response = await fetch(apiUrl, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ query: '{ _service { sdl } }' }),
});
const body = await response.json();
const sdl = body?.data?._service?.sdl;
if (!sdl) {
  console.error(`our API did not serve its SDL (HTTP ${response.status}): ${JSON.stringify(body)}`);
  process.exit(1);
}

const reviewsUrl = await startReviews();
const composed = compose(sdl, apiUrl, reviewsUrl);
if (!composed.ok) {
  console.error(`composition failed:\n${composed.errors.join('\n')}`);
  process.exit(1);
}

class ForwardingDataSource extends RemoteGraphQLDataSource {
  willSendRequest({ request, context }) {
    for (const name of FORWARDED) {
      const value = context.headers?.[name];
      if (value) request.http.headers.set(name, value);
    }
  }
}

const gateway = new ApolloGateway({
  supergraphSdl: composed.supergraphSdl,
  buildService: ({ url }) => new ForwardingDataSource({ url }),
});
const server = new ApolloServer({ gateway });
const { url } = await startStandaloneServer(server, {
  listen: { host: '127.0.0.1', port: 0 },
  context: async ({ req }) => ({ headers: req.headers }),
});
console.log(JSON.stringify({ gateway: url, reviews: reviewsUrl }));

process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
