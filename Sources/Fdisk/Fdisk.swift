// Fdisk module.
