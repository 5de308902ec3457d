"""`celltrail soak` (issue 12 item 7): a mixed load while components are killed at random,
then the checks that nothing was lost or applied twice. Tooling: the runtime never imports it."""
