"""The GraphQL layer: strawberry types, inputs, scalars (this package) and the `Schema`
object (`schema.root`). Importing a module here builds nothing else."""
