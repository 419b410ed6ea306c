"""`pool_random`: the worked example of adding a method (docs/architecture.md). A baseline for LLKD: the teacher's
labels on a random subset of the unlabelled pool, with no selection and no few-shot prior."""
