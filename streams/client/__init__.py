"""The PMS's client of the hub: what it needs to keep working while the hub is out of reach."""
