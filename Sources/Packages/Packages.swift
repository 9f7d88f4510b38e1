// Packages module.
