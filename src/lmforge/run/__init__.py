"""What a run is made of: its validated spec, the objective registry, the builders, the plan, and the
callbacks, records and strategies around ``trainer.fit``."""
