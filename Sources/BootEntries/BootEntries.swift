// BootEntries module.
