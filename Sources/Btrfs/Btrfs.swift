// Btrfs module.
