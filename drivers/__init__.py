"""Built-in device drivers, one package per device family (registered via entry points)."""
