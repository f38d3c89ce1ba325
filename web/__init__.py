"""The web endpoints: GraphQL over HTTP, GraphiQL, the demo slot board."""
