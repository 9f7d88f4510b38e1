// SnapshotTree module.
