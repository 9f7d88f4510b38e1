// Recipe module.
