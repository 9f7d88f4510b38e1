// Alpm module.
