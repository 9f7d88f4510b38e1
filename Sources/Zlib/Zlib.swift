// Zlib module.
