// A second subgraph, written with Apollo's own @apollo/subgraph: ratings of anime.
// It extends our `Anime` entity by `id` with fields of its own (`ratings`, `averageScore`)
// and returns `Anime` references (`topRated`) that the gateway resolves through our
// `_entities`, so both directions of an entity join cross the two subgraphs.
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse } from 'graphql';

export const typeDefs = `
extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key"])

type Anime @key(fields: "id") {
  id: ID!
  "Ratings given in this subgraph, oldest first."
  ratings: [Rating!]!
  "Mean score, null without ratings."
  averageScore: Float
}

type Rating {
  score: Int!
  anime: Anime!
}

type Query {
  "Rated anime, best first."
  topRated(first: Int = 10): [Anime!]!
}

type Mutation {
  "Rates an anime from 1 to 10."
  rate(animeId: ID!, score: Int!): Rating!
}
`;

const ratings = [];
const of = (id) => ratings.filter((r) => r.animeId === id);
const average = (id) => {
  const own = of(id);
  return own.length ? own.reduce((s, r) => s + r.score, 0) / own.length : null;
};

const resolvers = {
  Anime: {
    __resolveReference: ({ id }) => ({ id }),
    ratings: ({ id }) => of(id).map(({ score, animeId }) => ({ score, anime: { id: animeId } })),
    averageScore: ({ id }) => average(id),
  },
  Query: {
    topRated: (_, { first }) =>
      [...new Set(ratings.map((r) => r.animeId))]
        .sort((a, b) => average(b) - average(a))
        .slice(0, first)
        .map((id) => ({ id })),
  },
  Mutation: {
    rate: (_, { animeId, score }) => {
      ratings.push({ animeId, score });
      return { score, anime: { id: animeId } };
    },
  },
};

/** Starts the subgraph on a free loopback port; resolves to its URL. */
export async function startReviews() {
  const server = new ApolloServer({ schema: buildSubgraphSchema([{ typeDefs: parse(typeDefs), resolvers }]) });
  const { url } = await startStandaloneServer(server, { listen: { host: '127.0.0.1', port: 0 } });
  return url;
}
