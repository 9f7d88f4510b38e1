// Blkid module.
